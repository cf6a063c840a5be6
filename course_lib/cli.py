"""`python -m course_lib COMMAND`: the course's command line.

  doctor    check the environment: versions, device, whether widgets can render
  bench     time course_lib's attention against torch's, side by side
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

    p = sub.add_parser("bench", help="time course_lib's attention against torch's, side by side")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=256)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--repeats", type=int, default=15, help="timed repeats per implementation (median reported)")
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
    from .bench import attention_benchmarks, format_results

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


if __name__ == "__main__":
    sys.exit(main())
