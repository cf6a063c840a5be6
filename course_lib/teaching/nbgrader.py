"""nbgrader cell metadata for the solution notebooks, so instructors who run nbgrader can use them as they are.

nbgrader (``generate_assignment``, ``autograde``, ``generate_feedback``, the
formgrader) reads three things from a source notebook: solution cells (whose
``### BEGIN SOLUTION`` ... ``### END SOLUTION`` regions it replaces by a stub,
the same markers the course's own ``release`` uses; a markdown answer between
``<!-- BEGIN SOLUTION -->`` markers becomes a manually graded answer worth 0
points, which formgrader shows), autograded test cells
with their points, and locked cells. In ``solutions/`` every exercise already
has a ``solution_only`` cell that runs the exercise's checker and asserts that
it passed; :func:`add_nbgrader_metadata` marks it as nbgrader's autograded test
cell, worth the exercise's points in the registry, with its code between
``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` so that a student's
copy shows an empty locked cell (the check cell above it still shows the
report) and ``autograde`` puts the test back.

nbgrader grades a test cell all or nothing; the course's grader
(``python -m course_lib grade``) gives the checker's partial points.
"""

from __future__ import annotations

import re

__all__ = ["SOLUTION_BEGIN", "HIDDEN_BEGIN", "HIDDEN_END", "add_nbgrader_metadata", "graded_ids"]

SOLUTION_BEGIN, MD_SOLUTION_BEGIN = "### BEGIN SOLUTION", "<!-- BEGIN SOLUTION -->"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
_RUN_CHECK = re.compile(r"""run_check\(\s*["'](\d\d\.\d)["']""")


def _meta(**kw) -> dict:
    return {"schema_version": 3, **kw}


def graded_ids(nb) -> list[str]:
    """The exercise IDs whose checker a `solution_only` cell runs, in order."""
    ids = []
    for cell in nb.cells:
        if cell.cell_type == "code" and "solution_only" in cell.get("metadata", {}).get("tags", []):
            ids.extend(_RUN_CHECK.findall(cell.source))
    return ids


def add_nbgrader_metadata(nb, points: dict[str, float]) -> int:
    """Mark the solution cells and the autograded test cells of a solution notebook (in place); idempotent.

    points: exercise ID -> points (the registry's). Returns the number of cells marked."""
    marked = 0
    solution_count = 0
    for cell in nb.cells:
        meta = cell.setdefault("metadata", {})
        if cell.cell_type == "markdown" and MD_SOLUTION_BEGIN in cell.source:
            # a written answer to a question: shown to the grader in formgrader, worth no points
            solution_count += 1
            meta["nbgrader"] = _meta(grade=True, solution=True, locked=False, points=0.0,
                                     grade_id=f"answer_{solution_count}", task=False)
            marked += 1
            continue
        if cell.cell_type != "code":
            meta.pop("nbgrader", None)
            continue
        tags = meta.get("tags", [])
        ids = _RUN_CHECK.findall(cell.source) if "solution_only" in tags else []
        if ids:
            if len(ids) != 1:
                raise ValueError(f"a test cell must run one exercise's checker, this one runs {ids}")
            exercise = ids[0]
            if exercise not in points:
                raise KeyError(f"exercise {exercise} is not in the registry")
            body = cell.source
            if HIDDEN_BEGIN not in body:
                body = f"{HIDDEN_BEGIN}\n{body.rstrip()}\n{HIDDEN_END}"
            cell.source = body
            meta["nbgrader"] = _meta(grade=True, solution=False, locked=True, points=float(points[exercise]),
                                     grade_id=f"test_{exercise.replace('.', '_')}", task=False)
            marked += 1
        elif SOLUTION_BEGIN in cell.source:
            solution_count += 1
            meta["nbgrader"] = _meta(grade=False, solution=True, locked=False,
                                     grade_id=f"solution_{solution_count}", task=False)
            marked += 1
        else:
            meta.pop("nbgrader", None)
    return marked
