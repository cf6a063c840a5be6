"""The whole course timed: every notebook alone and beside one busy process.

``python -m course_lib bench --course`` runs each lecture and solution notebook
(whatever is in notebooks/ and solutions/ when it runs) in a fresh kernel from a
cold model cache, first alone and then beside one competing CPU-bound process
(a pure Python busy loop: one core's worth of "something else running", as a
second notebook or a video call would be), and prints one table: notebook,
wall time alone, wall time contended, their ratio, plus totals. Running the two
conditions one after the other for each notebook lets slow drift in the
machine's load hit both alike. On 2 cores a fair share is 1 core, so a ratio
near 2 is the best a 2-core notebook can do beside a busy process.

The notebooks run with the environment of this process: the course's thread
policy when it is in force (see course_lib.threads); ``COURSE_THREADS=off``
measures torch's defaults instead.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["NotebookTiming", "course_notebooks", "run_notebook", "busy_process", "course_benchmark",
           "format_course_table"]

ROOT = Path(__file__).resolve().parents[1]

# Runs one notebook in a fresh kernel of this interpreter, from the notebook's folder.
_RUNNER = r"""
import signal, sys, nbformat
from nbclient import NotebookClient
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # leave through nbclient's cleanup: it shuts the kernel down
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, timeout=None, kernel_name="python3", allow_errors=False,
               resources={"metadata": {"path": sys.argv[2]}}).execute()
"""


@dataclass
class NotebookTiming:
    """Wall and CPU seconds of one notebook, alone and contended (lists: one entry per repeat).

    A status other than "ok" ("timeout after N s", "failed: ...") marks a run that did not finish."""

    path: str
    alone: list[float] = field(default_factory=list)
    contended: list[float] = field(default_factory=list)
    alone_cpu: list[float] = field(default_factory=list)
    status: str = "ok"

    @property
    def alone_s(self) -> float:
        return statistics.median(self.alone) if self.alone else float("nan")

    @property
    def contended_s(self) -> float:
        return statistics.median(self.contended) if self.contended else float("nan")

    @property
    def ratio(self) -> float:
        return self.contended_s / self.alone_s


def course_notebooks(root: Path | str = ROOT) -> list[Path]:
    """Every lecture notebook, then every solution notebook, in course order."""
    root = Path(root)
    return sorted((root / "notebooks").glob("*.ipynb")) + sorted((root / "solutions").glob("*.ipynb"))


def run_notebook(path: Path | str, timeout: float = 1800, env: dict | None = None) -> tuple[float, float, str]:
    """Run a notebook top to bottom in a fresh kernel with an empty model cache.

    -> (wall seconds, CPU seconds of the runner and its kernel, status): status
    is "ok", "timeout after N s" (wall is then `timeout`) or "failed: <last
    line of the error>"."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}")
    cache = tempfile.mkdtemp(prefix="course-bench-cache-")
    run_env = {**(os.environ if env is None else env), "COURSE_CACHE_DIR": cache}
    before = _children_cpu()
    start = time.perf_counter()
    # A process group of its own, so that a timeout ends the runner and its kernel together (not a new
    # session: Linux would schedule that as a separate group, unlike the busy process beside it).
    proc = subprocess.Popen([sys.executable, "-c", _RUNNER, str(path), str(path.parent)], env=run_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=os.setpgrp if hasattr(os, "setpgrp") else None)
    try:
        _, err = proc.communicate(timeout=timeout)
        wall = time.perf_counter() - start
        status = "ok" if proc.returncode == 0 else "failed: " + _last_line(err)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        wall, status = float(timeout), f"timeout after {timeout:g} s"
    shutil.rmtree(cache, ignore_errors=True)
    return wall, _children_cpu() - before, status


def _children_cpu() -> float:
    """CPU seconds of this process's finished children (and theirs); nan where unavailable (Windows)."""
    try:
        import resource
    except ImportError:
        return float("nan")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _last_line(text: str) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text or "")  # the colours of a Jupyter traceback
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no error message"


class busy_process:
    """Context manager: one competing CPU-bound process (a Python busy loop) while inside."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"], env={**os.environ})
        time.sleep(0.2)
        return self.proc

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()
        return False


def course_benchmark(paths: Sequence[Path | str], repeats: int = 1, timeout: float = 1800,
                     contended: bool = True, report: Callable[[str], None] | None = print) -> list[NotebookTiming]:
    """Time each notebook alone, then (if `contended`) beside a busy process; `repeats` times each.

    A notebook that fails or times out is not run again. `report` gets one line per run."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    results = []
    for path in paths:
        timing = NotebookTiming(_display(path))
        for _ in range(repeats):
            for busy in ((False, True) if contended else (False,)):
                if busy:
                    with busy_process():
                        wall, cpu, status = run_notebook(path, timeout)
                    timing.contended.append(wall)
                else:
                    wall, cpu, status = run_notebook(path, timeout)
                    timing.alone.append(wall)
                    timing.alone_cpu.append(cpu)
                if report:
                    report(f"  {timing.path} {'contended' if busy else 'alone'}: {wall:.1f} s wall, "
                           f"{cpu:.1f} s CPU, {status}; load {os.getloadavg()[0]:.1f}")
                if status != "ok":
                    timing.status = status
                    break
            if timing.status != "ok":
                break
        results.append(timing)
    return results


def _display(path: Path | str) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def format_course_table(results: list[NotebookTiming], header: str = "") -> str:
    """One row per notebook (alone, contended, ratio, and the CPU seconds alone), then totals."""
    width = max([len(r.path) for r in results] + [24])
    lines = [header] if header else []
    lines.append(f"{'notebook':<{width}}  {'alone s':>8}  {'contended s':>11}  {'ratio':>5}  {'CPU s alone':>11}")

    def row(name, alone, busy, cpu, note=""):
        ratio = busy / alone if alone == alone and busy == busy and alone > 0 else float("nan")
        lines.append(f"{name:<{width}}  {alone:8.1f}  {busy:11.1f}  {ratio:5.2f}  {cpu:11.1f}{note}")

    for r in results:
        note = "" if r.status == "ok" else f"  ({r.status})"
        cpu = statistics.median(r.alone_cpu) if r.alone_cpu else float("nan")
        row(r.path, r.alone_s, r.contended_s, cpu, note)
    groups = [("lecture notebooks", [r for r in results if r.path.startswith("notebooks")]),
              ("solution notebooks", [r for r in results if r.path.startswith("solutions")]),
              ("all", results)]
    lines.append("")
    for name, group in groups:
        if not group:
            continue
        incomplete = any(r.status != "ok" for r in group)
        row(f"total, {name} ({len(group)})", _total(r.alone_s for r in group), _total(r.contended_s for r in group),
            _total(statistics.median(r.alone_cpu) for r in group if r.alone_cpu),
            "  (at least: a run did not finish or was stopped)" if incomplete else "")
    return "\n".join(lines)


def _total(values) -> float:
    """Sum of the values that were measured (nan: not run); nan when none was."""
    measured = [v for v in values if v == v]
    return sum(measured) if measured else float("nan")
