"""Task generators and offline corpora: everything the notebooks train on.

Nothing here downloads or writes a file. Every random draw goes through a
`torch.Generator` (or a seed), so the same seed gives the same tensors.

In the order the course meets them:

- `Vocab`: symbols <-> integer ids, with <pad> = 0, <sos> = 1, <eos> = 2.
- `Seq2SeqBatch`: one padded batch of (source, target) pairs for an
  encoder-decoder, with the decoder's input and output already shifted.
- `SequenceTask`: copy / reverse / sort random strings (notebooks 01, 02, 05).
- `DatesTask`: human-written dates in English, French, German and Spanish
  -> ISO dates (notebooks 02, 06). `date_formats` and `format_date` show the
  formats; a date belongs to "train" or "test" for ever (`date_split`).
- `CharCorpus` over `pydoc_text()`: the Python documentation that ships with
  CPython, as characters for a language model (notebook 07).
- `load_digits_tensors`: scikit-learn's 8x8 handwritten digits as tensors
  (notebook 08).

Shapes: B batch, S source length, T target length (incl. <sos> or <eos>).
"""

from .corpus import CharCorpus, pydoc_text
from .dates import (
    DATE_MAX,
    DATE_MIN,
    LANGUAGES,
    DateLanguage,
    DatesTask,
    date_formats,
    date_split,
    format_date,
)
from .digits import DigitsData, load_digits_tensors
from .neighbours import NeighboursBatch, NeighboursTask
from .seq2seq import SEQUENCE_ALPHABET, Seq2SeqBatch, SequenceTask, make_seq2seq_batch
from .vocab import Vocab

__all__ = [
    "Vocab",
    "SEQUENCE_ALPHABET",
    "Seq2SeqBatch",
    "make_seq2seq_batch",
    "SequenceTask",
    "DateLanguage",
    "LANGUAGES",
    "DATE_MIN",
    "DATE_MAX",
    "date_formats",
    "format_date",
    "date_split",
    "DatesTask",
    "pydoc_text",
    "CharCorpus",
    "DigitsData",
    "load_digits_tensors",
    "NeighboursBatch",
    "NeighboursTask",
]

