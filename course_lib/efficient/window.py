"""Sliding-window (local) attention (Longformer, Beltagy et al. 2020, sec. 3.1).

Each query i looks only at keys j with |i - j| <= window (or, causal, at the
``window`` keys before it and itself). The mask is ``masks.sliding_window_mask``.
Applied as a mask to full attention, it saves nothing: the (L, L) scores are
still computed, then mostly thrown away. ``banded_attention`` computes only the
band: each block of queries meets the keys of its own block and ``window``
neighbours on either side, so time and memory grow as L * (block + 2 * window),
linearly in L for a fixed window.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..masks import sliding_window_mask
from ._checks import check_int, check_qkv

__all__ = ["sliding_window_mask", "sliding_window_attention", "banded_attention"]


def _check_window(window, causal) -> int:
    window = check_int("window", window, minimum=0)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__} {causal!r}")
    return window


def sliding_window_attention(query: Tensor, key: Tensor, value: Tensor, window: int,
                             causal: bool = False) -> Tensor:
    """Reference: full attention with the sliding-window mask (O(L^2) time and memory).

    query, key, value (..., L, E) / (..., L, Ev) (self-attention: as many keys as
    queries) -> (..., L, Ev). Key j takes part for query i when |i - j| <= window
    (causal: 0 <= i - j <= window).
    """
    check_qkv(query, key, value, same_length=True)
    window = _check_window(window, causal)
    keep = sliding_window_mask(query.shape[-2], window, device=query.device, causal=causal)  # (L, L)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=keep)


def banded_attention(query: Tensor, key: Tensor, value: Tensor, window: int, causal: bool = False,
                     block_size: int = 64) -> Tensor:
    """Sliding-window attention computing only the band: equals :func:`sliding_window_attention`.

    Queries are taken ``block_size`` at a time; block [a, b) needs keys
    [a - window, b + window) only (causal: [a - window, b)), so the largest
    score matrix is (block_size, block_size + 2 * window), whatever L.
    """
    check_qkv(query, key, value, same_length=True)
    window = _check_window(window, causal)
    block_size = check_int("block_size", block_size)
    L = query.shape[-2]
    scale = 1.0 / math.sqrt(query.shape[-1])
    outputs = []
    for a in range(0, L, block_size):
        b = min(a + block_size, L)
        lo, hi = max(0, a - window), (b if causal else min(L, b + window))
        s = (query[..., a:b, :] * scale) @ key[..., lo:hi, :].transpose(-2, -1)  # (..., b - a, hi - lo)
        offset = torch.arange(a, b, device=query.device)[:, None] - torch.arange(lo, hi, device=query.device)[None, :]
        keep = (offset >= 0) & (offset <= window) if causal else offset.abs() <= window  # (b - a, hi - lo)
        weights = torch.softmax(s.masked_fill(~keep, float("-inf")), dim=-1)  # every row keeps itself
        outputs.append(weights @ value[..., lo:hi, :])  # (..., b - a, Ev)
    return torch.cat(outputs, dim=-2)  # (..., L, Ev)
