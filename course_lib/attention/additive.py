"""Additive attention (Bahdanau et al. 2014) and Luong's dot/general scores (Luong et al. 2015)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._validate import check_shapes
from ._checks import _check_broadcast, _require_tensor


def additive_scores(query: Tensor, keys: Tensor, W_q: Tensor, W_k: Tensor, v: Tensor) -> Tensor:
    """Additive (Bahdanau) scores e_j = v^T tanh(W_q^T s + W_k^T h_j) (Bahdanau et al. 2014, eq. 6).

    query (B, Hd), keys (B, S, Hk), W_q (Hd, A), W_k (Hk, A), v (A,) -> scores (B, S).
    Matrices are applied as ``x @ W``.
    """
    check_shapes(query=(query, "B Hd"), keys=(keys, "B S Hk"), W_q=(W_q, "Hd A"), W_k=(W_k, "Hk A"), v=(v, "A"),
                 floating=("query", "keys"), dims={"B": "batch size B"})
    hidden = torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k)  # (B, S, A)
    return hidden @ v  # (B, S)


def masked_softmax(scores: Tensor, mask: Tensor | None = None, dim: int = -1) -> Tensor:
    """Softmax over `dim` that gives exactly 0 where ``mask`` is False.

    scores (..., S); mask bool broadcastable to scores, True = valid (keep).
    A row with no valid entry becomes all zeros, never NaN.
    """
    _require_tensor("scores", scores, min_dim=1, floating=True)
    if mask is None:
        return torch.softmax(scores, dim=dim)
    _require_tensor("mask", mask)
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = valid), got dtype {mask.dtype}")
    _check_broadcast("mask", mask, tuple(scores.shape), "(True = valid position)")
    keep = mask
    scores = scores.masked_fill(~keep, float("-inf"))
    dead = ~keep.any(dim=dim, keepdim=True)  # rows with nothing to attend to
    weights = torch.softmax(scores.masked_fill(dead, 0.0), dim=dim)
    return weights.masked_fill(~keep, 0.0)


def bahdanau_attend(query: Tensor, keys: Tensor, mask: Tensor | None, W_q: Tensor, W_k: Tensor,
                    v: Tensor) -> tuple[Tensor, Tensor]:
    """One step of Bahdanau attention: scores, masked softmax, context.

    query (B, Hd), keys (B, S, Hk), mask (B, S) bool True = valid or None
    -> context (B, Hk), weights (B, S).
    """
    weights = masked_softmax(additive_scores(query, keys, W_q, W_k, v), mask)  # (B, S)
    context = (weights.unsqueeze(1) @ keys).squeeze(1)  # (B, Hk)
    return context, weights


class AdditiveAttention(nn.Module):
    """Bahdanau attention as a module: W_q and W_k project into an attention
    space of size ``attn_dim``, ``v`` reads a score from it.

    forward(query (B, Hd), keys (B, S, Hk), mask (B, S) bool True = valid)
    -> context (B, Hk), weights (B, S). The key projection does not depend on
    the decoder step, so a decoder may compute it once with ``project_keys``
    and pass it as ``projected_keys`` at every step.
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int):
        super().__init__()
        for name, value in (("query_dim", query_dim), ("key_dim", key_dim), ("attn_dim", attn_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.W_q = nn.Linear(query_dim, attn_dim, bias=False)
        self.W_k = nn.Linear(key_dim, attn_dim, bias=True)
        self.v = nn.Linear(attn_dim, 1, bias=False)

    def project_keys(self, keys: Tensor) -> Tensor:
        """keys (B, S, Hk) -> (B, S, A)."""
        return self.W_k(keys)

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor | None = None,
                projected_keys: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_shapes(query=(query, "B Hd"), keys=(keys, "B S Hk"), floating=("query", "keys"))
        if projected_keys is None:
            projected_keys = self.project_keys(keys)
        scores = self.v(torch.tanh(self.W_q(query).unsqueeze(1) + projected_keys)).squeeze(-1)  # (B, S)
        weights = masked_softmax(scores, mask)
        context = (weights.unsqueeze(1) @ keys).squeeze(1)  # (B, Hk)
        return context, weights


def dot_scores(query: Tensor, keys: Tensor) -> Tensor:
    """Luong et al. (2015) "dot" score: s . h_j. query (B, H), keys (B, S, H) -> (B, S)."""
    return (keys @ query.unsqueeze(-1)).squeeze(-1)


def general_scores(query: Tensor, keys: Tensor, W: Tensor) -> Tensor:
    """Luong et al. (2015) "general" score: s W h_j^T. query (B, Hd), keys (B, S, Hk), W (Hd, Hk) -> (B, S)."""
    return (keys @ (query @ W).unsqueeze(-1)).squeeze(-1)

