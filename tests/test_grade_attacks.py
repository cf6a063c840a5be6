"""Every attack on the grader found in issue 10, built as a submission and graded
with the classmates' honest ones in one shared run: no points without work, no
forged grade, no classmate affected, no run stopped, every row written.

The attacks that reach outside the submission (signals to the grader, files
outside its folder, a detached daemon) are only built where the grader isolates
submissions in namespaces: elsewhere they would hit the test run itself."""

import csv
import json
import os
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from course_lib.checks import EXERCISES
from course_lib.checks.grading import grade_folder, isolate
from course_lib.checks.grading.report import SubmissionGrade, escape_cell, read_csv
from course_lib.checks.grading.submission import _apply, validate_result
from course_lib.cli import main as cli

pytestmark = pytest.mark.slow  # one shared run of ~10 kernels: make test's workers get it as one file

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "03_self_attention.ipynb"
EXERCISE = ROOT / "exercises" / "03_self_attention.ipynb"
TIMEOUT = 300  # seconds for a whole notebook (the default: under heavy load a notebook can take minutes)
TIME_LIMIT = 5  # seconds per sub-check: the hanging exercise is stopped after 10 + 3 * 5 s
ISOLATED = isolate.probe() == isolate.NAMESPACES
TOKEN = f"course-grade-attack-{os.getpid()}"  # names the daemon's process, to look for it afterwards

HONEST = ["honest.ipynb", "=1+1.ipynb", "HONEST2.IPYNB", os.fsdecode(b"caf\xe9.ipynb")]


def _notebook(base: Path, replace: dict | None = None, extra=()) -> nbformat.NotebookNode:
    """``base`` with the cells defining the named functions replaced, and extra cells at the end."""
    nb = nbformat.read(base, as_version=4)
    for cell in nb.cells:
        for name, source in (replace or {}).items():
            if cell.cell_type == "code" and f"def {name}(" in cell.source:
                cell.source = source
    nb.cells += [nbformat.v4.new_code_cell(s) for s in extra]
    return nb


VANDAL = r'''
import json, os, signal, subprocess, sys
ipdir = os.environ.get("IPYTHONDIR", os.path.expanduser("~/.ipython"))
for folder in (ipdir, os.path.expanduser("~/.ipython"), os.path.join(os.getcwd(), "..", "ipython")):
    try:  # a startup file every later kernel of a shared IPYTHONDIR would run
        os.makedirs(os.path.join(folder, "profile_default", "startup"), exist_ok=True)
        with open(os.path.join(folder, "profile_default", "startup", "00-sabotage.py"), "w") as f:
            f.write("import os\nos._exit(1)\n")
    except OSError:
        pass
forged = {"notes": [1], "done": True, "results": {i: {"passed": True, "points": 99.0, "max_points": 5.0,
          "messages": ["all checks passed"], "id": i} for i in ("03.1", "03.2", "03.3")}}
for target in ("../result.json", "../judge/result.json", "result.json"):
    try:
        with open(target, "w") as f:
            json.dump(forged, f)
    except OSError:
        pass
for folder in ("..", "../judge", f"/proc/{os.getppid()}/cwd", MARKER_DIR):
    for module in ("nbformat.py", "sitecustomize.py", "usercustomize.py", "course_lib.py", "marker.txt"):
        try:  # modules the grader would import if this folder were on its sys.path
            with open(os.path.join(folder, module), "w") as f:
                f.write("import os\nos._exit(7)\n")
        except OSError:
            pass
daemon = ("import sys, time\n"
          "for _ in range(600):\n"
          "    time.sleep(0.1)\n"
          "    try:\n"
          "        open(sys.argv[1], 'w').write('submission,total\\nforged.ipynb,100\\n')\n"
          "    except OSError:\n"
          "        pass\n")
subprocess.Popen([sys.executable, "-c", daemon, CSV, TOKEN], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
pid = os.getpid()
ancestors = []
while pid > 1 and len(ancestors) < 4:  # the grader is an ancestor: freeze it, then kill the worker
    with open(f"/proc/{pid}/stat") as f:
        pid = int(f.read().rsplit(")", 1)[1].split()[1])
    ancestors.append(pid)
for pid in ancestors:
    try:
        os.kill(pid, signal.SIGSTOP)
    except OSError:
        pass
try:
    os.kill(os.getppid(), signal.SIGKILL)
except OSError:
    pass
'''

