"""Tests of course_lib.data: vocabularies, task generators, corpora."""

from __future__ import annotations

import datetime as dt
import random
import re
import string
import sys
from collections import Counter

import numpy as np
import pytest
import torch

from course_lib.data import (
    DATE_MAX,
    DATE_MIN,
    LANGUAGES,
    CharCorpus,
    DatesTask,
    Seq2SeqBatch,
    SequenceTask,
    Vocab,
    date_formats,
    date_split,
    format_date,
    load_digits_tensors,
    make_seq2seq_batch,
    pydoc_text,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_batches_equal(a: Seq2SeqBatch, b: Seq2SeqBatch) -> None:
    for name in ("src", "src_lengths", "tgt_in", "tgt_out", "tgt_lengths"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def check_shifted_targets(batch: Seq2SeqBatch, sos_id: int, eos_id: int, pad_id: int) -> None:
    """tgt_in = <sos> + target, tgt_out = target + <eos>, padding after."""
    assert batch.tgt_in.shape == batch.tgt_out.shape
    width = batch.tgt_in.shape[1]
    for row in range(batch.batch_size):
        n = int(batch.tgt_lengths[row])
        tgt_in, tgt_out = batch.tgt_in[row].tolist(), batch.tgt_out[row].tolist()
        assert tgt_in[0] == sos_id
        assert tgt_in[1:n] == tgt_out[: n - 1]  # the same target, shifted by one
        assert tgt_out[n - 1] == eos_id
        assert eos_id not in tgt_out[: n - 1] and sos_id not in tgt_in[1:n]
        assert tgt_in[n:] == [pad_id] * (width - n) and tgt_out[n:] == [pad_id] * (width - n)
        assert pad_id not in tgt_out[:n] and pad_id not in tgt_in[:n]


# ---------------------------------------------------------------------------
# Vocab


def test_vocab_specials_come_first_and_maps_agree():
    vocab = Vocab("abca")
    assert (vocab.pad_id, vocab.sos_id, vocab.eos_id) == (0, 1, 2)
    assert vocab.itos == ["<pad>", "<sos>", "<eos>", "a", "b", "c"]
    assert vocab.symbols == ["a", "b", "c"]  # duplicates dropped, order kept
    assert len(vocab) == 6
    assert all(vocab.stoi[s] == i for i, s in enumerate(vocab.itos))


def test_vocab_from_texts_is_the_sorted_set_of_characters():
    vocab = Vocab.from_texts(["hello", "world"])
    assert vocab.symbols == sorted(set("helloworld"))
    assert Vocab.from_texts("hello") == Vocab("ehlo")


def test_encode_decode_round_trip_on_strings():
    vocab = Vocab(string.ascii_lowercase + " ")
    text = "the cat sat on the mat"
    ids = vocab.encode(text, add_sos=True, add_eos=True)
    assert ids[0] == vocab.sos_id and ids[-1] == vocab.eos_id and len(ids) == len(text) + 2
    assert vocab.decode(ids) == text
    assert vocab.decode(torch.tensor(ids)) == text  # a 1-D tensor works too
    assert vocab.decode(ids, join=False) == list(text)


def test_decode_stops_at_first_eos_unless_specials_are_kept():
    vocab = Vocab("ab")
    ids = [vocab.sos_id, 3, 4, vocab.eos_id, 3, vocab.pad_id]
    assert vocab.decode(ids) == "ab"
    assert vocab.decode(ids, strip_special=False) == "<sos>ab<eos>a<pad>"
    assert vocab.decode(ids, strip_special=False, join=False)[-1] == "<pad>"


def test_word_vocab_decodes_to_a_list():
    vocab = Vocab(["the", "cat", "sat"])
    assert not vocab.char_level
    ids = vocab.encode(["the", "cat", "sat"], add_eos=True)
    assert ids == [3, 4, 5, 2]
    assert vocab.decode(ids) == ["the", "cat", "sat"]


def test_encode_batch_pads_and_decode_batch_round_trips():
    vocab = Vocab("abc")
    seqs = ["abc", "a", "", "cab"]
    ids, lengths = vocab.encode_batch(seqs, add_eos=True)
    assert ids.dtype == torch.long and lengths.dtype == torch.long
    assert ids.shape == (4, 4)
    assert lengths.tolist() == [4, 2, 1, 4]
    assert ids[1].tolist() == [3, 2, 0, 0]  # 'a', eos, then pad
    for row, n in enumerate(lengths.tolist()):
        assert (ids[row, n:] == vocab.pad_id).all()
    assert vocab.decode_batch(ids) == seqs


def test_unknown_symbol_error_names_symbol_position_and_alphabet():
    vocab = Vocab("0123456789")
    with pytest.raises(ValueError, match=r"'x' at position 2.*'y' at position 4.*'0123456789'"):
        vocab.encode("12x4y")


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda v: v.decode([3, 99]), ValueError, r"ids\[1\] = 99 is out of range"),
        (lambda v: v.decode(torch.zeros(2, 3, dtype=torch.long)), ValueError, "decode_batch"),
        (lambda v: v.decode([1.5]), TypeError, "ids must hold ints"),
        (lambda v: v.encode(42), TypeError, "seq must be a str"),
        (lambda v: v.encode_batch("abc"), TypeError, "seqs must be a list"),
        (lambda v: v.decode_batch(torch.zeros(3, dtype=torch.long)), ValueError, r"2-D \(B, T\)"),
        (lambda v: Vocab(["a", "<eos>"]), ValueError, "special token '<eos>'"),
        (lambda v: Vocab(["a", 3]), TypeError, "position 1"),
    ],
)
def test_vocab_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call(Vocab("abc"))


