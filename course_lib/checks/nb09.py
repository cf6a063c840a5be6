"""Checks for notebook 09 (efficient attention): 09.1 tiled_attention, 09.2 linear_attention,
09.3 sliding_window_mask.

Contracts (the exercise notebook states them; solutions/09_efficient_attention.ipynb):

* 09.1 ``tiled_attention(query, key, value, block_size=64)``: query (..., L, E), key (..., S, E),
  value (..., S, Ev) -> (..., L, Ev), equal to ``F.scaled_dot_product_attention`` within 1e-5, for
  any S (also not a multiple of block_size, also S < block_size), with an online softmax over key
  blocks that never builds the (L, S) score matrix. Reference ``course_lib.efficient.tiled_attention``.
  How the memory contract is checked: ``course_lib.efficient.largest_intermediate`` runs the
  learner's function under a TorchDispatchMode that sees the output of every torch operation;
  on L = 32 queries and S = 256 keys in blocks of 16, an answer whose largest intermediate has
  L * S / 2 elements or more (the whole score matrix has L * S; a block of scores L * 16) is
  rejected, and one that calls torch's own scaled_dot_product_attention (forbidden) too.
  Large-magnitude scores (about +-100, where exp overflows float32) tell a stable running maximum
  from no maximum, or from the block's maximum alone.
* 09.2 ``linear_attention(query, key, value, causal=False, eps=1e-6)``: phi(x) = elu(x) + 1,
  out_i = phi(q_i)^T S / (phi(q_i)^T z + eps) with S = sum_j phi(k_j) v_j^T, z = sum_j phi(k_j),
  over j <= i when causal (running sums; needs L == S). Reference
  ``course_lib.efficient.linear_attention``. eps = 0.5 in one sub-check shows where eps goes.
* 09.3 ``sliding_window_mask(L, window)``: bool (L, L), True where |i - j| <= window. Reference
  ``course_lib.masks.sliding_window_mask``.

Each misconception below is one wrong-but-plausible implementation; the catalogue in
tests/test_checks_09.py asserts that each gets its hint.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..efficient.linear import linear_attention as _reference_linear
from ..efficient.measure import largest_intermediate
from ..efficient.tiled import tiled_attention as _reference_tiled_full
from ..masks import sliding_window_mask as _reference_window
from .framework import CheckContext, Misconception, checker, fmt_shape
from .framework.masks import as_keep as _as_keep
from .framework.masks import mask_opening as _mask_opening


def _reference_tiled(query, key, value, block_size=64):
    return _reference_tiled_full(query, key, value, block_size=block_size)


# =========================================================================== 09.1 tiled attention
#
# The misconceptions share one loop, ``_online``, with the step that each one gets wrong.


def _blocks(S, block_size, drop_last=False):
    stop = (S // block_size) * block_size if drop_last else S
    return [(a, min(a + block_size, S)) for a in range(0, stop, block_size)]


def _online(query, key, value, block_size=64, *, scale=None, max_rule="running", rescale_sum=True,
            rescale_acc=True, drop_last=False):
    """The online softmax with one step changed: ``max_rule`` "running" (right), "none" (no maximum
    subtracted), "block" (the block's maximum alone); rescaling of the running sum / output on or off."""
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    lead = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    L = query.shape[-2]
    m = torch.full((*lead, L, 1), float("-inf"), dtype=query.dtype)
    l = torch.zeros((*lead, L, 1), dtype=query.dtype)
    acc = torch.zeros((*lead, L, value.shape[-1]), dtype=query.dtype)
    for a, b in _blocks(key.shape[-2], block_size, drop_last):
        s = (query @ key[..., a:b, :].transpose(-2, -1)) * scale  # (..., L, b)
        if max_rule == "none":
            m_new = torch.zeros_like(m)
        elif max_rule == "block":
            m_new = s.amax(-1, keepdim=True)
        else:
            m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        alpha = torch.exp(m - m_new)
        p = torch.exp(s - m_new)  # (..., L, b)
        l = (alpha * l if rescale_sum else l) + p.sum(-1, keepdim=True)
        acc = (alpha * acc if rescale_acc else acc) + p @ value[..., a:b, :]
        m = m_new
    return acc / l


def _not_divided(query, key, value, block_size=64):
    return _online(query, key, value, block_size) * _online_sum(query, key, block_size)


def _online_sum(query, key, block_size):
    s = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])  # small inputs only: a misconception's impl
    return torch.exp(s - s.amax(-1, keepdim=True)).sum(-1, keepdim=True)


