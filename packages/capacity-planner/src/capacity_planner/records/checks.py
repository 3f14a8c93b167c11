"""The planner against one record: carve the logged memory, carve the logged count, end to end.

- *carve*: the logged "Available KV cache memory" is widened to every byte count that prints
  as the logged "X.XX GiB" and carved; the logged block / token count, the printed
  concurrency, "X GiB KV cache is needed" and the estimated maximum length must be among the
  results (vLLM `kv_cache_utils.py`: `get_kv_cache_config_from_groups`,
  `_check_enough_kv_cache_memory`; V0 `CacheEngine`);
- *count*: exactly the logged number of blocks is carved; the printed tokens, concurrency,
  V0 error length and V0 `# CPU blocks` (the swap space cut into the same blocks) must come
  out as logged;
- *end to end*: the planner's own estimate from the model, the GPU and the settings.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from typing import Any

from capacity_planner import (
    CapacityPlan,
    CapacityPlannerError,
    EngineSettings,
    GiB,
    KVCacheConfig,
    ModelSpec,
    compute_kv_cache_config,
    logged_gib_bounds,
    plan,
    resolve_gpu,
)
from capacity_planner.accounting.startup import COLD_COMPILE_EXTRA_RANGE
from capacity_planner.accounting.terms import draft_layers
from capacity_planner.records.sources import ISSUE_RECORDS, IssueRecord, Logged

__all__ = ["ColdWarmPair", "RecordCheck", "accuracy_summary", "check_record", "cold_warm_pairs"]


@dataclass(frozen=True)
class RecordCheck:
    """The planner against one record; `None` where the record lacks what a check needs."""

    record: IssueRecord
    given_tokens: tuple[int, int] | None  # tokens carved from both ends of the logged GiB
    given_consistent: bool | None  # the logged count is among them
    implied_gib: float | None  # memory the logged count needs
    given_concurrency: tuple[str, ...]
    needed_gib: tuple[str, ...]  # "X GiB KV cache is needed", printed as the log prints it
    estimate_range: tuple[int, int] | None
    given_fits: bool | None
    count: KVCacheConfig | None  # the logged block count, carved
    plan: CapacityPlan | None
    plan_error: str | None
    e2e_error: float | None  # predicted / logged available memory - 1
    e2e_tokens_error: float | None  # predicted / logged tokens - 1
    weights_error: float | None
    # a cold-cache start: the warm estimate less the cold extra's bound, in GiB (low, high)
    cold_band: tuple[float, float] | None = None

    @property
    def in_cold_band(self) -> bool | None:
        """The logged memory of a cold start lies within the planner's cold bound."""
        if self.cold_band is None or self.record.logged.available_gib is None:
            return None
        lo, hi = self.cold_band
        return lo - 0.005 <= self.record.logged.available_gib <= hi + 0.005

    @property
    def verdict_agrees(self) -> bool | None:
        """The planner's "will it start?" matches what the source reports happened."""
        if self.plan is None or self.record.started is None:
            return None
        return self.plan.starts == self.record.started

    @property
    def headline_error(self) -> float | None:
        """End-to-end error on available memory, or on tokens where only a count was logged."""
        return self.e2e_error if self.e2e_error is not None else self.e2e_tokens_error

    @property
    def count_consistent(self) -> bool | None:
        """Every figure derived from the logged count comes out as logged."""
        if self.count is None:
            return None
        c, log = self.count, self.record.logged
        return (
            (log.tokens is None or c.num_tokens == log.tokens)
            and (log.concurrency is None or f"{c.max_concurrency:.2f}" == log.concurrency)
            and (log.error_tokens is None or c.num_tokens == log.error_tokens)
            and (log.cpu_blocks is None or c.num_cpu_blocks == log.cpu_blocks)
        )


def _carve(model: ModelSpec, s: EngineSettings, num_bytes: int) -> KVCacheConfig:
    mnbt = s.max_num_batched_tokens
    if mnbt is None and s.vllm_version != "v0":
        mnbt = 8192  # `vllm serve` on a large GPU; only sliding-window usage depends on it
    return compute_kv_cache_config(
        model,
        num_bytes,
        block_size=s.block_size,
        kv_cache_dtype=s.kv_cache_dtype,
        dtype=s.dtype,
        tensor_parallel_size=s.tensor_parallel_size,
        pipeline_parallel_size=s.pipeline_parallel_size,
        max_model_len=s.max_model_len,
        max_num_batched_tokens=mnbt,
        vllm_version=s.vllm_version,
        hybrid_kv_cache_manager=s.hybrid_kv_cache_manager,
        mamba_cache_mode=s.mamba_cache_mode,
        swap_space_bytes=s.swap_space_bytes,
        draft_layers=draft_layers(model, s),
    )


def _logged_blocks(log: Logged, probe: KVCacheConfig, regime: str) -> int | None:
    if log.blocks is not None:
        return log.blocks
    if log.tokens is None:
        return None
    if len(probe.groups) == 1:
        return log.tokens // probe.block_size
    if regime in ("v1", "v1-graphs"):
        # 0.9-0.20 print `num_blocks // len(groups) x block_size`: the smallest block count
        # that prints the logged tokens (the next len(groups) - 1 print the same)
        return log.tokens // probe.block_size * len(probe.groups)
    return None


def _logged_tokens(log: Logged, block_size: int) -> int | None:
    if log.tokens is not None:
        return log.tokens
    if log.blocks is not None:
        return log.blocks * block_size
    return log.error_tokens


