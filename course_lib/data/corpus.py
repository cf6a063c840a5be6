"""The Python documentation that ships with CPython, as a character corpus (notebook 07)."""

from __future__ import annotations

import numpy as np
import torch

from .._validate import check_int as _check_int
from ._checks import _check_choice, _check_generator
from .vocab import Vocab

# The Python documentation as a character corpus


def pydoc_text() -> str:
    """The text of CPython's bundled documentation topics (`pydoc_data.topics`),
    topics in sorted order, separated by a blank line. No download."""
    try:
        from pydoc_data.topics import topics
    except ImportError as error:
        raise ImportError(
            "pydoc_data.topics is not available in this Python installation; it ships with CPython "
            "(some minimal distributions remove it). Pass your own text: CharCorpus(text=...)"
        ) from error
    return "\n\n".join(topics[key].strip("\n") for key in sorted(topics))


class CharCorpus:
    """A text as character ids, split into a training and a validation part.

    The split is contiguous: the last `val_fraction` of the text is validation.
    `train` and `val` are 1-D LongTensors of ids of `vocab` (Vocab.from_texts).
    text defaults to `pydoc_text()`.
    """

    SPLITS = ("train", "val")

    def __init__(self, text: str | None = None, val_fraction: float = 0.1):
        text = pydoc_text() if text is None else text
        if not isinstance(text, str):
            raise TypeError(f"text must be a str or None, got {type(text).__name__}")
        if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)):
            raise TypeError(f"val_fraction must be a float, got {type(val_fraction).__name__} {val_fraction!r}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        n_val = int(round(len(text) * val_fraction))
        if n_val < 2 or len(text) - n_val < 2:
            raise ValueError(
                f"text is too short ({len(text)} characters) for val_fraction={val_fraction}: "
                "each split needs at least 2 characters"
            )
        self.text = text
        self.val_fraction = float(val_fraction)
        self.vocab = Vocab.from_texts(text)
        data = torch.from_numpy(self._encode_fast(text))  # (N,)
        self.train = data[: len(text) - n_val]
        self.val = data[len(text) - n_val :]

    def _encode_fast(self, text: str) -> np.ndarray:
        # Vectorised Vocab.encode: map code points to ids with a sorted lookup.
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        symbol_codes = np.array([ord(s) for s in self.vocab.symbols], dtype=np.uint32)
        order = np.argsort(symbol_codes)
        position = np.searchsorted(symbol_codes, codes, sorter=order)
        return (order[position] + len(Vocab.SPECIALS)).astype(np.int64)

    def __repr__(self) -> str:
        return (
            f"CharCorpus({len(self.text):,} characters, vocab {len(self.vocab)}, "
            f"train {len(self.train):,}, val {len(self.val):,})"
        )

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> torch.Tensor:
        """str -> (L,) long ids."""
        return torch.tensor(self.vocab.encode(text), dtype=torch.long)

    def decode(self, ids) -> str:
        """(L,) ids -> str."""
        return self.vocab.decode(ids)

    def get_batch(
        self, split: str, batch_size: int, block_size: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows of the split: x (B, block_size), y (B, block_size) with
        y[:, t] = the character after x[:, t]."""
        split = _check_choice("split", split, self.SPLITS)
        batch_size = _check_int("batch_size", batch_size, 1)
        block_size = _check_int("block_size", block_size, 1)
        generator = _check_generator(generator)
        data = self.train if split == "train" else self.val
        if len(data) <= block_size:
            raise ValueError(
                f"block_size must be < the length of the {split!r} split ({len(data)} characters), got {block_size}"
            )
        starts = torch.randint(0, len(data) - block_size, (batch_size,), generator=generator)  # (B,)
        windows = data[starts.unsqueeze(1) + torch.arange(block_size + 1)]  # (B, block_size + 1)
        return windows[:, :-1], windows[:, 1:]


