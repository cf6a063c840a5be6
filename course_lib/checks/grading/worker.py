"""The worker: one process per submission that runs its notebook and grades
its functions, started by submission.py as ``python -I -c BOOT`` from a folder
the submission cannot write, in its own namespaces where it can (isolate.py).

It talks to the grader only through a pipe inherited as a file descriptor that
no other process gets (the kernel is started without it, and the worker is
not dumpable): one JSON object per line, ``{"kind": ..., ...}``:

* ``note`` (``text``), ``cell_error`` (``cell``, ``name``), ``kernel`` (``pid``),
* ``result`` (``id``, ``result``: a CheckResult as a dict),
* ``done`` once every exercise has a result.

The grader validates every message (submission.py); nothing a submission writes
to a file is ever read back as a grade.

Each exercise is checked in a forked child with its own watchdog
(:func:`guarded_check`): a function that hangs the checker, or kills its
process, costs that exercise only.
"""

from __future__ import annotations

import ast
import json
import os
import select
import signal
import sys
import time

from ..framework import (
    DEFAULT_TIME_LIMIT,
    EXERCISES,
    CheckResult,
    _load_checker,
    run_check,
)
from . import isolate
from .policy import sanitize_definitions
from .report import zero
from .work import work_problems

__all__ = ["BOOT", "exercise_budget", "guarded_check", "load_definitions", "main"]

# The worker's whole command line after ``python -I -c``: the course_lib to use
# comes first on sys.path, the current folder never (``-I`` ignores PYTHONPATH;
# Python 3.10 still adds '' for -c).
BOOT = ("import sys; sys.path[:] = [sys.argv[1]] + [p for p in sys.path if p not in ('', '.')]; "
        "from course_lib.checks.grading.worker import main; sys.exit(main(sys.argv[2:]))")


def exercise_budget(time_limit: float) -> float:
    """Seconds one exercise's checks may take in all before its watchdog stops them."""
    return 10.0 + 3.0 * time_limit


class _Channel:
    def __init__(self, fd: int):
        self.fd = fd

    def send(self, kind: str, **data) -> None:
        line = (json.dumps({"kind": kind, **data}) + "\n").encode("utf-8", errors="backslashreplace")
        view = memoryview(line)
        while view:
            view = view[os.write(self.fd, view):]


def load_definitions(payload: dict, notes: list[str]) -> tuple[dict, dict[str, str]]:
    """Execute the definitions that pass the policy in a fresh module namespace.
    Returns (namespace, {name: why it was not run})."""
    import __future__

    import builtins
    import linecache

    keep, rejected, policy_notes = sanitize_definitions(payload["source"])
    notes.extend(policy_notes)
    notes.extend(str(n)[:300] for n in payload.get("notes", [])[:10])
    namespace: dict = {"__name__": "submission", "__builtins__": builtins}
    source = payload["source"]
    filename = "<submission>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    flags = __future__.annotations.compiler_flag
    for stmt in keep:
        try:
            exec(compile(ast.Module(body=[stmt], type_ignores=[]), filename, "exec", flags=flags,
                         dont_inherit=True), namespace)
        except Exception as exc:  # noqa: BLE001 - e.g. an import the grading machine lacks
            notes.append(f"line {stmt.lineno} of your collected code failed: {type(exc).__name__}: {exc}"[:300])
    return namespace, rejected


def _validated(exercise_id: str, data) -> CheckResult:
    from .submission import validate_result  # one validation, shared with the grader

    return validate_result(exercise_id, data)


