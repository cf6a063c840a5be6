"""`python -m course_lib COMMAND`: the course's command line.

  doctor    check the environment: versions, device, whether widgets can render
  bench     time course_lib's attention against torch's, side by side;
            --course: time every notebook alone and beside a busy process
  release   write exercises/ from solutions/            (instructors)
  check     run a notebook in a fresh kernel and print its score
  grade     grade a folder of submitted notebooks        (instructors)
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
from importlib import metadata

# (distribution, import name, what it is for); all are needed by the course.
REQUIRED = [
    ("torch", "torch", "tensors and autograd"),
    ("numpy", "numpy", "arrays"),
    ("matplotlib", "matplotlib", "plots"),
    ("scikit-learn", "sklearn", "the bundled handwritten digits"),
    ("tqdm", "tqdm", "progress bars"),
    ("ipywidgets", "ipywidgets", "interactive explorers"),
    ("nbformat", "nbformat", "reading notebooks (checks and grading)"),
    ("nbclient", "nbclient", "running notebooks (checks and grading)"),
    ("ipykernel", "ipykernel", "the Jupyter kernel"),
]
OPTIONAL = [
    ("jupyterlab", "the JupyterLab front end (make lab)"),
    ("jupyterlab_widgets", "rendering widgets in JupyterLab"),
    ("nbval", "running notebooks as tests (make test)"),
    ("pytest", "the test runner (make test)"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("doctor", help="check the environment: versions, device, widgets")
    p.set_defaults(func=_doctor)

    p = sub.add_parser("bench", help="time course_lib's attention against torch's, side by side; "
                                     "--course: time every notebook alone and beside a busy process")
    p.add_argument("--course", action="store_true",
                   help="run every notebook in notebooks/ and solutions/ (or NOTEBOOK ...) from a cold cache, "
                        "alone and beside one busy process, and print one table (takes many minutes)")
    p.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="with --course: only these notebooks")
    p.add_argument("--timeout", type=float, default=1800, help="with --course: stop a notebook after this many s")
    p.add_argument("--alone-only", action="store_true", help="with --course: skip the contended runs")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=256)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats per implementation, median reported (default 15; with --course 1)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or mps (default cpu)")
    p.set_defaults(func=_bench)

    try:
        from .checks.commands import register
    except ImportError as exc:  # the checks package failed to import: say so, keep doctor usable
        _checks_error = exc

        def _missing(args) -> int:
            print(f"error: course_lib.checks could not be imported: {_checks_error}", file=sys.stderr)
            return 1

        for name in ("release", "check", "grade"):
            sub.add_parser(name, help="(unavailable: course_lib.checks failed to import)").set_defaults(func=_missing)
    else:
        register(sub)

    from .teaching.commands import register as register_teaching

    register_teaching(sub)

    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _doctor(args) -> int:
    problems: list[str] = []
    print("course_lib doctor")
    print(f"  {'python':<20} {platform.python_version()}  ({sys.executable})")
    if sys.version_info < (3, 10):
        problems.append(f"Python 3.10 or newer is needed, this is {platform.python_version()}")
    for dist, module, purpose in REQUIRED:
        version = _version(dist)
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any import failure is a finding to report
            problems.append(f"{dist} ({purpose}) cannot be imported: {type(exc).__name__}: {exc}")
            version = "MISSING"
        print(f"  {dist:<20} {version}")
    for dist, purpose in OPTIONAL:
        print(f"  {dist:<20} {_version(dist) or 'not installed'}  ({purpose})")

    if not problems:
        import torch

        from .train import device

        dev = device()
        detail = torch.cuda.get_device_name(0) if dev.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
        print(f"  {'device':<20} {dev}  ({detail})")
        print(f"  {'widgets':<20} {_widgets_status()}")
        from .threads import diagnose

        facts, notes = diagnose()
        print(f"  {'threads':<20} {facts[0]}")
        for fact in facts[1:]:
            print(f"  {'':<20} {fact}")
        for note in notes:
            print(f"  warning: {note}")

    if problems:
        print("\nSomething the course needs is missing:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        print("Run `make lab` (or `make setup`) from the course folder to install the tested versions.",
              file=sys.stderr)
        return 1
    print("\nAll set: everything the course needs is installed.")
    return 0


def _widgets_status() -> str:
    """Whether interactive widgets can render, and if not, what happens instead."""
    ipywidgets = _version("ipywidgets")
    extension = _version("jupyterlab_widgets")
    if ipywidgets is None:
        return "ipywidgets missing: explorers fall back to static figures"
    if extension is None:
        return (f"ipywidgets {ipywidgets}, but the JupyterLab extension jupyterlab_widgets is missing: "
                "explorers fall back to static figures")
    if ipywidgets.split(".")[0] == "8" and not extension.startswith("3."):
        return f"ipywidgets {ipywidgets} needs jupyterlab_widgets 3.x, found {extension}: widgets may not render"
    return f"can render in JupyterLab (ipywidgets {ipywidgets}, jupyterlab_widgets {extension})"


def _bench(args) -> int:
    if args.course:
        return _bench_course(args)
    if args.notebooks:
        print(f"error: notebooks ({' '.join(args.notebooks)}) are timed only with --course", file=sys.stderr)
        return 2
    from .bench import attention_benchmarks, format_results

    args.repeats = 15 if args.repeats is None else args.repeats
    for name in ("batch", "length", "width", "heads", "repeats"):
        if getattr(args, name) < 1:
            print(f"error: --{name} must be a positive integer, got {getattr(args, name)}", file=sys.stderr)
            return 2
    if args.width % args.heads:
        print(f"error: --width {args.width} must be divisible by --heads {args.heads}", file=sys.stderr)
        return 2
    import torch

    header = (f"forward+backward, batch {args.batch}, length {args.length}, width {args.width}, "
              f"{args.heads} heads, {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
              f"median of {args.repeats} interleaved repeats; ratio < 1 means course_lib is faster")
    results = attention_benchmarks(args.batch, args.length, args.width, args.heads, args.repeats, args.device)
    print(format_results(results, header))
    return 0


def _bench_course(args) -> int:
    import os
    from pathlib import Path

    from .course_bench import course_benchmark, course_notebooks, format_course_table
    from .threads import diagnose

    repeats = 1 if args.repeats is None else args.repeats
    if repeats < 1 or args.timeout <= 0:
        print(f"error: --repeats must be a positive integer and --timeout positive, got {repeats} and "
              f"{args.timeout:g}", file=sys.stderr)
        return 2
    paths = [Path(p) for p in args.notebooks] or course_notebooks()
    missing = [str(p) for p in paths if not p.is_file() or p.suffix != ".ipynb"]
    if missing:
        print(f"error: not a notebook file: {', '.join(missing)} (expected paths to .ipynb files)", file=sys.stderr)
        return 2
    if not paths:
        print("error: no notebooks found in notebooks/ or solutions/", file=sys.stderr)
        return 2
    facts, notes = diagnose()
    header = (f"{len(paths)} notebook(s), fresh kernel and empty model cache each, wall seconds (median of "
              f"{repeats}); contended = beside one busy Python process; {facts[0]}; "
              f"load average {os.getloadavg()[0]:.1f} at the start")
    print(header + "\n" + "".join(f"warning: {n}\n" for n in notes), flush=True)
    results = course_benchmark(paths, repeats, args.timeout, contended=not args.alone_only,
                               report=lambda line: print(line, flush=True))
    print()
    print(format_course_table(results, header))
    return 0 if all(r.status == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
