"""Small attention models of notebooks 04 and 05: one attention layer, and a tagger that labels every position."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validate import check_int as _check_int
from ..attention import MultiHeadAttention
from .embedding import TokenEmbedding
from .feedforward import FeedForward

__all__ = ["AttentionLayer", "AttentionTagger", "tagging_loss", "tagging_accuracy"]

# --------------------------------------------------------------------------- 3. one attention layer


class AttentionLayer(nn.Module):
    """Self-attention sublayer, then (if d_ff > 0) a feed-forward sublayer, both pre-LayerNorm:

        x = x + MHA(LN(x))        MHA = course_lib.attention.MultiHeadAttention
        x = x + FFN(LN(x))        only when d_ff > 0

    forward(x (B, L, E), key_padding_mask=None, need_weights=False)
    -> (y (B, L, E), weights (B, H, L, L) per head, or None when
    need_weights=False). key_padding_mask (B, L) is bool, True = padding (the
    convention of nn.MultiheadAttention). ``causal=True`` lets position i see
    positions j <= i only.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int = 0, dropout: float = 0.0, causal: bool = False):
        super().__init__()
        d_model = _check_int("d_model", d_model)
        num_heads = _check_int("num_heads", num_heads)
        d_ff = _check_int("d_ff", d_ff, minimum=0)
        if d_model % num_heads:
            raise ValueError(
                f"d_model = {d_model} must be divisible by num_heads = {num_heads}: each head gets d_model / "
                "num_heads features"
            )
        if not isinstance(causal, bool):
            raise TypeError(f"causal must be a bool, got {type(causal).__name__} {causal!r}")
        self.causal = causal
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model) if d_ff else None
        self.ffn = FeedForward(d_model, d_ff, dropout) if d_ff else None

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        h = self.norm1(x)
        a, weights = self.attn(h, h, h, key_padding_mask=key_padding_mask, need_weights=need_weights,
                               average_attn_weights=False, is_causal=self.causal)  # (B, L, E), (B, H, L, L)
        x = x + a
        if self.ffn is not None:
            x = x + self.ffn(self.norm2(x))
        return x, weights


# --------------------------------------------------------------------------- 4. a model that labels every position


class AttentionTagger(nn.Module):
    """Labels every position of a sequence: embedding -> AttentionLayer x num_layers -> LayerNorm -> classifiers.

    tokens (B, L) long -> logits (B, L, num_classes) when num_outputs == 1,
    (B, L, num_outputs, num_classes) otherwise: ``num_outputs`` separate linear
    classifiers (``self.heads``) read the same final vector, e.g. one for "the
    token before" and one for "the token after" (notebook 04).

    ``forward(tokens, need_weights=True)`` also returns the attention weights:
    a list with one (B, H, L, L) tensor per layer, every head separately.
    With ``positional="none"`` and ``causal=False`` the model is permutation
    equivariant: permuting the input tokens permutes the logits the same way.
    """

    def __init__(self, vocab_size: int, num_classes: int, d_model: int = 32, num_heads: int = 1,
                 num_layers: int = 1, d_ff: int = 0, max_len: int = 64, positional: str = "learned",
                 num_outputs: int = 1, dropout: float = 0.0, causal: bool = False):
        super().__init__()
        self.num_classes = _check_int("num_classes", num_classes)
        self.num_outputs = _check_int("num_outputs", num_outputs)
        num_layers = _check_int("num_layers", num_layers)
        self.embed = TokenEmbedding(vocab_size, d_model, max_len=max_len, positional=positional)
        self.layers = nn.ModuleList(
            AttentionLayer(d_model, num_heads, d_ff=d_ff, dropout=dropout, causal=causal) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.heads = nn.ModuleList(nn.Linear(d_model, num_classes) for _ in range(num_outputs))

    @property
    def num_heads(self) -> int:
        return self.layers[0].attn.num_heads

    def forward(self, tokens: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        x = self.embed(tokens)  # (B, L, E)
        maps = []
        for layer in self.layers:
            x, weights = layer(x, key_padding_mask=key_padding_mask, need_weights=need_weights)
            maps.append(weights)
        x = self.norm(x)
        logits = torch.stack([head(x) for head in self.heads], dim=2)  # (B, L, K, C)
        if self.num_outputs == 1:
            logits = logits.squeeze(2)  # (B, L, C)
        return (logits, maps) if need_weights else logits


def tagging_loss(logits: Tensor, targets: Tensor, ignore_index: int = -100) -> Tensor:
    """Mean cross-entropy over every labelled position.

    logits (..., C), targets (...) long with the same leading shape, e.g.
    (B, L, C) with (B, L), or (B, L, K, C) with (B, L, K). Targets equal to
    ``ignore_index`` do not count.
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} do not match: expected "
            "targets to have the shape of logits without its last (class) dimension"
        )
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=ignore_index)


def tagging_accuracy(logits: Tensor, targets: Tensor, ignore_index: int = -100) -> tuple[float, float]:
    """(token accuracy, exact-match accuracy) of argmax predictions.

    logits (B, ..., C), targets (B, ...). Token accuracy counts every labelled
    position; a row is an exact match when all its labelled positions are right.
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} do not match: expected "
            "targets to have the shape of logits without its last (class) dimension"
        )
    labelled = targets != ignore_index
    right = (logits.argmax(-1) == targets) | ~labelled
    token = (right & labelled).sum().item() / max(int(labelled.sum()), 1)
    exact = right.reshape(right.shape[0], -1).all(dim=1).float().mean().item()
    return token, exact