def test_make_seq2seq_batch_shifts_targets_and_moves_devices():
    src_vocab, tgt_vocab = Vocab("abc"), Vocab("xyz")
    batch = make_seq2seq_batch(["abc", "a"], ["xy", "zzzz"], src_vocab, tgt_vocab)
    assert batch.src.tolist() == [[3, 4, 5], [3, 0, 0]]
    assert batch.src_lengths.tolist() == [3, 1]
    assert batch.tgt_in.tolist() == [[1, 3, 4, 0, 0], [1, 5, 5, 5, 5]]
    assert batch.tgt_out.tolist() == [[3, 4, 2, 0, 0], [5, 5, 5, 5, 2]]
    assert batch.tgt_lengths.tolist() == [3, 5]
    moved = batch.to("meta")
    assert moved is not batch and moved.src.device.type == "meta" and moved.tgt_lengths.device.type == "meta"
    assert batch.src.device.type == "cpu"  # the original is unchanged
    with pytest.raises(ValueError, match="same length, got 2 and 1"):
        make_seq2seq_batch(["a", "b"], ["x"], src_vocab, tgt_vocab)


# ---------------------------------------------------------------------------
# SequenceTask


def test_sequence_vocab_is_digits_then_letters():
    assert SequenceTask(num_symbols=36).vocab.symbols == list(string.digits + string.ascii_lowercase)
    assert SequenceTask(num_symbols=10).vocab.symbols == list("0123456789")


@pytest.mark.parametrize("kind", SequenceTask.KINDS)
def test_sequence_batches_are_deterministic(kind):
    task = SequenceTask(kind)
    assert_batches_equal(task.batch(32, gen(0)), task.batch(32, gen(0)))
    assert not torch.equal(task.batch(32, gen(0)).src_lengths, task.batch(32, gen(1)).src_lengths)


def test_sequence_lengths_cover_the_range_uniformly():
    task = SequenceTask(min_len=4, max_len=28)
    lengths = task.batch(5000, gen(0)).src_lengths
    counts = Counter(lengths.tolist())
    assert set(counts) == set(range(4, 29))  # every length reached, none outside
    expected = 5000 / 25
    assert all(0.6 * expected < c < 1.4 * expected for c in counts.values()), counts


def test_sequence_symbols_are_uniform():
    task = SequenceTask(num_symbols=10)
    batch = task.batch(2000, gen(0))
    ids = batch.src[batch.src != task.vocab.pad_id]
    counts = torch.bincount(ids - 3, minlength=10).double()
    assert counts.numel() == 10
    assert (counts / counts.mean() - 1).abs().max() < 0.1


