"""What a grade is, and how it is shown: the score table of ``check``, the
Markdown feedback file, and the rows of the CSV (escaped for spreadsheets,
written atomically)."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..framework import EXERCISES, CheckResult

__all__ = [
    "SubmissionGrade",
    "csv_row",
    "escape_cell",
    "feedback_markdown",
    "format_score_table",
    "read_csv",
    "unescape_cell",
    "write_csv",
    "zero",
]


@dataclass
class SubmissionGrade:
    submission: str
    sha256: str = ""
    notebook: str = ""
    exercises: list[str] = field(default_factory=list)
    results: dict[str, CheckResult] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cell_errors: list[tuple[int, str]] = field(default_factory=list)  # (code cell number, exception name)
    seconds: float = 0.0
    isolation: str = ""  # "namespaces" or "none: <why>" (see isolate.py)

    @property
    def total(self) -> float:
        return round(sum(r.points for r in self.results.values()), 4)

    @property
    def max_total(self) -> float:
        return round(sum(EXERCISES[i].points for i in self.exercises if i in EXERCISES), 4)

    def points(self, exercise_id: str) -> float:
        r = self.results.get(exercise_id)
        return r.points if r is not None else 0.0


def zero(exercise_id: str, message: str) -> CheckResult:
    """A failed result with one message: what an exercise gets when it could not be checked."""
    spec = EXERCISES[exercise_id]
    return CheckResult(False, 0.0, spec.points, [message], spec.id, spec.title, spec.function)


def _pts(x: float) -> str:
    return f"{x:.4g}"


def format_score_table(grade: SubmissionGrade) -> str:
    """The per-exercise table printed by ``python -m course_lib check``."""
    rows = [("id", "title", "points", "first message")]
    for i in grade.exercises:
        r = grade.results.get(i) or zero(i, "not graded")
        first = r.messages[0] if r.messages else ""
        rows.append((i, EXERCISES[i].title, f"{_pts(r.points)}/{_pts(r.max_points)}",
                     first if len(first) <= 90 else first[:87] + "..."))
    widths = [max(len(row[c]) for row in rows) for c in range(3)]
    lines = ["  ".join(row[c].ljust(widths[c]) for c in range(3)) + "  " + row[3] for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 13)
    lines.append(f"total: {_pts(grade.total)} / {_pts(grade.max_total)}")
    for note in grade.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def feedback_markdown(grade: SubmissionGrade) -> str:
    """One feedback file: every exercise, every sub-check, the hint, the notes."""
    out = [f"# Feedback on `{grade.submission}`", ""]
    if grade.notebook:
        out.append(f"Notebook: {grade.notebook}  ")
    out.append(f"Total: **{_pts(grade.total)} / {_pts(grade.max_total)}** points")
    out.append("")
    if grade.notes:
        out += ["Notes from the grader:", ""] + [f"- {n}" for n in grade.notes] + [""]
    icons = {"passed": "✓", "failed": "✗", "skipped": "–"}
    for i in grade.exercises:
        r = grade.results.get(i) or zero(i, "not graded")
        out.append(f"## {i} · {EXERCISES[i].title} (`{EXERCISES[i].function}`): "
                   f"{_pts(r.points)} / {_pts(r.max_points)}")
        out.append("")
        if r.subchecks and r.messages[:1] != ["not implemented yet"]:
            out += ["| | check | points | message |", "|---|---|---|---|"]
            for s in r.subchecks:
                out.append(f"| {icons.get(s.status, '?')} | {_md(s.name)} | {_pts(s.points)}/{_pts(s.max_points)} "
                           f"| {_md(s.message)} |")
            out.append("")
            if r.hint:
                out += [f"**Hint:** {r.hint}", ""]
        else:
            out += [f"- {m}" for m in r.messages] + [""]
        if r.seed is not None:
            out += [f"<sub>random inputs: seed {r.seed}</sub>", ""]
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------- the CSV

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets read as the start of a formula


def escape_cell(value: str) -> str:
    """Prefix a quote to text a spreadsheet would run as a formula (OWASP's CSV injection advice)."""
    value = str(value)
    return "'" + value if value.startswith(_FORMULA_START) else value


def unescape_cell(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(_FORMULA_START) else value


def csv_row(grade: SubmissionGrade) -> dict:
    row = {"submission": grade.submission, "total": _pts(grade.total), "max_total": _pts(grade.max_total),
           "notes": " | ".join(str(n).replace("\n", " ") for n in grade.notes), "sha256": grade.sha256}
    for i in grade.exercises:
        row[i] = _pts(grade.points(i))
    return row


def read_csv(path: Path) -> list[dict]:
    """The rows of an earlier run (unescaped); an unreadable CSV counts as none (everything is regraded)."""
    if not path.exists():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [{k: unescape_cell(v or "") for k, v in r.items() if isinstance(k, str)} for r in csv.DictReader(f)]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write all rows atomically: a temporary file in the same folder, then os.replace."""
    ids = sorted({k for row in rows for k in row if k in EXERCISES})
    columns = ["submission", *ids, "total", "max_total", "notes", "sha256"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: str(r.get("submission", ""))):
        writer.writerow({c: escape_cell(row.get(c, "")) for c in columns})
    text = buffer.getvalue().encode("utf-8", errors="backslashreplace")  # never fails on odd characters
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
