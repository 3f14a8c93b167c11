"""The explanation itself: parse, resolve settings and model, run every stage's checks.

`explain_log(text)` is the whole pipeline behind `capacity-planner explain-log`:
`parse` splits the text into start-ups, `settings` names the engine and the
settings (with their origin), `memory` checks profile and subtract, `carve`
(with `concurrency` and `failures`) checks carve and report, and a model, when one
is given or named by the log and known to the planner, comes in through `logmodel`.
"""

from __future__ import annotations

from capacity_planner._checks import check_fraction
from capacity_planner.accounting.versions import get_formula
from capacity_planner.errors import SettingError
from capacity_planner.explain.carve import carve_checks
from capacity_planner.explain.logmodel import LogModel, resolve_model, try_resolve_log_model
from capacity_planner.explain.memory import memory_checks
from capacity_planner.explain.parse import LogRun, ParsedLog, parse_log
from capacity_planner.explain.patterns import Value
from capacity_planner.explain.settings import detect_engine, planner_version, resolve_settings
from capacity_planner.explain.sglang import is_sglang_run, sglang_checks
from capacity_planner.explain.types import Check, LogExplanation, RunReport, Setting
from capacity_planner.explain.warmup import warmup_checks

__all__ = ["OVERRIDES", "explain_log", "explain_parsed"]

OVERRIDES = (
    "block_size",
    "max_num_batched_tokens",
    "max_model_len",
    "tensor_parallel_size",
    "kv_cache_dtype",
    "swap_space",
    "gpu_memory_utilization",
    "page_size",
    "swa_full_tokens_ratio",
)

# What a complete start-up story needs; (fact keys, description).
_STORY: tuple[tuple[tuple[str, ...], str], ...] = (
    (("total_gpu_gib",), "total GPU memory"),
    (("gpu_memory_utilization",), "gpu_memory_utilization"),
    (("weights_gib", "weights_loaded_gib"), "model weights"),
    (("activation_gib", "peak_torch_gib"), "activation peak"),
    (("non_torch_gib",), "non-torch memory"),
    (("available_kv_gib",), "available KV cache memory"),
    (("num_gpu_blocks", "kv_cache_tokens"), "GPU blocks / KV cache size"),
    (("max_concurrency",), "maximum concurrency"),
)


def _missing(run: LogRun, settings: dict[str, Setting], model: LogModel | None) -> list[str]:
    if is_sglang_run(run):
        return _missing_sglang(settings, model)
    missing = [what for keys, what in _STORY if not any(run.get(k) for k in keys)]
    if "gpu_memory_utilization" in missing and "gpu_memory_utilization" in settings:
        missing.remove("gpu_memory_utilization")
    if "max_model_len" not in settings:
        missing.append("max_model_len")
    if "model" not in settings:
        missing.append("model name")
    if model is None:
        missing.append("model config (page size unchecked; pass --model)")
    for name in ("block_size", "tensor_parallel_size"):
        setting = settings.get(name)
        if setting is not None and setting.origin.startswith("assumed"):
            missing.append(f"{name} (assumed {setting.value})")
    return missing


def _missing_sglang(settings: dict[str, Setting], model: LogModel | None) -> list[str]:
    missing = [] if model is not None else ["model config (pool sizes unchecked; pass --model)"]
    for name in ("tensor_parallel_size", "page_size", "swa_full_tokens_ratio"):
        setting = settings.get(name)
        if setting is not None and setting.origin.startswith("assumed"):
            missing.append(f"{name} (assumed {setting.value})")
    return missing


def _given(overrides: dict[str, Value | None], run: LogRun) -> set[str]:
    """Settings fixed by the user or printed in the run (not assumed)."""
    given = {k for k, v in overrides.items() if v is not None}
    return given | {f.key for f in run.facts}