@pytest.mark.parametrize("kind", SequenceTask.KINDS)
def test_sequence_targets_padding_and_special_tokens(kind):
    task = SequenceTask(kind, num_symbols=20, min_len=2, max_len=12)
    batch = task.batch(64, gen(3))
    vocab = task.vocab
    assert batch.src.shape == (64, int(batch.src_lengths.max()))
    assert batch.tgt_in.shape == (64, batch.src.shape[1] + 1)
    assert torch.equal(batch.tgt_lengths, batch.src_lengths + 1)
    for row in range(64):
        n = int(batch.src_lengths[row])
        assert (batch.src[row, :n] >= 3).all() and (batch.src[row, n:] == vocab.pad_id).all()
    check_shifted_targets(batch, vocab.sos_id, vocab.eos_id, vocab.pad_id)
    sources, targets = vocab.decode_batch(batch.src), vocab.decode_batch(batch.tgt_out)
    for src, tgt in zip(sources, targets):
        expected = {"reverse": src[::-1], "copy": src, "sort": "".join(sorted(src, key=vocab.stoi.get))}[kind]
        assert tgt == expected == task.target_for(src)


def test_reverse_target_by_tensor_flip():
    task = SequenceTask("reverse", min_len=7, max_len=7)
    batch = task.batch(16, gen(0))
    assert torch.equal(batch.tgt_out[:, :7], batch.src.flip(1))


def test_fixed_length_batch_and_target_for():
    task = SequenceTask("reverse", min_len=4, max_len=10)
    batch = task.fixed_length_batch(8, 40, gen(0))  # longer than training lengths is allowed
    assert batch.src.shape == (8, 40) and (batch.src_lengths == 40).all()
    assert (batch.src != task.vocab.pad_id).all()
    assert_batches_equal(batch, task.fixed_length_batch(8, 40, gen(0)))
    assert task.target_for("0123") == "3210"
    assert task.target_for(["1", "2"]) == ["2", "1"]
    with pytest.raises(ValueError, match="'z' at position 1"):
        task.target_for("0z")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"kind": "rotate"}, ValueError, r"kind must be one of \['reverse', 'copy', 'sort'\], got 'rotate'"),
        ({"num_symbols": 0}, ValueError, "num_symbols must be an int >= 1, got 0"),
        ({"num_symbols": 63}, ValueError, "num_symbols must be <= 62, got 63"),
        ({"min_len": -1}, ValueError, "min_len must be an int >= 1, got -1"),
        ({"min_len": 9, "max_len": 5}, ValueError, "min_len must be <= max_len, got min_len=9, max_len=5"),
        ({"max_len": 5.0}, TypeError, "max_len must be an int, got float 5.0"),
    ],
)
def test_sequence_task_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        SequenceTask(**kwargs)


def test_sequence_batch_bad_arguments():
    task = SequenceTask()
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        task.batch(0, gen(0))
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        task.batch(4, 0)
    with pytest.raises(ValueError, match="length must be an int >= 1, got 0"):
        task.fixed_length_batch(4, 0, gen(0))


# ---------------------------------------------------------------------------
# Dates

# 2021-03-03 was a Wednesday; every format of every language, written by hand.
HAND_CHECKED_2021_03_03 = {
    "en": [
        "3 March 2021", "March 3, 2021", "Mar 3 2021", "03/03/2021", "3/3/21",
        "Wednesday, March 3, 2021", "Wed, 3 Mar 2021", "March 3rd, 2021", "the 3rd of March 2021",
        "MARCH 3 2021", "3 mar 2021", "2021/03/03", "03-MAR-2021", "wednesday march 3rd 2021",
    ],
    "fr": [
        "3 mars 2021", "mercredi 3 mars 2021", "le 3 mars 2021", "Mercredi 3 mars 2021", "le 03/03/2021",
        "le 3/3/21", "3 mars 2021", "mer. 3 mars 2021", "3 MARS 2021", "Mercredi 3 Mars 2021",
        "le mercredi 3 mars 2021", "03 mars 2021", "MERCREDI 3 MARS 2021",
    ],
    "de": [
        "3. März 2021", "Mittwoch, 3. März 2021", "03.03.2021", "3.3.21", "3.3.2021", "3. März 2021",
        "Mi, 3.3.2021", "am 3. März 2021", "3. MÄRZ 2021", "3. märz 2021", "Mittwoch, den 3. März 2021",
        "03. März 2021", "MITTWOCH, 3. MÄRZ 2021",
    ],
    "es": [
        "3 de marzo de 2021", "miércoles, 3 de marzo de 2021", "Miércoles 3 de marzo de 2021", "03-03-2021",
        "3-3-21", "3 mar 2021", "el 3 de marzo de 2021", "3 DE MARZO DE 2021", "3/mar/2021", "mié 3 mar 2021",
        "3 de Marzo del 2021", "el miércoles 3 de marzo de 2021", "MIÉRCOLES 3 DE MARZO DE 2021",
    ],
}