def _per_block_average(query, key, value, block_size=64):
    outs = []
    for a, b in _blocks(key.shape[-2], block_size):
        s = query @ key[..., a:b, :].transpose(-2, -1) / math.sqrt(query.shape[-1])
        outs.append(torch.softmax(s, -1) @ value[..., a:b, :])
    return torch.stack(outs).mean(0)


def _softmax_attention(query, key, value, scale):
    return torch.softmax(query @ key.transpose(-2, -1) * scale, -1) @ value


NO_MAX = Misconception(
    "no running maximum",
    "Your function seems to take exp of the raw scores, without subtracting a running maximum. It is exact on "
    "small scores, but exp of a score above about 88 overflows float32 to inf, and inf / inf is NaN. Keep the "
    "largest score seen so far for each query and take exp(s - m).",
    lambda query, key, value, block_size=64: _online(query, key, value, block_size, max_rule="none"),
)
BLOCK_MAX_ONLY = Misconception(
    "the block's maximum instead of the running maximum",
    "Your function seems to use the maximum of the current block only as its reference, not the maximum of "
    "everything seen so far. When a block's scores are much lower than an earlier block's, the rescaling "
    "factor exp(m_old - m_new) is huge and overflows. Update the running maximum as max(old maximum, block "
    "maximum).",
    lambda query, key, value, block_size=64: _online(query, key, value, block_size, max_rule="block"),
)
NO_RESCALE_ACC = Misconception(
    "the running output is not rescaled",
    "Your function seems to rescale the running sum but not the accumulated output when the maximum rises. "
    "Both were computed against the old maximum: multiply the accumulated output by the same factor "
    "exp(m_old - m_new) before adding the new block's contribution.",
    lambda query, key, value, block_size=64: _online(query, key, value, block_size, rescale_acc=False),
)
NO_RESCALE = Misconception(
    "nothing is rescaled when the maximum rises",
    "Your function seems never to rescale what it accumulated when a block raises the maximum: the earlier "
    "terms stay measured against the old maximum. Multiply the running sum and the running output by "
    "exp(m_old - m_new) before adding the new block.",
    lambda query, key, value, block_size=64: _online(query, key, value, block_size, rescale_sum=False,
                                                     rescale_acc=False),
)
NO_RESCALE_SUM = Misconception(
    "the running sum is not rescaled",
    "Your function seems to rescale the accumulated output but not the running sum when the maximum rises. "
    "Both were computed against the old maximum: multiply both by exp(m_old - m_new).",
    lambda query, key, value, block_size=64: _online(query, key, value, block_size, rescale_sum=False),
)
DROPS_LAST_BLOCK = Misconception(
    "drops the last, shorter block",
    "Your function seems to skip the last block when block_size does not divide the number of keys S (or "
    "every key when S < block_size). The last block is simply shorter: loop over start positions "
    "0, block_size, 2 * block_size, ... below S and cut each block at min(start + block_size, S).",
    lambda query, key, value, block_size=64: _online(query, key, value, block_size, drop_last=True),
)
PER_BLOCK_SOFTMAX = Misconception(
    "normalises each block separately",
    "Your function seems to take a softmax within each block and average the blocks' outputs. The softmax "
    "normalises over ALL keys: keep running sums across blocks and divide once, after the last block.",
    _per_block_average,
)
_WRONG_SCALE_HINT = ("The scores seem to be divided by the square root of the wrong size (or not at all). "
                     "Scaled dot-product attention divides q . k by sqrt(E), E the width of the queries and keys "
                     "(query.shape[-1]), not the width of the values, the number of keys or the block size.")
SCALE_VALUE_DIM = Misconception(
    "scaled by the values' width", _WRONG_SCALE_HINT,
    lambda query, key, value, block_size=64: _online(query, key, value, block_size,
                                                     scale=1 / math.sqrt(value.shape[-1])),
)
SCALE_KEYS = Misconception(
    "scaled by the number of keys", _WRONG_SCALE_HINT,
    lambda query, key, value, block_size=64: _online(query, key, value, block_size,
                                                     scale=1 / math.sqrt(key.shape[-2])),
)
SCALE_BLOCK = Misconception(
    "scaled by the block size", _WRONG_SCALE_HINT,
    lambda query, key, value, block_size=64: _online(query, key, value, block_size,
                                                     scale=1 / math.sqrt(block_size)),
)
NO_SCALE = Misconception(
    "not scaled", _WRONG_SCALE_HINT,
    lambda query, key, value, block_size=64: _online(query, key, value, block_size, scale=1.0),
)

