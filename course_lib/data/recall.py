"""Associative recall: read key-value pairs, then answer which value a query key was paired with (notebook 09).

A sequence holds ``n_pairs`` pairs (key_i, value_i): the keys are distinct ids
drawn from ``num_keys``, the values ids drawn (with repeats) from ``num_values``.
The query is one of the keys, chosen uniformly; the target is its value.
Chance is 1 / num_values. The task measures how much a layer can store and
retrieve: softmax attention compares the query with every stored key, linear
attention must answer from a fixed-size summary of all the pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from .._validate import check_int as _check_int
from ._checks import _check_generator

__all__ = ["RecallBatch", "RecallTask"]


@dataclass(frozen=True)
class RecallBatch:
    """keys (B, N) long, distinct within a row; values (B, N) long; query (B,) long, one of the row's keys;
    target (B,) long, the value paired with the query."""

    keys: torch.Tensor
    values: torch.Tensor
    query: torch.Tensor
    target: torch.Tensor

    def to(self, device: torch.device | str) -> RecallBatch:
        """A copy of the batch with every tensor on `device`."""
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})


class RecallTask:
    """Random associative-recall batches over ``num_keys`` keys and ``num_values`` values."""

    def __init__(self, num_keys: int = 64, num_values: int = 64):
        self.num_keys = _check_int("num_keys", num_keys, 1)
        self.num_values = _check_int("num_values", num_values, 2)

    def __repr__(self) -> str:
        return f"RecallTask(num_keys={self.num_keys}, num_values={self.num_values})"

    def batch(self, batch_size: int, n_pairs: int, generator: torch.Generator | None = None) -> RecallBatch:
        """``batch_size`` sequences of ``n_pairs`` pairs each (1 <= n_pairs <= num_keys)."""
        batch_size = _check_int("batch_size", batch_size, 1)
        n_pairs = _check_int("n_pairs", n_pairs, 1)
        if n_pairs > self.num_keys:
            raise ValueError(f"n_pairs must be <= num_keys = {self.num_keys} (keys are distinct), got {n_pairs}")
        generator = _check_generator(generator)
        keys = torch.argsort(torch.rand(batch_size, self.num_keys, generator=generator), dim=-1)[:, :n_pairs]  # (B, N)
        values = torch.randint(0, self.num_values, (batch_size, n_pairs), generator=generator)  # (B, N)
        pick = torch.randint(0, n_pairs, (batch_size,), generator=generator)  # (B,)
        rows = torch.arange(batch_size)
        return RecallBatch(keys, values, keys[rows, pick], values[rows, pick])