# Full names written independently of the module, January / Monday first.
HAND_MONTHS = {
    "en": "January February March April May June July August September October November December",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",
}
HAND_WEEKDAYS = {
    "en": "Monday Tuesday Wednesday Thursday Friday Saturday Sunday",
    "fr": "lundi mardi mercredi jeudi vendredi samedi dimanche",
    "de": "Montag Dienstag Mittwoch Donnerstag Freitag Samstag Sonntag",
    "es": "lunes martes miércoles jueves viernes sábado domingo",
}


@pytest.mark.parametrize("language", sorted(HAND_CHECKED_2021_03_03))
def test_every_format_on_a_hand_checked_date(language):
    expected = HAND_CHECKED_2021_03_03[language]
    assert len(date_formats(language)) == len(expected) >= 8
    written = [format_date(dt.date(2021, 3, 3), language, i) for i in range(len(expected))]
    assert written == expected


@pytest.mark.parametrize(
    "date, language, fmt_index, expected",
    [
        (dt.date(2000, 1, 1), "en", 5, "Saturday, January 1, 2000"),
        (dt.date(2000, 1, 1), "en", 8, "the 1st of January 2000"),
        (dt.date(2000, 1, 1), "fr", 1, "samedi 1er janvier 2000"),
        (dt.date(2000, 1, 1), "de", 10, "Samstag, den 1. Januar 2000"),
        (dt.date(2000, 1, 1), "es", 1, "sábado, 1 de enero de 2000"),
        (dt.date(1969, 7, 20), "en", 5, "Sunday, July 20, 1969"),
        (dt.date(1969, 7, 20), "en", 4, "7/20/69"),
        (dt.date(1969, 7, 20), "de", 2, "20.07.1969"),
        (dt.date(1969, 7, 20), "fr", 4, "le 20/07/1969"),
        (dt.date(1969, 7, 20), "es", 3, "20-07-1969"),
        (dt.date(2049, 12, 31), "fr", 7, "ven. 31 déc. 2049"),
        (dt.date(1989, 11, 9), "de", 6, "Do, 9.11.1989"),
        (dt.date(2011, 8, 11), "en", 7, "August 11th, 2011"),
        (dt.date(2011, 8, 12), "en", 7, "August 12th, 2011"),
        (dt.date(2011, 8, 13), "en", 7, "August 13th, 2011"),
        (dt.date(2011, 8, 21), "en", 7, "August 21st, 2011"),
        (dt.date(2011, 8, 22), "en", 7, "August 22nd, 2011"),
        (dt.date(2011, 8, 23), "en", 7, "August 23rd, 2011"),
    ],
)
def test_hand_checked_examples(date, language, fmt_index, expected):
    assert format_date(date, language, fmt_index) == expected


@pytest.mark.parametrize("language", sorted(HAND_MONTHS))
def test_name_tables_match_hand_written_names(language):
    lang = LANGUAGES[language]
    assert list(lang.months) == HAND_MONTHS[language].split()
    assert list(lang.weekdays) == HAND_WEEKDAYS[language].split()
    # Abbreviations are prefixes of the full names (ignoring a final dot).
    for full, short in zip(lang.months + lang.weekdays, lang.months_abbr + lang.weekdays_abbr):
        assert full.startswith(short.rstrip(".")), (full, short)


def _name_pattern(field: str, names: tuple[str, ...]) -> str:
    case = str.upper if field.isupper() else str.lower if field.islower() else (lambda s: s[:1].upper() + s[1:])
    return "(?P<%s>%s)" % (field, "|".join(re.escape(case(n)) for n in sorted(names, key=len, reverse=True)))


