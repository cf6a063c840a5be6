"""The instructor commands `prepare` and `slides`, registered on the course's CLI."""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def register(sub) -> None:
    p = sub.add_parser("prepare", help="train and cache every model of the course before a live session "
                                       "(safe to interrupt and rerun)")
    p.add_argument("names", nargs="*", metavar="EXPERIMENT", help="only these experiments (default: all)")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.set_defaults(func=_prepare)

    p = sub.add_parser("slides", help="write standalone HTML slides (no network needed) for the lecture notebooks")
    p.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="default: every notebook in notebooks/")
    p.add_argument("--out", default=str(ROOT / "build" / "slides"), help="output folder (default build/slides)")
    p.add_argument("--no-execute", action="store_true", help="use the notebooks as they are, without outputs")
    p.add_argument("--timeout", type=int, default=900, help="seconds a cell may run (default 900)")
    p.set_defaults(func=_slides)


def _prepare(args) -> int:
    from .. import experiments
    from .prepare import prepare

    if args.list:
        for name in experiments.names():
            exp = experiments.experiment(name)
            print(f"{name:<20} {exp.notebook:<26} {exp.description}")
        return 0
    try:
        prepare(args.names or None)
    except KeyError as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: what finished is cached; run prepare again to go on", file=sys.stderr)
        return 130
    return 0


def _slides(args) -> int:
    from .slides import export_slides

    paths = [Path(p) for p in args.notebooks] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"error: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    for path in paths:
        t0 = time.perf_counter()
        target = export_slides(path, args.out, execute=not args.no_execute, timeout=args.timeout)
        print(f"{path.name}: {target} ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"{len(paths)} slide deck(s) in {args.out} ({time.perf_counter() - start:.0f} s); open one in a browser: "
          f"arrow keys or space to move, s for the speaker notes")
    return 0