NOT_DIVIDED = Misconception(
    "never divides by the running sum",
    "Your function seems to return the accumulated output without dividing it by the running sum of "
    "exp(s - m): the weights of a softmax sum to 1 only after that division, once, after the last block.",
    _not_divided,
)

TILED_MISCONCEPTIONS = [NO_RESCALE_ACC, NO_RESCALE_SUM, NO_RESCALE, DROPS_LAST_BLOCK, PER_BLOCK_SOFTMAX,
                        SCALE_VALUE_DIM, SCALE_KEYS, SCALE_BLOCK, NO_SCALE, NOT_DIVIDED, NO_MAX, BLOCK_MAX_ONLY]
TILED_VALUES_HINT = ("Check the online softmax step by step on one query and two blocks, against "
                     "torch.softmax of the whole row: the running maximum m, the running sum of exp(s - m) and the "
                     "running output, both rescaled by exp(m_old - m_new) when m rises, and one division at the end.")

FULL_MATRIX_HINT = ("Your function builds the whole (L, S) matrix of scores (or of weights) at some point. The "
                    "point of tiling is never to hold it: compute the scores of one block of keys at a time, "
                    "(..., L, block_size), fold them into running quantities (maximum, sum, output), and let "
                    "the block go before reading the next.")
SDPA_HINT = ("Your function calls torch's own scaled_dot_product_attention (or nn.MultiheadAttention), which "
             "this exercise asks you not to use: write the loop over blocks of keys yourself.")
OVERFLOW_HINT = ("Non-finite values on large scores: exp of a score above about 88 overflows float32. Subtract "
                 "the running maximum of the scores seen so far before taking exp, and rescale what was "
                 "accumulated when it rises.")


def _qkv(t: CheckContext, lead, L, S, E, Ev, dtype=torch.float32, scale=1.0):
    return (t.randn(*lead, L, E, dtype=dtype, scale=scale), t.randn(*lead, S, E, dtype=dtype, scale=scale),
            t.randn(*lead, S, Ev, dtype=dtype))


def _large_scores(t: CheckContext, L, S, E, Ev, block_size):
    """Large scores (plus noise of about 1) that tell the two unstable answers apart. Even queries:
    -100 on the first block, +100 on the later ones, so exp(s) overflows float32 (no maximum) while the
    block's maximum only rises. Odd queries: +50 on the first block, -50 on the later ones, so exp(s)
    stays finite but exp(m_old - m_block) = exp(100) overflows (the block's maximum alone)."""
    a = math.sqrt(100 * math.sqrt(E))  # a * a / sqrt(E) = 100
    q, k, v = _qkv(t, (), L, S, E, Ev)
    q[:, 0] = a * torch.tensor([-1.0, 0.5]).repeat(L)[:L]  # (L,) alternating rows
    k[:, 0] = -a
    k[:block_size, 0] = a
    return q, k, v


def _describe_tiled(args, block_size) -> str:
    q, k, v = args
    extra = "" if block_size is None else f", block_size={block_size}"
    return (f"tiled_attention(query {fmt_shape(q.shape)}, key {fmt_shape(k.shape)}, value "
            f"{fmt_shape(v.shape)}{extra})")


