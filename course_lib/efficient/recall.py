"""One attention layer that reads key-value pairs and answers a query (associative recall, notebook 09).

Each pair is one token, x_i = E_key[key_i] + E_value[value_i]; the query is
x_q = E_key[query]. One attention layer with a single query,
q = W_q x_q, k_i = W_k x_i, v_i = W_v x_i (q, k of width ``feature_dim``,
v of width ``value_dim``), then a linear read-out to the value logits.

``attention="softmax"``: softmax(q . k_i / sqrt(d)) v_i, which can compare the
query with every stored key. ``attention="linear"``: linear attention
(Katharopoulos et al. 2020), which sees the pairs only through
sum_i phi(k_i) v_i^T, a feature_dim x value_dim matrix, and sum_i phi(k_i):
however many pairs there are, that is all it can remember.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .linear import linear_attention

__all__ = ["RecallModel", "recall_accuracy"]

Attend = Callable[[Tensor, Tensor, Tensor], Tensor]


class RecallModel(nn.Module):
    """keys, values (B, N) long, query (B,) long -> logits (B, num_values)."""

    def __init__(self, num_keys: int, num_values: int, d_model: int = 64, feature_dim: int = 16,
                 value_dim: int = 64, attention: str = "softmax"):
        super().__init__()
        if attention not in ("softmax", "linear"):
            raise ValueError(f"attention must be 'softmax' or 'linear', got {attention!r}")
        self.attention = attention
        self.key_embedding = nn.Embedding(num_keys, d_model)
        self.value_embedding = nn.Embedding(num_values, d_model)
        self.q_proj = nn.Linear(d_model, feature_dim)
        self.k_proj = nn.Linear(d_model, feature_dim)
        self.v_proj = nn.Linear(d_model, value_dim)
        self.out = nn.Linear(value_dim, num_values)

    def forward(self, keys: Tensor, values: Tensor, query: Tensor, attend: Attend | None = None) -> Tensor:
        """``attend(q (B, 1, D), k (B, N, D), v (B, N, Dv)) -> (B, 1, Dv)`` replaces the layer's own
        attention function (the solution notebook plugs a learner's function in here)."""
        x = self.key_embedding(keys) + self.value_embedding(values)  # (B, N, d_model): one token per pair
        q = self.q_proj(self.key_embedding(query))[:, None, :]  # (B, 1, D)
        k, v = self.k_proj(x), self.v_proj(x)  # (B, N, D), (B, N, Dv)
        if attend is None:
            attend = F.scaled_dot_product_attention if self.attention == "softmax" else linear_attention
        return self.out(attend(q, k, v)[:, 0])  # (B, num_values)


@torch.no_grad()
def recall_accuracy(model: RecallModel, task, n_pairs: int, samples: int = 1000,
                    generator: torch.Generator | None = None, attend: Attend | None = None) -> float:
    """Fraction of ``samples`` fresh sequences of ``n_pairs`` pairs whose query the model answers right."""
    device = next(model.parameters()).device
    batch = task.batch(samples, n_pairs, generator).to(device)
    was_training = model.training
    model.eval()
    predicted = model(batch.keys, batch.values, batch.query, attend=attend).argmax(-1)
    model.train(was_training)
    return float((predicted == batch.target).float().mean())
