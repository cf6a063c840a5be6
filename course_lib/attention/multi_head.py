"""Multi-head attention: split, attend, merge, project (Vaswani et al. 2017, sec. 3.2.2), as
functions and as the ``MultiHeadAttention`` module that mirrors ``torch.nn.MultiheadAttention``.

``multi_head_attention`` follows torch SDPA's mask convention (bool True = take part);
``MultiHeadAttention`` follows ``nn.MultiheadAttention``'s (bool True = masked out).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validate import check_shapes
from ._checks import _check_mask_dtype, _require_tensor, _shape
from .scaled_dot_product import attention_with_weights


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
    def from_torch(cls, mha: nn.MultiheadAttention, fast: bool = True) -> MultiHeadAttention:
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
