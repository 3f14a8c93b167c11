"""``python -m block_allocator.kit --impl MODULE [--lab lab01|lab05|ext|all]``."""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from . import LABS, grade
from ._runner import print_report


def _version() -> str:
    try:
        return version("block-allocator")
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m block_allocator.kit",
        description="Grade a block allocator against the Phase 02 labs (lab-01, lab-05).",
    )
    parser.add_argument(
        "--impl",
        default=os.environ.get("BLOCK_ALLOCATOR_IMPL"),
        help="module name or .py file to grade (default: $BLOCK_ALLOCATOR_IMPL)",
    )
    parser.add_argument(
        "--lab", choices=[*LABS, "all"], default="all", help="one section (default: all)"
    )
    parser.add_argument(
        "--time-limit", type=float, default=2.0, help="seconds per check (default: 2)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show every check's title")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    args = parser.parse_args(argv)
    if not args.impl:
        parser.error("--impl is required (or set BLOCK_ALLOCATOR_IMPL)")
    if not args.time_limit > 0:
        parser.error(f"--time-limit must be > 0, got {args.time_limit}")
    labs = LABS if args.lab == "all" else (args.lab,)
    try:
        reports = grade(args.impl, labs, args.time_limit)
    except Exception as exc:  # the learner's module does not import: say why, no traceback
        print(f"cannot import {args.impl!r}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print_report(reports, args.impl, args.verbose)
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
