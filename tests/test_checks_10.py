"""Catalogue for exercise 10.1 (attention rollout): wrong answers, each rejected with its hint, and valid
variants, each accepted with full points."""

import functools
import re

import pytest
import torch

from course_lib.checks import EXERCISES, run_check

SEEDS = (0, 1)


def _mix(a):
    m = 0.5 * a.mean(1) + 0.5 * torch.eye(a.shape[-1], dtype=a.dtype)
    return m / m.sum(-1, keepdim=True)


def no_identity(attentions):
    r = attentions[0].mean(1)
    for a in attentions[1:]:
        r = a.mean(1) @ r
    return r


def no_renorm(attentions):
    r = None
    for a in attentions:
        m = 0.5 * a.mean(1) + 0.5 * torch.eye(a.shape[-1])
        r = m if r is None else m @ r
    return r


def plus_identity(attentions):
    r = None
    for a in attentions:
        m = a.mean(1) + torch.eye(a.shape[-1])
        r = m if r is None else m @ r
    return r


def wrong_order(attentions):
    r = None
    for a in attentions:
        r = _mix(a) if r is None else r @ _mix(a)
    return r


def average_after(attentions):
    r = None
    for a in attentions:
        m = 0.5 * a + 0.5 * torch.eye(a.shape[-1])
        m = m / m.sum(-1, keepdim=True)
        r = m if r is None else m @ r
    return r.mean(1)


def sums_heads(attentions):
    r = None
    for a in attentions:
        m = 0.5 * a.sum(1) + 0.5 * torch.eye(a.shape[-1])
        m = m / m.sum(-1, keepdim=True)
        r = m if r is None else m @ r
    return r


def last_layer_only(attentions):
    return _mix(attentions[-1])


def transposed(attentions):
    r = None
    for a in attentions:
        r = _mix(a) if r is None else _mix(a) @ r
    return r.transpose(-2, -1)


def returns_list(attentions):
    return [_mix(a) for a in attentions]


def mutates_input(attentions):
    r = None
    for a in attentions:
        a.mul_(0.5)
        m = a.mean(1) + 0.5 * torch.eye(a.shape[-1])
        m = m / m.sum(-1, keepdim=True)
        r = m if r is None else m @ r
    return r


WRONG = {
    "forgets the identity": (no_identity, "without adding the identity"),
    "does not renormalise": (no_renorm, "skip the renormalisation"),
    "A + I, no renormalisation": (plus_identity, "A + I without renormalising"),
    "wrong order": (wrong_order, "wrong order"),
    "averages heads after": (average_after, "average the heads at the end"),
    "sums the heads": (sums_heads, "add the heads instead of averaging"),
    "last layer only": (last_layer_only, "last layer's mixed map only"),
    "transposed": (transposed, "transposed"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(WRONG))
def test_wrong_answer_is_rejected_with_its_hint(name, seed):
    fn, hint = WRONG[name]
    result = run_check("10.1", fn, seed=seed)
    assert not result.passed, f"{name} passed"
    assert result.points < result.max_points
    assert hint in result.hint, f"{name}: expected a hint containing {hint!r}, got {result.hint!r}"
    assert not re.search(r"\d\.\d{2,}", " ".join(result.messages)), result.messages


@pytest.mark.parametrize("fn", [returns_list, mutates_input])
def test_other_failures_are_reported_not_crashes(fn):
    result = run_check("10.1", fn, seed=0)
    assert not result.passed and result.points < result.max_points


def plus_identity_renormalised(attentions):  # A + I, rows renormalised: the same as 0.5 A + 0.5 I renormalised
    maps = []
    for a in attentions:
        m = a.mean(1) + torch.eye(a.shape[-1], dtype=a.dtype)
        maps.append(m / m.sum(-1, keepdim=True))
    return functools.reduce(lambda r, m: m @ r, maps)


def einsum_float64(attentions):
    r = None
    for a in attentions:
        a = a.double()
        m = 0.5 * torch.einsum("bhij->bij", a) / a.shape[1] + 0.5 * torch.eye(a.shape[-1], dtype=a.dtype)
        m = m / m.sum(-1, keepdim=True)
        r = m if r is None else torch.einsum("bij,bjk->bik", m, r)
    return r.to(attentions[0].dtype)


def reversed_loop(attentions):  # multiplies from the last layer down, on the right
    r = None
    for a in reversed(attentions):
        r = _mix(a) if r is None else r @ _mix(a)
    return r


VALID = [plus_identity_renormalised, einsum_float64, reversed_loop]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fn", VALID)
def test_valid_variants_pass(fn, seed):
    result = run_check("10.1", fn, seed=seed)
    assert result.passed, result.messages
    assert result.points == EXERCISES["10.1"].points


def test_the_reference_passes():
    from course_lib.interpret import attention_rollout
    assert run_check("10.1", attention_rollout, seed=0).passed
