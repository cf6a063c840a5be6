"""Write exercises/ from solutions/: the exercise notebooks are generated, never edited.

In a solution notebook (nbgrader's markers, which instructors already know):

* in code cells, every region from a line ``### BEGIN SOLUTION`` to a line
  ``### END SOLUTION`` (both included) becomes ``# YOUR CODE HERE`` and
  ``raise NotImplementedError()``, indented like the BEGIN line;
* in markdown cells, every region from ``<!-- BEGIN SOLUTION -->`` to
  ``<!-- END SOLUTION -->`` becomes ``_Your answer here._``;
* cells tagged ``solution_only`` are dropped;
* outputs and execution counts are cleared and metadata normalised, and the
  file is written as Jupyter writes it (sorted keys, 1-space indent, final
  newline), so releasing twice gives the same bytes.

``release()`` writes the files; ``release(check=True)`` writes nothing and
returns the exercise notebooks that differ from what it would write.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

__all__ = ["ReleaseError", "release", "release_notebook", "strip_solutions", "ReleaseReport"]

CODE_BEGIN, CODE_END = "### BEGIN SOLUTION", "### END SOLUTION"
MD_BEGIN, MD_END = "<!-- BEGIN SOLUTION -->", "<!-- END SOLUTION -->"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
MD_STUB = "_Your answer here._"
DROP_TAG = "solution_only"
# Cell metadata that says something about the cell; the rest (execution
# timings, scroll state, collapsed outputs) is noise and dropped.
KEEP_CELL_METADATA = ("tags", "editable", "deletable", "slideshow")
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


class ReleaseError(ValueError):
    """A solution notebook cannot be released (e.g. unbalanced markers)."""


def strip_solutions(source: str, begin: str, end: str, stub_lines, where: str) -> str:
    """Replace each ``begin``...``end`` region of ``source`` by ``stub_lines``
    indented like the ``begin`` line. ``where`` names the cell in errors."""
    out: list[str] = []
    open_at: int | None = None
    indent = ""
    for number, line in enumerate(source.split("\n"), start=1):
        stripped = line.strip()
        if stripped == begin:
            if open_at is not None:
                raise ReleaseError(f"{where}: {begin!r} at line {number} but the region opened at line "
                                   f"{open_at} is not closed by {end!r}")
            open_at = number
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in stub_lines)
        elif stripped == end:
            if open_at is None:
                raise ReleaseError(f"{where}: {end!r} at line {number} without a matching {begin!r}")
            open_at = None
        elif open_at is None:
            out.append(line)
    if open_at is not None:
        raise ReleaseError(f"{where}: {begin!r} at line {open_at} is never closed by {end!r}")
    return "\n".join(out)


def _cell_id(stem: str, index: int, cell) -> str:
    given = cell.get("id")
    if isinstance(given, str) and re.fullmatch(r"[a-zA-Z0-9-_]{1,64}", given):
        return given
    return hashlib.sha1(f"{stem}:{index}".encode()).hexdigest()[:12]


def release_notebook(solution: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The exercise version of a solution notebook (a new notebook object)."""
    stem = Path(name).stem
    cells = []
    seen_ids: set[str] = set()
    for index, cell in enumerate(solution.cells):
        tags = list(cell.get("metadata", {}).get("tags", []))
        if DROP_TAG in tags:
            continue
        where = f"{name}: cell {index} (id {cell.get('id', '?')})"
        source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        metadata = {k: v for k, v in cell.get("metadata", {}).items() if k in KEEP_CELL_METADATA}
        cell_id = _cell_id(stem, index, cell)
        if cell_id in seen_ids:
            raise ReleaseError(f"{where}: duplicate cell id {cell_id!r}")
        seen_ids.add(cell_id)
        if cell.cell_type == "code":
            if MD_BEGIN in source or MD_END in source:
                raise ReleaseError(f"{where}: markdown solution markers in a code cell")
            new = nbformat.v4.new_code_cell(strip_solutions(source, CODE_BEGIN, CODE_END, STUB, where),
                                            metadata=metadata)
            new.outputs = []
            new.execution_count = None
        elif cell.cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(strip_solutions(source, MD_BEGIN, MD_END, (MD_STUB,), where),
                                                metadata=metadata)
            if cell.get("attachments"):
                new.attachments = cell.attachments
        else:
            new = nbformat.v4.new_raw_cell(source, metadata=metadata)
        new.id = cell_id
        cells.append(new)
    metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"},
                "course_lib": {"notebook": stem}}
    nb = nbformat.v4.new_notebook(cells=cells, metadata=metadata)
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def _serialize(nb: nbformat.NotebookNode) -> bytes:
    text = nbformat.writes(nb, version=4)  # sorted keys, indent=1, as Jupyter writes
    if not text.endswith("\n"):
        text += "\n"
    return text.encode("utf-8")


def _read(path: Path) -> nbformat.NotebookNode:
    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 - name the file in the error
        raise ReleaseError(f"{path}: not a readable notebook ({type(exc).__name__}: {exc})") from exc


@dataclass
class ReleaseReport:
    written: list[Path]
    unchanged: list[Path]
    differing: list[Path]  # with check=True: would be (re)written
    stale: list[Path]      # exercise notebooks without a solution notebook

    @property
    def in_sync(self) -> bool:
        return not self.differing and not self.stale


def expected_exercises(solutions_dir: str | Path = "solutions") -> dict[str, bytes]:
    """File name -> the bytes release writes for it, for every solutions/*.ipynb."""
    out = {}
    for path in sorted(Path(solutions_dir).glob("*.ipynb")):
        out[path.name] = _serialize(release_notebook(_read(path), path.name))
    return out


def release(solutions_dir: str | Path = "solutions", exercises_dir: str | Path = "exercises",
            check: bool = False) -> ReleaseReport:
    """Write ``exercises_dir/NN_topic.ipynb`` for each ``solutions_dir/NN_topic.ipynb``.

    Every solution notebook is processed before anything is written, so a
    marker error in one leaves all exercise notebooks untouched. With
    ``check=True`` nothing is written; the report lists what differs.
    """
    solutions_dir, exercises_dir = Path(solutions_dir), Path(exercises_dir)
    if not solutions_dir.is_dir():
        raise ReleaseError(f"{solutions_dir}: no such folder of solution notebooks")
    expected = expected_exercises(solutions_dir)
    report = ReleaseReport([], [], [], [])
    if not check:
        exercises_dir.mkdir(parents=True, exist_ok=True)
    for name, data in expected.items():
        target = exercises_dir / name
        current = target.read_bytes() if target.exists() else None
        if current == data:
            report.unchanged.append(target)
        elif check:
            report.differing.append(target)
        else:
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
            report.written.append(target)
    if exercises_dir.is_dir():
        report.stale = [p for p in sorted(exercises_dir.glob("*.ipynb")) if p.name not in expected]
    return report
