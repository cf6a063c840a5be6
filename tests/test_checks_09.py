"""Catalogue for exercises 09.1 (tiled attention), 09.2 (linear attention) and 09.3 (sliding-window mask):
common wrong answers, each rejected with its hint, and valid variants, each accepted with full points.

The wrong answers double as the instructor's list of misconceptions
(docs/instructor.md, "Common misconceptions per exercise").
"""

import math

import pytest
import torch
import torch.nn.functional as F
from catalogue import assert_full_points, assert_rejected, not_implemented

from course_lib.checks import NOT_IMPLEMENTED, run_check

SEEDS = (0, 1)


@pytest.mark.parametrize("exercise_id", ["09.1", "09.2", "09.3"])
def test_not_implemented_yet(exercise_id):
    result = run_check(exercise_id, not_implemented, seed=0)
    assert result.messages[0] == NOT_IMPLEMENTED and result.points == 0 and not result.passed


# =================================================================== 09.1 tiled_attention


def _tiled(query, key, value, block_size=64, *, max_rule="running", rescale=(True, True), last=True, dim=None):
    """A learner's loop, with switches for the mistakes below."""
    scale = 1 / math.sqrt(query.shape[-1] if dim is None else dim(query, key, value))
    S = key.shape[-2]
    m = torch.full(query.shape[:-1] + (1,), -math.inf, dtype=query.dtype)
    total = torch.zeros(query.shape[:-1] + (1,), dtype=query.dtype)
    out = torch.zeros(query.shape[:-1] + (value.shape[-1],), dtype=query.dtype)
    end = S if last else S - S % block_size
    for start in range(0, end, block_size):
        kb, vb = key[..., start:start + block_size, :], value[..., start:start + block_size, :]
        s = query @ kb.transpose(-2, -1) * scale
        if max_rule == "none":
            new_m = torch.zeros_like(m)
        elif max_rule == "block":
            new_m = s.max(dim=-1, keepdim=True).values
        else:
            new_m = torch.maximum(m, s.max(dim=-1, keepdim=True).values)
        e = torch.exp(s - new_m)
        factor = torch.exp(m - new_m)
        total = (total * factor if rescale[0] else total) + e.sum(-1, keepdim=True)
        out = (out * factor if rescale[1] else out) + e @ vb
        m = new_m
    return out / total


def never_divides(query, key, value, block_size=64):
    scale = 1 / math.sqrt(query.shape[-1])
    m, out = None, None
    for start in range(0, key.shape[-2], block_size):
        s = query @ key[..., start:start + block_size, :].transpose(-2, -1) * scale
        new_m = s.amax(-1, keepdim=True) if m is None else torch.maximum(m, s.amax(-1, keepdim=True))
        contribution = torch.exp(s - new_m) @ value[..., start:start + block_size, :]
        out = contribution if out is None else out * torch.exp(m - new_m) + contribution
        m = new_m
    return out


def no_running_max(query, key, value, block_size=64):
    return _tiled(query, key, value, block_size, max_rule="none")


def block_max_only(query, key, value, block_size=64):
    return _tiled(query, key, value, block_size, max_rule="block")


def output_not_rescaled(query, key, value, block_size=64):
    return _tiled(query, key, value, block_size, rescale=(True, False))


def nothing_rescaled(query, key, value, block_size=64):
    return _tiled(query, key, value, block_size, rescale=(False, False))


def drops_last_block(query, key, value, block_size=64):
    return _tiled(query, key, value, block_size, last=False)


def sqrt_of_value_width(query, key, value, block_size=64):
    return _tiled(query, key, value, block_size, dim=lambda q, k, v: v.shape[-1])


def sqrt_of_block_size(query, key, value, block_size=64):
    return _tiled(query, key, value, block_size, dim=lambda q, k, v: block_size)


def averages_block_softmaxes(query, key, value, block_size=64):
    outs = []
    for start in range(0, key.shape[-2], block_size):
        s = query @ key[..., start:start + block_size, :].transpose(-2, -1) / math.sqrt(query.shape[-1])
        outs.append(torch.softmax(s, dim=-1) @ value[..., start:start + block_size, :])
    return sum(outs) / len(outs)


def full_matrix(query, key, value, block_size=64):
    return torch.softmax(query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1]), dim=-1) @ value


def full_matrix_then_blocks(query, key, value, block_size=64):  # the scores at once, then "tiled" weighting
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    weights = torch.exp(scores - scores.max(-1, keepdim=True).values)
    return weights @ value / weights.sum(-1, keepdim=True)


def uses_sdpa(query, key, value, block_size=64):
    return F.scaled_dot_product_attention(query, key, value)


_CACHE = {}


def cached_answer(query, key, value, block_size=64):  # answers every call with the first result of that shape
    k = (tuple(query.shape), tuple(value.shape))
    if k not in _CACHE:
        _CACHE[k] = _tiled(query, key, value, block_size)
    return _CACHE[k].clone()