def _parse(text: str, template: str, language: str) -> tuple[dt.date, int | None]:
    """Independent reader of one template: text -> (date, weekday index or None)."""
    lang = LANGUAGES[language]
    ordinal = {"en": r"(?P<dth>\d{1,2})(?:st|nd|rd|th)", "fr": r"(?P<dth>1er|\d{1,2})",
               "de": r"(?P<dth>\d{1,2})\.", "es": r"(?P<dth>\d{1,2})"}[language]
    numbers = {"d": r"(?P<d>\d{1,2})", "dd": r"(?P<dd>\d\d)", "m": r"(?P<m>\d{1,2})", "mm": r"(?P<mm>\d\d)",
               "yyyy": r"(?P<yyyy>\d{4})", "yy": r"(?P<yy>\d\d)", "dth": ordinal}
    tables = {"month": lang.months, "mon": lang.months_abbr, "weekday": lang.weekdays, "wd": lang.weekdays_abbr}
    pattern = ""
    for literal, field, _, _ in string.Formatter().parse(template):
        pattern += re.escape(literal)
        if field:
            pattern += numbers.get(field) or _name_pattern(field, tables[field.lower()])
    match = re.fullmatch(pattern, text)
    assert match, (text, template)
    g = {k: v for k, v in match.groupdict().items() if v is not None}
    day = int(g.get("d") or g.get("dd") or g["dth"].replace("er", ""))
    if "m" in g or "mm" in g:
        month = int(g.get("m") or g["mm"])
    else:
        key = "month" if any(k.lower() == "month" for k in g) else "mon"
        value = next(v for k, v in g.items() if k.lower() == key)
        month = [n.lower() for n in tables[key]].index(value.lower()) + 1
    year = int(g["yyyy"]) if "yyyy" in g else (1900 if int(g["yy"]) >= 50 else 2000) + int(g["yy"])
    weekday = None
    for key in ("weekday", "wd"):
        value = next((v for k, v in g.items() if k.lower() == key), None)
        if value is not None:
            weekday = [n.lower() for n in tables[key]].index(value.lower())
    return dt.date(year, month, day), weekday


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_every_format_parses_back_to_its_date(language):
    rng = random.Random(language)
    span = DATE_MAX.toordinal() - DATE_MIN.toordinal()
    dates = [dt.date.fromordinal(DATE_MIN.toordinal() + rng.randint(0, span)) for _ in range(150)]
    dates += [DATE_MIN, DATE_MAX, dt.date(2000, 2, 29)]
    for i, template in enumerate(date_formats(language)):
        for date in dates:
            parsed, weekday = _parse(format_date(date, language, i), template, language)
            assert parsed == date
            assert weekday is None or weekday == date.weekday()


def test_a_source_string_never_means_two_dates():
    seen: dict[str, dt.date] = {}
    for year in (1999, 2012):  # all day/month swaps and every month name occur within a year
        day = dt.date(year, 1, 1)
        while day.year == year:
            for language in LANGUAGES:
                for i in range(len(date_formats(language))):
                    text = format_date(day, language, i)
                    assert seen.setdefault(text, day) == day, (text, seen[text], day)
            day += dt.timedelta(days=1)
    assert len(seen) > 20000


def test_splits_partition_the_calendar():
    task = DatesTask()
    train, test = task.dates("train"), task.dates("test")
    assert not set(train) & set(test)
    assert len(train) + len(test) == DATE_MAX.toordinal() - DATE_MIN.toordinal() + 1 == 36525  # 100 years, 25 leap days
    assert 0.08 < len(test) / 36525 < 0.12
    assert train[0] >= DATE_MIN and test[-1] <= DATE_MAX
    assert all(date_split(d) == "test" for d in test[::50]) and all(date_split(d) == "train" for d in train[::500])


def test_sampled_pairs_never_share_a_date_across_splits():
    task = DatesTask(seed=1)
    train_iso = {iso for _, iso, _ in task.pairs("train", 20000)}
    test_iso = {iso for _, iso, _ in task.pairs("test", 5000)}
    assert len(test_iso) > 2000 and not train_iso & test_iso


def test_pairs_are_valid_short_and_in_the_vocabulary():
    task = DatesTask()
    pairs = task.pairs("train", 3000) + task.pairs("test", 1000)
    iso = re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")
    assert all(iso.fullmatch(p[1]) for p in pairs)
    assert all(DATE_MIN <= dt.date.fromisoformat(p[1]) <= DATE_MAX for p in pairs)
    source_chars = set("".join(p[0] for p in pairs))
    assert source_chars <= set(task.src_vocab.symbols)
    assert max(len(p[0]) for p in pairs) <= task.max_src_len <= 40
    assert set(task.tgt_vocab.symbols) == set("0123456789-")
    assert Counter(p[2] for p in pairs).keys() == {"en", "fr", "de", "es"}
    assert len({p[0] for p in pairs}) > 3900  # hardly any repeats


