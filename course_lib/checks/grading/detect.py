"""Which files of a folder are submissions, what each is called in the CSV,
and which exercises each holds."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..framework import EXERCISES, exercises_of

__all__ = ["claimed_notebook", "detect_exercises", "list_submissions", "safe_name"]

_CHECK_CALL = re.compile(r"""\bcheck\(\s*["'](\d\d\.\d+)["']""")


def safe_name(path: Path) -> str:
    """The file name as text that any CSV or terminal can hold: bytes that are
    not UTF-8 (a Latin-1 ``caf\\xe9.ipynb``) are shown as ``\\xe9``."""
    return os.fsencode(path.name).decode("utf-8", errors="backslashreplace")


def _code_sources(nb) -> list[str]:
    sources = [c.get("source", "") for c in nb.get("cells", []) if isinstance(c, dict) and c.get("cell_type") == "code"]
    return ["".join(s) if isinstance(s, list) else str(s) for s in sources]


def claimed_notebook(nb, filename: str = "") -> str:
    """The notebook a submission says it is (metadata written by release, else
    its ``check("ID", ...)`` cells, else its file name, else the exercise
    functions it defines); "" when nothing says."""
    meta = (nb.get("metadata") or {}).get("course_lib") or {}
    name = meta.get("notebook") if isinstance(meta, dict) else None
    if isinstance(name, str) and exercises_of(name):
        return EXERCISES[exercises_of(name)[0].id].notebook
    sources = _code_sources(nb)
    found = sorted({m for s in sources for m in _CHECK_CALL.findall(s) if m in EXERCISES})
    if found:
        return EXERCISES[found[0]].notebook
    stem = Path(filename).stem
    if len(stem) >= 3 and stem[:2].isdigit() and stem[2] == "_" and exercises_of(stem):
        return exercises_of(stem)[0].notebook
    defined = set(re.findall(r"^\s*(?:def|class)\s+(\w+)", "\n".join(sources), flags=re.MULTILINE))
    found = sorted(e.id for e in EXERCISES.values() if e.function in defined)
    return EXERCISES[found[0]].notebook if found else ""


def detect_exercises(nb, filename: str = "", notebook: str | None = None) -> tuple[str, list[str]]:
    """(notebook name, exercise IDs) of a submission: from ``notebook`` if given
    (the instructor's word wins over the file's), else :func:`claimed_notebook`."""
    if notebook:
        specs = exercises_of(notebook)
        return (specs[0].notebook if specs else notebook), [e.id for e in specs]
    name = claimed_notebook(nb, filename)
    return name, [e.id for e in exercises_of(name)] if name else []


def list_submissions(folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """(notebooks to grade, [(name, why skipped)]). Notebooks are the regular
    files whose name ends in ``.ipynb`` in any case; hidden files, folders and
    other files are skipped and listed, never silently."""
    graded, skipped = [], []
    for p in sorted(folder.iterdir(), key=lambda q: os.fsencode(q.name)):
        name = safe_name(p)
        if p.name.startswith("."):
            skipped.append((name, "hidden"))
        elif p.suffix.lower() != ".ipynb":
            skipped.append((name, "not a .ipynb file"))
        elif not p.is_file():
            skipped.append((name, "not a regular file"))
        else:
            graded.append(p)
    return graded, skipped