TILED_WRONG = {
    "no running maximum (overflows)": (no_running_max, "without subtracting a running maximum"),
    "block maximum only": (block_max_only, "maximum of the current block only"),
    "output not rescaled": (output_not_rescaled, "not the accumulated output"),
    "nothing rescaled": (nothing_rescaled, "never to rescale what it accumulated"),
    "drops the last partial block": (drops_last_block, "skip the last block"),
    "sqrt of the values' width": (sqrt_of_value_width, "square root of the wrong size"),
    "sqrt of the block size": (sqrt_of_block_size, "square root of the wrong size"),
    "averages block softmaxes": (averages_block_softmaxes, "softmax within each block"),
    "never divides by the running sum": (never_divides, "without dividing it by the running sum"),
    "full score matrix": (full_matrix, "builds the whole (L, S) matrix"),
    "full matrix, manual softmax": (full_matrix_then_blocks, "builds the whole (L, S) matrix"),
    "calls SDPA": (uses_sdpa, "scaled_dot_product_attention"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(TILED_WRONG))
def test_tiled_wrong_answer_is_rejected_with_its_hint(name, seed):
    fn, hint = TILED_WRONG[name]
    assert_rejected("09.1", fn, hint, seed, name)


def test_tiled_cached_answer_is_rejected():
    _CACHE.clear()
    result = run_check("09.1", cached_answer, seed=0)
    assert not result.passed and result.points == 0


def test_tiled_full_matrix_and_sdpa_earn_less_than_full_points():
    assert run_check("09.1", full_matrix, seed=0).points < 5
    assert run_check("09.1", uses_sdpa, seed=0).points == 0  # a forbidden call: an essential failure


def two_pass(query, key, value, block_size=64):  # first the row maxima block by block, then the sums
    scale = query.shape[-1] ** -0.5
    blocks = range(0, key.shape[-2], block_size)
    m = torch.stack([(query @ key[..., a:a + block_size, :].transpose(-2, -1) * scale).amax(-1) for a in blocks])
    m = m.amax(0)[..., None]  # (..., L, 1)
    num, den = 0, 0
    for a in blocks:
        p = torch.exp(query @ key[..., a:a + block_size, :].transpose(-2, -1) * scale - m)
        num = num + p @ value[..., a:a + block_size, :]
        den = den + p.sum(-1, keepdim=True)
    return num / den


def log_space(query, key, value, block_size=64):  # running log-sum-exp with torch.logaddexp, einsum products
    lse, out = None, None
    for a in range(0, key.shape[-2], block_size):
        s = torch.einsum("...le,...se->...ls", query, key[..., a:a + block_size, :]) / math.sqrt(query.shape[-1])
        block_lse = torch.logsumexp(s, dim=-1, keepdim=True)
        block_out = torch.einsum("...ls,...sv->...lv", torch.exp(s - block_lse), value[..., a:a + block_size, :])
        if lse is None:
            lse, out = block_lse, block_out
        else:
            new = torch.logaddexp(lse, block_lse)
            out = out * torch.exp(lse - new) + block_out * torch.exp(block_lse - new)
            lse = new
    return out


def padded_float64(query, key, value, block_size=64):  # pads the keys to whole blocks, masks the padding
    q, k, v = query.double(), key.double(), value.double()
    S = k.shape[-2]
    pad = -S % block_size
    k = F.pad(k, (0, 0, 0, pad))
    v = F.pad(v, (0, 0, 0, pad))
    valid = torch.arange(S + pad) < S
    m = torch.full(q.shape[:-1] + (1,), -math.inf, dtype=torch.float64)
    l = torch.zeros_like(m)
    acc = torch.zeros(q.shape[:-1] + (v.shape[-1],), dtype=torch.float64)
    for a in range(0, S + pad, block_size):
        s = (q / math.sqrt(q.shape[-1])) @ k[..., a:a + block_size, :].transpose(-2, -1)
        s = s.masked_fill(~valid[a:a + block_size], -math.inf)
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        p = torch.exp(s - m_new)
        alpha = torch.exp(m - m_new)
        l = alpha * l + p.sum(-1, keepdim=True)
        acc = alpha * acc + p @ v[..., a:a + block_size, :]
        m = m_new
    return (acc / l).to(query.dtype)


TILED_VALID = [_tiled, two_pass, log_space, padded_float64]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fn", TILED_VALID, ids=lambda f: f.__name__)
def test_tiled_valid_variants_pass(fn, seed):
    assert_full_points("09.1", fn, seed, fn.__name__)


def test_tiled_reference_passes():
    from course_lib.efficient import tiled_attention
    assert_full_points("09.1", lambda query, key, value, block_size=64: tiled_attention(query, key, value, block_size),
                       0, "reference")


# =================================================================== 09.2 linear_attention


def _linear(query, key, value, causal=False, eps=1e-6, *, phi=lambda x: F.elu(x) + 1, norm=True, eps_mode="den",
            causal_mode="inclusive", causal_den=True):
    q, k = phi(query), phi(key)
    if causal:
        kv = torch.einsum("...sd,...se->...sde", k, value)  # (..., S, D, Dv)
        if causal_mode == "ignored":
            kv, z = kv.sum(-3, keepdim=True), k.sum(-2, keepdim=True)
        elif causal_mode == "exclusive":
            kv = torch.cumsum(kv, -3) - kv
            z = torch.cumsum(k, -2) - k
        elif causal_mode == "reverse":
            kv = torch.flip(torch.cumsum(torch.flip(kv, [-3]), -3), [-3])
            z = torch.flip(torch.cumsum(torch.flip(k, [-2]), -2), [-2])
        else:
            kv, z = torch.cumsum(kv, -3), torch.cumsum(k, -2)
        if not causal_den:
            z = k.sum(-2, keepdim=True)
        num = torch.einsum("...ld,...lde->...le", q, kv)
        den = (q * z).sum(-1, keepdim=True)
    else:
        num = q @ (k.transpose(-2, -1) @ value)
        den = q @ k.sum(-2)[..., None]
    if not norm:
        return num
    if eps_mode == "outside":
        return num / den + eps
    if eps_mode == "none":
        return num / den
    return num / (den + eps)


def relu_features(query, key, value, causal=False, eps=1e-6):
    return _linear(query, key, value, causal, eps, phi=torch.relu)


def exp_features(query, key, value, causal=False, eps=1e-6):
    return _linear(query, key, value, causal, eps, phi=torch.exp)


def elu_without_one(query, key, value, causal=False, eps=1e-6):
    return _linear(query, key, value, causal, eps, phi=F.elu)


def softmax_attention(query, key, value, causal=False, eps=1e-6):
    s = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    if causal:
        s = s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool).triu(1), -math.inf)
    return torch.softmax(s, -1) @ value


