"""exercises/ is generated from solutions/: release is exact, reproducible and strict;
solution notebooks earn full points and pristine exercises fail with "not implemented yet"."""

import ast
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from course_lib.checks.grading import grade_submission
from course_lib.checks.release import ReleaseError, expected_exercises, release, release_notebook
from course_lib.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
EXERCISE_NOTEBOOKS = sorted((ROOT / "exercises").glob("*.ipynb"))


def _code_cell(source, **kw):
    cell = nbformat.v4.new_code_cell(source, **kw)
    cell.outputs = [nbformat.v4.new_output("stream", text="stale output\n")]
    cell.execution_count = 7
    return cell


def _notebook(*cells, **metadata):
    nb = nbformat.v4.new_notebook(cells=list(cells), metadata=metadata)
    for i, c in enumerate(nb.cells):
        c.id = f"cell-{i}"
    return nb


def test_there_are_solution_notebooks():
    assert ROOT / "solutions" / "00_welcome.ipynb" in SOLUTIONS


def test_exercises_folder_is_exactly_what_release_writes():
    expected = expected_exercises(ROOT / "solutions")
    assert set(expected) == {p.name for p in SOLUTIONS}
    on_disk = {p.name for p in EXERCISE_NOTEBOOKS}
    assert on_disk == set(expected), (f"exercises/ and solutions/ hold different notebooks: "
                                      f"{sorted(on_disk ^ set(expected))}; run `python -m course_lib release`")
    for name, data in expected.items():
        assert (ROOT / "exercises" / name).read_bytes() == data, \
            f"exercises/{name} differs from a fresh release; run `python -m course_lib release`"


def test_release_check_command_is_clean_for_the_repo(capsys):
    code = cli(["release", "--check", "--solutions", str(ROOT / "solutions"),
                "--exercises", str(ROOT / "exercises")])
    assert code == 0, capsys.readouterr().out


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_every_solution_has_marked_regions_that_release_removes(path):
    text = path.read_text(encoding="utf-8")
    assert "### BEGIN SOLUTION" in text
    exercise = (ROOT / "exercises" / path.name).read_text(encoding="utf-8")
    for marker in ("### BEGIN SOLUTION", "### END SOLUTION", "<!-- BEGIN SOLUTION -->"):
        assert marker not in exercise
    assert "raise NotImplementedError()" in exercise


