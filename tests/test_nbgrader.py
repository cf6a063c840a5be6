"""The solution notebooks work with real nbgrader: generate_assignment, then autograde a finished and an
untouched submission (full points and zero points)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib.checks import EXERCISES
from course_lib.teaching.nbgrader import HIDDEN_BEGIN, add_nbgrader_metadata, graded_ids

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
POINTS = {k: v.points for k, v in EXERCISES.items()}


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_every_solution_carries_nbgrader_metadata_with_the_registry_points(path):
    nb = nbformat.read(path, as_version=4)
    graded = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
              if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"}
    ids = graded_ids(nb)
    expected = sorted(k for k, v in EXERCISES.items() if v.notebook == path.stem)
    assert sorted(ids) == expected, f"{path.name}: test cells for {ids}, registry has {expected}"
    for exercise in ids:
        cell = graded.get(f"test_{exercise.replace('.', '_')}")
        assert cell is not None, f"{path.name}: no autograded test cell for {exercise}"
        assert cell.metadata["nbgrader"]["points"] == POINTS[exercise]
        assert cell.source.startswith(HIDDEN_BEGIN) and cell.metadata["nbgrader"]["locked"]
    copy = nbformat.from_dict(nb)
    assert add_nbgrader_metadata(copy, POINTS) and copy == nb, f"{path.name}: metadata is stale; re-run it"


def test_metadata_refuses_an_unknown_exercise():
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell('assert run_check("99.9", f).passed',
                                              metadata={"tags": ["solution_only"]}))
    with pytest.raises(KeyError, match="99.9"):
        add_nbgrader_metadata(nb, POINTS)


def _nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    bindir = str(Path(sys.executable).parent)  # nbgrader calls `alembic` from the venv's bin
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
           "PYTHONPATH": str(ROOT), "JUPYTER_CONFIG_DIR": str(course / ".jupyter"),
           "JUPYTER_DATA_DIR": str(course / ".jupyter-data"), "IPYTHONDIR": str(course / ".ipython")}
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True,
                          text=True, timeout=600)


def test_nbgrader_round_trip_gives_full_points_to_the_solution_and_zero_to_an_untouched_copy(tmp_path):
    pytest.importorskip("nbgrader", reason="nbgrader is in requirements.txt: run make test")
    from nbgrader.api import Gradebook

    name = "00_welcome"
    course = tmp_path / "course"
    (course / "source" / name).mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / f"{name}.ipynb", course / "source" / name / f"{name}.ipynb")
    db = course / "gradebook.db"
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.course_id = 'attention'\n"
        f"c.CourseDirectory.root = {str(course)!r}\nc.CourseDirectory.db_url = 'sqlite:///{db}'\n"
        "c.ExecutePreprocessor.timeout = 300\n")
    done = _nbgrader(course, "generate_assignment", name, "--force")
    released = course / "release" / name / f"{name}.ipynb"
    assert done.returncode == 0 and released.exists(), done.stdout + done.stderr
    student = nbformat.read(released, as_version=4)
    assert "BEGIN SOLUTION" not in "".join(c.source for c in student.cells)
    assert "run_check" not in "".join(c.source for c in student.cells)  # the hidden test is not handed out

    for student_id, source in (("finished", course / "source" / name), ("untouched", released.parent)):
        target = course / "submitted" / student_id / name
        target.mkdir(parents=True)
        shutil.copy(source / f"{name}.ipynb", target / f"{name}.ipynb")
    done = _nbgrader(course, "autograde", name, "--force")
    assert done.returncode == 0, done.stdout + done.stderr
    with Gradebook(f"sqlite:///{db}") as gb:
        finished = gb.find_submission(name, "finished")
        untouched = gb.find_submission(name, "untouched")
        assert finished.max_score == POINTS["00.1"]
        assert finished.score == finished.max_score, [(g.name, g.score) for n in finished.notebooks for g in n.grades]
        assert untouched.score == 0
