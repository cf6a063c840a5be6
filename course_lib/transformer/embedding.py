"""Token embedding with positional information (notebook 05), the input layer of every model here."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._validate import check_int as _check_int
from ..positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding

__all__ = ["POSITIONAL_KINDS", "TokenEmbedding"]

POSITIONAL_KINDS = ("none", "sinusoidal", "learned")


def _check_tokens(tokens, vocab_size: int, max_len: int | None) -> Tensor:
    if not isinstance(tokens, Tensor):
        raise TypeError(f"tokens must be a LongTensor of shape (B, L), got {type(tokens).__name__}")
    if tokens.dim() != 2 or tokens.dtype != torch.long:
        raise ValueError(
            f"tokens must be a LongTensor of shape (B, L) (token ids), got shape {tuple(tokens.shape)} "
            f"{str(tokens.dtype).replace('torch.', '')}"
        )
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab_size):
        raise ValueError(
            f"tokens must be ids in [0, {vocab_size}) (vocab_size = {vocab_size}), "
            f"got values from {int(tokens.min())} to {int(tokens.max())}"
        )
    if max_len is not None and tokens.shape[1] > max_len:
        raise ValueError(
            f"tokens has L = {tokens.shape[1]} positions (shape {tuple(tokens.shape)}), more than "
            f"max_len = {max_len}; build the model with a larger max_len"
        )
    return tokens


class TokenEmbedding(nn.Module):
    """Token ids -> vectors with positional information: (B, L) long -> (B, L, d_model).

    positional:
      * ``"none"``: the token vector only. Self-attention on top of it is then
        permutation equivariant: it sees a bag of tokens, not a sequence.
      * ``"sinusoidal"``: plus the fixed encodings of Vaswani et al. (2017,
        sec. 3.5), ``course_lib.positional.SinusoidalPositionalEncoding``.
      * ``"learned"``: plus one trained vector per position (GPT-2, BERT, ViT),
        ``course_lib.positional.LearnedPositionalEmbedding``: max_len * d_model
        more parameters.

    ``self.position`` is the positional module (None for "none"), so its table
    can be inspected. Token vectors start small, N(0, 0.02^2) as in GPT-2, so
    that position information is not drowned out early in training.
    """

    def __init__(self, vocab_size: int, d_model: int, max_len: int = 512, positional: str = "learned"):
        super().__init__()
        self.vocab_size = _check_int("vocab_size", vocab_size)
        self.d_model = _check_int("d_model", d_model)
        self.max_len = _check_int("max_len", max_len)
        if positional not in POSITIONAL_KINDS:
            raise ValueError(f"positional must be one of {list(POSITIONAL_KINDS)}, got {positional!r}")
        if positional == "sinusoidal" and d_model % 2:
            raise ValueError(f"sinusoidal positions need an even d_model (sin/cos pairs), got {d_model}")
        self.positional = positional
        self.token = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.token.weight, std=0.02)
        self.position: nn.Module | None = None
        if positional == "sinusoidal":
            self.position = SinusoidalPositionalEncoding(d_model, max_len=max_len)
        elif positional == "learned":
            self.position = LearnedPositionalEmbedding(max_len, d_model)

    def forward(self, tokens: Tensor) -> Tensor:
        _check_tokens(tokens, self.vocab_size, self.max_len)
        x = self.token(tokens)  # (B, L, E)
        return x if self.position is None else self.position(x)  # (B, L, E)

    def extra_repr(self) -> str:
        return f"positional={self.positional!r}"


