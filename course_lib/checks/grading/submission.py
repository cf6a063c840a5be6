"""Grade one submission: the grader's side of one worker.

For each submission the grader makes a fresh folder with two parts:
``judge/`` (the notebook's copy, the worker's working folder, Jupyter's config
and data folders: read-only to the submission) and ``sub/`` (the only place
the submission may write: the kernel's working folder, HOME, TMPDIR,
IPYTHONDIR, MPLCONFIGDIR, Jupyter's runtime folder). Both are deleted after.
The worker (worker.py) is started with ``python -I`` in ``judge/``, under
isolate.py's namespaces where available, and answers over a pipe; every
message is validated here before it counts.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..framework import DEFAULT_TIME_LIMIT, EXERCISES, GRADING_ENV, CheckResult
from . import isolate
from .detect import claimed_notebook, detect_exercises, safe_name
from .kernel import COLLECT_TIMEOUT, KERNEL_STARTUP
from .report import SubmissionGrade, zero
from .worker import BOOT, exercise_budget

__all__ = ["DEFAULT_TIMEOUT", "grade_submission", "hard_limit", "validate_result"]

DEFAULT_TIMEOUT = 300.0  # seconds for running a whole notebook
ROOT = Path(__file__).resolve().parents[3]  # the folder holding the course_lib package
_SIGKILL = getattr(signal, "SIGKILL", signal.SIGTERM)  # Windows has no SIGKILL
_MAX_LINE = 1 << 20  # bytes in one message from the worker


def _text(value, limit: int = 1000) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value[:limit]


def _number(value, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low - 1e-9 <= value <= high + 1e-9:
        raise ValueError(f"expected a number in [{low:g}, {high:g}], got {value!r}"[:200])
    return float(min(max(value, low), high))


def validate_result(exercise_id: str, data) -> CheckResult:
    """A CheckResult from untrusted JSON: known ID, 0 <= points <= the exercise's
    points, strings only where strings go. ValueError otherwise."""
    spec = EXERCISES.get(exercise_id) if isinstance(exercise_id, str) else None
    if spec is None or not isinstance(data, dict):
        raise ValueError("unknown exercise or not a result")
    if data.get("id", exercise_id) != exercise_id:
        raise ValueError("a result for another exercise")
    subchecks = data.get("subchecks", [])
    if not isinstance(subchecks, list) or len(subchecks) > 100:
        raise ValueError("subchecks is not a short list")
    subs = []
    for s in subchecks:
        if not isinstance(s, dict) or s.get("status") not in ("passed", "failed", "skipped"):
            raise ValueError("a sub-check is malformed")
        subs.append({"name": _text(s.get("name")), "status": s["status"],
                     "points": _number(s.get("points"), 0, spec.points),
                     "max_points": _number(s.get("max_points"), 0, spec.points),
                     "message": _text(s.get("message", "")), "hint": _text(s.get("hint", "")),
                     "essential": s.get("essential", False) is True})
    messages = data.get("messages")
    if not isinstance(messages, list) or len(messages) > 50:
        raise ValueError("messages is not a short list")
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError("seed is not an integer")
    passed = data.get("passed")
    if not isinstance(passed, bool):
        raise ValueError("passed is not a boolean")
    return CheckResult.from_dict({
        "passed": passed, "points": _number(data.get("points"), 0, spec.points), "max_points": spec.points,
        "messages": [_text(m) for m in messages], "id": spec.id, "title": spec.title, "function": spec.function,
        "subchecks": subs, "hint": _text(data.get("hint", "")), "seed": seed})


def hard_limit(timeout: float, time_limit: float, n_exercises: int) -> float:
    """Last-resort limit for a whole worker: starting the kernel, running the
    notebook, the collections, and every exercise's watchdog."""
    return timeout + KERNEL_STARTUP + 2 * COLLECT_TIMEOUT + 60 + exercise_budget(time_limit) * n_exercises


