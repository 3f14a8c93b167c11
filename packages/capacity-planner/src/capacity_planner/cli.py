"""`capacity-planner` / `python -m capacity_planner`: argparse front end with vLLM's flag names.

Subcommands: `plan` (the default when the first argument is not a subcommand), `prefix`,
`inverse {utilization,tp,gpus,max-model-len}`, `models`, `gpus`, and `explain-log`
(registered by `capacity_planner.explain.register(subparsers)` when that module is
present). Bad input exits with status 2 and one line on stderr; a configuration vLLM
would refuse to start with exits 1 after printing the report.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from capacity_planner import explain
from capacity_planner._commands import (
    cmd_gpus,
    cmd_inverse,
    cmd_models,
    cmd_plan,
    cmd_prefix,
    load_model,
)
from capacity_planner._units import parse_size
from capacity_planner._version import __version__
from capacity_planner.accounting.settings import SAMPLER_PATHS
from capacity_planner.accounting.versions import DEFAULT_VERSION, VLLM_FORMULAS
from capacity_planner.errors import CapacityPlannerError, SettingError

__all__ = ["build_parser", "load_model", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _length(text: str) -> int:
    """vLLM-style lengths: 32768, 32k (x1000), 32K (x1024)."""
    match = re.fullmatch(r"\s*(-?[0-9]+)\s*([kKmM]?)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"invalid length {text!r}")
    scale = {"": 1, "k": 1000, "K": 1024, "m": 10**6, "M": 1 << 20}[match.group(2)]
    return int(match.group(1)) * scale


def _speculative(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--speculative-config is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--speculative-config must be a JSON object")
    return value


def _size(text: str) -> int:
    try:
        return parse_size(text, parameter="size")
    except SettingError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_model(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("model", nargs="?", help="catalog name or path to a Hugging Face config.json")
    p.add_argument("--model", dest="model_flag", help="same as the positional MODEL")


def _add_engine(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("vLLM engine arguments (vLLM's names and defaults)")
    g.add_argument("--gpu", help="catalog GPU (H100, A100-80GB, L4, ...) or a size (48GiB)")
    g.add_argument(
        "--gpu-memory-utilization",
        type=float,
        default=None,
        help="fraction of total memory (default: the version's, 1.0 from 0.34, 0.92 from 0.20)",
    )
    g.add_argument("--max-model-len", type=_length, default=None)
    g.add_argument(
        "--block-size", type=int, default=None, help="default: 64 from vLLM 0.34, 16 before"
    )
    g.add_argument("--kv-cache-dtype", default="auto")
    g.add_argument("--dtype", default="auto")
    g.add_argument("-tp", "--tensor-parallel-size", type=int, default=1)
    g.add_argument("-pp", "--pipeline-parallel-size", type=int, default=1)
    g.add_argument("--max-num-batched-tokens", type=_length, default=None)
    g.add_argument("--max-num-seqs", type=int, default=None)
    g.add_argument(
        "--kv-cache-memory",
        type=_size,
        default=None,
        help="bytes or a size (8GiB); skips profiling and ignores utilisation",
    )
    g.add_argument("-q", "--quantization", default=None)
    g.add_argument("--enforce-eager", action="store_true")
    g.add_argument("--enable-expert-parallel", action="store_true")
    g.add_argument("--swap-space", type=float, default=4.0, help="GiB (V0 CPU blocks)")
    g.add_argument("--disable-hybrid-kv-cache-manager", action="store_true")
    g.add_argument("--mamba-cache-mode", choices=("none", "align", "all"), default="none")
    g.add_argument(
        "--speculative-config",
        type=_speculative,
        default=None,
        help='JSON as vLLM takes it: {"method": "eagle3", "num_speculative_tokens": 3}',
    )
    m = p.add_argument_group("planner options")
    m.add_argument(
        "--vllm-version",
        default=DEFAULT_VERSION,
        help="a release (0.34.0, 0.10.2) or a regime: "
        f"{', '.join(VLLM_FORMULAS)} (default: %(default)s)",
    )
    m.add_argument(
        "--sampler",
        choices=SAMPLER_PATHS,
        default=None,
        help="how the start-up profile runs the dummy sampler: PyTorch's top-k/top-p, "
        "FlashInfer's, or model runner V2's logits-only profile (default: the release's; "
        "the log's 'FlashInfer is not available' or 'Using V2 Model Runner' line tells)",
    )
    m.add_argument(
        "--engine",
        choices=("vllm", "sglang"),
        default="vllm",
        help="whose start-up accounting to model (default: vllm)",
    )
    m.add_argument(
        "--mem-fraction-static",
        type=float,
        default=None,
        help="SGLang's --mem-fraction-static (with --engine sglang; default: SGLang's rule)",
    )
    m.add_argument(
        "--swa-full-tokens-ratio",
        type=float,
        default=0.8,
        help="SGLang's sliding-window / full tokens ratio of a hybrid SWA pool "
        "(with --engine sglang; default: %(default)s)",
    )
    m.add_argument(
        "--disable-hybrid-swa-memory",
        action="store_true",
        help="SGLang: one pool for every layer, also for hybrid sliding-window models",
    )
    for name in ("weights", "activation", "non-torch", "cuda-graph", "draft-weights"):
        m.add_argument(
            f"--{name}-memory",
            type=_size,
            default=None,
            help=f"measured {name} memory (e.g. from a log) instead of the estimate",
        )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="capacity-planner",
        description="Predict vLLM's KV-cache capacity (GPU blocks, KV tokens, max concurrency) "
        "from a model config and a GPU.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    p = sub.add_parser("plan", help="profile -> subtract -> carve, then vLLM's start-up lines")
    _add_model(p)
    _add_engine(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("prefix", help="blocks with and without prefix caching")
    p.add_argument("--prefix-tokens", type=_length, required=True, help="shared prefix P")
    p.add_argument("--users", type=int, required=True, help="concurrent users U")
    p.add_argument("--suffix-tokens", type=_length, required=True, help="private tokens S each")
    _add_model(p, required=False)
    _add_engine(p)
    p.set_defaults(func=cmd_prefix)

    p = sub.add_parser("inverse", help="utilisation / TP / GPUs for a target, or longest length")
    p.add_argument("question", choices=("utilization", "tp", "gpus", "max-model-len"))
    _add_model(p)
    p.add_argument(
        "--target-concurrency",
        type=float,
        help="requests of --context-len tokens (max-model-len: requests of that length)",
    )
    p.add_argument("--context-len", type=_length, help="tokens per request (sets max_model_len)")
    _add_engine(p)
    p.set_defaults(func=cmd_inverse)

    p = sub.add_parser("models", help="list the built-in model catalog")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("gpus", help="list the GPU catalog")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_gpus)
    explain.register(sub)
    return parser


def _vllm_spelling(arg: str) -> str:
    """vLLM's parser takes `--tensor_parallel_size` for `--tensor-parallel-size`."""
    if not arg.startswith("--") or arg == "--":
        return arg
    flag, eq, value = arg.partition("=")
    return flag.replace("_", "-") + eq + value


def main(argv: Sequence[str] | None = None) -> int:
    args_list = [_vllm_spelling(a) for a in (sys.argv[1:] if argv is None else argv)]
    parser = build_parser()
    commands: set[str] = set()
    for action in parser._actions:  # the one subparsers action holds every command name
        if isinstance(action, argparse._SubParsersAction):
            commands.update(action.choices)
    top_level = ("-h", "--help", "--version")
    if args_list and args_list[0] not in commands and args_list[0] not in top_level:
        args_list.insert(0, "plan")
    if not args_list:
        args_list = ["--help"]
    args = parser.parse_args(args_list)
    try:
        code = args.func(args)
    except BrokenPipeError:
        # `capacity-planner ... | head`: the reader left; exit quietly like other CLI tools.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - must outlive interpreter shutdown
        return 0
    except (CapacityPlannerError, ValueError, LookupError) as exc:
        # ValueError: a block_allocator argument check reached through our own validation.
        print(f"capacity-planner: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(
            f"capacity-planner: internal error ({type(exc).__name__}: {exc}); "
            "please report it with the command line",
            file=sys.stderr,
        )
        return 4
    return int(code or 0)