@checker("09.1", misconceptions=TILED_MISCONCEPTIONS)
def check_tiled_attention(t: CheckContext, tiled_attention) -> None:
    """Sub-checks of 09.1, cheap to deep; weights are shares of the exercise's points."""
    B, H = t.sizes(2, 2, 4)
    L, S = t.random.randint(3, 8), t.random.randint(9, 15)
    E, Ev = t.sizes(2, 3, 8)
    args0 = _qkv(t, (B, H), L, S, E, Ev)
    t.opening(tiled_attention, args0, kwargs={"block_size": 4}, what=_describe_tiled(args0, 4),
              shapes=(B, H, L, Ev))

    @t.subcheck("equals softmax attention for any S (multiple of block_size or not, S < block_size), "
                "with or without leading dimensions", weight=2.0, essential=True)
    def _():
        cases = [((B, H), L, S, 4), ((), L, 12, 4), ((B,), L, 5, 8), ((), 1, 1, 4),
                 ((H,), L, 7, 1), ((), L, 150, None)]
        for lead, l, s, block in cases:
            args = _qkv(t, lead, l, s, E, Ev)
            kwargs = {} if block is None else {"block_size": block}
            t.compare(tiled_attention, _reference_tiled, args, kwargs=kwargs, what=_describe_tiled(args, block),
                      rtol=1e-4, atol=1e-5, reference_name="softmax attention", hints={0: TILED_VALUES_HINT})

    @t.subcheck("large scores (about +-100): finite and exact (a running maximum)", weight=0.75)
    def _():
        args = _large_scores(t, L, 24, E, Ev, 4)
        t.compare(tiled_attention, _reference_tiled, args, kwargs={"block_size": 4},
                  what=_describe_tiled(args, 4) + " with scores of about +-100", rtol=1e-3, atol=1e-4,
                  finite=True, finite_hints={0: OVERFLOW_HINT}, reference_name="softmax attention")

    args64 = _qkv(t, (B,), L, S, E, Ev, dtype=torch.float64)
    t.float64_subcheck(tiled_attention, _reference_tiled, args64, kwargs={"block_size": 4},
                       what=_describe_tiled(args64, 4) + " in float64", rtol=1e-9, atol=1e-11)

    Lm, Sm, Em, block = 32, 256, 8, 16
    argsm = _qkv(t, (), Lm, Sm, Em, Em)
    whatm = _describe_tiled(argsm, block)
    seen: dict = {}
    # The tracker's first use in a process imports torch._dynamo (seconds); do it here, outside the
    # learner's time limit, so that only the learner's own work is timed.
    largest_intermediate(_reference_tiled, *(a[:2] for a in argsm), block_size=block)

    @t.subcheck("does not call torch's scaled_dot_product_attention", weight=0.5, essential=True)
    def _():
        out, info = t.run(lambda: largest_intermediate(tiled_attention, *(a.clone() for a in argsm),
                                                       block_size=block), whatm, keep_raw=True)
        seen["info"] = info
        if info.called_sdpa():
            t.fail(f"{whatm} called torch's scaled_dot_product_attention", SDPA_HINT)

    @t.subcheck(f"never holds the whole (L, S) score matrix (L = {Lm}, S = {Sm}, blocks of {block})", weight=1.0)
    def _():
        info = seen["info"]
        if info.numel >= Lm * Sm // 2:
            t.fail(f"{whatm}: the largest tensor it built has {info.numel} elements, shape "
                   f"{fmt_shape(info.shape)} (from torch's `{info.op}`), at least half of the L x S = "
                   f"{Lm * Sm} of the whole score matrix; one block of scores has {Lm * block}", FULL_MATRIX_HINT)


# =========================================================================== 09.2 linear attention


def _phi(x):
    return F.elu(x) + 1


def _linear(query, key, value, causal=False, eps=1e-6, *, phi=_phi, normalise=True, eps_rule="denominator",
            shift=0, flip=False, causal_denominator=True, ignore_causal=False):
    """Linear attention with one step changed (see the misconceptions below)."""
    causal = causal and not ignore_causal
    q, k = phi(query), phi(key)
    a = q @ k.transpose(-2, -1)  # (..., L, S) phi(q_i) . phi(k_j), the quadratic form: the same values
    if causal:
        L = a.shape[-1]
        keep = torch.ones(L, L, dtype=torch.bool).tril(-shift)
        if flip:
            keep = keep.T
        num = a.masked_fill(~keep, 0.0) @ value
        den = (a.masked_fill(~keep, 0.0) if causal_denominator else a).sum(-1, keepdim=True)
    else:
        num, den = a @ value, a.sum(-1, keepdim=True)
    if not normalise:
        return num
    if eps_rule == "denominator":
        return num / (den + eps)
    if eps_rule == "outside":
        return num / den + eps
    if eps_rule == "both":
        return (num + eps) / (den + eps)
    if eps_rule == "features":
        return _linear(query, key, value, causal, 0.0, phi=lambda x: _phi(x) + eps)
    return num / den  # "none"


