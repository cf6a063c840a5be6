"""Scaled dot-product attention (Vaswani et al. 2017, eq. 1): readable teaching code, and a
fast path through ``torch.nn.functional.scaled_dot_product_attention``.

A bool ``attn_mask`` is a *keep* mask (True = this key takes part), as in torch's SDPA;
a float mask is added to the scores.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .._validate import check_shapes
from ._checks import _check_broadcast, _check_mask_dtype, _require_tensor, _shape


def _validate_sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale) -> None:
    check_shapes(query=(query, "... L E"), key=(key, "... S E"), value=(value, "... S Ev"),
                 floating=("query", "key", "value"), dims={"E": "feature size E", "S": "number of positions S"})
    if not 0.0 <= float(dropout_p) < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if scale is not None and not isinstance(scale, (int, float)):
        raise TypeError(f"scale must be a number or None, got {type(scale).__name__}")
    if attn_mask is not None:
        if is_causal:
            raise ValueError("give either attn_mask or is_causal=True, not both (as torch's SDPA requires)")
        _require_tensor("attn_mask", attn_mask)
        _check_mask_dtype("attn_mask", attn_mask, query)
        L, S = query.shape[-2], key.shape[-2]
        try:
            batch = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2])
        except RuntimeError:
            raise ValueError(f"query {_shape(query)} and key {_shape(key)} have batch dimensions that do not broadcast")
        _check_broadcast("attn_mask", attn_mask, tuple(batch) + (L, S), "(..., L, S)")


def attention_with_weights(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                           dropout_p: float = 0.0, is_causal: bool = False,
                           scale: float | None = None) -> tuple[Tensor, Tensor]:
    """Scaled dot-product attention that also returns the attention weights.

    softmax(Q K^T / sqrt(E) + mask) V (Vaswani et al. 2017, eq. 1).
    query (..., L, E), key (..., S, E), value (..., S, Ev)
    -> output (..., L, Ev), weights (..., L, S).

    attn_mask: bool (True = take part, torch SDPA's convention) or float (added
    to the scores), broadcastable to (..., L, S). is_causal: query i sees keys
    j <= i (top-left aligned, like torch). A query row with no key to attend
    to gets all-zero weights and a zero output, as torch's SDPA does.
    dropout_p is applied to the weights (always: this is a function, not a module).
    """
    _validate_sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale)
    L, S = query.shape[-2], key.shape[-2]
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale

    # Scaling the queries (L x E numbers) is cheaper than scaling the scores (L x S).
    scores = (query * scale) @ key.transpose(-2, -1)  # (..., L, S)

    keep = None
    if is_causal:
        keep = torch.ones(L, S, dtype=torch.bool, device=query.device).tril()  # (L, S)
    elif attn_mask is not None and attn_mask.dtype == torch.bool:
        keep = attn_mask
    elif attn_mask is not None:
        scores = scores + attn_mask  # float masks are additive

    if keep is None and attn_mask is None:
        weights = torch.softmax(scores, dim=-1)  # (..., L, S)
    else:
        if keep is not None:
            scores = scores.masked_fill(~keep, float("-inf"))
        # A row whose every score is -inf has nothing to attend to: give it
        # zeros instead of the NaN that softmax would produce.
        dead = scores.amax(dim=-1, keepdim=True) == float("-inf")  # (..., L, 1)
        weights = torch.softmax(scores.masked_fill(dead, 0.0), dim=-1).masked_fill(dead, 0.0)  # (..., L, S)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p, training=True)
    return weights @ value, weights  # (..., L, Ev), (..., L, S)


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 *, fast: bool = False) -> Tensor:
    """Same arguments, semantics and return value as
    ``torch.nn.functional.scaled_dot_product_attention``.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev).
    bool attn_mask: True = take part; float attn_mask: added to the scores.
    ``fast=False`` (default) runs the readable implementation in
    ``attention_with_weights``; ``fast=True`` checks the arguments the same way
    and hands the work to torch's fused kernel.
    """
    if not fast:
        return attention_with_weights(query, key, value, attn_mask, dropout_p, is_causal, scale)[0]
    _validate_sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale)
    if attn_mask is not None and attn_mask.is_floating_point() and attn_mask.dtype != query.dtype:
        attn_mask = attn_mask.to(query.dtype)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p,
                                          is_causal=is_causal, scale=scale)


