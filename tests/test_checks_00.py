"""Catalogue for exercise 00.1 (softmax): common wrong answers, each rejected with
its hint, and valid variants, each accepted with full points.

The wrong answers double as the instructor's list of misconceptions
(docs/instructor.md, "Common misconceptions per exercise").
"""

import re

import numpy as np
import pytest
import torch

from course_lib.checks import EXERCISES, run_check

SEEDS = (0, 1)


def _stable(x, dim):
    e = torch.exp(x - x.max(dim=dim, keepdim=True).values)
    return e / e.sum(dim=dim, keepdim=True)


# ---------------------------------------------------------------- wrong answers: (function, hint substring)


def no_max_subtraction(x, dim=-1):
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


def global_max(x, dim=-1):
    e = torch.exp(x - x.max())
    return e / e.sum(dim=dim, keepdim=True)


def subtracts_min(x, dim=-1):
    e = torch.exp(x - x.min(dim=dim, keepdim=True).values)
    return e / e.sum(dim=dim, keepdim=True)


def ignores_dim(x, dim=-1):
    e = torch.exp(x - x.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def always_dim_0(x, dim=-1):
    return _stable(x, 0)


def whole_tensor(x, dim=-1):
    e = torch.exp(x - x.max())
    return e / e.sum()


def max_without_keepdim(x, dim=-1):
    e = torch.exp(x - x.max(dim=dim).values)
    return e / e.sum(dim=dim, keepdim=True)


def divides_by_max(x, dim=-1):
    e = torch.exp(x - x.max(dim=dim, keepdim=True).values)
    return e / e.max(dim=dim, keepdim=True).values


def forgets_exp(x, dim=-1):
    return x / x.sum(dim=dim, keepdim=True)


def log_softmax(x, dim=-1):
    return x - torch.logsumexp(x, dim=dim, keepdim=True)


def returns_numpy(x, dim=-1):
    a = x.detach().numpy()
    e = np.exp(a - a.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def returns_tuple(x, dim=-1):
    return _stable(x, dim), dim


def forgets_return(x, dim=-1):
    _stable(x, dim)


def mutates_input(x, dim=-1):
    x -= x.max(dim=dim, keepdim=True).values
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


def replaces_inf_by_zero(x, dim=-1):
    x = torch.where(torch.isinf(x), torch.zeros_like(x), x)
    return _stable(x, dim)


def computes_in_float32(x, dim=-1):
    return _stable(x.float(), dim).to(x.dtype)


def always_float32(x, dim=-1):
    return _stable(x.float(), dim)


def detaches(x, dim=-1):
    return _stable(x, dim).detach()


WRONG = {
    "no max subtraction (overflow to NaN)": (no_max_subtraction, "the max trick"),
    "subtracts the max of the whole tensor": (global_max, "maximum of each slice"),
    "subtracts the min": (subtracts_min, "Subtracting the minimum"),
    "ignores dim": (ignores_dim, "ignore its `dim` argument"),
    "always normalises over axis 0": (always_dim_0, "different axis than `dim`"),
    "normalises over the whole tensor": (whole_tensor, "sum over the whole tensor"),
    "max without keepdim": (max_without_keepdim, "keepdim=True"),
    "divides by the max": (divides_by_max, "instead of by their sum"),
    "forgets exp": (forgets_exp, "without taking their exponential"),
    "returns log-probabilities": (log_softmax, "log-probabilities"),
    "returns numpy": (returns_numpy, "Stay in torch"),
    "returns a tuple": (returns_tuple, "not a tuple"),
    "forgets return": (forgets_return, "add a `return` statement"),
    "mutates its input in place": (mutates_input, "in-place operation"),
    "replaces -inf by 0": (replaces_inf_by_zero, "-inf means \"never\""),
    "computes in float32": (computes_in_float32, "compute in float32"),
    "always returns float32": (always_float32, "Keep the input's dtype"),
    "detaches the result": (detaches, "cut the graph"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(WRONG))
def test_wrong_answer_is_rejected_with_its_hint(name, seed):
    fn, hint = WRONG[name]
    result = run_check("00.1", fn, seed=seed)
    assert not result.passed, f"{name} passed"
    assert result.points < result.max_points
    assert hint in result.hint, f"{name}: expected a hint containing {hint!r}, got {result.hint!r}"
    assert f"Hint: {result.hint}" in result.messages
    # hints and messages never show expected numbers
    assert not re.search(r"\d\.\d{2,}", " ".join(result.messages)), result.messages


def test_mutation_is_reported_as_such():
    result = run_check("00.1", mutates_input, seed=0)
    last = result.subchecks[-1]
    assert last.name == "leaves its inputs unchanged" and last.status == "failed"
    assert "modified its input `x` in place" in last.message


def test_overflow_keeps_partial_credit_but_trivial_answers_get_none():
    assert 0 < run_check("00.1", no_max_subtraction, seed=0).points < EXERCISES["00.1"].points
    assert run_check("00.1", lambda x, dim=-1: x, seed=0).points == 0
    assert run_check("00.1", lambda x, dim=-1: torch.ones_like(x) / x.shape[dim], seed=0).points == 0


# ---------------------------------------------------------------- valid variants


def via_float64(x, dim=-1):
    y = x.double()
    e = torch.exp(y - y.max(dim=dim, keepdim=True).values)
    return (e / e.sum(dim=dim, keepdim=True)).to(x.dtype)


def via_logsumexp(x, dim=-1):
    return torch.exp(x - torch.logsumexp(x, dim=dim, keepdim=True))


def with_loops(x, dim=-1):
    moved = x.movedim(dim, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    out = []
    for row in rows:
        m = row.max()
        e = torch.exp(row - m)
        out.append(e / e.sum())
    return torch.stack(out).reshape(moved.shape).movedim(-1, dim)


def via_transpose(x, dim=-1):
    y = x.transpose(dim, -1)
    e = torch.exp(y - y.amax(-1, keepdim=True))
    return (e / e.sum(-1, keepdim=True)).transpose(dim, -1)


def with_einsum_sum(x, dim=-1):
    y = x.movedim(dim, -1)
    e = torch.exp(y - y.max(-1, keepdim=True).values)
    total = torch.einsum("...j->...", e).unsqueeze(-1)
    return (e / total).movedim(-1, dim)


VALID = {
    "torch.softmax": torch.softmax,
    "float64 inside, cast back": via_float64,
    "logsumexp": via_logsumexp,
    "python loop over slices": with_loops,
    "transpose to the last axis": via_transpose,
    "einsum for the sum": with_einsum_sum,
}


@pytest.mark.parametrize("seed", SEEDS + (None,))
@pytest.mark.parametrize("name", list(VALID))
def test_valid_variant_gets_full_points(name, seed):
    result = run_check("00.1", VALID[name], seed=seed)
    assert result.passed, f"{name} (seed {result.seed}): {result.messages}"
    assert result.points == result.max_points == EXERCISES["00.1"].points


def test_catalogue_size():
    assert len(WRONG) >= 5 and len(VALID) >= 2