def _lin(**changes):
    return lambda query, key, value, causal=False, eps=1e-6: _linear(query, key, value, causal, eps, **changes)


LIN_RELU = Misconception(
    "relu feature map",
    "Your feature map seems to be relu(x). This exercise uses phi(x) = elu(x) + 1 (Katharopoulos et al. 2020), "
    "which is positive everywhere: relu is 0 for every negative input, so whole rows of similarities vanish.",
    _lin(phi=torch.relu),
)
LIN_EXP = Misconception(
    "exp feature map",
    "Your feature map seems to be exp(x). This exercise uses phi(x) = elu(x) + 1: like exp for x < 0 "
    "(exp(x)) but growing linearly, x + 1, for x >= 0.",
    _lin(phi=torch.exp),
)
LIN_ELU = Misconception(
    "elu without + 1",
    "Your feature map seems to be elu(x) without the + 1. elu is negative for x < 0, so similarities (and "
    "the normaliser) can be negative or zero; phi(x) = elu(x) + 1 is positive.",
    _lin(phi=F.elu),
)
LIN_SOFTMAX = Misconception(
    "softmax attention",
    "Your function seems to compute softmax attention. Linear attention replaces exp(q . k / sqrt(d)) by "
    "phi(q) . phi(k) with phi(x) = elu(x) + 1, and normalises by the sum of those similarities: no softmax, "
    "no sqrt(d).",
    lambda query, key, value, causal=False, eps=1e-6: F.scaled_dot_product_attention(query, key, value,
                                                                                      is_causal=causal),
)
LIN_NO_NORM = Misconception(
    "no normaliser",
    "Your function seems to return phi(q)^T S without dividing by the normaliser phi(q)^T z + eps, z the sum "
    "of the keys' features: without it the output grows with the number of keys instead of being a weighted "
    "average of the values.",
    _lin(normalise=False),
)
LIN_EPS_OUTSIDE = Misconception(
    "eps added to the result",
    "eps seems to be added to the result of the division. It belongs in the denominator: "
    "numerator / (phi(q)^T z + eps), so that the division is safe when the normaliser is tiny.",
    _lin(eps_rule="outside"),
)
LIN_EPS_BOTH = Misconception(
    "eps added to numerator and denominator",
    "eps seems to be added to the numerator too. It belongs in the denominator only: "
    "numerator / (phi(q)^T z + eps).",
    _lin(eps_rule="both"),
)
LIN_EPS_FEATURES = Misconception(
    "eps added to the features",
    "eps seems to be added to the features phi(x). It belongs in the denominator: "
    "numerator / (phi(q)^T z + eps).",
    _lin(eps_rule="features"),
)
LIN_NO_EPS = Misconception(
    "eps ignored",
    "Your function seems to ignore eps: add it to the denominator, numerator / (phi(q)^T z + eps).",
    _lin(eps_rule="none"),
)
LIN_EXCLUSIVE = Misconception(
    "causal sums leave out the current token",
    "With causal=True, your running sums seem to stop at the previous token (an exclusive cumulative sum). "
    "Query i may attend to keys j <= i, itself included: add token i's phi(k_i) v_i^T and phi(k_i) to the "
    "sums before answering query i.",
    _lin(shift=1),
)
LIN_ANTI_CAUSAL = Misconception(
    "causal sums run over the future",
    "With causal=True, your sums seem to run over the keys j >= i (from the end of the sequence). A causal "
    "query sees the past: keys j <= i, a cumulative sum from the start.",
    _lin(flip=True),
)
LIN_CAUSAL_IGNORED = Misconception(
    "causal=True ignored",
    "With causal=True your function seems to return the non-causal result: every query sees every key, "
    "including future ones. Use running (cumulative) sums over the positions when causal is True.",
    _lin(ignore_causal=True),
)
LIN_DENOMINATOR_NOT_CAUSAL = Misconception(
    "the normaliser is not causal",
    "With causal=True your numerator seems causal but the normaliser sums the features of ALL keys. Both "
    "sums run over j <= i: use the running sum z_i of phi(k_j) as well.",
    _lin(causal_denominator=False),
)
LIN_ALWAYS_CAUSAL = Misconception(
    "always causal",
    "Your function seems to apply the causal running sums even when causal=False: then every query sees "
    "every key, and the sums are over all of them.",
    lambda query, key, value, causal=False, eps=1e-6: _linear(query, key, value, True, eps),
)

