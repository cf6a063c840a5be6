"""Grade a folder of submissions into a CSV and one feedback file each.

No crash loses a grade: each submission's grading, CSV row and feedback file
are contained on their own; the CSV is rewritten atomically after every
submission; file names are decoded safely; skipped files are listed."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from ..framework import DEFAULT_TIME_LIMIT
from . import isolate
from .detect import claimed_notebook, list_submissions, safe_name
from .report import SubmissionGrade, csv_row, feedback_markdown, read_csv, write_csv
from .submission import _SIGKILL, DEFAULT_TIMEOUT, _kill_group, grade_submission

__all__ = ["grade_folder"]


def _majority(paths: list[Path]) -> str | None:
    """The notebook most files of the folder say they are, when at least 3 do and they are most."""
    claims = Counter()
    for p in paths:
        try:
            claims[claimed_notebook(json.loads(p.read_bytes()), p.name)] += 1
        except (OSError, ValueError, AttributeError, RecursionError):
            continue
    claims.pop("", None)
    if not claims:
        return None
    name, count = claims.most_common(1)[0]
    return name if count >= 3 and count > len(paths) / 2 else None


def _feedback_path(folder: Path, submission: str) -> Path:
    stem = submission[:-6] if submission.lower().endswith(".ipynb") else submission
    return folder / f"{stem.replace('/', '_') or '_'}.md"


def grade_folder(folder: str | Path, out: str | Path = "grades.csv", *, timeout: float = DEFAULT_TIMEOUT,
                 jobs: int = 1, feedback_dir: str | Path | None = None, notebook: str | None = None,
                 time_limit: float = DEFAULT_TIME_LIMIT, isolation: str = "auto", log=print) -> list[SubmissionGrade]:
    """Grade every notebook of ``folder``, ``jobs`` at a time, into the CSV
    ``out`` (rewritten atomically after each submission) and one Markdown
    feedback file per submission. Rows whose file is unchanged (same sha256)
    are kept and not graded again. Returns the grades made in this run."""
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of submissions")
    feedback = Path(feedback_dir) if feedback_dir is not None else out.parent / "feedback"
    feedback.mkdir(parents=True, exist_ok=True)
    rows = {r["submission"]: r for r in read_csv(out) if r.get("submission")}
    paths, skipped = list_submissions(folder)
    for name, why in skipped:
        log(f"skipped {name}: {why}")
    todo = []
    for p in paths:
        try:
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
        except OSError:
            digest = ""
        old = rows.get(safe_name(p))
        if not (old is not None and digest and old.get("sha256") == digest):
            todo.append(p)
    if len(paths) > len(todo):
        log(f"{len(paths) - len(todo)} submission(s) already graded and unchanged: kept from {out}")
    mode = isolate.probe(isolation)
    if todo:
        log("isolation: each submission in its own user, PID, mount and network namespaces" if mode == isolate.NAMESPACES
            else f"WARNING: submissions are NOT isolated ({mode.removeprefix('none: ')}); see docs/instructor.md")
    expected = None if notebook else _majority(paths)
    jobs = max(1, int(jobs))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    active: set = set()
    lock = threading.Lock()
    done: list[SubmissionGrade] = []
    unwritten: list[OSError] = []

    def record(p: Path, future) -> SubmissionGrade:
        try:
            grade = future.result()
        except Exception as exc:  # noqa: BLE001 - one submission never stops the others
            grade = SubmissionGrade(submission=safe_name(p),
                                    notes=[f"the grader failed on this file: {type(exc).__name__}: {exc}"[:300]])
        if grade.isolation and grade.isolation != isolate.NAMESPACES:
            grade.notes.append(f"not isolated ({grade.isolation.removeprefix('none: ')}): see docs/instructor.md")
        with lock:
            try:
                row = csv_row(grade)
            except Exception as exc:  # noqa: BLE001
                row = {"submission": grade.submission, "notes": f"internal error in the report: {exc}"[:300]}
            rows[row["submission"]] = row
            try:
                write_csv(out, list(rows.values()))
                unwritten.clear()
            except OSError as exc:  # a full disk, a locked file: the next submission's write tries again
                unwritten.append(exc)
                log(f"could not write {out} ({exc}); retrying after the next submission")
            try:
                _feedback_path(feedback, grade.submission).write_text(feedback_markdown(grade), encoding="utf-8",
                                                                       errors="backslashreplace")
            except Exception as exc:  # noqa: BLE001 - the grade is in the CSV already
                log(f"could not write the feedback of {grade.submission}: {exc}")
            done.append(grade)
        return grade

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(grade_submission, p, timeout=timeout, time_limit=time_limit, notebook=notebook,
                               threads=threads, isolation=isolation, expected=expected, _active=active): p
                   for p in todo}
        try:
            for future in as_completed(futures):
                grade = record(futures[future], future)
                note = f"  ({grade.notes[0][:80]})" if grade.notes else ""
                log(f"[{len(done)}/{len(todo)}] {grade.submission}: {grade.total:.4g}/{grade.max_total:.4g} "
                    f"in {grade.seconds:.1f} s{note}")
        except KeyboardInterrupt:
            for f in futures:
                f.cancel()
            for proc in list(active):
                _kill_group(proc.pid, _SIGKILL)
            raise
    if not paths:
        log(f"no .ipynb files in {folder}")
    if unwritten or not out.exists():
        write_csv(out, list(rows.values()))  # a last try; this one raises, so that you know
    return done
