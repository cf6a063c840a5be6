"""The two blocks of the Transformer (Vaswani et al. 2017, sec. 3.1, figure 1).

* ``EncoderBlock``: self-attention, then the feed-forward network, each
  wrapped in a residual connection and a LayerNorm.
* ``DecoderBlock``: masked (causal) self-attention, cross-attention to the
  encoder's output ("memory"), then the feed-forward network.

Where the LayerNorm goes is the one design choice that matters for training:

    post-LN (the paper, norm_first=False):  x = LN(x + Sublayer(x))
    pre-LN  (GPT-2 and later, default):     x = x + Sublayer(LN(x))

Pre-LN keeps an identity path from the input to the output of the whole
stack, which is why it trains without learning-rate warm-up (Xiong et al.
2020); notebook 06 measures it.

Both blocks are built from ``course_lib.attention.MultiHeadAttention`` and
load the weights of ``nn.TransformerEncoderLayer`` / ``nn.TransformerDecoderLayer``
(``from_torch``), with which they agree to float precision: the submodule
names follow torch's (``self_attn``, ``norm1``, ``norm2``...) except that the
two linear layers live in ``ffn`` (a ``FeedForward``) and one parameter-free
``dropout`` serves every residual branch. These names are a contract: the
checker of exercise 06.2 and the model cache load state_dicts by them.

Masks follow ``nn.MultiheadAttention``: key padding masks are bool (B, S),
True = padding (masked out).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .._validate import check_int as _check_int
from ..attention import MultiHeadAttention
from .feedforward import FeedForward

__all__ = ["EncoderBlock", "DecoderBlock"]


def _check_sizes(d_model, num_heads, d_ff, dropout, norm_first) -> tuple[int, int, int, float]:
    d_model = _check_int("d_model", d_model)
    num_heads = _check_int("num_heads", num_heads)
    d_ff = _check_int("d_ff", d_ff)
    if d_model % num_heads:
        raise ValueError(
            f"d_model = {d_model} must be divisible by num_heads = {num_heads}: each head gets d_model / "
            "num_heads features"
        )
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
    if not isinstance(norm_first, bool):
        raise TypeError(f"norm_first must be a bool (True = pre-LN, False = post-LN), got {norm_first!r}")
    return d_model, num_heads, d_ff, float(dropout)


def _activation_of(layer: nn.Module) -> str:
    """The name of the activation of a torch Transformer layer ("relu" or "gelu")."""
    act = layer.activation
    if act is F.relu or isinstance(act, nn.ReLU):
        return "relu"
    if act is F.gelu or (isinstance(act, nn.GELU) and act.approximate == "none"):
        return "gelu"
    raise ValueError(f"only relu and gelu (exact) activations can be copied, got {act!r}")


def _copy_linear_and_norms(ours: nn.Module, theirs: nn.Module, norms: tuple[str, ...]) -> None:
    ours.ffn.linear1.load_state_dict(theirs.linear1.state_dict())
    ours.ffn.linear2.load_state_dict(theirs.linear2.state_dict())
    for name in norms:
        getattr(ours, name).load_state_dict(getattr(theirs, name).state_dict())


def _from_torch(cls, layer: nn.Module, expected: type):
    """A block of class `cls` with the sizes, options and weights of torch's `layer` (an `expected`)."""
    if not isinstance(layer, expected):
        raise TypeError(f"layer must be a torch.nn.{expected.__name__}, got {type(layer).__name__}")
    ours = cls(layer.self_attn.embed_dim, layer.self_attn.num_heads, layer.linear1.out_features,
               dropout=layer.dropout.p, norm_first=layer.norm_first, activation=_activation_of(layer),
               layer_norm_eps=layer.norm1.eps)
    ours.load_torch_state(layer)
    return ours.to(device=layer.linear1.weight.device, dtype=layer.linear1.weight.dtype)


