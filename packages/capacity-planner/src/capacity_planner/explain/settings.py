"""Which vLLM engine and settings one start-up ran with, and where each value came from.

Precedence, most trusted first: a command-line override of explain-log; the
"non-default args" dict or "args: Namespace(...)" dump (what the user typed); the
engine config line; lines that restate a value ("Using max model len", the
concurrency line, a start-up error); finally vLLM's default, marked *assumed*.
"""

from __future__ import annotations

from collections.abc import Mapping

from capacity_planner.accounting.versions import resolve_version
from capacity_planner.errors import CapacityPlannerError
from capacity_planner.explain.parse import LogRun
from capacity_planner.explain.patterns import SETTING_KEYS, Value
from capacity_planner.explain.sglang import is_sglang_run
from capacity_planner.explain.types import Setting

__all__ = ["Engine", "detect_engine", "planner_version", "resolve_settings"]

# vLLM's defaults on CUDA where a log leaves a value out.
_DEFAULTS: dict[str, tuple[Value, str]] = {
    "block_size": (16, "assumed: the version's default (16; 64 from vLLM 0.34)"),
    "tensor_parallel_size": (1, "assumed: no worker prefixes name a second rank"),
    "kv_cache_dtype": ("auto", "assumed: vLLM's default (the model dtype)"),
    "swap_space": (4.0, "assumed: V0's default --swap-space 4 (GiB per GPU)"),
}

Engine = tuple[str, str, str | None]  # (engine, why we think so, version)


def detect_engine(run: LogRun) -> Engine:
    """("V0" | "V1" | "SGLang" | "unknown", the evidence, the vLLM version if printed)."""
    version = run.value("vllm_version")
    version_text = None if version is None else str(version)
    if version is None and is_sglang_run(run):
        return "SGLang", "SGLang's token-pool lines (mem_cache/memory_pool.py)", None
    banner = run.value("engine")
    if banner is not None:
        return str(banner), "engine banner", version_text
    sources = " ".join(run.sources)
    if run.get("kv_cache_tokens") is not None:
        return "V1", "'GPU KV cache size' is a V1 line (PR #13596, v0.7.3+)", version_text
    if "EngineCore" in sources or "VllmWorker rank=" in sources or "Worker_TP" in sources:
        return "V1", "V1 process prefixes", version_text
    if run.get("blocks_line_without_cpu") is not None:
        return "V1", "'# GPU blocks' without CPU blocks is early V1 (v0.7.0-v0.7.2)", version_text
    if run.get("num_cpu_blocks") is not None:
        return "V0", "'# GPU blocks, # CPU blocks' is a V0 line", version_text
    if "VllmWorkerProcess" in sources:
        return "V0", "V0 multiprocessing worker prefixes", version_text
    if run.get("peak_torch_gib") is not None or run.get("requested_gib") is not None:
        return "V0", "V0 memory-profiling line", version_text
    return "unknown", "no engine banner or engine-specific line", version_text


def planner_version(run: LogRun, engine: str, version: str | None) -> str:
    """The planner's regime (`capacity_planner.VLLM_FORMULAS`) for this run.

    A printed release decides (`resolve_version`); otherwise the lines do: the 0.34
    warm-up lines mean the extensible cache, "GPU KV cache size" and the concurrency on
    one line mean 0.21+, "CUDA graph memory profiling is enabled" means 0.20+.
    """
    if engine == "V0":
        return "v0"
    if run.get("warmup_blocks") is not None or run.get("extended_blocks") is not None:
        return "v1-extensible"
    early = run.get("blocks_line_without_cpu") is not None
    if version is not None:
        try:
            regime = resolve_version(version)
        except CapacityPlannerError:
            regime = None
        if regime is not None:
            return "v1-0.8" if regime == "v0" or early else regime
    if early:
        return "v1-0.8"
    if engine == "unknown" and run.get("num_cpu_blocks") is not None:
        return "v0"
    tokens, conc = run.get("kv_cache_tokens"), run.get("concurrency_len")
    if tokens is not None and conc is not None and tokens.line_no == conc.line_no:
        return "v1-2026"
    if run.get("cuda_graph_profiling") is not None:
        return "v1-graphs"
    return "v1"


def _pick(run: LogRun, key: str) -> tuple[Value, str] | None:
    facts = run.all(key)
    if not facts:
        return None
    # Later restatements (non-default args come first, config later) agree in practice;
    # the first one from the main process is the user's own input.
    main = [f for f in facts if f.source is None or f.rank == 0] or list(facts)
    fact = main[0]
    return fact.value, f"line {fact.line_no}"


def resolve_settings(run: LogRun, overrides: Mapping[str, Value | None]) -> dict[str, Setting]:
    """Every setting the checks use, each with its origin."""
    out: dict[str, Setting] = {}

    def put(name: str, value: Value, origin: str) -> None:
        out.setdefault(name, Setting(name, value, origin))

    for name, value in overrides.items():
        if value is not None:
            put(name, value, f"--{name.replace('_', '-')}")
    # Every setting a log may reveal except cpu_offload_gb, which the carve does not use.
    for name in (k for k in SETTING_KEYS if k != "cpu_offload_gb"):
        picked = _pick(run, name)
        if picked is not None:
            put(name, picked[0], picked[1])
    hybrid = run.get("hybrid_block_size")
    if hybrid is not None:
        put(
            "block_size",
            hybrid.value,
            f"line {hybrid.line_no}: vLLM enlarged the attention block for a hybrid model",
        )
    for key, what in (
        ("concurrency_len", "the concurrency line"),
        ("error_max_seq_len", "the start-up error"),
    ):
        fact = run.get(key)
        if fact is not None:
            put("max_model_len", fact.value, f"line {fact.line_no}, {what}")
    if is_sglang_run(run):
        for key, name, default, why in (
            ("sglang_page_size", "page_size", 1, "assumed: SGLang's default --page-size 1"),
            ("sglang_swa_ratio", "swa_full_tokens_ratio", 0.8,
             "assumed: SGLang's default --swa-full-tokens-ratio 0.8"),
        ):  # fmt: skip
            picked = _pick(run, key)
            if picked is not None:
                put(name, picked[0], picked[1])
            elif run.get("sglang_full_tokens") or run.get("sglang_pools_gib"):
                put(name, default, why)
    ranks = {f.rank for f in run.facts if f.rank is not None}
    if len(ranks) > 1:
        put("tensor_parallel_size", max(ranks) + 1, f"inferred: ranks 0..{max(ranks)} print lines")
    if is_sglang_run(run):
        put("kv_cache_dtype", "auto", "assumed: SGLang's default (the model dtype)")
        put("tensor_parallel_size", 1, "assumed: no prefix names a second rank")
        return out  # vLLM's block size and swap space mean nothing to SGLang
    for name, (value, origin) in _DEFAULTS.items():
        # The swap space only sizes V0's CPU pool; elsewhere it would be noise.
        if name != "swap_space" or run.get("num_cpu_blocks") is not None:
            put(name, value, origin)
    return out