REFERENCE = {  # points without work: the reference implementation and the built-in, under aliases
    "scaled_dot_product_attention": (
        "from torch.nn import functional as G\n"
        "def scaled_dot_product_attention(query, key, value, attn_mask=None):\n"
        "    out = G.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask)\n"
        "    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])\n"
        "    if attn_mask is not None and attn_mask.dtype == torch.bool:\n"
        "        scores = scores.masked_fill(~attn_mask, float('-inf'))\n"
        "    elif attn_mask is not None:\n"
        "        scores = scores + attn_mask\n"
        "    dead = torch.isneginf(scores).all(dim=-1, keepdim=True)\n"
        "    w = torch.softmax(scores.masked_fill(dead, 0.0), dim=-1).masked_fill(dead, 0.0)\n"
        "    return out.nan_to_num(0.0), w\n"),
    "causal_mask": ("from course_lib.masks import causal_mask as _reference\n"
                    "def causal_mask(L):\n    return _reference(L)\n"),
    "padding_mask": ("import course_lib.masks\n"
                     "def _helper(lengths, max_len):\n    return course_lib.masks.padding_mask(lengths, max_len)\n"
                     "def padding_mask(lengths, max_len=None):\n    return _helper(lengths, max_len)\n"),
}

OBFUSCATED = {  # code the policy cannot read: flagged for review, never run
    "scaled_dot_product_attention": (
        "def scaled_dot_product_attention(query, key, value, attn_mask=None):\n"
        "    kind = getattr(query, '__cla' + 'ss__')\n"
        "    w = torch.softmax(query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1]), dim=-1)\n"
        "    return w @ value, w\n"),
    "causal_mask": ("import timeit\n"
                    "def causal_mask(L):\n"
                    "    timeit.timeit('import os', number=1)\n"
                    "    i = torch.arange(L)\n    return i[None, :] <= i[:, None]\n"),
}

HANG = {  # a C loop that holds the GIL: the checker's own time limit cannot stop it, the watchdog can
    "scaled_dot_product_attention": (
        "def scaled_dot_product_attention(query, key, value, attn_mask=None):\n"
        "    if query.dtype == torch.float64:  # the checker asks for float64; this notebook never does\n"
        "        sum(range(10 ** 15))\n"
        "    w = torch.softmax(query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1]), dim=-1)\n"
        "    return w @ value, w\n"),
}


