"""`python -m course_lib COMMAND`: doctor, bench, release, check, grade."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("doctor", help="check the environment: versions, device, widgets")
    p.set_defaults(func=_doctor)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


def _doctor(args) -> int:
    print("doctor: not written yet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
