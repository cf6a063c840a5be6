"""Checks of 09.1 ``tiled_attention``: values, stability on large scores, float64, no SDPA, no (L, S) matrix."""

from __future__ import annotations

import math

import torch

from ...efficient.measure import largest_intermediate
from ...efficient.tiled import tiled_attention as _reference_tiled_full
from ..framework import CheckContext, Misconception, checker, fmt_shape
from ._inputs import _qkv


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
        _, info = t.run(lambda: largest_intermediate(tiled_attention, *(a.clone() for a in argsm),
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