def _processes_with(token: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if token.encode() in f.read() and int(pid) != os.getpid():
                    found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("attacks")
    subs, markers = base / "submissions", base / "markers"
    subs.mkdir()
    markers.mkdir()
    out = base / "out" / "grades.csv"
    for name in HONEST:
        shutil.copy(SOLUTION, subs / name)
    if ISOLATED:
        vandal = VANDAL.replace("MARKER_DIR", repr(str(markers))).replace("CSV", repr(str(out))) \
            .replace("TOKEN", repr(TOKEN))
        nbformat.write(_notebook(EXERCISE, extra=[vandal]), subs / "0_vandal.ipynb")
    nbformat.write(_notebook(SOLUTION, REFERENCE), subs / "reference.ipynb")
    nbformat.write(_notebook(SOLUTION, OBFUSCATED), subs / "obfuscated.ipynb")
    hang = _notebook(SOLUTION, HANG)
    hang.cells = [c for c in hang.cells if 'run_check("03.1"' not in c.source]  # the solution's own self-test
    nbformat.write(hang, subs / "hang.ipynb")
    shutil.copy(ROOT / "solutions" / "00_welcome.ipynb", subs / "welcome.ipynb")  # the wrong notebook
    shutil.copy(SOLUTION, subs / ".hidden.ipynb")
    logged = []
    start = time.monotonic()
    grades = grade_folder(subs, out, timeout=TIMEOUT, time_limit=TIME_LIMIT, jobs=2, log=logged.append)
    seconds = time.monotonic() - start
    time.sleep(1.0)  # a surviving daemon would have rewritten the CSV by now
    with open(out, newline="", encoding="utf-8") as f:
        text = f.read()
    rows = {r["submission"]: r for r in read_csv(out)}
    return {"base": base, "subs": subs, "out": out, "markers": markers, "text": text, "rows": rows,
            "grades": {g.submission: g for g in grades}, "log": logged, "seconds": seconds}


def test_honest_solutions_get_full_points_whatever_their_names(run):
    for name in HONEST:
        shown = os.fsencode(name).decode("utf-8", "backslashreplace")
        grade = run["grades"][shown]
        assert grade.total == 9 and grade.max_total == 9 and grade.notes == [], (shown, grade.notes)
    assert run["rows"]["caf\\xe9.ipynb"]["total"] == "9"  # a Latin-1 file name does not stop the CSV
    assert "'=1+1.ipynb" in run["text"] and "\n=1+1" not in run["text"]  # no formula for spreadsheets
    assert run["rows"]["=1+1.ipynb"]["total"] == "9"  # read back unescaped: --resume recognises it
    assert "HONEST2.IPYNB" in run["rows"]


def test_skipped_files_are_listed(run):
    assert "skipped .hidden.ipynb: hidden" in run["log"]
    assert ".hidden.ipynb" not in run["rows"]


def test_the_isolation_used_is_logged(run):
    first = [line for line in run["log"] if not line.startswith("skipped ")][0]
    assert first.startswith("isolation: each submission in its own user, PID, mount and network namespaces"
                            if ISOLATED else "WARNING: submissions are NOT isolated")


@pytest.mark.skipif(not ISOLATED, reason="needs namespaces: this attack would hit the test run itself")
def test_vandal_gets_nothing_and_harms_nobody(run):
    grade = run["grades"]["0_vandal.ipynb"]
    assert grade.total == 0
    for i in ("03.1", "03.2", "03.3"):  # graded by the grader's own checks, not forged nor lost
        assert grade.results[i].messages[0] == "not implemented yet", grade.results[i].messages
    assert not any("stopped early" in n or "unreadable" in n for n in grade.notes), grade.notes
    assert list(run["markers"].iterdir()) == []  # nothing written outside its folder
    assert "forged.ipynb" not in run["text"] and len(run["rows"]) == 9
    assert _processes_with(TOKEN) == []  # the setsid daemon died with the namespace
    before = run["out"].read_bytes()
    again = grade_folder(run["subs"], run["out"], timeout=TIMEOUT, time_limit=TIME_LIMIT, jobs=2,
                         log=lambda m: None)
    assert again == [] and run["out"].read_bytes() == before  # --resume keeps the honest CSV


def test_reference_and_forbidden_builtins_earn_nothing(run):
    grade = run["grades"]["reference.ipynb"]
    assert grade.total == 0, {i: r.messages for i, r in grade.results.items()}
    assert "scaled_dot_product_attention" in grade.results["03.1"].messages[0]
    assert "this exercise asks you to write yourself" in grade.results["03.1"].messages[0]
    assert "course_lib" in grade.results["03.2"].messages[0]
    assert "course_lib" in grade.results["03.3"].messages[0] and "`_helper`" in grade.results["03.3"].messages[0]
    assert sum("the work is not yours" in n for n in grade.notes) == 3
    feedback = (run["out"].parent / "feedback" / "reference.md").read_text(encoding="utf-8")
    assert "course_lib" in feedback and "0 / 9" in feedback


def test_computed_attributes_and_code_strings_are_flagged(run):
    grade = run["grades"]["obfuscated.ipynb"]
    assert grade.points("03.1") == grade.points("03.2") == 0 and grade.points("03.3") == 2
    assert "computed attribute name" in grade.results["03.1"].messages[0]
    assert "uses `timeit`" in grade.results["03.2"].messages[0]
    assert "needs a review" in grade.results["03.1"].messages[0]


def test_a_hang_costs_only_its_exercise(run):
    grade = run["grades"]["hang.ipynb"]
    assert grade.points("03.1") == 0 and "did not finish within" in grade.results["03.1"].messages[0]
    assert grade.points("03.2") == 2 and grade.points("03.3") == 2  # checked after the hang


def test_another_notebook_in_the_folder_is_flagged(run):
    row = run["rows"]["welcome.ipynb"]
    assert "flagged for review" in row["notes"] and "03_self_attention" in row["notes"]


def test_notebook_option_flags_a_different_notebook(tmp_path, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])  # small: the kernel has little to do
    nb.metadata["course_lib"] = {"notebook": "00_welcome"}
    nbformat.write(nb, subs / "welcome.ipynb")
    out = tmp_path / "grades.csv"
    assert cli(["grade", str(subs), "--out", str(out), "--notebook", "03_self_attention",
                "--timeout", str(TIMEOUT)]) == 0
    with open(out, newline="", encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    assert row["total"] == "0" and row["max_total"] == "9"
    assert "flagged for review: this file is notebook 00_welcome, not 03_self_attention" in row["notes"]


def test_without_isolation_it_still_grades_and_says_so(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import torch\ndef softmax(x, dim=-1):\n    e = torch.exp(x - x.max(dim=dim, keepdim=True).values)\n"
        "    return e / e.sum(dim=dim, keepdim=True)\n")]), subs / "welcome.ipynb")
    logged = []
    grades = grade_folder(subs, tmp_path / "grades.csv", timeout=TIMEOUT, isolation="none", log=logged.append)
    assert grades[0].total == 2 and grades[0].isolation.startswith("none:")
    assert logged[0].startswith("WARNING: submissions are NOT isolated (turned off")
    row = read_csv(tmp_path / "grades.csv")[0]
    assert row["total"] == "2" and row["notes"].startswith("not isolated (turned off")