def features_on_values(query, key, value, causal=False, eps=1e-6):
    return _linear(query, key, F.elu(value) + 1, causal, eps)


def no_normaliser(query, key, value, causal=False, eps=1e-6):
    return _linear(query, key, value, causal, eps, norm=False)


def eps_outside(query, key, value, causal=False, eps=1e-6):
    return _linear(query, key, value, causal, eps, eps_mode="outside")


def eps_ignored(query, key, value, causal=False, eps=1e-6):
    return _linear(query, key, value, causal, eps, eps_mode="none")


def exclusive_cumsum(query, key, value, causal=False, eps=1e-6):
    return _linear(query, key, value, causal, eps, causal_mode="exclusive")


def anti_causal(query, key, value, causal=False, eps=1e-6):
    return _linear(query, key, value, causal, eps, causal_mode="reverse")


def causal_ignored(query, key, value, causal=False, eps=1e-6):
    return _linear(query, key, value, False, eps)


def normaliser_not_causal(query, key, value, causal=False, eps=1e-6):
    return _linear(query, key, value, causal, eps, causal_den=False)


LINEAR_WRONG = {
    "relu feature map": (relu_features, "relu(x)"),
    "exp feature map": (exp_features, "exp(x)"),
    "elu without + 1": (elu_without_one, "without the + 1"),
    "softmax attention": (softmax_attention, "compute softmax attention"),
    "no normaliser": (no_normaliser, "without dividing by the normaliser"),
    "feature map on the values": (features_on_values, "to the values too"),
    "eps added to the result": (eps_outside, "added to the result of the division"),
    "eps ignored": (eps_ignored, "ignore eps"),
    "exclusive cumsum": (exclusive_cumsum, "stop at the previous token"),
    "anti-causal": (anti_causal, "keys j >= i"),
    "causal=True ignored": (causal_ignored, "return the non-causal result"),
    "normaliser not causal": (normaliser_not_causal, "normaliser sums the features of ALL keys"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(LINEAR_WRONG))
def test_linear_wrong_answer_is_rejected_with_its_hint(name, seed):
    fn, hint = LINEAR_WRONG[name]
    assert_rejected("09.2", fn, hint, seed, name)


def recurrent_loop(query, key, value, causal=False, eps=1e-6):  # an RNN over positions, or the sums once
    q, k = F.elu(query) + 1, F.elu(key) + 1
    if not causal:
        return (q @ (k.transpose(-2, -1) @ value)) / ((q * k.sum(-2, keepdim=True)).sum(-1, keepdim=True) + eps)
    state = torch.zeros(*k.shape[:-2], k.shape[-1], value.shape[-1], dtype=value.dtype)
    z = torch.zeros(*k.shape[:-2], k.shape[-1], dtype=value.dtype)
    outs = []
    for i in range(query.shape[-2]):
        state = state + k[..., i, :, None] * value[..., i, None, :]
        z = z + k[..., i, :]
        num = (q[..., i, :, None] * state).sum(-2)
        outs.append(num / ((q[..., i, :] * z).sum(-1, keepdim=True) + eps))
    return torch.stack(outs, dim=-2)


def einsum_float64(query, key, value, causal=False, eps=1e-6):
    q, k, v = (F.elu(x.double()) + 1 for x in (query, key)), None, value.double()
    q, k = q
    if causal:
        kv = torch.cumsum(torch.einsum("...sd,...se->...sde", k, v), dim=-3)
        z = torch.cumsum(k, dim=-2)
        out = torch.einsum("...ld,...lde->...le", q, kv) / (torch.einsum("...ld,...ld->...l", q, z)[..., None] + eps)
    else:
        out = torch.einsum("...ld,...de->...le", q, torch.einsum("...sd,...se->...de", k, v))
        out = out / (torch.einsum("...ld,...d->...l", q, k.sum(-2))[..., None] + eps)
    return out.to(query.dtype)


def masked_similarities(query, key, value, causal=False, eps=1e-6):  # the quadratic form, same function
    a = (F.elu(query) + 1) @ (F.elu(key) + 1).transpose(-2, -1)
    if causal:
        a = torch.tril(a)
    return a @ value / (a.sum(-1, keepdim=True) + eps)


LINEAR_VALID = [_linear, recurrent_loop, einsum_float64, masked_similarities]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fn", LINEAR_VALID, ids=lambda f: f.__name__)
def test_linear_valid_variants_pass(fn, seed):
    assert_full_points("09.2", fn, seed, fn.__name__)


def test_linear_in_place_state_is_reported_not_a_crash():
    def in_place(query, key, value, causal=False, eps=1e-6):
        query.mul_(1.0)  # touches its input
        key.add_(0.0)
        return _linear(query, key, value, causal, eps)

    result = run_check("09.2", in_place, seed=0)
    assert not result.passed and "in-place operation" in result.hint


# =================================================================== 09.3 sliding_window_mask


def _grid(L):
    i = torch.arange(L).unsqueeze(1)
    j = torch.arange(L).unsqueeze(0)
    return i, j


def strict(L, window):
    i, j = _grid(L)
    return (i - j).abs() < window


def one_sided(L, window):
    i, j = _grid(L)
    return (j <= i) & (i - j <= window)


def future_only(L, window):
    i, j = _grid(L)
    return (j >= i) & (j - i <= window)


def total_width(L, window):
    i, j = _grid(L)
    return (i - j).abs() <= window // 2


def inverted(L, window):
    i, j = _grid(L)
    return (i - j).abs() > window


def float_mask(L, window):
    i, j = _grid(L)
    return ((i - j).abs() <= window).float()


def one_too_many(L, window):
    i, j = _grid(L)
    return (i - j).abs() <= window + 1


def one_row(L, window):
    return torch.arange(L) <= window


WINDOW_WRONG = {
    "< instead of <=": (strict, "|i - j| < window"),
    "one-sided (causal)": (one_sided, "only one side of the diagonal (like a causal window)"),
    "one-sided (future)": (future_only, "only one side of the diagonal (the keys after"),
    "window as the total width": (total_width, "total width"),
    "inverted": (inverted, "inverted"),
    "float mask": (float_mask, "Return a bool tensor"),
    "shape (L,)": (one_row, "one row of the mask"),
    "window + 1": (one_too_many, "one neighbour too many"),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(WINDOW_WRONG))
def test_window_wrong_answer_is_rejected_with_its_hint(name, seed):
    fn, hint = WINDOW_WRONG[name]
    assert_rejected("09.3", fn, hint, seed, name)


def band_from_triangles(L, window):
    ones = torch.ones(L, L, dtype=torch.bool)
    return torch.triu(ones, diagonal=-window) & torch.tril(ones, diagonal=window)


def python_loops(L, window):
    return torch.tensor([[abs(i - j) <= window for j in range(L)] for i in range(L)], dtype=torch.bool)


def broadcast(L, window):
    pos = torch.arange(L)
    return (pos[:, None] - pos[None, :]).abs() <= window


WINDOW_VALID = [band_from_triangles, python_loops, broadcast]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fn", WINDOW_VALID, ids=lambda f: f.__name__)
def test_window_valid_variants_pass(fn, seed):
    assert_full_points("09.3", fn, seed, fn.__name__)


def test_window_hard_coded_answer_is_rejected():
    fixed = torch.ones(8, 8, dtype=torch.bool).triu(-2).tril(2)
    result = run_check("09.3", lambda L, window: fixed, seed=0)
    assert not result.passed and result.points == 0