def test_pairs_are_deterministic_and_prefix_stable():
    task = DatesTask(seed=0)
    assert task.pairs("train", 50) == DatesTask(seed=0).pairs("train", 50)
    assert task.pairs("train", 50) != DatesTask(seed=1).pairs("train", 50)
    assert task.pairs("train", 100)[:50] == task.pairs("train", 50)
    assert DatesTask(languages=("de",)).pairs("test", 30)[0][2] == "de"
    assert {p[2] for p in DatesTask(languages="fr").pairs("train", 30)} == {"fr"}


def test_dates_batch_decodes_to_dates_of_its_split():
    task = DatesTask()
    batch = task.batch("test", 64, gen(0))
    assert_batches_equal(batch, task.batch("test", 64, gen(0)))
    assert not torch.equal(batch.tgt_out, task.batch("test", 64, gen(1)).tgt_out)
    assert batch.tgt_in.shape == batch.tgt_out.shape == (64, 11)
    assert batch.src.shape[1] <= task.max_src_len
    check_shifted_targets(batch, task.tgt_vocab.sos_id, task.tgt_vocab.eos_id, task.tgt_vocab.pad_id)
    isos = task.tgt_vocab.decode_batch(batch.tgt_out)
    assert all(date_split(dt.date.fromisoformat(s)) == "test" for s in isos)
    sources = task.src_vocab.decode_batch(batch.src)
    assert [len(s) for s in sources] == batch.src_lengths.tolist()
    # encode_pairs gives the same encoding as batch for the same strings
    again = task.encode_pairs([(s, i, "?") for s, i in zip(sources, isos)])
    assert_batches_equal(batch, again)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: DatesTask(languages=("en", "it")), ValueError, r"languages must be one of .* got 'it'"),
        (lambda: DatesTask(languages=()), ValueError, "languages must be a non-empty"),
        (lambda: format_date(dt.date(2021, 3, 3), "xx", 0), ValueError, "language must be one of .* got 'xx'"),
        (lambda: format_date(dt.date(2021, 3, 3), "en", 14), ValueError, "fmt_index must be < 14 .* got 14"),
        (lambda: format_date("2021-03-03", "en", 0), TypeError, "date must be a datetime.date, got str"),
        (lambda: date_formats("EN"), ValueError, "got 'EN'"),
        (lambda: DatesTask().pairs("val", 3), ValueError, r"split must be one of \['train', 'test'\], got 'val'"),
        (lambda: DatesTask().pairs("train", -1), ValueError, "n must be an int >= 0, got -1"),
        (lambda: DatesTask().batch("train", 4, generator=1), TypeError, "generator must be a torch.Generator"),
    ],
)
def test_dates_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------------------
# Character corpus


def test_pydoc_corpus_is_deterministic_and_sizeable():
    text = pydoc_text()
    assert text == pydoc_text()
    assert len(text) > 100_000 and "assert" in text
    corpus = CharCorpus(text)
    assert len(corpus.vocab) == len(set(text)) + 3
    assert len(corpus.train) + len(corpus.val) == len(text)
    assert corpus.decode(corpus.train[:200]) == text[:200]
    assert corpus.decode(corpus.val[-200:]) == text[-200:]


def test_pydoc_missing_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydoc_data.topics", None)
    with pytest.raises(ImportError, match=r"pydoc_data\.topics is not available.*CharCorpus\(text=\.\.\.\)"):
        pydoc_text()


def test_char_corpus_split_is_contiguous():
    rng = random.Random(0)
    text = "".join(rng.choice("abcdefgh \n") for _ in range(1000))
    corpus = CharCorpus(text, val_fraction=0.2)
    assert corpus.vocab == Vocab.from_texts(text)
    assert (len(corpus.train), len(corpus.val)) == (800, 200)
    assert corpus.train.dtype == corpus.val.dtype == torch.long and corpus.train.ndim == 1
    assert corpus.decode(corpus.train) == text[:800] and corpus.decode(corpus.val) == text[800:]
    assert torch.equal(corpus.encode(text[:10]), corpus.train[:10])


