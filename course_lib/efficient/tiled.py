"""Tiled attention with an online softmax: exact attention without the (L, S) score matrix.

The softmax of a row of scores s_1..s_S needs its maximum m (for stability)
and its sum l = sum_j exp(s_j - m) before any weight is known. The online
softmax (Milakov & Gimelshein 2018; the core of FlashAttention, Dao et al.
2022, Algorithm 1) reads the keys one block at a time and keeps, per query,
three running quantities: the maximum m seen so far, the sum l of exp(s - m)
and the unnormalised output acc = sum_j exp(s_j - m) v_j. When a block raises
the maximum from m to m', everything accumulated so far was computed relative
to the old m and is RESCALED by alpha = exp(m - m') <= 1:

    m'  = max(m, max_j s_j)                              (over the new block)
    l'  = alpha * l   + sum_j exp(s_j - m')
    acc'= alpha * acc + sum_j exp(s_j - m') v_j
    out = acc / l                                        (after the last block)

The result equals softmax(Q K^T / sqrt(E)) V exactly (up to float rounding),
while the largest intermediate is (L, block_size): memory grows linearly in S.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ._checks import check_int, check_qkv, shape_of

__all__ = ["tiled_attention", "OnlineSoftmaxStep", "online_softmax_trace"]


def tiled_attention(query: Tensor, key: Tensor, value: Tensor, block_size: int = 64, is_causal: bool = False,
                    scale: float | None = None) -> Tensor:
    """Exact scaled dot-product attention, one key block at a time (online softmax).

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev), equal to
    ``F.scaled_dot_product_attention(query, key, value, is_causal=is_causal, scale=scale)``.
    Any S (the last block is shorter when block_size does not divide S).
    ``is_causal``: query i sees keys j <= i (top-left aligned, as torch's SDPA).
    Never holds more than (..., L, block_size) scores at once in the forward pass. Under autograd
    (inputs that require grad) every block's weights are saved for the backward pass, which brings
    back O(L S) memory; FlashAttention avoids that by recomputing them in its own backward pass.
    """
    check_qkv(query, key, value)
    block_size = check_int("block_size", block_size)
    if not isinstance(is_causal, bool):
        raise TypeError(f"is_causal must be a bool, got {type(is_causal).__name__} {is_causal!r}")
    L, S = query.shape[-2], key.shape[-2]
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    q = query * scale  # (..., L, E): scaling L x E numbers is cheaper than L x S scores
    batch = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    m = torch.full((*batch, L, 1), float("-inf"), dtype=q.dtype, device=q.device)  # running max
    l = torch.zeros((*batch, L, 1), dtype=q.dtype, device=q.device)  # running sum of exp(s - m)
    acc = torch.zeros((*batch, L, value.shape[-1]), dtype=q.dtype, device=q.device)  # running exp(s - m) @ v
    rows = torch.arange(L, device=q.device)[:, None]  # (L, 1) query positions, for the causal mask
    for start in range(0, S, block_size):
        if is_causal and start > L - 1:
            break  # every later key is in the future of every query
        stop = min(start + block_size, S)
        s = q @ key[..., start:stop, :].transpose(-2, -1)  # (..., L, b) scores of this block only
        if is_causal:
            cols = torch.arange(start, stop, device=q.device)[None, :]  # (1, b)
            s = s.masked_fill(cols > rows, float("-inf"))
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))  # (..., L, 1)
        # A row that has seen only masked keys still has m_new = -inf; use 0 as its reference so that
        # exp(-inf - 0) = 0 instead of exp(-inf - (-inf)) = NaN.
        ref = m_new.masked_fill(m_new == float("-inf"), 0.0)
        alpha = torch.exp(m - ref)  # (..., L, 1) rescales what was accumulated against the old max
        p = torch.exp(s - ref)  # (..., L, b)
        l = alpha * l + p.sum(dim=-1, keepdim=True)
        acc = alpha * acc + p @ value[..., start:stop, :]  # (..., L, Ev)
        m = m_new
    return acc / l  # every row saw at least key 0, so l > 0


@dataclass(frozen=True)
class OnlineSoftmaxStep:
    """The online softmax of one row of scores after block number ``index`` has been read.

    keys: (start, stop) of the block; block_max: its largest score; max_before/max_after:
    the running maximum m before and after it; alpha = exp(max_before - max_after), the
    factor the old running sum is rescaled by; sum_before (l), sum_rescaled (alpha * l),
    sum_after (l'); weights: (S,) the weights that would be returned if the row stopped
    here, exp(s_j - m') / l' for the keys seen so far and 0 for the others.
    """

    index: int
    keys: tuple[int, int]
    block_max: float
    max_before: float
    max_after: float
    alpha: float
    sum_before: float
    sum_rescaled: float
    sum_after: float
    weights: Tensor


def online_softmax_trace(scores, block_size: int) -> list[OnlineSoftmaxStep]:
    """Every step of the online softmax of one row of scores (S,), one block of keys at a time.

    The pure function behind the notebook's picture and its stepper explorer. After the
    last step, ``weights`` equals ``torch.softmax(scores, -1)`` (tested).
    """
    if not isinstance(scores, Tensor):
        scores = torch.as_tensor(scores, dtype=torch.float64)
    if scores.dim() != 1 or scores.numel() == 0 or not scores.is_floating_point():
        raise ValueError(f"scores must be a non-empty 1-D float tensor (one row, S scores), got {scores.dtype} "
                         f"of shape {shape_of(scores)}")
    if not torch.isfinite(scores).all():
        raise ValueError("scores must be finite (this trace shows unmasked rows; masked keys are simply left out)")
    block_size = check_int("block_size", block_size)
    scores = scores.double()
    S = scores.numel()
    m, l = float("-inf"), 0.0
    steps = []
    for index, start in enumerate(range(0, S, block_size)):
        stop = min(start + block_size, S)
        block = scores[start:stop]
        block_max = float(block.max())
        m_new = max(m, block_max)
        alpha = math.exp(m - m_new) if m != float("-inf") else 0.0
        l_new = alpha * l + float(torch.exp(block - m_new).sum())
        weights = torch.zeros(S, dtype=torch.float64)
        weights[:stop] = torch.exp(scores[:stop] - m_new) / l_new
        steps.append(OnlineSoftmaxStep(index, (start, stop), block_max, m, m_new, alpha, l, alpha * l, l_new, weights))
        m, l = m_new, l_new
    return steps
