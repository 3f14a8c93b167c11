"""SGLang's token-pool lines, recomputed: one pool, and the scheduler's restatement.

SGLang sizes its KV pool once after the weights load and prints one line per pool
(`mem_cache/memory_pool.py` of sgl-project/sglang; "GB" there are GiB):

    KV Cache is allocated. #tokens: N, K size: X GB, V size: Y GB

One pool for every layer takes `(N + page_size) x cell_size / 2` of K (`cell_size`:
`capacity_planner.sglang`); hybrid sliding-window pools are read by `sglang_pools`. The
scheduler (`managers/scheduler.py`) then restates `max_total_num_tokens=N, ...,
context_len=L`: the only pool's, or the full pool's, token count.
"""

from __future__ import annotations

from capacity_planner._units import GiB
from capacity_planner.errors import CapacityPlannerError
from capacity_planner.explain.logmodel import LogModel
from capacity_planner.explain.parse import LogRun
from capacity_planner.explain.sglang_pools import (
    half_ulp,
    hybrid_checks,
    kv_dtype,
    setting_value,
    tp_size,
)
from capacity_planner.explain.types import Check, Setting
from capacity_planner.sglang import cell_size

__all__ = ["is_sglang_run", "sglang_checks"]

_SGLANG_KEYS = (
    "sglang_tokens",
    "sglang_full_tokens",
    "sglang_all_swa_tokens",
    "sglang_pools_gib",
    "sglang_banner",
    "sglang_max_total_tokens",
)


def is_sglang_run(run: LogRun) -> bool:
    return any(run.get(key) is not None for key in _SGLANG_KEYS)


def _single_pool(run: LogRun, settings: dict[str, Setting], model: LogModel | None) -> list[Check]:
    tokens = run.get("sglang_tokens")
    k_size = run.get("sglang_k_gib") or run.get("sglang_kv_gib")
    if tokens is None or k_size is None:
        return []
    both = run.get("sglang_k_gib") is None  # "KV size" counts K and V together
    if model is None:
        return [
            Check("carve", "SGLang token pool", "#tokens x cell size", None,
                  f"{int(tokens.value):,} tokens", "unchecked",
                  "name the model (--model) to check the K/V sizes", tokens.line_no)
        ]  # fmt: skip
    tp = tp_size(settings)
    try:
        cell = cell_size(model.spec, tp, kv_dtype(settings))
    except (CapacityPlannerError, ValueError) as exc:
        return [Check("carve", "SGLang token pool", "#tokens x cell size", None,
                      k_size.literal + " GB", "unchecked", str(exc), k_size.line_no)]  # fmt: skip
    per_token = cell if both else cell / 2
    page = int(setting_value(settings, "page_size", 1)[0])
    want = (int(tokens.value) + page) * per_token / GiB  # with SGLang's dummy page
    ok = abs(want - float(k_size.value)) <= half_ulp(k_size)
    what = "K and V" if both else "K"
    return [
        Check("carve", f"SGLang {what} size", f"({int(tokens.value):,} tokens + page {page}) x "
              f"{int(per_token):,} B ({model.name}, TP {tp})", f"{want:.2f} GB",
              k_size.literal + " GB", "consistent" if ok else "inconsistent",
              None if ok else "another model, TP size or KV dtype than assumed",
              k_size.line_no)
    ]  # fmt: skip


def _report(run: LogRun) -> list[Check]:
    """The scheduler's `max_total_num_tokens`: the full pool (or the only pool)."""
    logged = run.get("sglang_max_total_tokens")
    if logged is None:
        return []
    pool = run.get("sglang_full_tokens") or run.get("sglang_pool_full_size")
    pool = pool or run.get("sglang_all_swa_tokens") or run.get("sglang_tokens")
    checks = []
    if pool is not None:
        ok = int(pool.value) == int(logged.value)
        checks.append(Check(
            "report", "SGLang max_total_num_tokens", f"the pool's tokens (line {pool.line_no})",
            f"{int(pool.value):,}", f"{int(logged.value):,}",
            "consistent" if ok else "inconsistent",
            None if ok else "the scheduler line and the pool lines come from different "
            "start-ups, or the pool was resized after capture", logged.line_no))  # fmt: skip
    context = run.get("sglang_context_len")
    if context is not None and int(context.value) > 0:
        times = int(logged.value) / int(context.value)
        checks.append(Check(
            "report", "SGLang full-length requests", f"{int(logged.value):,} / context_len "
            f"{int(context.value):,}", f"{times:.2f}x", None, "derived",
            "requests of the full context that fit at once", logged.line_no))  # fmt: skip
    return checks


def sglang_checks(run: LogRun, settings: dict[str, Setting], model: LogModel | None) -> list[Check]:
    """Checks for SGLang's pool lines (empty when the run printed none)."""
    if (
        run.get("sglang_full_tokens") is not None
        or run.get("sglang_pools_gib") is not None
        or run.get("sglang_all_swa_tokens") is not None
    ):
        return hybrid_checks(run, settings, model) + _report(run)
    return _single_pool(run, settings, model) + _report(run)