def guarded_check(exercise_id: str, fn, time_limit: float, budget: float, close_fds=()) -> CheckResult:
    """``run_check`` under a watchdog of ``budget`` seconds, in a forked child
    where fork exists (the child is killed at the deadline), else in a thread
    (which Python cannot stop: it is left running, the exercise gets 0)."""
    spec = EXERCISES[exercise_id]
    hung = zero(exercise_id, f"the checks of `{spec.function}` did not finish within {budget:g} s and were "
                             "stopped (an endless loop in what your function returns?)")
    if not hasattr(os, "fork"):
        import threading

        box = []
        thread = threading.Thread(target=lambda: box.append(run_check(exercise_id, fn, time_limit=time_limit)),
                                  daemon=True)
        thread.start()
        thread.join(budget)
        return box[0] if box else hung
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: grade, answer, leave without cleanup
        try:
            os.close(read_end)
            for fd in close_fds:  # graded code must not reach the grader's pipe
                os.close(fd)
            data = json.dumps(run_check(exercise_id, fn, time_limit=time_limit).to_dict()).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(write_end, view):]
        finally:
            os._exit(0)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + budget
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_end], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                return hung
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    try:
        return _validated(exercise_id, json.loads(b"".join(chunks)))
    except ValueError:
        return zero(exercise_id, f"`{spec.function}` stopped the grading process while it was checked "
                                 "(os._exit, a crash, running out of memory)")


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="course_lib grading worker (internal)")
    parser.add_argument("notebook")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--writable", required=True, help="the submission's folder (kernel working folder inside)")
    parser.add_argument("--isolation", default="none")
    parser.add_argument("--exercises", default="")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT)
    args = parser.parse_args(argv)
    os.set_inheritable(args.fd, False)
    out = _Channel(args.fd)
    if args.isolation == isolate.NAMESPACES:
        try:
            isolate.enter(args.writable)
        except OSError as exc:
            out.send("isolation", ok=False, text=f"the namespaces could not be set up ({exc})")
    else:
        isolate.harden()
    import nbformat

    ids = [i for i in args.exercises.split(",") if i in EXERCISES]
    for i in ids:  # the canonical checkers are imported before any learner code exists in this process
        try:
            _load_checker(i)
        except Exception:  # noqa: BLE001 - run_check reports a broken checker module itself
            pass
    notes: list[str] = []
    cell_errors: list = []
    try:
        nb = nbformat.read(args.notebook, as_version=4)
    except Exception as exc:  # noqa: BLE001
        out.send("note", text=f"not a valid notebook: {type(exc).__name__}: {str(exc)[:200]}")
        out.send("done")
        return 0
    from .kernel import run_notebook

    payload = run_notebook(nb, [EXERCISES[i].function for i in ids], args.timeout,
                           os.path.join(args.writable, "work"), notes, cell_errors,
                           on_kernel=lambda pid: out.send("kernel", pid=int(pid)))
    for n, name in cell_errors:
        out.send("cell_error", cell=n, name=name)
    namespace, rejected, missing = {}, {}, set()
    if payload is not None:
        namespace, rejected = load_definitions(payload, notes)
        missing = set(payload.get("missing", []))
        notes.extend(f"`{name}` was not run by the grader: {why}" for name, why in rejected.items())
    for note in notes:
        out.send("note", text=note)
    budget = exercise_budget(args.time_limit)
    for i in ids:
        spec = EXERCISES[i]
        fn = namespace.get(spec.function)
        if payload is None:
            result = zero(i, "not graded (see the notes)")
        elif spec.function in rejected:
            result = zero(i, f"not graded: needs a review by your instructor: {rejected[spec.function]}")
            out.send("note", text=f"{i}: `{spec.function}` flagged for manual review")
        elif fn is None:
            why = ("is not defined in the notebook" if spec.function in missing
                   else "could not be rebuilt by the grader (see the notes)")
            result = zero(i, f"`{spec.function}` {why}; keep the exact name and define it at the top level of a cell")
        elif problems := work_problems(i, payload["source"], namespace):
            result = zero(i, f"0 points: {problems[0]}")
            result.messages += problems[1:3]
            out.send("note", text=f"{i}: no points, the work is not yours: {problems[0]}")
        else:
            result = guarded_check(i, fn, args.time_limit, budget, close_fds=(args.fd,))
        out.send("result", id=i, result=result.to_dict())
    out.send("done")
    sys.stdout.flush()
    os._exit(0)  # do not wait for a runaway learner thread