_RELEASE = re.compile(r"\d+\.\d+(?:\.\d+)?")


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def check_record(record: IssueRecord) -> RecordCheck:
    """Carve the logged memory and count, and run the end-to-end estimate, for one record."""
    model, s, log = record.model_spec(), record.engine_settings(), record.logged
    given_tokens = consistent = implied = estimate = given_fits = None
    conc: tuple[str, ...] = ()
    needed: tuple[str, ...] = ()
    if log.available_gib is not None and log.available_gib > 0:
        lo, hi = logged_gib_bounds(log.available_gib)
        a, b = _carve(model, s, lo), _carve(model, s, hi - 1)
        given_tokens = (a.num_tokens, b.num_tokens)
        logged = _logged_tokens(log, a.block_size)
        if logged is not None:
            consistent = a.num_tokens <= logged <= b.num_tokens
            implied = logged / a.num_tokens * lo / GiB if a.num_tokens else None
        conc = tuple(dict.fromkeys(f"{c.max_concurrency:.2f}" for c in (a, b)))
        places = _decimals(log.needed_gib) if log.needed_gib else 2
        needed = tuple(dict.fromkeys(f"{c.required_bytes / GiB:.{places}f}" for c in (a, b)))
        estimate = (a.estimated_max_model_len, b.estimated_max_model_len)
        given_fits = b.fits
    count = None
    probe = _carve(model, s, GiB)
    blocks = _logged_blocks(log, probe, s.formula.name)
    if blocks is not None:
        count = _carve(model, s, blocks * probe.bytes_per_block)
    p, plan_error = None, record.mismatch.get("no_e2e")
    if record.gpu is not None and plan_error is None:
        try:
            p, plan_error = plan(model, resolve_gpu(record.gpu), s), None
        except CapacityPlannerError as exc:
            plan_error = str(exc)
    e2e = e2e_tokens = weights = None
    if p is not None:
        if log.available_gib:
            e2e = p.memory.available_kv_bytes / GiB / log.available_gib - 1.0
        logged_tokens = _logged_tokens(log, p.kv.block_size)
        if logged_tokens:
            e2e_tokens = p.kv.num_tokens / logged_tokens - 1.0
    if log.weights_gib is not None:
        w = p if p is not None else plan(model, resolve_gpu("1024GiB"), s)
        weights = w.memory.weights_bytes / GiB / log.weights_gib - 1.0
    band = None
    if p is not None and record.compile_cache == "cold":
        warm = p.memory.available_kv_bytes
        band = tuple(round((warm - x) / GiB, 2) for x in reversed(COLD_COMPILE_EXTRA_RANGE))
    return RecordCheck(
        record, given_tokens, consistent, implied, conc, needed, estimate, given_fits,
        count, p, plan_error, e2e, e2e_tokens, weights, band,  # type: ignore[arg-type]
    )  # fmt: skip


def accuracy_summary(checks: tuple[RecordCheck, ...]) -> dict[str, Any]:
    """Counts behind the README summary: exact carves and the end-to-end error distribution."""
    carved = [c for c in checks if c.given_consistent is not None]
    counted = [c for c in checks if c.count_consistent is not None]
    errors = sorted(abs(e) for c in checks if (e := c.headline_error) is not None)
    not_cold = sorted(
        abs(e)
        for c in checks
        if (e := c.headline_error) is not None and c.record.compile_cache != "cold"
    )
    verdicts = [c.verdict_agrees for c in checks if c.verdict_agrees is not None]
    return {
        "records": len(checks),
        "sources": len({c.record.source.url for c in checks}),
        "carved": len(carved),
        "carved_exact": sum(bool(c.given_consistent) for c in carved),
        "counted": len(counted),
        "counted_exact": sum(bool(c.count_consistent) for c in counted),
        "e2e": len(errors),
        "within_1": sum(e <= 0.01 for e in errors),
        "within_5": sum(e <= 0.05 for e in errors),
        "within_10": sum(e <= 0.10 for e in errors),
        "median": statistics.median(errors) if errors else None,
        "verdicts": len(verdicts),
        "verdicts_agree": sum(verdicts),
        "refusals": sum(c.record.started is False for c in checks if c.verdict_agrees is not None),
        "not_cold_e2e": len(not_cold),
        "not_cold_within_5": sum(e <= 0.05 for e in not_cold),
        "not_cold_median": statistics.median(not_cold) if not_cold else None,
        "cold": sum(c.in_cold_band is not None for c in checks),
        "cold_in_band": sum(bool(c.in_cold_band) for c in checks),
        "releases": sorted(
            {m.group(0) for c in checks if (m := _RELEASE.match(c.record.release))},
            key=lambda v: tuple(int(x) for x in v.split(".")),
        ),
    }


@dataclass(frozen=True)
class ColdWarmPair:
    """One configuration started with a cold and with a warm torch.compile cache."""

    name: str
    cold: IssueRecord
    warm: IssueRecord
    delta_gib: float  # KV memory the warm start had beyond the cold one: the cold extra

    @property
    def same_release(self) -> bool:
        return self.cold.release == self.warm.release


def cold_warm_pairs(records: tuple[IssueRecord, ...] = ISSUE_RECORDS) -> tuple[ColdWarmPair, ...]:
    """The records' cold/warm pairs (same `pair` name, one cold and one warm start each)."""
    named: dict[str, dict[str, IssueRecord]] = {}
    for r in records:
        if r.pair is not None and r.compile_cache is not None:
            named.setdefault(r.pair, {})[r.compile_cache] = r
    out = []
    for name, both in named.items():
        cold, warm = both.get("cold"), both.get("warm")
        if cold is None or warm is None:
            continue
        a, b = cold.logged.available_gib, warm.logged.available_gib
        if a is not None and b is not None:
            out.append(ColdWarmPair(name, cold, warm, round(b - a, 2)))
    return tuple(out)
