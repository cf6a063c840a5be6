"""Name the token before and the token after every position (notebook 04)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch

from .._validate import check_int as _check_int
from ._checks import _check_generator
from .seq2seq import SEQUENCE_ALPHABET
from .vocab import Vocab

# The token before and the token after (notebook 04)


@dataclass(frozen=True)
class NeighboursBatch:
    """tokens (B, L) long: random symbol ids.
    before (B, L) long: the id at position i - 1, or pad_id at position 0.
    after (B, L) long: the id at position i + 1, or pad_id at position L - 1.
    `targets` stacks them: (B, L, 2), [..., 0] = before, [..., 1] = after.
    """

    tokens: torch.Tensor
    before: torch.Tensor
    after: torch.Tensor

    @property
    def targets(self) -> torch.Tensor:
        return torch.stack((self.before, self.after), dim=-1)  # (B, L, 2)

    def to(self, device: torch.device | str) -> NeighboursBatch:
        """A copy of the batch with every tensor on `device`."""
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})


class NeighboursTask:
    """For every position, name the symbol before it and the symbol after it.

    A task that needs two relations at once (notebook 04). Sources are
    `length` symbols drawn uniformly from the first `num_symbols` characters
    of 0-9, a-z, A-Z. Where there is no neighbour (before the first symbol,
    after the last) the answer is <pad>: the sequence is read as if padded on
    both sides. Targets use the ids of `vocab`, so there are len(vocab)
    classes (the symbols plus the three special tokens).
    """

    def __init__(self, num_symbols: int = 10, length: int = 12):
        self.num_symbols = _check_int("num_symbols", num_symbols, 1)
        if self.num_symbols > len(SEQUENCE_ALPHABET):
            raise ValueError(f"num_symbols must be <= {len(SEQUENCE_ALPHABET)}, got {self.num_symbols}")
        self.length = _check_int("length", length, 2)
        self.vocab = Vocab(SEQUENCE_ALPHABET[: self.num_symbols])

    def __repr__(self) -> str:
        return f"NeighboursTask(num_symbols={self.num_symbols}, length={self.length})"

    def targets_for(self, src_symbols: str | Sequence[str]) -> tuple[list[str], list[str]]:
        """(before, after) for one source, as symbols, with '<pad>' at the edges."""
        self.vocab.encode(src_symbols)  # validates the symbols
        symbols = list(src_symbols)
        edge = [Vocab.PAD]
        return edge + symbols[:-1], symbols[1:] + edge

    def encode(self, sources: Sequence[str | Sequence[str]]) -> NeighboursBatch:
        """Sources of equal length (any length >= 1) -> a NeighboursBatch."""
        if isinstance(sources, str) or not isinstance(sources, Sequence) or len(sources) == 0:
            raise ValueError("sources must be a non-empty list of equal-length sequences of symbols")
        lengths = {len(s) for s in sources}
        if len(lengths) != 1:
            raise ValueError(f"sources must all have the same length, got lengths {sorted(lengths)}")
        tokens, _ = self.vocab.encode_batch(sources)  # (B, L)
        return self._with_targets(tokens)

    def batch(self, batch_size: int, generator: torch.Generator | None = None) -> NeighboursBatch:
        """A random batch: tokens, before and after of shape (batch_size, length)."""
        batch_size = _check_int("batch_size", batch_size, 1)
        generator = _check_generator(generator)
        first = len(Vocab.SPECIALS)
        tokens = torch.randint(first, first + self.num_symbols, (batch_size, self.length), generator=generator)
        return self._with_targets(tokens)

    def _with_targets(self, tokens: torch.Tensor) -> NeighboursBatch:
        edge = torch.full_like(tokens[:, :1], self.vocab.pad_id)  # (B, 1)
        before = torch.cat([edge, tokens[:, :-1]], dim=1)  # (B, L)
        after = torch.cat([tokens[:, 1:], edge], dim=1)  # (B, L)
        return NeighboursBatch(tokens, before, after)

