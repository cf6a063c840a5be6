"""Encoder-decoder batches and the copy / reverse / sort tasks (notebooks 01, 02, 05)."""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch

from .._validate import check_int as _check_int
from ._checks import _check_choice, _check_generator
from .vocab import Vocab

# A padded encoder-decoder batch


@dataclass(frozen=True)
class Seq2SeqBatch:
    """A batch for an encoder-decoder, right-padded with the pad id.

    src (B, S) long, src_lengths (B,): the source symbols, no <sos>/<eos>.
    tgt_in (B, T) long: <sos> + target, what the decoder reads (teacher forcing).
    tgt_out (B, T) long: target + <eos>, what it must predict at each step.
    tgt_lengths (B,): real length of tgt_out (target length + 1 for <eos>),
    which is also the real length of tgt_in.
    """

    src: torch.Tensor
    src_lengths: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    tgt_lengths: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.src.shape[0]

    def to(self, device: torch.device | str) -> Seq2SeqBatch:
        """A copy of the batch with every tensor on `device`."""
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def _shift_targets(tgt: torch.Tensor, tgt_lengths: torch.Tensor, sos_id: int, eos_id: int, pad_id: int):
    """(B, T) right-padded targets -> (tgt_in, tgt_out), both (B, T + 1)."""
    batch = tgt.shape[0]
    sos = torch.full((batch, 1), sos_id, dtype=torch.long)
    pad = torch.full((batch, 1), pad_id, dtype=torch.long)
    tgt_in = torch.cat([sos, tgt], dim=1)  # (B, T + 1)
    tgt_out = torch.cat([tgt, pad], dim=1)  # (B, T + 1)
    tgt_out.scatter_(1, tgt_lengths.unsqueeze(1), eos_id)  # eos right after each row's last symbol
    return tgt_in, tgt_out


def make_seq2seq_batch(
    sources: Sequence[str | Sequence[str]],
    targets: Sequence[str | Sequence[str]],
    src_vocab: Vocab,
    tgt_vocab: Vocab | None = None,
) -> Seq2SeqBatch:
    """Encode matching lists of source and target sequences into a Seq2SeqBatch.

    tgt_vocab defaults to src_vocab (for tasks such as reversal).
    """
    tgt_vocab = src_vocab if tgt_vocab is None else tgt_vocab
    if len(sources) != len(targets):
        raise ValueError(f"sources and targets must have the same length, got {len(sources)} and {len(targets)}")
    src, src_lengths = src_vocab.encode_batch(sources)
    tgt, tgt_lengths = tgt_vocab.encode_batch(targets)
    tgt_in, tgt_out = _shift_targets(tgt, tgt_lengths, tgt_vocab.sos_id, tgt_vocab.eos_id, tgt_vocab.pad_id)
    return Seq2SeqBatch(src, src_lengths, tgt_in, tgt_out, tgt_lengths + 1)


# ---------------------------------------------------------------------------
# Copy, reverse, sort


SEQUENCE_ALPHABET = string.digits + string.ascii_lowercase + string.ascii_uppercase


class SequenceTask:
    """Random strings and a simple transformation of them.

    kind: "reverse" (target = source backwards), "copy" (target = source) or
    "sort" (target = source sorted in vocabulary order).
    Symbols are the first `num_symbols` characters of 0-9, a-z, A-Z (at most 62);
    a batch's lengths are uniform over [min_len, max_len], its symbols uniform.
    """

    KINDS = ("reverse", "copy", "sort")

    def __init__(self, kind: str = "reverse", num_symbols: int = 10, min_len: int = 4, max_len: int = 28):
        self.kind = _check_choice("kind", kind, self.KINDS)
        self.num_symbols = _check_int("num_symbols", num_symbols, 1)
        if self.num_symbols > len(SEQUENCE_ALPHABET):
            raise ValueError(f"num_symbols must be <= {len(SEQUENCE_ALPHABET)}, got {self.num_symbols}")
        self.min_len = _check_int("min_len", min_len, 1)
        self.max_len = _check_int("max_len", max_len, 1)
        if self.min_len > self.max_len:
            raise ValueError(f"min_len must be <= max_len, got min_len={self.min_len}, max_len={self.max_len}")
        self.vocab = Vocab(SEQUENCE_ALPHABET[: self.num_symbols])

    def __repr__(self) -> str:
        return (
            f"SequenceTask(kind={self.kind!r}, num_symbols={self.num_symbols}, "
            f"min_len={self.min_len}, max_len={self.max_len})"
        )

    def target_for(self, src_symbols: str | Sequence[str]) -> str | list[str]:
        """The correct output for one source (a str gives a str, a list a list)."""
        self.vocab.encode(src_symbols)  # validates the symbols
        symbols = list(src_symbols)
        if self.kind == "reverse":
            symbols = symbols[::-1]
        elif self.kind == "sort":
            symbols = sorted(symbols, key=self.vocab.stoi.__getitem__)
        return "".join(symbols) if isinstance(src_symbols, str) else symbols

    def batch(self, batch_size: int, generator: torch.Generator | None = None) -> Seq2SeqBatch:
        """A random batch; each row's length is uniform over [min_len, max_len].

        S = the longest row of this batch; T = S + 1.
        """
        batch_size = _check_int("batch_size", batch_size, 1)
        generator = _check_generator(generator)
        lengths = torch.randint(self.min_len, self.max_len + 1, (batch_size,), generator=generator)
        return self._batch_with_lengths(lengths, generator)

    def fixed_length_batch(
        self, batch_size: int, length: int, generator: torch.Generator | None = None
    ) -> Seq2SeqBatch:
        """A random batch where every source has exactly `length` symbols
        (for accuracy per length bucket; `length` may lie outside [min_len, max_len])."""
        batch_size = _check_int("batch_size", batch_size, 1)
        length = _check_int("length", length, 1)
        generator = _check_generator(generator)
        lengths = torch.full((batch_size,), length, dtype=torch.long)
        return self._batch_with_lengths(lengths, generator)

    def _batch_with_lengths(self, lengths: torch.Tensor, generator) -> Seq2SeqBatch:
        vocab = self.vocab
        batch, width = lengths.shape[0], int(lengths.max())
        first = len(Vocab.SPECIALS)  # ids of real symbols start after the special tokens
        symbols = torch.randint(first, first + self.num_symbols, (batch, width), generator=generator)  # (B, S)
        positions = torch.arange(width)
        valid = positions < lengths.unsqueeze(1)  # (B, S)
        src = symbols.masked_fill(~valid, vocab.pad_id)
        if self.kind == "copy":
            tgt = src.clone()
        elif self.kind == "reverse":
            mirrored = (lengths.unsqueeze(1) - 1 - positions).clamp(min=0)  # (B, S)
            tgt = src.gather(1, mirrored).masked_fill(~valid, vocab.pad_id)
        else:  # sort: push the padding past every symbol, sort, pad again
            big = first + self.num_symbols
            tgt = src.masked_fill(~valid, big).sort(dim=1).values.masked_fill(~valid, vocab.pad_id)
        tgt_in, tgt_out = _shift_targets(tgt, lengths, vocab.sos_id, vocab.eos_id, vocab.pad_id)
        return Seq2SeqBatch(src, lengths, tgt_in, tgt_out, lengths + 1)