@pytest.mark.parametrize("split", CharCorpus.SPLITS)
def test_char_corpus_batches_are_shifted_windows(split):
    rng = random.Random(1)
    text = "".join(rng.choice(string.ascii_letters) for _ in range(2000))
    corpus = CharCorpus(text, val_fraction=0.25)
    x, y = corpus.get_batch(split, 8, 32, gen(0))
    assert x.shape == y.shape == (8, 32) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    part = text[:1500] if split == "train" else text[1500:]
    for row in range(8):
        window = corpus.decode(x[row]) + corpus.decode(y[row])[-1]
        assert window in part
    x2, y2 = corpus.get_batch(split, 8, 32, gen(0))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, corpus.get_batch(split, 8, 32, gen(1))[0])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda c: c.get_batch("test", 2, 4), ValueError, r"split must be one of \['train', 'val'\], got 'test'"),
        (lambda c: c.get_batch("val", 2, 30), ValueError, r"block_size must be < the length of the 'val' split \(20"),
        (lambda c: c.get_batch("train", 2, 0), ValueError, "block_size must be an int >= 1, got 0"),
        (lambda c: CharCorpus("abc" * 10, val_fraction=1.0), ValueError, r"val_fraction must be in \(0, 1\), got 1.0"),
        (lambda c: CharCorpus(b"bytes"), TypeError, "text must be a str or None, got bytes"),
        (lambda c: CharCorpus("ab", val_fraction=0.5), ValueError, "text is too short"),
    ],
)
def test_char_corpus_bad_arguments(call, error, match):
    corpus = CharCorpus("0123456789" * 20, val_fraction=0.1)
    with pytest.raises(error, match=match):
        call(corpus)


# ---------------------------------------------------------------------------
# Digits


@pytest.fixture(scope="module")
def digits():
    return load_digits_tensors()


def test_digits_shapes_and_ranges(digits):
    assert digits.x_train.shape == (1347, 1, 8, 8) and digits.x_test.shape == (450, 1, 8, 8)
    assert digits.x_train.dtype == torch.float32 and digits.y_train.dtype == torch.long
    for x in (digits.x_train, digits.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    assert set(digits.y_train.tolist()) == set(digits.y_test.tolist()) == set(range(10))


def test_digits_split_is_stratified_fixed_and_complete(digits):
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    total = np.bincount(labels, minlength=10)
    test_counts = torch.bincount(digits.y_test, minlength=10).numpy()
    assert np.all(np.abs(test_counts - 0.25 * total) <= 1)
    again = load_digits_tensors()
    assert torch.equal(digits.x_train, again.x_train) and torch.equal(digits.y_test, again.y_test)
    assert not torch.equal(digits.y_test, load_digits_tensors(seed=1).y_test)
    # train + test is exactly the data set, each image once
    rows = torch.cat([digits.x_train, digits.x_test]).reshape(-1, 64).numpy() * 16
    assert sorted(map(bytes, np.rint(rows).astype(np.uint8))) == sorted(map(bytes, images.astype(np.uint8)))


def test_digits_subsets_are_balanced_and_nested(digits):
    small, large = digits.subset(5, seed=0), digits.subset(20, seed=0)
    assert torch.bincount(small.y_train, minlength=10).tolist() == [5] * 10
    assert torch.equal(small.x_test, digits.x_test)  # the test set never shrinks
    large_rows = {bytes(r.numpy()) for r in large.x_train.reshape(-1, 64)}
    assert all(bytes(r.numpy()) in large_rows for r in small.x_train.reshape(-1, 64))
    assert not torch.equal(small.y_train, digits.subset(5, seed=1).y_train) or not torch.equal(
        small.x_train, digits.subset(5, seed=1).x_train
    )
    tenth = digits.subset(fraction=0.1)
    counts = torch.bincount(tenth.y_train, minlength=10)
    assert 130 <= len(tenth.y_train) <= 140 and counts.min() >= 13
    assert digits.to("meta").x_train.device.type == "meta"


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda d: d.subset(), ValueError, "exactly one of n_per_class and fraction"),
        (lambda d: d.subset(5, fraction=0.5), ValueError, "exactly one of n_per_class and fraction"),
        (lambda d: d.subset(500), ValueError, r"n_per_class must be <= 1\d\d .* got 500"),
        (lambda d: d.subset(fraction=0.0), ValueError, r"fraction must be in \(0, 1\], got 0.0"),
        (lambda d: load_digits_tensors(test_fraction=1.5), ValueError, r"test_fraction must be in \(0, 1\), got 1.5"),
        (lambda d: load_digits_tensors(seed=-1), ValueError, "seed must be an int >= 0, got -1"),
    ],
)
def test_digits_bad_arguments(digits, call, error, match):
    with pytest.raises(error, match=match):
        call(digits)