LIN_PHI_VALUES = Misconception(
    "feature map on the values",
    "Your function seems to apply the feature map to the values too. phi replaces the similarity of queries "
    "and keys only: S = sum_j phi(k_j) v_j^T uses the values as they are.",
    lambda query, key, value, causal=False, eps=1e-6: _linear(query, key, _phi(value), causal, eps),
)
LINEAR_VALUES_HINT = ("Check each piece on a tiny input against the formula: phi(x) = elu(x) + 1 on the queries and "
                      "keys (not the values), numerator phi(q_i)^T S, denominator phi(q_i)^T z + eps, with S and z "
                      "summed over all keys (causal: over j <= i).")

LINEAR_MISCONCEPTIONS = [LIN_PHI_VALUES, LIN_SOFTMAX, LIN_RELU, LIN_EXP, LIN_ELU, LIN_NO_NORM, LIN_EPS_OUTSIDE, LIN_EPS_BOTH,
                         LIN_EPS_FEATURES, LIN_NO_EPS, LIN_EXCLUSIVE, LIN_ANTI_CAUSAL, LIN_CAUSAL_IGNORED,
                         LIN_DENOMINATOR_NOT_CAUSAL, LIN_ALWAYS_CAUSAL]


def _describe_linear(args, kwargs) -> str:
    q, k, v = args
    extra = "".join(f", {name}={value}" for name, value in kwargs.items())
    return (f"linear_attention(query {fmt_shape(q.shape)}, key {fmt_shape(k.shape)}, value "
            f"{fmt_shape(v.shape)}{extra})")


@checker("09.2", misconceptions=LINEAR_MISCONCEPTIONS)
def check_linear_attention(t: CheckContext, linear_attention) -> None:
    """Sub-checks of 09.2, cheap to deep; weights are shares of the exercise's points."""
    B, H = t.sizes(2, 2, 4)
    L, S = t.sizes(2, 4, 9)
    D, Dv = t.sizes(2, 3, 8)
    args0 = _qkv(t, (B, H), L, S, D, Dv)
    t.opening(linear_attention, args0, what=_describe_linear(args0, {}), shapes=(B, H, L, Dv))

    def compare(args, kwargs):
        t.compare(linear_attention, _reference_linear, args, kwargs=kwargs, what=_describe_linear(args, kwargs),
                  rtol=1e-4, atol=1e-5, reference_name="linear attention", hints={0: LINEAR_VALUES_HINT})

    @t.subcheck("non-causal: equals linear attention with phi(x) = elu(x) + 1 (L != S, leading dimensions)",
                weight=1.5, essential=True)
    def _():
        for lead, l, s in (((B, H), L, S), ((), S, L), ((B,), 1, S)):
            compare(_qkv(t, lead, l, s, D, Dv, scale=1.5), {})

    @t.subcheck("causal=True: equals causal linear attention (running sums over j <= i)", weight=1.5,
                essential=True)
    def _():
        for lead, l in (((B, H), L), ((), S), ((B,), 1)):
            compare(_qkv(t, lead, l, l, D, Dv, scale=1.5), {"causal": True})

    @t.subcheck("eps is added to the denominator (eps = 0.5, causal and not)", weight=0.5)
    def _():
        for causal in (False, True):
            compare(_qkv(t, (B,), L, L, D, Dv), {"causal": causal, "eps": 0.5})

    args64 = _qkv(t, (B,), L, L, D, Dv, dtype=torch.float64)
    t.float64_subcheck(linear_attention, _reference_linear, args64, kwargs={"causal": True},
                       what=_describe_linear(args64, {"causal": True}) + " in float64")
    argsg = _qkv(t, (B,), L, L, D, Dv)
    t.gradient_subcheck(linear_attention, _reference_linear, argsg, kwargs={"causal": True},
                        what=_describe_linear(argsg, {"causal": True}), wrt=(0, 1, 2),
                        arg_names=("query", "key", "value"), weight=0.25)


# =========================================================================== 09.3 sliding-window mask


def _offsets(L):
    i = torch.arange(L)[:, None]
    return i - torch.arange(L)[None, :]  # (L, L) i - j


