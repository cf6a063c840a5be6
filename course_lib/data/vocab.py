"""`Vocab`: symbols <-> integer ids, with <pad> = 0, <sos> = 1, <eos> = 2."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

# Vocabulary


class Vocab:
    """A fixed mapping between symbols (characters or strings) and ids.

    The three special tokens come first: `<pad>` = 0, `<sos>` = 1, `<eos>` = 2;
    then the given symbols in their order of first appearance (duplicates are
    dropped). `symbols` lists the non-special symbols, `itos` all of them by
    id, `stoi` maps each to its id.
    """

    PAD, SOS, EOS = "<pad>", "<sos>", "<eos>"
    SPECIALS = (PAD, SOS, EOS)

    def __init__(self, symbols: Iterable[str]):
        if not isinstance(symbols, Iterable):
            raise TypeError(f"symbols must be an iterable of str, got {type(symbols).__name__}")
        unique: list[str] = []
        seen: set[str] = set()
        for position, symbol in enumerate(symbols):
            if not isinstance(symbol, str) or symbol == "":
                raise TypeError(
                    f"symbols must be non-empty str, got {type(symbol).__name__} {symbol!r} at position {position}"
                )
            if symbol in self.SPECIALS:
                raise ValueError(f"symbols must not contain the special token {symbol!r}: it is added automatically")
            if symbol not in seen:
                seen.add(symbol)
                unique.append(symbol)
        self.symbols: list[str] = unique
        self.itos: list[str] = [*self.SPECIALS, *unique]
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}
        self.pad_id, self.sos_id, self.eos_id = 0, 1, 2
        # Character vocabularies decode to str; others to lists of symbols.
        self.char_level: bool = all(len(s) == 1 for s in unique)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Vocab:
        """Character vocabulary of some texts: the sorted set of their characters."""
        if isinstance(texts, str):
            texts = [texts]
        chars: set[str] = set()
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts must be an iterable of str, got {type(text).__name__} at index {i}")
            chars.update(text)
        return cls(sorted(chars))

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def __hash__(self) -> int:
        return hash(tuple(self.itos))

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, symbols={self._alphabet_preview()})"

    def _alphabet_preview(self, limit: int = 40) -> str:
        if self.char_level:
            shown = "".join(self.symbols[:limit])
            more = len(self.symbols) - limit
            return repr(shown) + (f" ... (+{more} more)" if more > 0 else "")
        shown = ", ".join(repr(s) for s in self.symbols[: limit // 4])
        more = len(self.symbols) - limit // 4
        return "[" + shown + (f", ... (+{more} more)" if more > 0 else "") + "]"

    def encode(self, seq: str | Sequence[str], add_sos: bool = False, add_eos: bool = False) -> list[int]:
        """Symbols -> ids. A str is read character by character.

        Raises ValueError naming each unknown symbol and its position.
        """
        if not isinstance(seq, (str, Sequence)):
            raise TypeError(f"seq must be a str or a sequence of symbols, got {type(seq).__name__}")
        stoi = self.stoi
        try:
            ids = [stoi[s] for s in seq]
        except (KeyError, TypeError):
            unknown = [(i, s) for i, s in enumerate(seq) if not isinstance(s, str) or s not in stoi]
            listed = ", ".join(f"{s!r} at position {i}" for i, s in unknown[:5])
            if len(unknown) > 5:
                listed += f", ... ({len(unknown)} unknown in all)"
            raise ValueError(
                f"seq contains symbol(s) not in the vocabulary: {listed}; expected symbols from "
                f"{self._alphabet_preview()} ({len(self.symbols)} symbols plus <pad>, <sos>, <eos>)"
            ) from None
        if add_sos:
            ids.insert(0, self.sos_id)
        if add_eos:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids, strip_special: bool = True, join: bool = True) -> str | list[str]:
        """Ids (list, 1-D tensor or array) -> a str (character vocabularies with
        join=True) or a list of symbols.

        With strip_special, decoding stops at the first <eos> and drops <pad> and
        <sos>; otherwise every id is shown, special tokens included.
        """
        if isinstance(ids, (torch.Tensor, np.ndarray)):
            if ids.ndim != 1:
                raise ValueError(
                    f"ids must be 1-D, got shape {tuple(ids.shape)}; use decode_batch for a (B, T) tensor"
                )
            ids = ids.tolist()
        elif not isinstance(ids, Sequence) or isinstance(ids, str):
            raise TypeError(f"ids must be a list of int or a 1-D tensor, got {type(ids).__name__}")
        tokens: list[str] = []
        n = len(self.itos)
        for position, i in enumerate(ids):
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
                raise TypeError(f"ids must hold ints, got {type(i).__name__} {i!r} at position {position}")
            if not 0 <= i < n:
                raise ValueError(f"ids[{position}] = {i} is out of range; expected 0 <= id < {n} (len(vocab))")
            if strip_special:
                if i == self.eos_id:
                    break
                if i in (self.pad_id, self.sos_id):
                    continue
            tokens.append(self.itos[i])
        return "".join(tokens) if join and self.char_level else tokens

    def encode_batch(
        self, seqs: Sequence[str | Sequence[str]], add_sos: bool = False, add_eos: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Several sequences -> (ids (B, T) long, right-padded with pad_id; lengths (B,) long).

        T is the longest encoded length (counting <sos>/<eos> when added).
        """
        if isinstance(seqs, str) or not isinstance(seqs, Sequence):
            raise TypeError(f"seqs must be a list of sequences, got {type(seqs).__name__}")
        encoded = [self.encode(s, add_sos=add_sos, add_eos=add_eos) for s in seqs]
        lengths = [len(e) for e in encoded]
        width = max(lengths, default=0)
        padded = [e + [self.pad_id] * (width - len(e)) for e in encoded]
        ids = torch.tensor(padded, dtype=torch.long).reshape(len(seqs), width)  # (B, T)
        return ids, torch.tensor(lengths, dtype=torch.long)

    def decode_batch(self, ids: torch.Tensor, strip_special: bool = True, join: bool = True) -> list:
        """(B, T) ids -> one decoded row per element (see `decode`)."""
        if not isinstance(ids, (torch.Tensor, np.ndarray)) or ids.ndim != 2:
            got = tuple(ids.shape) if hasattr(ids, "shape") else type(ids).__name__
            raise ValueError(f"ids must be a 2-D (B, T) tensor, got {got}")
        return [self.decode(row, strip_special=strip_special, join=join) for row in ids.tolist()]


