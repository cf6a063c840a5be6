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

from __future__ import annotations

import datetime as _dt
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from functools import lru_cache

import numpy as np
import torch

__all__ = [
    "Vocab",
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
]


def _check_int(name: str, value, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return value


def _check_choice(name: str, value, choices: Sequence[str]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {list(choices)}, got {type(value).__name__} {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def _check_generator(generator) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)) or None, "
            f"got {type(generator).__name__}"
        )
    return generator


# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# Human-written dates -> ISO dates


@dataclass(frozen=True)
class DateLanguage:
    """Names and written formats of dates in one language.

    months, months_abbr: 12 names, January first; weekdays, weekdays_abbr: 7
    names, Monday first (as datetime.date.weekday()). formats: str.format
    templates over the fields of `format_date`.
    """

    code: str
    name: str
    months: tuple[str, ...]
    months_abbr: tuple[str, ...]
    weekdays: tuple[str, ...]
    weekdays_abbr: tuple[str, ...]
    formats: tuple[str, ...]

    def ordinal(self, day: int) -> str:
        """The day of the month as written in running text ("3rd", "1er", "3.")."""
        if self.code == "en":
            suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
            return f"{day}{suffix}"
        if self.code == "fr":
            return "1er" if day == 1 else str(day)
        if self.code == "de":
            return f"{day}."
        return str(day)


