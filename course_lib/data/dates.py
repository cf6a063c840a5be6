"""Human-written dates in English, French, German and Spanish -> ISO dates (notebooks 02, 06)."""

from __future__ import annotations

import datetime as _dt
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from .._validate import check_int as _check_int
from ._checks import _check_choice, _check_generator
from .seq2seq import Seq2SeqBatch, make_seq2seq_batch
from .vocab import Vocab

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