def _explain_run(
    run: LogRun,
    overrides: dict[str, Value | None],
    model: LogModel | None,
) -> RunReport:
    settings = resolve_settings(run, overrides)
    engine, why, version = detect_engine(run)
    run_notes: list[str] = []
    run_model = model
    if run_model is None and "model" in settings:
        run_model = try_resolve_log_model(str(settings["model"].value))
        if run_model is None:
            run_notes.append(
                f"unknown model {settings['model'].value!r}: not in the planner's catalog, so "
                "page size and block count are not checked (pass --model config.json)"
            )
    checks: list[Check] = []
    mem_checks, mem_notes = memory_checks(run, settings)
    checks.extend(mem_checks)
    checks.extend(warmup_checks(run))
    run_notes.extend(mem_notes)
    formula = planner_version(run, engine, version)
    block = settings.get("block_size")
    if block is not None and block.origin.startswith("assumed"):
        default = get_formula(formula).default_block_size
        settings["block_size"] = Setting("block_size", default, f"assumed: {formula}'s default")
    carve, carve_notes = (
        ([], []) if engine == "SGLang" else carve_checks(run, settings, run_model, engine, formula)
    )
    checks.extend(carve)
    checks.extend(sglang_checks(run, settings, run_model))
    run_notes.extend(carve_notes)
    if run.get("blocks_line_without_cpu") and run.get("kv_cache_tokens"):
        run_notes.append(
            "this start-up mixes '# GPU blocks: N' (V1 v0.7.0-v0.7.2) and 'GPU KV cache size' "
            "(PR #13596) lines: two vLLM versions, read as one run because their numbers agree"
        )
    workers = [s for s in run.sources if "WorkerProcess" in s or "RayWorker" in s]
    if workers and "tensor_parallel_size" not in _given(overrides, run):
        run_notes.append(
            f"{len(workers)} worker processes print lines (plus the driver, which has no "
            f"prefix): at least {len(workers) + 1} GPUs; pass --tensor-parallel-size for the "
            "page-size checks"
        )
    if run.get("error_no_memory"):
        run_notes.append("vLLM stopped: 'No available memory for the cache blocks'")
    if run.get("hybrid_block_size"):
        run_notes.append(
            "hybrid attention + Mamba model: vLLM enlarged the attention block so one page "
            "holds a Mamba state; per-request cost is not max_model_len tokens"
        )
    return RunReport(
        index=run.index,
        first_line=run.first_line,
        last_line=run.last_line,
        engine=engine,
        engine_origin=why,
        vllm_version=version,
        settings=tuple(settings.values()),
        processes=run.sources,
        checks=tuple(checks),
        missing=tuple(_missing(run, settings, run_model)),
        notes=tuple(run_notes),
        model=None if run_model is None else f"{run_model.name} ({run_model.source})",
        regime=formula,
    )


def explain_parsed(
    parsed: ParsedLog,
    *,
    source: str = "<text>",
    model: str | LogModel | None = None,
    overrides: dict[str, Value | None] | None = None,
) -> LogExplanation:
    """Explain an already parsed log (see `explain_log`)."""
    resolved = resolve_model(model) if isinstance(model, str) else model
    notes: list[str] = []
    if parsed.truncated_lines:
        shown = ", ".join(str(n) for n in parsed.truncated_lines[:10])
        notes.append(f"lines cut short, numbers not read: {shown}")
    if parsed.duplicate_lines:
        notes.append(
            f"{parsed.duplicate_lines} repeated numbers skipped (the same line printed by "
            "several tensor-parallel ranks, or pasted twice)"
        )
    if not parsed.runs:
        notes.append(
            "no vLLM start-up lines found: expected lines such as '# GPU blocks: N, # CPU "
            "blocks: M', 'Available KV cache memory: Y GiB', 'GPU KV cache size: N tokens' or "
            "'Maximum concurrency for L tokens per request: X.XXx'"
        )
    runs = tuple(_explain_run(run, dict(overrides or {}), resolved) for run in parsed.runs)
    return LogExplanation(source=source, num_lines=parsed.num_lines, runs=runs, notes=tuple(notes))


def _check_sglang_overrides(overrides: dict[str, Value | None]) -> None:
    ratio = overrides.get("swa_full_tokens_ratio")
    if ratio is not None:
        check_fraction("overrides['swa_full_tokens_ratio']", ratio)
    page = overrides.get("page_size")
    if page is not None and (isinstance(page, bool) or not isinstance(page, int) or page < 1):
        raise SettingError(f"overrides['page_size'] must be an integer >= 1, got {page!r}")


def explain_log(
    text: str,
    *,
    source: str = "<text>",
    model: str | LogModel | None = None,
    overrides: dict[str, Value | None] | None = None,
) -> LogExplanation:
    """Explain the vLLM start-up log `text`.

    `model` is a config.json path or a planner catalog name (raises
    `capacity_planner.errors.UnknownModelError` / `ConfigFieldError` when unusable);
    `overrides` supplies settings the log lacks (keys: block_size, max_num_batched_tokens,
    max_model_len, tensor_parallel_size, kv_cache_dtype, swap_space,
    gpu_memory_utilization; SGLang's page_size, swa_full_tokens_ratio).
    Never raises on the log text itself.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    unknown = set(overrides or {}) - set(OVERRIDES)
    if unknown:
        raise ValueError(f"overrides: unknown keys {sorted(unknown)}; allowed: {OVERRIDES}")
    _check_sglang_overrides(overrides or {})
    return explain_parsed(parse_log(text), source=source, model=model, overrides=overrides)