WIN_STRICT = Misconception(
    "< instead of <=",
    "The mask seems to keep keys with |i - j| < window, one too few on each side. The window counts the "
    "neighbours kept on EACH side: keep |i - j| <= window (window = 0 keeps the diagonal).",
    lambda L, window: _offsets(L).abs() < window,
)
WIN_CAUSAL = Misconception(
    "one-sided (the past only)",
    "The mask seems to keep only one side of the diagonal (like a causal window). This exercise's window is "
    "two-sided: keep key j for query i when |i - j| <= window, before and after i.",
    lambda L, window: (_offsets(L) >= 0) & (_offsets(L) <= window),
)
WIN_FUTURE = Misconception(
    "one-sided (the future only)",
    "The mask seems to keep only one side of the diagonal (the keys after the query). The window is "
    "two-sided: keep key j for query i when |i - j| <= window, before and after i.",
    lambda L, window: (_offsets(L) <= 0) & (_offsets(L) >= -window),
)
WIN_TOTAL_WIDTH = Misconception(
    "window counted as the total width",
    "The mask seems to treat window as the total width of the band, half on each side. Here window is the "
    "number of neighbours kept on EACH side: a row keeps up to 2 * window + 1 keys, |i - j| <= window.",
    lambda L, window: _offsets(L).abs() <= window // 2,
)
WIN_INVERTED = Misconception(
    "inverted (blocked convention)",
    "The mask seems inverted: True marks the keys outside the window (the keys to hide). This exercise uses "
    "torch SDPA's convention, True = takes part: True where |i - j| <= window.",
    lambda L, window: _offsets(L).abs() > window,
)
WIN_ROW = Misconception(
    "one row only",
    "Your result seems to be one row of the mask (shape (L,)). The mask has one row per query and one column "
    "per key: compare every query position i with every key position j, e.g. a column of positions "
    "(L, 1) against a row (1, L).",
    lambda L, window: torch.arange(L).abs() <= window,
)
WIN_ONE_MORE = Misconception(
    "one neighbour too many",
    "The mask seems to keep one neighbour too many on each side (|i - j| <= window + 1). window = 0 keeps "
    "the diagonal only; window = 1 adds one neighbour on each side.",
    lambda L, window: _offsets(L).abs() <= window + 1,
)
WIN_MISCONCEPTIONS = [WIN_STRICT, WIN_CAUSAL, WIN_FUTURE, WIN_TOTAL_WIDTH, WIN_INVERTED, WIN_ROW, WIN_ONE_MORE]
_WINDOW_HINT = ("Work out sliding_window_mask(5, 1) by hand: row i (the query) is True at columns j = i - 1, i, "
                "i + 1 that exist, and False elsewhere; compare with your result.")


@checker("09.3", misconceptions=WIN_MISCONCEPTIONS, mutation_weight=0.0)
def check_sliding_window_mask(t: CheckContext, sliding_window_mask) -> None:
    """Sub-checks of 09.3, cheap to deep; weights are shares of the exercise's 2 points."""
    L0, w0 = t.random.randint(8, 11), t.random.randint(3, 4)  # window 2 or 1: < and "total width" coincide
    _mask_opening(t, sliding_window_mask, (L0, w0), f"sliding_window_mask({L0}, {w0})", (L0, L0),
                  "has shape (L, L)", "|i - j| <= window")

    @t.subcheck("True exactly where |i - j| <= window, for several L and window", weight=1.0, essential=True)
    def _():
        for L, w in ((L0, w0), (t.random.randint(8, 14), 1), (7, 4), (1, 0), (2, 1)):
            what = f"sliding_window_mask({L}, {w})"
            out = t.expect_tensor(t.call(sliding_window_mask, L, w), what)
            t.expect_equal(_as_keep(out), _reference_window(L, w), what, args=(L, w),
                           reference="the sliding-window mask (True where |i - j| <= window)", hint=_WINDOW_HINT)

    @t.subcheck("edge cases: window 0 keeps the diagonal only, window >= L - 1 keeps everything", weight=0.5)
    def _():
        for L, w in ((L0, 0), (L0, L0 - 1), (L0, L0 + 3)):
            what = f"sliding_window_mask({L}, {w})"
            out = t.expect_tensor(t.call(sliding_window_mask, L, w), what)
            t.expect_equal(_as_keep(out), _reference_window(L, w), what, args=(L, w),
                           reference="the sliding-window mask (True where |i - j| <= window)", hint=_WINDOW_HINT)