class EncoderBlock(nn.Module):
    """One encoder layer: self-attention and feed-forward sublayers (Vaswani et al. 2017, sec. 3.1).

    forward(x (B, L, d_model), key_padding_mask (B, L) bool True = padding, or
    None) -> (B, L, d_model).

    norm_first=True (pre-LN):                norm_first=False (post-LN, the paper):
        x = x + drop(MHA(LN1(x)))                x = LN1(x + drop(MHA(x)))
        x = x + drop(FFN(LN2(x)))                x = LN2(x + drop(FFN(x)))

    Same computation as ``nn.TransformerEncoderLayer(d_model, num_heads, d_ff,
    dropout, batch_first=True, norm_first=...)``; ``EncoderBlock.from_torch``
    copies one. ``forward_with_weights`` also returns the attention weights
    (B, H, L, L), every head separately. ``is_causal=True`` lets position i see
    positions j <= i only (a decoder-only block, notebook 07).
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0, norm_first: bool = True,
                 activation: str = "relu", layer_norm_eps: float = 1e-5):
        super().__init__()
        d_model, num_heads, d_ff, dropout = _check_sizes(d_model, num_heads, d_ff, dropout, norm_first)
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.ffn = FeedForward(d_model, d_ff, dropout, activation=activation)
        self.dropout = nn.Dropout(dropout)  # on each sublayer's output, before the residual sum

    def extra_repr(self) -> str:
        return f"norm_first={self.norm_first}"

    def _self_attention(self, h: Tensor, key_padding_mask, need_weights: bool, is_causal: bool):
        a, weights = self.self_attn(h, h, h, key_padding_mask=key_padding_mask, need_weights=need_weights,
                                    average_attn_weights=False, is_causal=is_causal)  # (B, L, E), (B, H, L, L)
        return self.dropout(a), weights

    def forward_with_weights(self, x: Tensor, key_padding_mask: Tensor | None = None, *,
                             is_causal: bool = False, need_weights: bool = True) -> tuple[Tensor, Tensor | None]:
        """x (B, L, E) -> (y (B, L, E), self-attention weights (B, H, L, L) or None)."""
        if self.norm_first:
            a, weights = self._self_attention(self.norm1(x), key_padding_mask, need_weights, is_causal)
            x = x + a
            x = x + self.dropout(self.ffn(self.norm2(x)))
        else:
            a, weights = self._self_attention(x, key_padding_mask, need_weights, is_causal)
            x = self.norm1(x + a)
            x = self.norm2(x + self.dropout(self.ffn(x)))
        return x, weights

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None, *, is_causal: bool = False) -> Tensor:
        return self.forward_with_weights(x, key_padding_mask, is_causal=is_causal, need_weights=False)[0]

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer) -> "EncoderBlock":
        """An EncoderBlock with the configuration and weights of ``layer`` (either ``norm_first``).

        Our block is batch-first whatever ``layer.batch_first`` says: give it (B, L, E).
        """
        return _from_torch(cls, layer, nn.TransformerEncoderLayer)

    def load_torch_state(self, layer: nn.TransformerEncoderLayer) -> None:
        """Copy the weights of an ``nn.TransformerEncoderLayer`` of the same sizes into this block."""
        if layer.norm_first != self.norm_first:
            raise ValueError(
                f"layer has norm_first={layer.norm_first} but this block has norm_first={self.norm_first}: "
                "the weights would be used in a different computation"
            )
        self.self_attn.load_torch_state(layer.self_attn)
        _copy_linear_and_norms(self, layer, ("norm1", "norm2"))


class DecoderBlock(nn.Module):
    """One decoder layer: masked self-attention, cross-attention, feed-forward (Vaswani et al. 2017, sec. 3.1).

    forward(x (B, T, d_model), memory (B, S, d_model),
    tgt_key_padding_mask (B, T) bool True = padding or None,
    memory_key_padding_mask (B, S) bool True = padding or None) -> (B, T, d_model).

    Self-attention is always causal: target position t sees targets <= t, so
    the model can be trained on all positions at once (teacher forcing) and
    still generate one token at a time. Cross-attention takes its queries from
    the decoder and its keys and values from the encoder's output. With
    norm_first=True (pre-LN):

        x = x + drop(SelfMHA(LN1(x)))             causal
        x = x + drop(CrossMHA(LN2(x), memory))    memory: the encoder's output
        x = x + drop(FFN(LN3(x)))

    and post-LN (the paper) puts each LN after its residual sum instead. Same
    computation as ``nn.TransformerDecoderLayer(..., batch_first=True)`` called
    with a causal ``tgt_mask``; ``DecoderBlock.from_torch`` copies one.
    ``cross_attention=False`` builds the ablated block of notebook 06 (no
    cross-attention at all: the decoder sees the source only through what an
    outside mechanism gives it).
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0, norm_first: bool = True,
                 activation: str = "relu", layer_norm_eps: float = 1e-5, cross_attention: bool = True):
        super().__init__()
        d_model, num_heads, d_ff, dropout = _check_sizes(d_model, num_heads, d_ff, dropout, norm_first)
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.cross_attn = (MultiHeadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
                           if cross_attention else None)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps) if cross_attention else None
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.ffn = FeedForward(d_model, d_ff, dropout, activation=activation)
        self.dropout = nn.Dropout(dropout)

    def extra_repr(self) -> str:
        return f"norm_first={self.norm_first}, cross_attention={self.cross_attn is not None}"

    def forward_with_weights(self, x: Tensor, memory: Tensor, tgt_key_padding_mask: Tensor | None = None,
                             memory_key_padding_mask: Tensor | None = None, *, need_weights: bool = True
                             ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """-> (y (B, T, E), self-attention weights (B, H, T, T), cross-attention weights (B, H, T, S)).

        Weights are None when need_weights=False; cross weights are None without cross-attention.
        """
        def self_block(h):
            a, w = self.self_attn(h, h, h, key_padding_mask=tgt_key_padding_mask, need_weights=need_weights,
                                  average_attn_weights=False, is_causal=True)  # (B, T, E), (B, H, T, T)
            return self.dropout(a), w

        def cross_block(h):
            a, w = self.cross_attn(h, memory, memory, key_padding_mask=memory_key_padding_mask,
                                   need_weights=need_weights, average_attn_weights=False)  # (B,T,E), (B,H,T,S)
            return self.dropout(a), w

        cross_weights = None
        if self.norm_first:
            a, self_weights = self_block(self.norm1(x))
            x = x + a
            if self.cross_attn is not None:
                a, cross_weights = cross_block(self.norm2(x))
                x = x + a
            x = x + self.dropout(self.ffn(self.norm3(x)))
        else:
            a, self_weights = self_block(x)
            x = self.norm1(x + a)
            if self.cross_attn is not None:
                a, cross_weights = cross_block(x)
                x = self.norm2(x + a)
            x = self.norm3(x + self.dropout(self.ffn(x)))
        return x, self_weights, cross_weights

    def forward(self, x: Tensor, memory: Tensor, tgt_key_padding_mask: Tensor | None = None,
                memory_key_padding_mask: Tensor | None = None) -> Tensor:
        return self.forward_with_weights(x, memory, tgt_key_padding_mask, memory_key_padding_mask,
                                         need_weights=False)[0]

    @classmethod
    def from_torch(cls, layer: nn.TransformerDecoderLayer) -> "DecoderBlock":
        """A DecoderBlock with the configuration and weights of ``layer`` (batch-first, causal self-attention)."""
        return _from_torch(cls, layer, nn.TransformerDecoderLayer)

    def load_torch_state(self, layer: nn.TransformerDecoderLayer) -> None:
        """Copy the weights of an ``nn.TransformerDecoderLayer`` of the same sizes into this block."""
        if layer.norm_first != self.norm_first:
            raise ValueError(f"layer has norm_first={layer.norm_first} but this block has norm_first={self.norm_first}")
        if self.cross_attn is None:
            raise ValueError("this block has no cross-attention to copy torch's multihead_attn into")
        self.self_attn.load_torch_state(layer.self_attn)
        self.cross_attn.load_torch_state(layer.multihead_attn)
        _copy_linear_and_norms(self, layer, ("norm1", "norm2", "norm3"))
