"""The ``release``, ``check`` and ``grade`` subcommands of ``python -m course_lib``.

``register(subparsers)`` adds them to the argparse subparsers of course_lib.cli;
each sets ``func(args) -> int`` (the exit status).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

__all__ = ["register", "cmd_release", "cmd_check", "cmd_grade"]


def register(subparsers) -> None:
    """Add ``release``, ``check`` and ``grade`` to ``subparsers``."""
    from .framework import DEFAULT_TIME_LIMIT
    from .grading import DEFAULT_TIMEOUT

    p = subparsers.add_parser("release", help="write exercises/ from solutions/ (instructors)",
                              description="Write exercises/NN_topic.ipynb for every solutions/NN_topic.ipynb: "
                                          "solution regions become stubs, outputs are cleared.")
    p.add_argument("--solutions", default="solutions", help="folder of solution notebooks (default: solutions)")
    p.add_argument("--exercises", default="exercises", help="folder to write (default: exercises)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 listing the exercise notebooks that differ from a fresh release")
    p.set_defaults(func=cmd_release)

    p = subparsers.add_parser("check", help="run a notebook in a fresh kernel and print its score",
                              description="Run your exercise notebook top to bottom in a fresh kernel, then grade "
                                          "its functions exactly as the instructor's grader does.")
    p.add_argument("notebook", help="e.g. exercises/00_welcome.ipynb")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"seconds allowed for running the whole notebook (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT,
                   help=f"seconds allowed per sub-check (default {DEFAULT_TIME_LIMIT:g})")
    p.set_defaults(func=cmd_check)

    p = subparsers.add_parser("grade", help="grade a folder of submitted notebooks (instructors)",
                              description="Grade every .ipynb of a folder, each in its own fresh kernel and "
                                          "process, into a CSV and one Markdown feedback file per submission. "
                                          "Rerunning resumes: unchanged, already graded files are skipped.")
    p.add_argument("submissions", help="folder of submitted .ipynb files")
    p.add_argument("--out", default="grades.csv", help="CSV to write (default: grades.csv)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"seconds allowed for running one whole notebook (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT,
                   help=f"seconds allowed per sub-check (default {DEFAULT_TIME_LIMIT:g})")
    p.add_argument("--jobs", type=int, default=1, help="submissions graded in parallel (default 1)")
    p.add_argument("--feedback-dir", default=None,
                   help="folder for the feedback files (default: feedback/ next to the CSV)")
    p.add_argument("--notebook", default=None,
                   help="grade every file as this notebook, e.g. 03_self_attention (default: detect it)")
    p.set_defaults(func=cmd_grade)


def cmd_release(args) -> int:
    from .release import ReleaseError, release

    try:
        report = release(args.solutions, args.exercises, check=args.check)
    except ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        for path in report.differing:
            print(f"differs from a fresh release: {path}")
        for path in report.stale:
            print(f"no solution notebook for: {path}")
        if report.in_sync:
            print(f"{args.exercises}/ is exactly what release writes from {args.solutions}/ "
                  f"({len(report.unchanged)} notebooks)")
            return 0
        print(f"run `python -m course_lib release` to regenerate {args.exercises}/", file=sys.stderr)
        return 1
    for path in report.written:
        print(f"wrote {path}")
    print(f"{len(report.written)} written, {len(report.unchanged)} unchanged")
    for path in report.stale:
        print(f"warning: {path} has no solution notebook in {args.solutions}/", file=sys.stderr)
    return 0


def cmd_check(args) -> int:
    from .framework import NOT_IMPLEMENTED, render_text
    from .grading import format_score_table, grade_submission

    path = Path(args.notebook)
    if not path.is_file():
        print(f"error: {path}: no such notebook", file=sys.stderr)
        return 2
    print(f"running {path} in a fresh kernel, then checking its exercises...", flush=True)
    start = time.monotonic()
    grade = grade_submission(path, timeout=args.timeout, time_limit=args.time_limit,
                             threads=os.cpu_count() or 1)
    print(format_score_table(grade))
    for i in grade.exercises:
        result = grade.results.get(i)
        unfinished = result is not None and not result.passed and result.subchecks
        if unfinished and result.messages[:1] != [NOT_IMPLEMENTED]:
            print()
            print(render_text(result))
    print(f"({time.monotonic() - start:.1f} s)")
    complete = grade.exercises and all(r.passed for r in grade.results.values())
    return 0 if complete else 1


def cmd_grade(args) -> int:
    from .grading import grade_folder

    if args.jobs < 1 or args.timeout <= 0 or args.time_limit <= 0:
        print("error: --jobs, --timeout and --time-limit must be positive", file=sys.stderr)
        return 2
    if args.notebook:
        from .framework import NOTEBOOKS, exercises_of

        if not exercises_of(args.notebook):
            print(f"error: --notebook {args.notebook!r} is not one of {', '.join(NOTEBOOKS.values())}",
                  file=sys.stderr)
            return 2
    folder = Path(args.submissions)
    if not folder.is_dir():
        print(f"error: {folder}: no such folder", file=sys.stderr)
        return 2
    start = time.monotonic()
    try:
        grades = grade_folder(folder, args.out, timeout=args.timeout, jobs=args.jobs,
                              feedback_dir=args.feedback_dir, notebook=args.notebook,
                              time_limit=args.time_limit)
    except KeyboardInterrupt:
        print(f"interrupted: finished grades are in {args.out}; rerun to resume", file=sys.stderr)
        return 130
    feedback = args.feedback_dir or str(Path(args.out).parent / "feedback")
    print(f"graded {len(grades)} submission(s) in {time.monotonic() - start:.1f} s -> {args.out}, "
          f"feedback in {feedback}/")
    return 0
