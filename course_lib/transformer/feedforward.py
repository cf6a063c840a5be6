"""The position-wise feed-forward network (Vaswani et al. 2017, eq. 2), shared by every block."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .._validate import check_int as _check_int

__all__ = ["ACTIVATIONS", "FeedForward"]

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class FeedForward(nn.Module):
    """Position-wise feed-forward network max(0, x W1 + b1) W2 + b2 (Vaswani et al. 2017, eq. 2).

    x (..., d_model) -> (..., d_model); every position is transformed alone,
    with the same weights. This is where a model can compute non-linear
    functions of what attention gathered. ``activation="gelu"`` gives the
    GPT-2 / BERT variant. Dropout sits after the activation, where
    ``nn.TransformerEncoderLayer`` puts it (its ``linear1``, ``dropout``,
    ``linear2`` map onto ours by name).
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        self.linear1 = nn.Linear(_check_int("d_model", d_model), _check_int("d_ff", d_ff))
        self.linear2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(ACTIVATIONS[self.activation](self.linear1(x))))  # (..., d_model)

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"