# ---------------------------------------------------------------- the grader's validation (no kernel)


@pytest.mark.parametrize("result, why", [
    ({"passed": True, "points": 99.0, "max_points": 5.0, "messages": ["ok"]}, "a number in"),
    ({"passed": True, "points": -1, "max_points": 5.0, "messages": []}, "a number in"),
    ({"passed": True, "points": float("nan"), "max_points": 5.0, "messages": []}, "a number in"),
    ({"passed": "yes", "points": 1, "max_points": 5.0, "messages": []}, "boolean"),
    ({"passed": True, "points": 1, "max_points": 5.0, "messages": [1]}, "a string"),
    ({"passed": True, "points": 1, "max_points": 5.0, "messages": [], "id": "03.2"}, "another exercise"),
    ({"passed": True, "points": 1, "max_points": 5.0, "messages": [],
      "subchecks": [{"name": "x", "status": "passed", "points": 50, "max_points": 5}]}, "a number in"),
])
def test_results_are_validated(result, why):
    with pytest.raises(ValueError, match=why):
        validate_result("03.1", result)


def test_forged_messages_are_ignored_with_a_note():
    grade = SubmissionGrade("x.ipynb", exercises=["00.1"])
    lines = [json.dumps({"kind": "note", "text": [1]}).encode(), b"not json",
             json.dumps({"kind": "result", "id": "99.9", "result": {}}).encode(),
             json.dumps({"kind": "result", "id": "00.1", "result": {"passed": True, "points": 2.0,
                                                                   "max_points": 2.0, "messages": ["ok"]}}).encode(),
             json.dumps({"kind": "done"}).encode()]
    assert _apply(grade, lines, []) is True
    assert grade.points("00.1") == 2 and grade.results["00.1"].max_points == EXERCISES["00.1"].points
    assert grade.notes == ["3 unreadable message(s) from the grading process were ignored"]


@pytest.mark.parametrize("text", ["=cmd|' /C calc'!A0", "+1", "-1", "@SUM(A1)", "\tx"])
def test_formula_cells_are_escaped(text):
    assert escape_cell(text) == "'" + text and escape_cell("ok") == "ok"


def _work(exercise_id: str, source: str) -> list[str]:
    from course_lib.checks.grading import load_definitions, work_problems

    payload = {"source": source}
    namespace, rejected = load_definitions(payload, [])
    assert rejected == {}, rejected
    return work_problems(exercise_id, source, namespace)