# Each language writes all-numeric dates in one way only, with its own
# separator, so that a source string never means two different dates:
# en month/day/year with "/", de day.month.year, es day-month-year, and fr
# day/month/year after "le " (a bare "03/04/2021" would clash with English).
# Two-digit years are unambiguous because the task's dates span 1950..2049.
LANGUAGES: Mapping[str, DateLanguage] = {
    "en": DateLanguage(
        code="en",
        name="English",
        months=("January", "February", "March", "April", "May", "June", "July",
                "August", "September", "October", "November", "December"),
        months_abbr=("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        weekdays=("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        weekdays_abbr=("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
        formats=(
            "{d} {Month} {yyyy}",
            "{Month} {d}, {yyyy}",
            "{Mon} {d} {yyyy}",
            "{mm}/{dd}/{yyyy}",
            "{m}/{d}/{yy}",
            "{Weekday}, {Month} {d}, {yyyy}",
            "{Wd}, {d} {Mon} {yyyy}",
            "{Month} {dth}, {yyyy}",
            "the {dth} of {Month} {yyyy}",
            "{MONTH} {d} {yyyy}",
            "{d} {mon} {yyyy}",
            "{yyyy}/{mm}/{dd}",
            "{dd}-{MON}-{yyyy}",
            "{weekday} {month} {dth} {yyyy}",
        ),
    ),
    "fr": DateLanguage(
        code="fr",
        name="French",
        months=("janvier", "février", "mars", "avril", "mai", "juin", "juillet",
                "août", "septembre", "octobre", "novembre", "décembre"),
        months_abbr=("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.",
                     "août", "sept.", "oct.", "nov.", "déc."),
        weekdays=("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
        weekdays_abbr=("lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim."),
        formats=(
            "{dth} {month} {yyyy}",
            "{weekday} {dth} {month} {yyyy}",
            "le {dth} {month} {yyyy}",
            "{Weekday} {dth} {month} {yyyy}",
            "le {dd}/{mm}/{yyyy}",
            "le {d}/{m}/{yy}",
            "{d} {mon} {yyyy}",
            "{wd} {d} {mon} {yyyy}",
            "{d} {MONTH} {yyyy}",
            "{Weekday} {d} {Month} {yyyy}",
            "le {weekday} {dth} {month} {yyyy}",
            "{dd} {mon} {yyyy}",
            "{WEEKDAY} {d} {MONTH} {yyyy}",
        ),
    ),
    "de": DateLanguage(
        code="de",
        name="German",
        months=("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli",
                "August", "September", "Oktober", "November", "Dezember"),
        months_abbr=("Jan.", "Feb.", "März", "Apr.", "Mai", "Juni", "Juli",
                     "Aug.", "Sept.", "Okt.", "Nov.", "Dez."),
        weekdays=("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
        weekdays_abbr=("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"),
        formats=(
            "{dth} {Month} {yyyy}",
            "{Weekday}, {dth} {Month} {yyyy}",
            "{dd}.{mm}.{yyyy}",
            "{d}.{m}.{yy}",
            "{d}.{m}.{yyyy}",
            "{dth} {Mon} {yyyy}",
            "{Wd}, {d}.{m}.{yyyy}",
            "am {dth} {Month} {yyyy}",
            "{dth} {MONTH} {yyyy}",
            "{dth} {month} {yyyy}",
            "{Weekday}, den {dth} {Month} {yyyy}",
            "{dd}. {Month} {yyyy}",
            "{WEEKDAY}, {dth} {MONTH} {yyyy}",
        ),
    ),
    "es": DateLanguage(
        code="es",
        name="Spanish",
        months=("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio",
                "agosto", "septiembre", "octubre", "noviembre", "diciembre"),
        months_abbr=("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic"),
        weekdays=("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
        weekdays_abbr=("lun", "mar", "mié", "jue", "vie", "sáb", "dom"),
        formats=(
            "{d} de {month} de {yyyy}",
            "{weekday}, {d} de {month} de {yyyy}",
            "{Weekday} {d} de {month} de {yyyy}",
            "{dd}-{mm}-{yyyy}",
            "{d}-{m}-{yy}",
            "{d} {mon} {yyyy}",
            "el {d} de {month} de {yyyy}",
            "{d} DE {MONTH} DE {yyyy}",
            "{d}/{mon}/{yyyy}",
            "{wd} {d} {mon} {yyyy}",
            "{d} de {Month} del {yyyy}",
            "el {weekday} {d} de {month} de {yyyy}",
            "{WEEKDAY} {d} DE {MONTH} DE {yyyy}",
        ),
    ),
}

DATE_MIN = _dt.date(1950, 1, 1)
DATE_MAX = _dt.date(2049, 12, 31)
DATE_SPLITS = ("train", "test")
TEST_FRACTION = 0.1

# Name fields come in three cases: {month} lower, {Month} capitalised, {MONTH} upper.
_NAME_FIELDS = {"month": "months", "mon": "months_abbr", "weekday": "weekdays", "wd": "weekdays_abbr"}
_CASES = {
    "lower": str.lower,
    "capital": lambda s: s[:1].upper() + s[1:],
    "upper": str.upper,
}


def _case_variants(base: str) -> dict[str, str]:
    return {base: "lower", base.capitalize(): "capital", base.upper(): "upper"}


_NAME_FIELD_CASES = {
    variant: (table, case) for base, table in _NAME_FIELDS.items() for variant, case in _case_variants(base).items()
}


def _language(language: str) -> DateLanguage:
    return LANGUAGES[_check_choice("language", language, tuple(LANGUAGES))]


def date_formats(language: str) -> tuple[str, ...]:
    """The format templates of one language, indexed by `fmt_index`.

    Fields: {d} day, {dd} two-digit day, {m}/{mm} month number, {yyyy}/{yy}
    year, {dth} day as in running text ("3rd", "1er", "3."), and month and
    weekday names full ({month}, {weekday}) or abbreviated ({mon}, {wd}) in
    lower case, Capitalised ({Month}) or UPPER case ({MONTH}).
    """
    return _language(language).formats


@lru_cache(maxsize=None)
def _name_tables(lang: DateLanguage) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """Every name field of a language in every case, month fields then weekday
    fields, e.g. ({"MONTH": ("JANUARY", ...), ...}, {"wd": ("mon", ...), ...})."""
    tables = {
        name: tuple(_CASES[case](s) for s in getattr(lang, table)) for name, (table, case) in _NAME_FIELD_CASES.items()
    }
    months = {name: names for name, names in tables.items() if len(names) == 12}
    weekdays = {name: names for name, names in tables.items() if len(names) == 7}
    return months, weekdays


def _date_fields(date: _dt.date, lang: DateLanguage) -> dict[str, str]:
    values = {
        "d": str(date.day),
        "dd": f"{date.day:02d}",
        "m": str(date.month),
        "mm": f"{date.month:02d}",
        "yyyy": f"{date.year:04d}",
        "yy": f"{date.year % 100:02d}",
        "dth": lang.ordinal(date.day),
    }
    month_tables, weekday_tables = _name_tables(lang)
    month, weekday = date.month - 1, date.weekday()
    values.update({name: names[month] for name, names in month_tables.items()})
    values.update({name: names[weekday] for name, names in weekday_tables.items()})
    return values


def format_date(date: _dt.date, language: str, fmt_index: int) -> str:
    """Write `date` in `language` with format number `fmt_index` of
    `date_formats(language)`. The weekday is computed from the date."""
    if not isinstance(date, _dt.date):
        raise TypeError(f"date must be a datetime.date, got {type(date).__name__} {date!r}")
    lang = _language(language)
    fmt_index = _check_int("fmt_index", fmt_index, 0)
    if fmt_index >= len(lang.formats):
        raise ValueError(
            f"fmt_index must be < {len(lang.formats)} (the number of {language!r} formats), got {fmt_index}"
        )
    return lang.formats[fmt_index].format(**_date_fields(date, lang))


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a fixed, well-spread hash of uint64 values
    (unlike Python's hash, it does not change between runs)."""
    x = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _is_test_ordinal(ordinals: np.ndarray) -> np.ndarray:
    return _mix64(ordinals) % np.uint64(1000) < np.uint64(round(TEST_FRACTION * 1000))


def date_split(date: _dt.date) -> str:
    """"train" or "test": the split a calendar day belongs to, for ever
    (about 10% of days are "test", chosen by a fixed hash of the date)."""
    if not isinstance(date, _dt.date):
        raise TypeError(f"date must be a datetime.date, got {type(date).__name__} {date!r}")
    return "test" if bool(_is_test_ordinal(np.array([date.toordinal()]))[0]) else "train"


@lru_cache(maxsize=None)
def _split_ordinals(split: str) -> np.ndarray:
    ordinals = np.arange(DATE_MIN.toordinal(), DATE_MAX.toordinal() + 1, dtype=np.int64)
    test = _is_test_ordinal(ordinals)
    chosen = ordinals[test] if split == "test" else ordinals[~test]
    chosen.setflags(write=False)
    return chosen


def _max_field_length(name: str, lang: DateLanguage) -> int:
    fixed = {"d": 2, "dd": 2, "m": 2, "mm": 2, "yyyy": 4, "yy": 2}
    if name in fixed:
        return fixed[name]
    if name == "dth":
        return max(len(lang.ordinal(day)) for day in range(1, 32))
    table, _ = _NAME_FIELD_CASES[name]
    return max(len(s) for s in getattr(lang, table))


def _template_parts(template: str) -> list[tuple[str, str | None]]:
    return [(literal, name) for literal, name, _, _ in string.Formatter().parse(template)]


class DatesTask:
    """Translate human-written dates to ISO dates, e.g.
    "Mittwoch, 3. März 2021" -> "2021-03-03".

    Dates are uniform over DATE_MIN..DATE_MAX (1950-01-01..2049-12-31) within
    a split, languages uniform over `languages`, formats uniform within a
    language. The "train" and "test" splits never share a calendar day
    (see `date_split`); the split does not depend on `seed`, which only
    drives `pairs`.
    """

    def __init__(self, languages: Sequence[str] = ("en", "fr", "de", "es"), seed: int = 0):
        if isinstance(languages, str):
            languages = (languages,)
        if not isinstance(languages, Sequence) or len(languages) == 0:
            raise ValueError(
                f"languages must be a non-empty sequence of codes from {list(LANGUAGES)}, got {languages!r}"
            )
        codes = tuple(LANGUAGES)
        self.languages: tuple[str, ...] = tuple(_check_choice("languages", code, codes) for code in languages)
        if len(set(self.languages)) != len(self.languages):
            raise ValueError(f"languages must not repeat a language, got {self.languages}")
        self.seed = _check_int("seed", seed, 0)
        langs = [LANGUAGES[code] for code in self.languages]
        self.src_vocab = Vocab.from_texts(self._possible_texts(langs))
        self.tgt_vocab = Vocab(string.digits + "-")
        self.max_src_len: int = self._longest_source(langs)
        self.max_tgt_len: int = 10  # YYYY-MM-DD

    def __repr__(self) -> str:
        return f"DatesTask(languages={self.languages}, seed={self.seed})"

    @staticmethod
    def _possible_texts(langs: list[DateLanguage]) -> list[str]:
        texts = [string.digits]
        for lang in langs:
            texts += [literal for template in lang.formats for literal, _ in _template_parts(template)]
            texts += [lang.ordinal(day) for day in range(1, 32)]
            names = lang.months + lang.months_abbr + lang.weekdays + lang.weekdays_abbr
            texts += [case(name) for name in names for case in _CASES.values()]
        return texts

    @staticmethod
    def _longest_source(langs: list[DateLanguage]) -> int:
        """Longest string any format can write: every field at its longest
        (attained: each month meets each weekday on a two-digit day)."""
        longest = 0
        for lang in langs:
            for template in lang.formats:
                parts = _template_parts(template)
                length = sum(len(literal) + (_max_field_length(name, lang) if name else 0) for literal, name in parts)
                longest = max(longest, length)
        return longest

    def dates(self, split: str) -> list[_dt.date]:
        """Every calendar day of a split, in order."""
        split = _check_choice("split", split, DATE_SPLITS)
        return [_dt.date.fromordinal(int(o)) for o in _split_ordinals(split)]

    def _examples(self, split: str, uniforms: np.ndarray) -> list[tuple[str, str, str]]:
        """(n, 3) uniforms in [0, 1) -> n (human, iso, language) triples."""
        ordinals = _split_ordinals(split)
        day_index = np.minimum((uniforms[:, 0] * len(ordinals)).astype(np.int64), len(ordinals) - 1)
        lang_index = np.minimum((uniforms[:, 1] * len(self.languages)).astype(np.int64), len(self.languages) - 1)
        examples = []
        for day, lang_i, u in zip(ordinals[day_index].tolist(), lang_index.tolist(), uniforms[:, 2].tolist()):
            date = _dt.date.fromordinal(day)
            code = self.languages[lang_i]
            lang = LANGUAGES[code]
            fmt = lang.formats[min(int(u * len(lang.formats)), len(lang.formats) - 1)]
            examples.append((fmt.format(**_date_fields(date, lang)), date.isoformat(), code))
        return examples

    def pairs(self, split: str, n: int) -> list[tuple[str, str, str]]:
        """n examples (human, iso, language) of a split, fixed by (seed, split);
        the first k of pairs(split, n) are pairs(split, k)."""
        split = _check_choice("split", split, DATE_SPLITS)
        n = _check_int("n", n, 0)
        rng = np.random.default_rng([self.seed, DATE_SPLITS.index(split)])
        return self._examples(split, rng.random((n, 3)))

    def encode_pairs(self, pairs: Sequence[tuple[str, str, str]]) -> Seq2SeqBatch:
        """(human, iso, language) triples (e.g. from `pairs`) -> a Seq2SeqBatch."""
        if len(pairs) == 0:
            raise ValueError("pairs must hold at least one (human, iso, language) triple, got none")
        return make_seq2seq_batch([p[0] for p in pairs], [p[1] for p in pairs], self.src_vocab, self.tgt_vocab)

    def batch(self, split: str, batch_size: int, generator: torch.Generator | None = None) -> Seq2SeqBatch:
        """A random batch of a split: src (B, S <= max_src_len), tgt_in/tgt_out (B, 11)."""
        split = _check_choice("split", split, DATE_SPLITS)
        batch_size = _check_int("batch_size", batch_size, 1)
        generator = _check_generator(generator)
        uniforms = torch.rand((batch_size, 3), generator=generator, dtype=torch.float64).numpy()
        return self.encode_pairs(self._examples(split, uniforms))


# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# Handwritten digits


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn, no download

    images, labels = load_digits(return_X_y=True)
    return images, labels


@dataclass(frozen=True, repr=False)
class DigitsData:
    """scikit-learn's 8x8 handwritten digits, split once.

    x_train (N, 1, 8, 8) float32 in [0, 1], y_train (N,) long in 0..9;
    x_test, y_test likewise.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    num_classes = 10
    image_shape = (1, 8, 8)

    def __repr__(self) -> str:
        return f"DigitsData(train={len(self.y_train)}, test={len(self.y_test)}, image_shape={self.image_shape})"

    def to(self, device: torch.device | str) -> DigitsData:
        """A copy with every tensor on `device`."""
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def subset(self, n_per_class: int | None = None, fraction: float | None = None, seed: int = 0) -> DigitsData:
        """A smaller training set with the same test set, for accuracy versus
        training-set size. Give either n_per_class (images of each digit) or
        fraction (of each digit's images, at least one). For a fixed seed,
        smaller subsets are contained in larger ones.
        """
        if (n_per_class is None) == (fraction is None):
            raise ValueError(
                f"give exactly one of n_per_class and fraction, got n_per_class={n_per_class!r}, fraction={fraction!r}"
            )
        seed = _check_int("seed", seed, 0)
        counts = torch.bincount(self.y_train, minlength=self.num_classes)
        if n_per_class is not None:
            n_per_class = _check_int("n_per_class", n_per_class, 1)
            if n_per_class > int(counts.min()):
                raise ValueError(
                    f"n_per_class must be <= {int(counts.min())} (the rarest digit's training count), got {n_per_class}"
                )
            wanted = [n_per_class] * self.num_classes
        else:
            if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
                raise TypeError(f"fraction must be a float, got {type(fraction).__name__} {fraction!r}")
            if not 0.0 < fraction <= 1.0:
                raise ValueError(f"fraction must be in (0, 1], got {fraction}")
            wanted = [max(1, int(round(fraction * int(c)))) for c in counts]
        rng = np.random.default_rng(seed)
        labels = self.y_train.cpu().numpy()
        chosen = [rng.permutation(np.flatnonzero(labels == k))[:want] for k, want in enumerate(wanted)]
        index = torch.from_numpy(np.sort(np.concatenate(chosen))).to(self.y_train.device)
        return replace(self, x_train=self.x_train[index], y_train=self.y_train[index])


def load_digits_tensors(test_fraction: float = 0.25, seed: int = 0) -> DigitsData:
    """The 1,797 digits as tensors with a fixed stratified train/test split
    (sklearn's train_test_split with stratify and random_state=seed).
    Pixels (0..16 in the data set) are scaled to [0, 1]."""
    from sklearn.model_selection import train_test_split

    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)):
        raise TypeError(f"test_fraction must be a float, got {type(test_fraction).__name__} {test_fraction!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    seed = _check_int("seed", seed, 0)
    images, labels = _digits_arrays()
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, stratify=labels, random_state=seed
    )

    def as_images(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x / 16.0).float().reshape(-1, 1, 8, 8)  # (N, 1, 8, 8)

    def as_labels(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(y).long()

    return DigitsData(as_images(x_train), as_labels(y_train), as_images(x_test), as_labels(y_test))


# ---------------------------------------------------------------------------
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


__all__ += ["NeighboursBatch", "NeighboursTask"]
