"""What attention maps do and do not tell you: rollout and attributions (notebook 10).

Pure functions on tensors, independent of any particular model:

* :func:`attention_rollout` (Abnar & Zuidema 2020): how much each input token
  flows into each position through all the layers, following the attention
  maps and the residual connections;
* :func:`gradient_x_input`: the first-order attribution of a score to each
  input token, sum_e x_ie * d score / d x_ie (Shrikumar et al. 2016; the
  comparison with attention of Jain & Wallace 2019);
* :func:`leave_one_out`: the change of a score when one token is replaced by
  a baseline, token by token;
* :func:`rank_correlation`: Spearman's rank correlation between two
  attributions, to compare them with each other or with a known truth.

Shapes: B batch, H heads, L tokens, E embedding width.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from ._validate import shape_text

__all__ = ["attention_rollout", "gradient_x_input", "leave_one_out", "rank_correlation", "gpt_attentions",
           "total_variation"]


def _shape(x: Tensor) -> str:
    return shape_text(x.shape)


def attention_rollout(attentions: Sequence[Tensor], residual: float = 0.5) -> Tensor:
    """Attention rollout (Abnar & Zuidema 2020, eq. 1). attentions: one (B, H, L, L) map per layer,
    first layer first -> (B, L, L), rows summing to 1.

    Per layer: average the heads, A' = (1 - residual) A + residual I (the residual connection
    carries the token's own state forward), rows renormalised; then R = A'_last ... A'_first.
    Row i of R: how much each input token contributes to position i after the last layer.
    """
    if isinstance(attentions, Tensor) or not isinstance(attentions, Sequence) or len(attentions) == 0:
        raise TypeError("attentions must be a non-empty list of (B, H, L, L) tensors, one per layer, first layer "
                        f"first; got {type(attentions).__name__}")
    if not 0.0 <= float(residual) <= 1.0:
        raise ValueError(f"residual must be in [0, 1], got {residual}")
    first = attentions[0]
    for n, a in enumerate(attentions):
        if not isinstance(a, Tensor) or a.dim() != 4 or a.shape[-1] != a.shape[-2]:
            got = _shape(a) if isinstance(a, Tensor) else type(a).__name__
            raise ValueError(f"attentions[{n}] must be a (B, H, L, L) tensor of attention weights, got {got}")
        if a.shape[0] != first.shape[0] or a.shape[-1] != first.shape[-1]:
            raise ValueError(f"every layer must have the same B and L: attentions[0] is {_shape(first)}, "
                             f"attentions[{n}] is {_shape(a)}")
    L = first.shape[-1]
    eye = torch.eye(L, dtype=first.dtype, device=first.device)  # (L, L)
    rollout = None
    for a in attentions:
        mixed = (1.0 - residual) * a.mean(dim=1) + residual * eye  # (B, L, L): heads averaged, then the residual
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        rollout = mixed if rollout is None else mixed @ rollout  # later layers multiply on the left
    return rollout


def gradient_x_input(score: Callable[[Tensor], Tensor], inputs: Tensor) -> Tensor:
    """Gradient x input. score: (B, L, E) embeddings -> (B,) one score per example (e.g. the logit
    of the predicted class); inputs (B, L, E) -> (B, L), sum over E of inputs * d score / d inputs."""
    if not isinstance(inputs, Tensor) or inputs.dim() != 3 or not inputs.is_floating_point():
        raise ValueError(f"inputs must be a float (B, L, E) tensor of embeddings, got "
                         f"{_shape(inputs) if isinstance(inputs, Tensor) else type(inputs).__name__}")
    x = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = score(x)
        if not isinstance(out, Tensor) or out.shape != (inputs.shape[0],):
            raise ValueError(f"score must return one value per example, shape ({inputs.shape[0]},), got "
                             f"{_shape(out) if isinstance(out, Tensor) else type(out).__name__}")
        (grad,) = torch.autograd.grad(out.sum(), x)  # examples are independent: the sum separates them
    return (grad * x).sum(dim=-1).detach()  # (B, L)


def leave_one_out(score: Callable[[Tensor], Tensor], inputs: Tensor, baseline: Tensor | float = 0.0) -> Tensor:
    """Leave-one-out attribution: score(inputs) - score(inputs with token i replaced by ``baseline``),
    for every token i. score: (B, L, E) -> (B,); inputs (B, L, E); baseline a number or a tensor
    broadcastable to (E,) -> (B, L). One batched call of ``score`` on B * L modified copies."""
    if not isinstance(inputs, Tensor) or inputs.dim() != 3 or not inputs.is_floating_point():
        raise ValueError(f"inputs must be a float (B, L, E) tensor of embeddings, got "
                         f"{_shape(inputs) if isinstance(inputs, Tensor) else type(inputs).__name__}")
    B, L, E = inputs.shape
    base = torch.as_tensor(baseline, dtype=inputs.dtype, device=inputs.device).expand(E)  # (E,)
    with torch.no_grad():
        full = score(inputs)  # (B,)
        copies = inputs[:, None].expand(B, L, L, E).clone()  # (B, L copies, L, E)
        idx = torch.arange(L, device=inputs.device)
        copies[:, idx, idx] = base  # copy i loses token i
        dropped = score(copies.reshape(B * L, L, E)).reshape(B, L)  # (B, L)
    return full[:, None] - dropped


def _ranks(x: Tensor) -> Tensor:
    """Ranks 0..n-1 along the last axis, ties given their average rank."""
    order = x.argsort(dim=-1)
    ranks = torch.empty_like(x, dtype=torch.float64)
    ranks.scatter_(-1, order, torch.arange(x.shape[-1], dtype=torch.float64, device=x.device).expand_as(ranks))
    flat_x, flat_r = x.reshape(-1, x.shape[-1]), ranks.reshape(-1, x.shape[-1])
    for row in range(flat_x.shape[0]):
        values, inverse = torch.unique(flat_x[row], return_inverse=True)
        if len(values) < flat_x.shape[1]:
            mean_rank = torch.zeros(len(values), dtype=torch.float64).index_add_(0, inverse, flat_r[row])
            mean_rank /= torch.bincount(inverse, minlength=len(values)).double()
            flat_r[row] = mean_rank[inverse]
    return flat_r.reshape(x.shape)


def rank_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Spearman's rank correlation between a and b along the last axis (ties: average ranks)
    -> shape a.shape[:-1], values in [-1, 1]; NaN where one side is constant."""
    if not (isinstance(a, Tensor) and isinstance(b, Tensor)) or a.shape != b.shape or a.dim() == 0:
        raise ValueError("a and b must be tensors of the same shape (..., n)")
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(-1, keepdim=True), rb - rb.mean(-1, keepdim=True)
    return (ra * rb).sum(-1) / (ra.norm(dim=-1) * rb.norm(dim=-1))