@pytest.mark.parametrize("source", [
    "import torch.nn.functional as F\ndef scaled_dot_product_attention(q, k, v, attn_mask=None):\n"
    "    return F.scaled_dot_product_attention(q, k, v), None\n",
    "import torch\ndef scaled_dot_product_attention(q, k, v, attn_mask=None):\n"
    "    return torch.nn.functional.scaled_dot_product_attention(q, k, v), None\n",
    "from torch.nn.functional import scaled_dot_product_attention as s\n"
    "def scaled_dot_product_attention(q, k, v, attn_mask=None):\n    return s(q, k, v), None\n",
    "import torch\ndef scaled_dot_product_attention(q, k, v, attn_mask=None):\n"
    "    f = getattr(torch.nn.functional, 'scaled_dot_product_attention')\n    return f(q, k, v), None\n",
    "from torch.nn.modules.activation import MultiheadAttention as M\n"
    "def scaled_dot_product_attention(q, k, v, attn_mask=None):\n    return M(4, 1)(q, k, v)\n",
    "def scaled_dot_product_attention(q, k, v, attn_mask=None):\n"
    "    from course_lib.attention import scaled_dot_product_attention as s\n    return s(q, k, v)\n",
    "import course_lib.attention as A\ndef helper(q, k, v):\n    return A.scaled_dot_product_attention(q, k, v)\n"
    "def scaled_dot_product_attention(q, k, v, attn_mask=None):\n    return helper(q, k, v)\n",
])
def test_work_done_by_the_reference_or_a_builtin_is_found(source):
    assert _work("03.1", source)


def test_methods_forbidden_by_the_exercise_are_found():
    assert "`.softmax`" in _work("00.1", "def softmax(x, dim=-1):\n    return x.float().softmax(dim)\n")[0]
    assert _work("03.1", "def scaled_dot_product_attention(q, k, v, attn_mask=None):\n"
                         "    w = (q @ k.transpose(-2, -1)).softmax(-1)\n    return w @ v, w\n") == []


def test_every_honest_solution_does_its_own_work():
    import linecache

    from course_lib.checks.grading.collect import __course_lib_collect__

    for path in sorted((ROOT / "solutions").glob("0*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        namespace = {"__name__": "__main__"}
        exec("import math\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n", namespace)
        ids = [i for i, spec in EXERCISES.items() if spec.notebook == path.stem]
        for n, cell in enumerate(nb.cells):  # the solution cells are enough for the collector and the policy
            if cell.cell_type == "code" and "BEGIN SOLUTION" in cell.source:
                filename = f"<{path.stem} cell {n}>"
                linecache.cache[filename] = (len(cell.source), None, cell.source.splitlines(True), filename)
                exec(compile(cell.source, filename, "exec"), namespace)
        payload = json.loads(__course_lib_collect__([EXERCISES[i].function for i in ids], namespace))
        assert payload["missing"] == [] and ids, (path.stem, payload)
        for i in ids:
            assert _work(i, payload["source"]) == [], (i, _work(i, payload["source"]))


def test_the_watchdog_stops_a_hung_check_in_a_child_and_in_a_thread(monkeypatch):
    from course_lib.checks.grading import worker

    monkeypatch.setattr(worker, "run_check", lambda *a, **k: time.sleep(30))
    start = time.monotonic()
    result = worker.guarded_check("00.1", None, 1.0, 1.0)
    assert "did not finish within 1 s" in result.messages[0] and time.monotonic() - start < 10
    monkeypatch.setattr(worker, "run_check", lambda *a, **k: os._exit(3))
    assert "stopped the grading process" in worker.guarded_check("00.1", None, 1.0, 5.0).messages[0]
    monkeypatch.setattr(worker, "run_check", lambda *a, **k: time.sleep(3))
    monkeypatch.delattr(os, "fork")  # Windows: a thread, left running, and the exercise gets 0
    assert "did not finish within 0.5 s" in worker.guarded_check("00.1", None, 1.0, 0.5).messages[0]


def test_a_csv_that_cannot_be_written_is_retried_and_loses_nothing(tmp_path, monkeypatch):
    from course_lib.checks.grading import batch

    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("a.ipynb", "b.ipynb"):
        (subs / name).write_text("not json", encoding="utf-8")  # graded without a kernel: fast
    real, calls = batch.write_csv, []

    def flaky(path, rows):
        calls.append(len(rows))
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        real(path, rows)

    monkeypatch.setattr(batch, "write_csv", flaky)
    logged = []
    grade_folder(subs, tmp_path / "grades.csv", jobs=1, log=logged.append)
    assert any("could not write" in m for m in logged) and calls == [1, 2]
    assert {r["submission"] for r in read_csv(tmp_path / "grades.csv")} == {"a.ipynb", "b.ipynb"}
