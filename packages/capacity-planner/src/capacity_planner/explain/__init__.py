"""`capacity-planner explain-log`: read a vLLM start-up log and explain every number.

vLLM prints its memory self-assessment at start-up: the profile (budget = total x
gpu_memory_utilization), the subtraction (weights, activation peak, non-torch memory)
and the carve into blocks ("# GPU blocks" in V0, "GPU KV cache size: N tokens" in V1),
then "Maximum concurrency for L tokens per request". This module parses those lines
from any vLLM release (`patterns`), splits a file into start-ups (`parse`),
recomputes each derived number from the ones before it (`memory`, `carve`,
`concurrency`, `failures`; a model's pages and block counts come from the
planner's `compute_kv_cache_config`, built on `block_allocator.kv_cache_spec`) and says,
for each, whether it is consistent and, if not, the likely cause. SGLang's start-up
lines are read too (`sglang`: one token pool and the scheduler's restatement;
`sglang_pools`: the hybrid sliding-window split and its two pools). See
docs/logs/README.md.

Python API: `explain_log(text)` -> `LogExplanation`; CLI: `register(subparsers)` adds
the subcommand to the planner's argparse tree, `main(argv)` runs it alone.
"""

from __future__ import annotations

from capacity_planner.explain.command import (
    EXIT_INCONSISTENT,
    EXIT_NOTHING_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    add_arguments,
    main,
    register,
    run_command,
)
from capacity_planner.explain.explain import explain_log, explain_parsed
from capacity_planner.explain.parse import parse_log
from capacity_planner.explain.types import STATUSES, Check, LogExplanation, RunReport, Setting

__all__ = [
    "EXIT_INCONSISTENT",
    "EXIT_NOTHING_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "STATUSES",
    "Check",
    "LogExplanation",
    "RunReport",
    "Setting",
    "add_arguments",
    "explain_log",
    "explain_parsed",
    "main",
    "parse_log",
    "register",
    "run_command",
]