def total_variation(p: Tensor, q: Tensor) -> Tensor:
    """Total-variation distance 0.5 * sum |p - q| between distributions along the last axis -> p.shape[:-1],
    in [0, 1]: 0 for equal distributions, 1 for disjoint ones."""
    if not (isinstance(p, Tensor) and isinstance(q, Tensor)) or p.shape != q.shape:
        raise ValueError("p and q must be tensors of the same shape (..., n), each row a distribution")
    return 0.5 * (p - q).abs().sum(dim=-1)


def gpt_attentions(model, tokens: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Notebook 07's GPT with every layer's attention weights: tokens (B, T) -> (logits (B, T, V),
    [(B, H, T, T)] one map per layer, first layer first).

    GPT's CausalSelfAttention returns its output only; this runs the same blocks, calling each
    block's own attention module through ``MultiHeadAttention.forward`` with ``need_weights=True``
    (the same projections, causal mask and softmax), so the logits equal ``model(tokens)``.
    Eval mode expected (no dropout)."""
    from .attention import MultiHeadAttention

    model._check(tokens, 0)
    positions = torch.arange(tokens.shape[1], device=tokens.device)  # (T,)
    x = model.wte(tokens) + model.wpe(positions)  # (B, T, E)
    maps = []
    for block in model.blocks:
        h = block.ln_1(x)
        a, w = MultiHeadAttention.forward(block.attn, h, h, h, need_weights=True, average_attn_weights=False,
                                          is_causal=block.attn.causal)  # (B, T, E), (B, H, T, T)
        x = x + a
        x = x + block.mlp(block.ln_2(x))
        maps.append(w)
    return model.head(model.ln_f(x)), maps