def _environment(judge: Path, sub: Path, threads: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "JUPYTER", "IPYTHON", "MPL"))}
    env.update({
        GRADING_ENV: "1", "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(ROOT),
        "HOME": str(sub / "home"), "TMPDIR": str(sub / "tmp"), "XDG_CACHE_HOME": str(sub / "cache"),
        "XDG_CONFIG_HOME": str(sub / "config"), "IPYTHONDIR": str(sub / "ipython"),
        "MPLCONFIGDIR": str(sub / "matplotlib"), "JUPYTER_RUNTIME_DIR": str(sub / "runtime"),
        "JUPYTER_DATA_DIR": str(judge / "jupyter-data"), "JUPYTER_CONFIG_DIR": str(judge / "jupyter-config"),
        "JUPYTER_PLATFORM_DIRS": "1", "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
    })
    return env


def _kill_group(pid: int, sig) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def _reader(fd: int, lines: list) -> None:
    """Read the worker's messages until the pipe closes (it is read while the worker runs, so it never fills)."""
    buffer = b""
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while True:
            chunk = pipe.read(1 << 16)
            if not chunk:
                break
            buffer += chunk
            *done, buffer = buffer.split(b"\n")
            lines.extend(done)
            if len(buffer) > _MAX_LINE:
                buffer = b""
                lines.append(b"")


def _tail(stream, output: bytearray, keep: int = 1 << 16) -> None:
    """Keep the last ``keep`` bytes of a stream until it closes."""
    with stream:
        for chunk in iter(lambda: stream.read1(1 << 16), b""):
            output += chunk
            del output[:-keep]


def _apply(grade: SubmissionGrade, lines: list[bytes], kernels: list[int]) -> bool:
    """Fold the worker's validated messages into ``grade``; True when it said it was done."""
    done, bad = False, 0
    for line in lines:
        try:
            msg = json.loads(line.decode("utf-8"))
            kind = msg.get("kind") if isinstance(msg, dict) else None
            if kind == "note":
                grade.notes.append(_text(msg.get("text"), 600))
            elif kind == "isolation":
                grade.isolation = "none: " + _text(msg.get("text"), 300)
            elif kind == "cell_error":
                grade.cell_errors.append((int(_number(msg.get("cell"), 1, 1e6)), _text(msg.get("name"), 80)))
            elif kind == "kernel":
                kernels.append(int(_number(msg.get("pid"), 2, 2 ** 22)))
            elif kind == "result" and msg.get("id") in grade.exercises:
                grade.results[msg["id"]] = validate_result(msg["id"], msg.get("result"))
            elif kind == "done":
                done = True
            else:
                raise ValueError("unknown message")
        except (ValueError, TypeError, UnicodeDecodeError, AttributeError):
            bad += 1
    if bad:
        grade.notes.append(f"{bad} unreadable message(s) from the grading process were ignored")
    return done


def grade_submission(path: str | Path, *, timeout: float = DEFAULT_TIMEOUT,
                     time_limit: float = DEFAULT_TIME_LIMIT, notebook: str | None = None,
                     threads: int = 1, isolation: str = "auto", expected: str | None = None,
                     _active: set | None = None) -> SubmissionGrade:
    """Grade one notebook in a worker process; always returns a grade, with
    notes saying what went wrong when something did. ``notebook`` grades it as
    that notebook (a file that says it is another is flagged); ``expected`` is
    the notebook most of its folder is (a file that says otherwise is flagged).
    ``isolation``: "auto" (namespaces where available) or "none"; the grade's
    ``isolation`` says which was used (grade_folder notes it in the CSV)."""
    import nbformat

    path = Path(path)
    start = time.monotonic()
    grade = SubmissionGrade(submission=safe_name(path))
    try:
        data = path.read_bytes()
    except OSError as exc:
        grade.notes.append(f"cannot read the file: {exc}")
        return grade
    grade.sha256 = hashlib.sha256(data).hexdigest()
    try:
        if not data.strip():
            raise ValueError("the file is empty")
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("it has no list of cells")
    except Exception as exc:  # noqa: BLE001 - corrupt JSON, wrong encoding, not a notebook
        grade.notes.append(f"not a valid notebook: {type(exc).__name__}: {str(exc)[:200]}")
        if notebook:
            grade.notebook, grade.exercises = detect_exercises({}, path.name, notebook)
            grade.results = {i: zero(i, "the notebook could not be read") for i in grade.exercises}
        grade.seconds = time.monotonic() - start
        return grade
    grade.notebook, grade.exercises = detect_exercises(nb, path.name, notebook)
    claimed = claimed_notebook(nb, path.name)
    if notebook and claimed and claimed != grade.notebook:
        grade.notes.append(f"flagged for review: this file is notebook {claimed}, not {grade.notebook} "
                           "(--notebook); it was graded as " + grade.notebook)
    elif expected and claimed and claimed != expected:
        grade.notes.append(f"flagged for review: this file is notebook {claimed}, while most files of the "
                           f"folder are {expected}; it was graded as {claimed}")
    if not grade.exercises:
        grade.notes.append("no exercise found: no check(\"ID\", ...) cell and no exercise function")
        grade.seconds = time.monotonic() - start
        return grade
    grade.isolation = isolate.probe(isolation)
    _run_worker(grade, data, timeout, time_limit, threads, _active)
    for i in grade.exercises:
        grade.results.setdefault(i, zero(i, "not graded (see the notes)"))
    grade.seconds = time.monotonic() - start
    return grade


