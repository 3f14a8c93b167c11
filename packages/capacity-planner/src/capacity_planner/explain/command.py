"""Command line of explain-log: options, reading FILE or standard input, exit status.

`register(subparsers)` is what the planner's `capacity-planner` CLI calls to add the
`explain-log` subcommand; `main(argv)` runs the same command on its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from capacity_planner.errors import CapacityPlannerError
from capacity_planner.explain.explain import OVERRIDES, explain_log
from capacity_planner.explain.report import render_text

__all__ = [
    "EXIT_INCONSISTENT",
    "EXIT_NOTHING_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "add_arguments",
    "main",
    "register",
    "run_command",
]

EXIT_OK = 0  # every recomputed number agrees with the log
EXIT_INCONSISTENT = 1  # at least one number disagrees
EXIT_USAGE = 2  # bad arguments, unreadable file, unknown --model
EXIT_NOTHING_FOUND = 3  # no vLLM start-up line in the input


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The explain-log options (shared by `register` and `main`)."""
    parser.add_argument(
        "file", metavar="FILE", help="vLLM or SGLang log file, or - for standard input"
    )
    parser.add_argument(
        "--model",
        help="config.json path (or its folder) or a catalog name: "
        "also checks the page size and block count against the model",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for machines")
    parser.add_argument(
        "--block-size",
        type=_positive_int,
        help="block size when the log does not show it (vLLM default 16)",
    )
    parser.add_argument(
        "--max-model-len", type=_positive_int, help="max_model_len when the log does not show it"
    )
    parser.add_argument(
        "--max-num-batched-tokens",
        type=_positive_int,
        help="tokens per scheduler step (sets sliding-window layers' per-request cost)",
    )
    parser.add_argument(
        "--tensor-parallel-size",
        type=_positive_int,
        help="tensor-parallel size when the log does not show it",
    )
    parser.add_argument("--kv-cache-dtype", help="auto, fp8, fp8_e4m3, fp8_e5m2, ...")
    parser.add_argument(
        "--swap-space", type=_positive_float, help="V0 CPU swap space in GiB per GPU (default 4)"
    )
    parser.add_argument(
        "--gpu-memory-utilization", type=_fraction, help="utilisation when the log does not show it"
    )
    parser.add_argument(
        "--page-size",
        type=_positive_int,
        help="SGLang's --page-size when the log does not show it (default 1)",
    )
    parser.add_argument(
        "--swa-full-tokens-ratio",
        type=_fraction,
        help="SGLang's --swa-full-tokens-ratio when the log does not show it (default 0.8)",
    )


def run_command(args: argparse.Namespace) -> int:
    """Handler of the explain-log subcommand; returns the exit status."""
    try:
        if args.file == "-":
            text, source = sys.stdin.read(), "<stdin>"
        else:
            text = Path(args.file).read_bytes().decode("utf-8", errors="replace")
            source = args.file
    except OSError as exc:
        print(f"explain-log: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    overrides = {name: getattr(args, name, None) for name in OVERRIDES}
    try:
        explanation = explain_log(text, source=source, model=args.model, overrides=overrides)
    except (CapacityPlannerError, ValueError) as exc:
        print(f"explain-log: {exc}", file=sys.stderr)
        return EXIT_USAGE
    text_out = (
        json.dumps(explanation.to_dict(), indent=2) + "\n"
        if args.json
        else render_text(explanation)
    )
    try:
        sys.stdout.write(text_out)
        sys.stdout.flush()
    except BrokenPipeError:  # `explain-log ... | head` closed the pipe: not an error
        pass
    if not explanation.found_anything:
        return EXIT_NOTHING_FOUND
    return EXIT_OK if explanation.consistent else EXIT_INCONSISTENT


_HELP = "explain the KV-cache numbers of a vLLM start-up log"
_DESCRIPTION = (
    "Read a vLLM start-up log (V0 '# GPU blocks' or V1 'GPU KV cache size'), retell its "
    "numbers as profile -> subtract -> carve, recompute each one and flag those that do not "
    "follow. Exit status: 0 consistent, 1 some number disagrees, 2 bad input, 3 nothing found."
)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add the `explain-log` subcommand to the planner's CLI."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "explain-log", help=_HELP, description=_DESCRIPTION
    )
    add_arguments(parser)
    parser.set_defaults(func=run_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run explain-log on its own: `python -m capacity_planner.explain FILE`."""
    parser = argparse.ArgumentParser(prog="capacity-planner explain-log", description=_DESCRIPTION)
    add_arguments(parser)
    return run_command(parser.parse_args(argv))