def test_release_is_idempotent_and_byte_reproducible(tmp_path):
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    shutil.copytree(ROOT / "solutions", solutions)
    first = release(solutions, exercises)
    assert sorted(p.name for p in first.written) == [p.name for p in SOLUTIONS]
    snapshot = {p.name: p.read_bytes() for p in exercises.glob("*.ipynb")}
    second = release(solutions, exercises)
    assert second.written == [] and len(second.unchanged) == len(SOLUTIONS)
    assert {p.name: p.read_bytes() for p in exercises.glob("*.ipynb")} == snapshot
    assert release(solutions, exercises, check=True).in_sync
    for data in snapshot.values():  # Jupyter's own format: sorted keys, 1-space indent, final newline
        text = data.decode("utf-8")
        assert text == json.dumps(json.loads(text), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def test_release_check_lists_differing_and_stale_notebooks(tmp_path, capsys):
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    shutil.copytree(ROOT / "solutions", solutions)
    release(solutions, exercises)
    target = exercises / "00_welcome.ipynb"
    target.write_text(target.read_text(encoding="utf-8").replace("YOUR CODE HERE", "edited by hand"),
                      encoding="utf-8")
    (exercises / "99_orphan.ipynb").write_text("{}", encoding="utf-8")
    code = cli(["release", "--check", "--solutions", str(solutions), "--exercises", str(exercises)])
    out = capsys.readouterr().out
    assert code == 1 and "00_welcome.ipynb" in out and "99_orphan.ipynb" in out
    assert "edited by hand" in target.read_text(encoding="utf-8")  # --check writes nothing
    assert cli(["release", "--solutions", str(solutions), "--exercises", str(exercises)]) == 0
    assert "edited by hand" not in target.read_text(encoding="utf-8")


def test_stubs_keep_the_indentation_of_nested_functions_and_methods():
    source = (
        "import torch\n"
        "\n"
        "class Model:\n"
        "    def forward(self, x):\n"
        "        def inner(y):\n"
        "            ### BEGIN SOLUTION\n"
        "            return y * 2\n"
        "            ### END SOLUTION\n"
        "        ### BEGIN SOLUTION\n"
        "        return inner(x)\n"
        "        ### END SOLUTION\n"
        "\n"
        "def top(x):\n"
        "    ### BEGIN SOLUTION\n"
        "    return x\n"
        "    ### END SOLUTION"
    )
    nb = release_notebook(_notebook(_code_cell(source)), "nested.ipynb")
    expected = (
        "import torch\n"
        "\n"
        "class Model:\n"
        "    def forward(self, x):\n"
        "        def inner(y):\n"
        "            # YOUR CODE HERE\n"
        "            raise NotImplementedError()\n"
        "        # YOUR CODE HERE\n"
        "        raise NotImplementedError()\n"
        "\n"
        "def top(x):\n"
        "    # YOUR CODE HERE\n"
        "    raise NotImplementedError()"
    )
    assert nb.cells[0].source == expected
    ast.parse(nb.cells[0].source)


def test_release_clears_outputs_drops_solution_only_cells_and_normalises_metadata():
    solution = _notebook(
        nbformat.v4.new_markdown_cell("Why?\n<!-- BEGIN SOLUTION -->\nBecause.\n<!-- END SOLUTION -->\nEnd."),
        _code_cell("x = 1", metadata={"tags": ["keep-me"], "ExecuteTime": {"start": "yesterday"}}),
        _code_cell("assert answer_is_right", metadata={"tags": ["solution_only"]}),
        kernelspec={"name": "my-env", "display_name": "mine", "language": "python"},
        language_info={"name": "python", "version": "3.11.7"},
        widgets={"state": {}},
    )
    nb = release_notebook(solution, "05_demo.ipynb")
    assert [c.cell_type for c in nb.cells] == ["markdown", "code"]
    assert nb.cells[0].source == "Why?\n_Your answer here._\nEnd."
    assert nb.cells[1].outputs == [] and nb.cells[1].execution_count is None
    assert nb.cells[1].metadata == {"tags": ["keep-me"]}
    assert nb.metadata == {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                           "language_info": {"name": "python"}, "course_lib": {"notebook": "05_demo"}}
    nbformat.validate(nb)


@pytest.mark.parametrize("source, problem", [
    ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "never closed"),
    ("def f():\n    return 1\n    ### END SOLUTION\n", "without a matching"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", "is not closed"),
])
def test_unbalanced_markers_name_the_notebook_and_cell(tmp_path, source, problem):
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    solutions.mkdir()
    exercises.mkdir()
    good = _notebook(_code_cell("def g():\n    ### BEGIN SOLUTION\n    return 2\n    ### END SOLUTION"))
    nbformat.write(good, solutions / "01_good.ipynb")
    nbformat.write(_notebook(_code_cell("x = 0"), _code_cell(source)), solutions / "02_broken.ipynb")
    with pytest.raises(ReleaseError) as info:
        release(solutions, exercises)
    message = str(info.value)
    assert "02_broken.ipynb" in message and "cell 1" in message and problem in message
    assert list(exercises.iterdir()) == []  # nothing written when any notebook is broken


def test_markdown_markers_must_balance_too():
    nb = _notebook(nbformat.v4.new_markdown_cell("<!-- BEGIN SOLUTION -->\nanswer"))
    with pytest.raises(ReleaseError, match="never closed"):
        release_notebook(nb, "03_md.ipynb")


# ---------------------------------------------------------------- executing the notebooks


@pytest.mark.slow
@pytest.mark.parametrize("path", EXERCISE_NOTEBOOKS, ids=lambda p: p.name)
def test_pristine_exercise_fails_every_check_with_not_implemented_yet(path):
    grade = grade_submission(path, timeout=120)
    assert grade.exercises, f"{path.name}: no exercise detected"
    for exercise_id in grade.exercises:
        result = grade.results[exercise_id]
        assert result.points == 0 and not result.passed
        assert "not implemented yet" in result.messages, (exercise_id, result.messages)
    notes = " ".join(grade.notes)
    assert "died" not in notes and "NameError" not in notes and "stopped" not in notes, grade.notes
    # running the notebook raises nothing but the stubs' NotImplementedError
    assert {name for _, name in grade.cell_errors} <= {"NotImplementedError"}, grade.cell_errors


@pytest.mark.slow
@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solution_notebook_earns_full_points_under_the_grader(path):
    grade = grade_submission(path, timeout=120)
    assert grade.exercises
    assert grade.total == grade.max_total > 0, (grade.notes, {i: r.messages for i, r in grade.results.items()})
    assert grade.notes == [] and grade.cell_errors == [], grade.notes  # ran without a single error
