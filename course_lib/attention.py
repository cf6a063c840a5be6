"""Attention, from additive scoring to multi-head self-attention.

Ordered as the course meets it:

1. Additive attention (Bahdanau et al. 2014) and Luong's dot/general scores.
2. Scaled dot-product attention (Vaswani et al. 2017, eq. 1), written as
   readable teaching code, with a fast path through
   ``torch.nn.functional.scaled_dot_product_attention``.
3. Multi-head attention: split, attend, merge, project (Vaswani et al. 2017,
   sec. 3.2.2), as functions and as the ``MultiHeadAttention`` module that
   mirrors ``torch.nn.MultiheadAttention``.

Two boolean mask conventions live side by side in PyTorch and therefore here:

* ``scaled_dot_product_attention`` (like torch's SDPA): a bool ``attn_mask`` is
  a *keep* mask, True = this key takes part.
* ``MultiHeadAttention`` (like ``nn.MultiheadAttention``): bool
  ``key_padding_mask`` and ``attn_mask`` are *blocked* masks, True = this key
  is masked out.

Float masks mean the same in both: they are added to the scores (0 keeps,
-inf removes). Inside this module a keep mask is always named ``keep`` and a
blocked mask ``blocked``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._validate import check_shapes

__all__ = [
    "additive_scores",
    "masked_softmax",
    "bahdanau_attend",
    "AdditiveAttention",
    "dot_scores",
    "general_scores",
    "scaled_dot_product_attention",
    "attention_with_weights",
    "split_heads",
    "merge_heads",
    "multi_head_attention",
    "MultiHeadAttention",
]


# --------------------------------------------------------------------------- validation


def _shape(x: Tensor) -> str:
    return "(" + ", ".join(str(s) for s in x.shape) + ")"


def _require_tensor(name: str, x, min_dim: int | None = None, ndim: int | tuple[int, ...] | None = None,
                    floating: bool = False, expected: str = "") -> None:
    hint = f" {expected}" if expected else ""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor{hint}, got {type(x).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if x.dim() not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be {want}{hint}, got shape {_shape(x)}")
    if min_dim is not None and x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimensions{hint}, got shape {_shape(x)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor{hint}, got dtype {x.dtype}")


def _check_mask_dtype(name: str, mask: Tensor, like: Tensor) -> None:
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(
            f"{name} must be a bool mask or a float mask added to the scores, got dtype {mask.dtype}; "
            "convert integer 0/1 masks with mask.bool() after deciding which convention they follow"
        )


def _check_broadcast(name: str, mask: Tensor, target: tuple[int, ...], target_desc: str) -> None:
    try:
        shape = torch.broadcast_shapes(tuple(mask.shape), target)
    except RuntimeError:
        shape = None
    if shape != tuple(target):
        raise ValueError(
            f"{name} of shape {_shape(mask)} does not broadcast to the scores' shape "
            f"{tuple(target)} {target_desc}"
        )


# --------------------------------------------------------------------------- 1. additive attention


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


# --------------------------------------------------------------------------- 2. scaled dot-product attention


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


# --------------------------------------------------------------------------- 3. multi-head attention


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, L, E) -> (B, H, L, E/H): each head gets a contiguous slice of the features."""
    check_shapes(x=(x, "B L E"))
    if not isinstance(num_heads, int) or isinstance(num_heads, bool) or num_heads < 1:
        raise ValueError(f"num_heads must be a positive int, got {num_heads!r}")
    B, L, E = x.shape
    if E % num_heads:
        raise ValueError(f"x has feature size E={E} (shape {_shape(x)}), which num_heads={num_heads} does not divide")
    return x.view(B, L, num_heads, E // num_heads).transpose(1, 2)  # (B, H, L, Dh)


def merge_heads(x: Tensor) -> Tensor:
    """(B, H, L, Dh) -> (B, L, H*Dh), the inverse of ``split_heads``."""
    check_shapes(x=(x, "B H L Dh"))
    B, H, L, Dh = x.shape
    return x.transpose(1, 2).reshape(B, L, H * Dh)  # (B, L, E)


def _heads_mask(attn_mask: Tensor | None) -> Tensor | None:
    """Make a (L, S), (B, L, S) or (B, H, L, S) mask broadcast over heads."""
    if attn_mask is not None and isinstance(attn_mask, Tensor) and attn_mask.dim() == 3:
        return attn_mask.unsqueeze(1)  # (B, 1, L, S)
    return attn_mask


def multi_head_attention(query: Tensor, key: Tensor, value: Tensor, W_q: Tensor, W_k: Tensor, W_v: Tensor,
                         W_o: Tensor, num_heads: int, attn_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Multi-head attention without biases (Vaswani et al. 2017, sec. 3.2.2).

    query (B, L, E), key (B, S, E), value (B, S, E); W_q, W_k, W_v, W_o (E, E)
    applied as ``x @ W``. attn_mask as in ``scaled_dot_product_attention``
    (bool True = take part, or float added), of shape (L, S), (B, L, S) or
    (B, H, L, S), shared by all heads when it has no head dimension.
    -> output (B, L, E), weights (B, H, L, S).
    """
    check_shapes(query=(query, "B L E"), key=(key, "B S E"), value=(value, "B S E"), W_q=(W_q, "E E"),
                 W_k=(W_k, "E E"), W_v=(W_v, "E E"), W_o=(W_o, "E E"), floating=("query", "key", "value"),
                 dims={"E": "feature size E"})
    q = split_heads(query @ W_q, num_heads)  # (B, H, L, Dh)
    k = split_heads(key @ W_k, num_heads)  # (B, H, S, Dh)
    v = split_heads(value @ W_v, num_heads)  # (B, H, S, Dh)
    out, weights = attention_with_weights(q, k, v, attn_mask=_heads_mask(attn_mask))
    return merge_heads(out) @ W_o, weights  # (B, L, E), (B, H, L, S)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with the interface of ``torch.nn.MultiheadAttention``.

    Separate ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj`` (nn.Linear)
    instead of torch's packed ``in_proj_weight``; ``from_torch`` copies the
    weights of an ``nn.MultiheadAttention``.

    forward(query, key, value, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=False)
    -> (output, weights or None), with torch's meaning of every argument:

    * shapes: (B, L, E) with batch_first=True, (L, B, E) otherwise, or
      unbatched (L, E); key/value have S positions (kdim/vdim features).
    * key_padding_mask (B, S): bool True = this key is padding (masked out),
      or float added to the scores.
    * attn_mask (L, S) or (B*H, L, S): bool True = NOT allowed to attend, or float added.
    * need_weights: also return attention weights, averaged over heads
      (B, L, S) when average_attn_weights, else per head (B, H, L, S).
    * is_causal: the query at position i sees keys j <= i. Unlike torch, which
      treats it as a hint that attn_mask already is causal and requires
      attn_mask, this module builds the causal mask itself when attn_mask is None.

    Differences from torch, both deliberate: a query row whose keys are all
    masked gets zero weights and a zero attention output (torch gives NaN when
    need_weights=True and zeros otherwise); add_bias_kv/add_zero_attn are not
    provided.

    ``fast=True`` (default) uses torch's fused SDPA kernel when no weights are
    needed; ``fast=False`` always runs the teaching implementation
    ``attention_with_weights``. Both give the same result.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = True, kdim: int | None = None, vdim: int | None = None,
                 fast: bool = True):
        super().__init__()
        if not isinstance(embed_dim, int) or embed_dim < 1:
            raise ValueError(f"embed_dim must be a positive int, got {embed_dim!r}")
        if not isinstance(num_heads, int) or num_heads < 1:
            raise ValueError(f"num_heads must be a positive int, got {num_heads!r}")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} must be divisible by num_heads={num_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.kdim = kdim or embed_dim
        self.vdim = vdim or embed_dim
        self.fast = fast
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(self.kdim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(self.vdim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # Same initialisation as torch: xavier on the input projections, zero biases.
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            nn.init.xavier_uniform_(proj.weight)
            if proj.bias is not None:
                nn.init.zeros_(proj.bias)
        if self.out_proj.bias is not None:
            nn.init.zeros_(self.out_proj.bias)

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
                f"batch_first={self.batch_first}, fast={self.fast}")

    # -- weights from and to torch's module

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention, fast: bool = True) -> "MultiHeadAttention":
        """A MultiHeadAttention with the same configuration and weights as ``mha``."""
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"mha must be a torch.nn.MultiheadAttention, got {type(mha).__name__}")
        if mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("add_bias_kv and add_zero_attn are not supported by MultiHeadAttention")
        bias = mha.in_proj_bias is not None
        ours = cls(mha.embed_dim, mha.num_heads, dropout=mha.dropout, bias=bias, batch_first=mha.batch_first,
                   kdim=mha.kdim, vdim=mha.vdim, fast=fast)
        ours.load_torch_state(mha)
        return ours.to(device=mha.out_proj.weight.device, dtype=mha.out_proj.weight.dtype)

    def load_torch_state(self, mha: nn.MultiheadAttention) -> None:
        """Copy the weights of an ``nn.MultiheadAttention`` of the same shape into this module."""
        E = self.embed_dim
        with torch.no_grad():
            if mha._qkv_same_embed_dim:
                w_q, w_k, w_v = mha.in_proj_weight.split(E, dim=0)  # each (E, E)
            else:
                w_q, w_k, w_v = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
            for proj, w in ((self.q_proj, w_q), (self.k_proj, w_k), (self.v_proj, w_v)):
                if proj.weight.shape != w.shape:
                    raise ValueError(f"weight of shape {_shape(w)} does not fit {proj} ({_shape(proj.weight)})")
                proj.weight.copy_(w)
            if mha.in_proj_bias is not None and self.q_proj.bias is not None:
                for proj, b in zip((self.q_proj, self.k_proj, self.v_proj), mha.in_proj_bias.split(E)):
                    proj.bias.copy_(b)
            self.out_proj.weight.copy_(mha.out_proj.weight)
            if mha.out_proj.bias is not None and self.out_proj.bias is not None:
                self.out_proj.bias.copy_(mha.out_proj.bias)

    # -- forward

    def _project_qkv(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if query is key and key is value and self.kdim == self.vdim == self.embed_dim:
            # Self-attention: one matrix multiply for all three projections, as torch does.
            weight = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])  # (3E, E)
            bias = None
            if self.q_proj.bias is not None:
                bias = torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias])  # (3E,)
            return F.linear(query, weight, bias).chunk(3, dim=-1)
        return self.q_proj(query), self.k_proj(key), self.v_proj(value)

    def _masks(self, key_padding_mask: Tensor | None, attn_mask: Tensor | None, is_causal: bool,
               B: int, L: int, S: int, like: Tensor) -> Tensor | None:
        """Fold key_padding_mask, attn_mask and is_causal into one mask broadcastable to
        (B, H, L, S): bool in the KEEP convention, or float (additive)."""
        H = self.num_heads
        parts: list[Tensor] = []
        if key_padding_mask is not None:
            _require_tensor("key_padding_mask", key_padding_mask, ndim=2, expected=f"of shape (B, S) = ({B}, {S})")
            _check_mask_dtype("key_padding_mask", key_padding_mask, like)
            if tuple(key_padding_mask.shape) != (B, S):
                raise ValueError(
                    f"key_padding_mask must have shape (B, S) = ({B}, {S}), got {_shape(key_padding_mask)}"
                )
            parts.append(key_padding_mask.view(B, 1, 1, S))
        if attn_mask is not None:
            _require_tensor("attn_mask", attn_mask, ndim=(2, 3),
                            expected=f"of shape (L, S) = ({L}, {S}) or (B*H, L, S) = ({B * H}, {L}, {S})")
            _check_mask_dtype("attn_mask", attn_mask, like)
            if attn_mask.dim() == 2 and tuple(attn_mask.shape) != (L, S):
                raise ValueError(f"a 2-D attn_mask must have shape (L, S) = ({L}, {S}), got {_shape(attn_mask)}")
            if attn_mask.dim() == 3 and tuple(attn_mask.shape) != (B * H, L, S):
                raise ValueError(
                    f"a 3-D attn_mask must have shape (B*H, L, S) = ({B * H}, {L}, {S}), got {_shape(attn_mask)}"
                )
            parts.append(attn_mask.view(B, H, L, S) if attn_mask.dim() == 3 else attn_mask)
        elif is_causal:
            blocked = torch.ones(L, S, dtype=torch.bool, device=like.device).triu(1)  # (L, S), True above diagonal
            parts.append(blocked)
        if not parts:
            return None
        if all(p.dtype == torch.bool for p in parts):
            keep = ~parts[0]
            for blocked in parts[1:]:
                keep = keep & ~blocked  # (B or 1, H or 1, L or 1, S)
            return keep
        additive = torch.zeros((), dtype=like.dtype, device=like.device)
        for p in parts:
            if p.dtype == torch.bool:
                p = torch.zeros(p.shape, dtype=like.dtype, device=like.device).masked_fill(p, float("-inf"))
            additive = additive + p.to(like.dtype)
        return additive

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        for name, t in (("query", query), ("key", key), ("value", value)):
            _require_tensor(name, t, ndim=(2, 3), floating=True,
                            expected="of shape (B, L, E) (batch_first), (L, B, E) or unbatched (L, E)")
        if not query.dim() == key.dim() == value.dim():
            raise ValueError(
                f"query {_shape(query)}, key {_shape(key)} and value {_shape(value)} must all be batched (3-D) "
                "or all unbatched (2-D)"
            )
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None and key_padding_mask.dim() == 1:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        B, L, E = query.shape
        S = key.shape[1]
        if E != self.embed_dim:
            raise ValueError(f"query has {E} features (shape {_shape(query)}), expected embed_dim={self.embed_dim}")
        if key.shape[-1] != self.kdim or value.shape[-1] != self.vdim:
            raise ValueError(
                f"key {_shape(key)} and value {_shape(value)} must have kdim={self.kdim} and vdim={self.vdim} features"
            )
        if key.shape[:2] != value.shape[:2] or key.shape[0] != B:
            raise ValueError(
                f"key {_shape(key)} and value {_shape(value)} must share batch size {B} and length S"
            )

        q, k, v = self._project_qkv(query, key, value)
        q = split_heads(q, self.num_heads)  # (B, H, L, Dh)
        k = split_heads(k, self.num_heads)  # (B, H, S, Dh)
        v = split_heads(v, self.num_heads)  # (B, H, S, Dh)
        mask = self._masks(key_padding_mask, attn_mask, is_causal, B, L, S, q)
        dropout_p = self.dropout if self.training else 0.0

        if self.fast and not need_weights:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)  # (B, H, L, Dh)
            weights = None
        else:
            out, weights = attention_with_weights(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        out = self.out_proj(merge_heads(out))  # (B, L, E)

        if not need_weights:
            weights = None
        elif average_attn_weights:
            weights = weights.mean(dim=1)  # (B, L, S)
        if unbatched:
            out = out.squeeze(0)
            weights = weights.squeeze(0) if weights is not None else None
        elif not self.batch_first:
            out = out.transpose(0, 1)  # (L, B, E)
        return out, weights
