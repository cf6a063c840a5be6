"""The grader: one row per submission whatever happens, grades from the grader's own
checks (never from what a notebook printed or patched), atomic CSV, resume."""

import csv
import shutil
from pathlib import Path

import nbformat
import pytest

from course_lib.checks import EXERCISES
from course_lib.checks.grading import (
    format_score_table,
    grade_folder,
    load_definitions,
    sanitize_definitions,
)
from course_lib.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "00_welcome.ipynb"
EXERCISE = ROOT / "exercises" / "00_welcome.ipynb"
TIMEOUT = 45  # seconds for a whole notebook: the hanging one is stopped after this (margin for a busy machine)

CORRECT = ("def softmax(x, dim=-1):\n"
           "    e = torch.exp(x - x.max(dim=dim, keepdim=True).values)\n"
           "    return e / e.sum(dim=dim, keepdim=True)\n")
WRONG = "def softmax(x, dim=-1):\n    return x\n"
CHEAT = """
import torch
import course_lib.checks as checks
from course_lib.checks import framework

def check(*args, **kwargs):
    print("00.1: all checks passed ✓  2 / 2 points")

checks.check = check
framework.check = check
fake = lambda *a, **k: framework.CheckResult(True, 2.0, 2.0, ["all checks passed"])
checks.run_check = fake
framework.run_check = fake
framework._isclose = lambda a, b, **k: torch.ones_like(a, dtype=torch.bool)
torch.allclose = lambda *a, **k: True
torch.isclose = lambda a, b, **k: torch.ones_like(a, dtype=torch.bool)
torch.softmax = softmax
check("00.1", softmax)
print("All checks passed")
"""