def _run_worker(grade: SubmissionGrade, data: bytes, timeout: float, time_limit: float, threads: int,
                active: set | None) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="course-grade-"))
    try:
        judge, sub = workdir / "judge", workdir / "sub"
        for folder in (judge / "jupyter-data", judge / "jupyter-config", sub / "work", sub / "home", sub / "tmp",
                       sub / "cache", sub / "config", sub / "ipython", sub / "matplotlib", sub / "runtime"):
            folder.mkdir(parents=True)
        (judge / "submission.ipynb").write_bytes(data)
        read_end, write_end = os.pipe()
        cmd = [sys.executable, "-I", "-c", BOOT, str(ROOT), str(judge / "submission.ipynb"), "--fd", str(write_end),
               "--writable", str(sub), "--isolation", grade.isolation, "--exercises", ",".join(grade.exercises),
               "--timeout", str(timeout), "--time-limit", str(time_limit)]
        limit = hard_limit(timeout, time_limit, len(grade.exercises))
        lines: list[bytes] = []
        kernels: list[int] = []
        stopped = False
        output = bytearray()  # the last 64 KiB the worker and kernel printed: a flood fills nothing
        try:
            proc = subprocess.Popen(isolate.wrap(cmd, grade.isolation), cwd=judge,
                                    env=_environment(judge, sub, threads), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                    pass_fds=(write_end,))
        finally:
            os.close(write_end)
        reader = threading.Thread(target=_reader, args=(read_end, lines), daemon=True)
        reader.start()
        printer = threading.Thread(target=_tail, args=(proc.stdout, output), daemon=True)
        printer.start()
        if active is not None:
            active.add(proc)
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            grade.notes.append(f"grading took longer than {limit:g} s and was stopped")
            stopped = True
        finally:
            _kill_group(proc.pid, _SIGKILL)  # under namespaces, this ends every process of the submission
            proc.wait()
            if active is not None:
                active.discard(proc)
        # Under namespaces the pipe closes with the worker; elsewhere a kernel could hold it open.
        reader.join(timeout=30 if grade.isolation == isolate.NAMESPACES else 5)
        printer.join(timeout=5)
        done = _apply(grade, list(lines), kernels)
        if grade.isolation != isolate.NAMESPACES:
            for pid in kernels:  # outside namespaces the kernel is in a session of its own
                _kill_group(pid, _SIGKILL)
        if not done and not stopped:
            tail = [line for line in bytes(output).decode("utf-8", errors="replace").splitlines()
                    if line.strip() and "Kernel is running over TCP" not in line][-3:]
            grade.notes.append(f"the grading process stopped early (exit status {proc.returncode}): the graded "
                               "code may have killed it (os._exit, a crash, running out of memory)"
                               + (f"; last output: {' | '.join(tail)[:300]}" if tail else ""))
    finally:
        _remove(workdir)


def _remove(folder: Path) -> None:
    """Delete a submission's folder; the processes of a namespace die a moment after its
    process 1, and one may still be writing there: try again for a few seconds."""
    for attempt in range(30):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return
        time.sleep(0.05 * (attempt + 1))
