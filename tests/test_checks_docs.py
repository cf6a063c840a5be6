"""docs/instructor.md's exercise tables agree with the registry and the catalogues: the points
table lists every exercise of EXERCISES (test_checks_framework.py), and each "Common
misconceptions" heading gives the catalogue's counts of wrong answers and valid variants."""

import importlib
import re
from pathlib import Path

import pytest

from course_lib.checks import EXERCISES

ROOT = Path(__file__).resolve().parents[1]

# exercise ID -> (catalogue module, its dict of wrong answers, its dict of valid variants)
CATALOGUES = {
    "00.1": ("test_checks_00", "WRONG", "VALID"),
    "01.1": ("test_checks_01", "WRONG_RNN", "VALID_RNN"),
    "01.2": ("test_checks_01", "WRONG_DECODE", "VALID_DECODE"),
    "02.1": ("test_checks_02", "WRONG_SCORES", "VALID_SCORES"),
    "02.2": ("test_checks_02", "WRONG_SOFTMAX", "VALID_SOFTMAX"),
    "02.3": ("test_checks_02", "WRONG_ATTEND", "VALID_ATTEND"),
    "03.1": ("test_checks_03", "ATTENTION_WRONG", "ATTENTION_VALID"),
    "03.2": ("test_checks_03", "CAUSAL_WRONG", "CAUSAL_VALID"),
    "03.3": ("test_checks_03", "PADDING_WRONG", "PADDING_VALID"),
    "04.1": ("test_checks_04", "SPLIT_WRONG", "SPLIT_VALID"),
    "04.2": ("test_checks_04", "MERGE_WRONG", "MERGE_VALID"),
    "04.3": ("test_checks_04", "MHA_WRONG", "MHA_VALID"),
    "05.1": ("test_checks_05", "SINUSOIDAL_WRONG", "SINUSOIDAL_VALID"),
    "05.2": ("test_checks_05", "ROPE_WRONG", "ROPE_VALID"),
    "06.1": ("test_checks_06", "LN_WRONG", "LN_VALID"),
    "06.2": ("test_checks_06", "BLOCK_WRONG", "BLOCK_VALID"),
    "06.3": ("test_checks_06", "MASK_WRONG", "MASK_VALID"),
    "07.1": ("test_checks_07", "LOSS_WRONG", "LOSS_VALID"),
    "07.2": ("test_checks_07", "SAMPLE_WRONG", "SAMPLE_VALID"),
    "08.1": ("test_checks_08", "PATCH_WRONG", "PATCH_VALID"),
    "08.2": ("test_checks_08", "POS_WRONG", "POS_VALID"),
    "09.1": ("test_checks_09", "TILED_WRONG", "TILED_VALID"),
    "09.2": ("test_checks_09", "LINEAR_WRONG", "LINEAR_VALID"),
    "09.3": ("test_checks_09", "WINDOW_WRONG", "WINDOW_VALID"),
    "10.1": ("test_checks_10", "WRONG", "VALID"),
}
# Notebooks whose checker landed before its "Common misconceptions" heading (its author adds it).
DOCS_PENDING: set[str] = set()


def _counts(exercise_id):
    module, wrong, valid = CATALOGUES[exercise_id]
    m = importlib.import_module(module)
    return len(getattr(m, wrong)), len(getattr(m, valid)) if valid else 0


def _headings():
    """notebook number -> (the IDs named in its heading, wrong counts, valid counts)."""
    text = (ROOT / "docs" / "instructor.md").read_text(encoding="utf-8")
    found = {}
    for line in re.findall(r"^### (\d\d\.\d.*)$", text, flags=re.M):
        ids = re.findall(r"\b(\d\d\.\d)\b", line.split("(tests/")[0])
        counts = re.search(r"\(tests/test_checks_\d\d\.py: (.+?) wrong answers?[;,] (.+?) valid variants?\)", line)
        assert counts, f"heading without catalogue counts: {line}"
        numbers = [[int(n) for n in re.findall(r"\d+", part)] for part in counts.groups()]
        found[ids[0][:2]] = (ids, *numbers)
    return found


@pytest.mark.parametrize("notebook", sorted({i[:2] for i in CATALOGUES} - DOCS_PENDING))
def test_misconception_headings_give_the_catalogue_counts(notebook):
    ids, wrong, valid = _headings()[notebook]
    assert ids == [i for i in CATALOGUES if i.startswith(notebook + ".")]
    assert list(zip(wrong, valid)) == [_counts(i) for i in ids]


def test_pending_notebooks_really_lack_their_heading():
    assert not DOCS_PENDING & set(_headings()), "a heading was added: remove it from DOCS_PENDING"


def test_every_exercise_with_a_checker_has_a_catalogue():
    checks = ROOT / "course_lib" / "checks"
    written = {i for i in EXERCISES  # a module nbNN.py, or a package nbNN/ when it outgrew one file
               if (checks / f"nb{i[:2]}.py").is_file() or (checks / f"nb{i[:2]}" / "__init__.py").is_file()}
    assert written == set(CATALOGUES)


def test_the_forbidden_built_ins_listed_in_the_docs_are_the_registrys():
    text = (ROOT / "docs" / "instructor.md").read_text(encoding="utf-8")
    listed = {i: tuple(re.findall(r"`([\w.]+)`", names))
              for i, names in re.findall(r"^- (\d\d\.\d) forbids: (.*)$", text, flags=re.M)}
    assert listed == {i: e.forbidden for i, e in EXERCISES.items() if e.forbidden}