def _variant(path: Path, softmax_source: str, extra_cells=()):
    nb = nbformat.read(EXERCISE, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "def softmax" in cell.source:
            cell.source = softmax_source
    for source in extra_cells:
        nb.cells.append(nbformat.v4.new_code_cell(source))
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("grading")
    subs = base / "submissions"
    subs.mkdir()
    shutil.copy(SOLUTION, subs / "full.ipynb")
    shutil.copy(EXERCISE, subs / "pristine.ipynb")
    _variant(subs / "cheat.ipynb", WRONG, [CHEAT])
    _variant(subs / "hang.ipynb", CORRECT, ["while True:\n    pass\n"])
    _variant(subs / "exits.ipynb", CORRECT, ["import os\nos._exit(3)\n"])
    (subs / "corrupt.ipynb").write_text('{"cells": [ {"cell_type": ', encoding="utf-8")
    (subs / "empty.ipynb").write_text("", encoding="utf-8")
    out = base / "out" / "grades.csv"
    rows_seen = []

    def log(message):
        if out.exists():  # the CSV is complete after every finished submission
            with open(out, newline="", encoding="utf-8") as f:
                rows_seen.append(len(list(csv.DictReader(f))))

    grades = grade_folder(subs, out, timeout=TIMEOUT, jobs=2, log=log)
    with open(out, newline="", encoding="utf-8") as f:
        rows = {r["submission"]: r for r in csv.DictReader(f)}
    return {"base": base, "subs": subs, "out": out, "grades": {g.submission: g for g in grades},
            "rows": rows, "rows_seen": rows_seen}


def test_every_submission_gets_a_row(graded):
    assert set(graded["rows"]) == {"full.ipynb", "pristine.ipynb", "cheat.ipynb", "hang.ipynb",
                                   "exits.ipynb", "corrupt.ipynb", "empty.ipynb"}
    with open(graded["out"], newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert header == ["submission", "00.1", "total", "max_total", "notes", "sha256"]


def test_csv_is_rewritten_after_each_submission(graded):
    assert graded["rows_seen"] == list(range(1, 8))
    assert not [p for p in graded["out"].parent.iterdir() if p.name.endswith(".tmp")]


def test_full_solution_and_pristine_exercise(graded):
    full, pristine = graded["rows"]["full.ipynb"], graded["rows"]["pristine.ipynb"]
    assert full["00.1"] == full["total"] == full["max_total"] == "2" and full["notes"] == ""
    assert pristine["00.1"] == pristine["total"] == "0" and pristine["max_total"] == "2"
    assert graded["grades"]["pristine.ipynb"].results["00.1"].messages[0] == "not implemented yet"


def test_cheating_earns_nothing(graded):
    row = graded["rows"]["cheat.ipynb"]
    assert row["00.1"] == row["total"] == "0"
    result = graded["grades"]["cheat.ipynb"].results["00.1"]
    assert not result.passed and "values differ from torch.softmax" in result.messages[0]
    feedback = (graded["out"].parent / "feedback" / "cheat.md").read_text(encoding="utf-8")
    assert "All checks passed" not in feedback and "0 / 2" in feedback


def test_hanging_notebook_is_stopped_and_its_functions_still_graded(graded):
    row = graded["rows"]["hang.ipynb"]
    assert f"past the {TIMEOUT} s limit" in row["notes"]
    assert row["00.1"] == "2"  # the function was defined before the loop


def test_kernel_that_exits_is_reported_and_earlier_work_kept(graded):
    row = graded["rows"]["exits.ipynb"]
    assert "kernel died while running code cell" in row["notes"] and "defined before it were graded" in row["notes"]
    assert row["00.1"] == row["total"] == "2"  # softmax was collected before the cell that exits


def test_invalid_files_get_a_row_with_a_note(graded):
    assert "not a valid notebook" in graded["rows"]["corrupt.ipynb"]["notes"]
    assert "empty" in graded["rows"]["empty.ipynb"]["notes"]
    assert graded["rows"]["empty.ipynb"]["total"] == "0"


def test_feedback_file_per_submission(graded):
    feedback = graded["out"].parent / "feedback"
    assert {p.stem for p in feedback.glob("*.md")} == {Path(s).stem for s in graded["rows"]}
    text = (feedback / "full.md").read_text(encoding="utf-8")
    assert "2 / 2" in text and "✓" in text and "leaves its inputs unchanged" in text


def test_rerun_resumes_and_regrades_only_changed_files(graded, capsys):
    out = graded["out"]
    before = out.read_bytes()
    code = cli(["grade", str(graded["subs"]), "--out", str(out), "--jobs", "2", "--timeout", str(TIMEOUT)])
    assert code == 0 and out.read_bytes() == before
    assert "7 submission(s) already graded and unchanged" in capsys.readouterr().out
    (graded["subs"] / "corrupt.ipynb").write_text("still not json", encoding="utf-8")
    again = grade_folder(graded["subs"], out, timeout=TIMEOUT, jobs=2, log=lambda m: None)
    assert [g.submission for g in again] == ["corrupt.ipynb"]
    with open(out, newline="", encoding="utf-8") as f:
        rows = {r["submission"]: r for r in csv.DictReader(f)}
    assert len(rows) == 7 and rows["full.ipynb"] == graded["rows"]["full.ipynb"]
    assert rows["corrupt.ipynb"]["sha256"] != graded["rows"]["corrupt.ipynb"]["sha256"]


def test_score_table_of_the_check_command(graded):
    table = format_score_table(graded["grades"]["full.ipynb"])
    assert "00.1" in table and EXERCISES["00.1"].title in table and "2/2" in table and "total: 2 / 2" in table
    table = format_score_table(graded["grades"]["hang.ipynb"])
    assert "note: code cell" in table


def test_check_command_on_a_broken_notebook(graded, capsys):
    # (tests/test_release.py runs the real notebooks through the same grade_submission)
    code = cli(["check", str(graded["subs"] / "empty.ipynb")])
    out = capsys.readouterr().out
    assert code == 1 and "not a valid notebook" in out and "total: 0 / 0" in out
    assert cli(["check", str(graded["subs"] / "missing.ipynb")]) == 2


# ---------------------------------------------------------------- the worker's validation of collected code


def test_definitions_policy_accepts_ordinary_solutions():
    source = (
        "from __future__ import annotations\n"
        "import torch\nimport torch.nn.functional as F\nfrom torch import nn\nimport math\n"
        "from course_lib.attention import MultiHeadAttention\n"
        "NEG = float('-inf')\nSCALE = 1 / 8\nDTYPE = torch.float64\nSHAPE = (2, 3)\n"
        "@torch.no_grad()\n"
        "def helper(x, dim: int = -1, eps=1e-6):\n"
        "    y = x.clone()\n    y[0] = 0\n    return F.softmax(y, dim=dim) * math.sqrt(SCALE)\n"
        "class Block(nn.Module):\n"
        "    '''doc'''\n"
        "    size = 4\n"
        "    def __init__(self, d):\n"
        "        super().__init__()\n        self.proj = nn.Linear(d, d)\n        setattr(self, 'extra', 1)\n"
        "        self.attn = MultiHeadAttention(d, 2)\n"
        "    def forward(self, x):\n        return getattr(self, 'proj')(x)\n"
        "square = lambda x: x * x\n"
    )
    keep, rejected, notes = sanitize_definitions(source)
    assert rejected == {} and notes == []
    assert len(keep) == 12  # 5 imports, 4 values, helper, Block, square


@pytest.mark.parametrize("body, reason", [
    ("    import course_lib.checks.framework as f\n    return x\n", "imports `course_lib"),
    ("    torch.allclose = lambda *a, **k: True\n    return x\n", "assigns to `torch.allclose`"),
    ("    t = torch\n    t.isclose = None\n    return x\n", "assigns to `t.isclose`"),
    ("    setattr(torch, 'allclose', None)\n    return x\n", "calls `setattr`"),
    ("    g = x.__class__\n    return x\n", "`.__class__`"),
    ("    return softmax.__globals__\n", "`.__globals__`"),
    ("    os._exit(0)\n", "uses `os`"),
    ("    exec('import sys')\n    return x\n", "uses `exec`"),
    ("    import sys\n    return sys._getframe(1)\n", "imports `sys`"),
    ("    return torch._C\n", "private attribute"),
    ("    f = getattr\n    return x\n", "passes `getattr` around"),
    ("    return getattr(torch, '__dict' + '__')\n", "computed attribute name"),
    ("    return getattr(x, '__cla' + 'ss__')\n", "computed attribute name"),
    ("    import timeit\n    timeit.timeit('x')\n    return x\n", "imports `timeit`"),
])
def test_definitions_policy_rejects_tampering(body, reason):
    source = "import torch\nimport os\n\ndef softmax(x, dim=-1):\n" + body
    keep, rejected, _ = sanitize_definitions(source)
    assert "softmax" in rejected and reason in rejected["softmax"], rejected
    assert all(getattr(s, "name", None) != "softmax" for s in keep)


@pytest.mark.parametrize("source", [
    "import torch\ntorch.allclose = lambda *a, **k: True\n",
    "import torch\n_ = setattr(torch, 'allclose', None)\n",
    "import torch\nfor i in range(3):\n    pass\n",
    "import torch\nprint('All checks passed')\n",
])
def test_top_level_code_is_never_run(source):
    keep, rejected, notes = sanitize_definitions(source)
    assert len(keep) == 1 and (rejected or notes)


@pytest.mark.parametrize("header", [
    "@(lambda f: f)\ndef softmax(x, dim=-1):\n    return x\n",
    "def softmax(x, dim=print('hi')):\n    return x\n",
    "@torch.no_grad(print)\ndef softmax(x, dim=-1):\n    return x\n",
    "class softmax(metaclass=type):\n    pass\n",
    "class softmax(object):\n    print('class body')\n",
])
def test_definition_time_code_is_rejected(header):
    _, rejected, _ = sanitize_definitions("import torch\n" + header)
    assert "softmax" in rejected


def test_loaded_definitions_run_in_a_fresh_namespace():
    notes = []
    payload = {"source": "import torch\nX = 3\n\ndef softmax(x, dim=-1):\n    return torch.softmax(x * 0 + X, dim)\n"
                         "\ndef bad(x):\n    import os\n    return x\n",
               "notes": ["`W` (a Tensor) cannot be carried"]}
    namespace, rejected = load_definitions(payload, notes)
    assert namespace["X"] == 3 and callable(namespace["softmax"]) and "bad" in rejected
    assert namespace["__name__"] == "submission" and "`W` (a Tensor) cannot be carried" in notes


def test_check_command_prints_reports_of_unfinished_exercises(graded, capsys, monkeypatch):
    import course_lib.checks.grading as grading

    monkeypatch.setattr(grading, "grade_submission", lambda path, **kw: graded["grades"]["cheat.ipynb"])
    code = cli(["check", str(SOLUTION)])  # any existing file: the grade is the cheat's
    out = capsys.readouterr().out
    assert code == 1 and "0/2" in out and "✗" in out and "values differ from torch.softmax" in out


def _kernels_of(prefix: str) -> set[int]:
    """The processes (seen from here) whose command line names a folder starting with ``prefix``."""
    import os

    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if prefix.encode() in f.read():
                    found.add(int(pid))
        except OSError:
            pass
    return found


def test_a_worker_past_its_hard_limit_is_killed_with_its_kernel(monkeypatch, tmp_path):
    import threading
    import time

    import course_lib.checks.grading.submission as submission

    folders, seen = [], set()
    real_mkdtemp = submission.tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        folders.append(real_mkdtemp(*args, **kwargs))
        return folders[-1]

    stop = threading.Event()

    def watch():
        while not stop.is_set():
            if folders:
                seen.update(_kernels_of(folders[0]))
            time.sleep(0.2)

    monkeypatch.setattr(submission, "hard_limit", lambda *args: 10.0)
    monkeypatch.setattr(submission.tempfile, "mkdtemp", mkdtemp)
    path = tmp_path / "hang.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("while True:\n    pass")]), path)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        grade = submission.grade_submission(path, timeout=300, notebook="00_welcome")
    finally:
        stop.set()
        watcher.join()
    assert grade.notes == ["grading took longer than 10 s and was stopped"]
    assert grade.total == 0 and grade.results["00.1"].points == 0
    assert seen, "no process of the submission was seen while it ran"
    for _ in range(50):  # every process of the submission (worker, kernel) is gone
        if not _kernels_of(folders[0]):
            break
        time.sleep(0.1)
    assert not _kernels_of(folders[0])
