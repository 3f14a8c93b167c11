"""The ``block-allocator`` command: step-through pages of the allocator at work.

``block-allocator stepthrough NAME -o page.html`` records a named scenario;
``block-allocator stepthrough --trace calls.json -o page.html`` replays your own trace;
``block-allocator stepthrough --list`` names the scenarios. Errors are one line on stderr
and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import version

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from .stepthrough import SCENARIOS

    parser = argparse.ArgumentParser(
        prog="block-allocator",
        description="vLLM-style KV-cache block allocator: watch it work in a browser.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version('block-allocator')}"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    step = sub.add_parser(
        "stepthrough",
        help="write a self-contained HTML page that steps through allocator calls",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Record a scenario (or your own JSON trace of calls) and write one HTML "
        "page that steps forward and back through every call: blocks coloured by state, "
        "the free queue from head to tail, block tables and hash chains.",
    )
    step.add_argument("scenario", nargs="?", choices=sorted(SCENARIOS), help="a named scenario")
    step.add_argument("--trace", metavar="FILE", help="replay this JSON trace instead")
    step.add_argument(
        "-o", "--out", metavar="FILE", help="the page to write (default: <name>.html)"
    )
    step.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser


def _stepthrough(args: argparse.Namespace) -> int:
    from .errors import BlockAllocatorError
    from .stepthrough import SCENARIOS, TraceError, load_trace, record_scenario, replay_trace

    if args.list:
        for name, make in sorted(SCENARIOS.items()):
            doc = (make.__doc__ or "").strip().splitlines()
            print(f"{name:10s} {doc[0] if doc else ''}")
        return 0
    if (args.scenario is None) == (args.trace is None):
        print("block-allocator stepthrough: give a scenario name or --trace FILE (one of them)",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        if args.trace is not None:
            recorder = replay_trace(load_trace(args.trace), title=f"Trace: {args.trace}")
            default_out = "trace.html"
        else:
            recorder = record_scenario(args.scenario)
            default_out = f"{args.scenario}.html"
        path = recorder.write_page(args.out or default_out)
    except (TraceError, BlockAllocatorError, OSError) as exc:
        print(f"block-allocator stepthrough: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({len(recorder.steps)} steps); open it in a browser")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return _stepthrough(args)


if __name__ == "__main__":
    sys.exit(main())
