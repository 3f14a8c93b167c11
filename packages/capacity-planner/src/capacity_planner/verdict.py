"""Will it start? vLLM's own reason when it would not, and the smallest change that helps.

A start-up fails in one of four places, in this order:

0. *init* (before 0.34): the budget `total x gpu_memory_utilization` exceeds the memory
   free at start-up ("Free memory on device ... is less than desired GPU memory
   utilization", `request_memory`);
1. *load*: the weights do not fit in the memory free at start-up; vLLM dies with a CUDA
   out-of-memory error while loading;
2. *profile*: nothing is left for the KV cache after the weights, the activation peak
   and the rest ("No available memory for the cache blocks");
3. *check*: one request of `max_model_len` tokens does not fit ("To serve at least one
   request with the model's max seq len ...", `_check_enough_kv_cache_memory`).

Each suggested change is the smallest of its kind that makes the plan start, and each is
confirmed by a full forward plan: `--max-model-len` (bisection), `--gpu-memory-
utilization` (to 0.001), `--tensor-parallel-size` (powers of two up to 8),
`--kv-cache-dtype fp8` and `--quantization fp8`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from capacity_planner._units import fmt_gib
from capacity_planner.accounting.settings import EngineSettings
from capacity_planner.accounting.terms import CUDA_CONTEXT
from capacity_planner.errors import CapacityPlannerError
from capacity_planner.inverse import max_model_len_that_fits
from capacity_planner.plan import CapacityPlan, plan

__all__ = ["Change", "Verdict", "will_it_start"]

Stage = Literal["ok", "init", "load", "profile", "check"]


@dataclass(frozen=True)
class Change:
    """One setting changed from the plan's, and what the deployment then gets."""

    flag: str
    value: str
    effect: str


@dataclass(frozen=True)
class Verdict:
    """Whether vLLM would start, why not, and what would make it start."""

    starts: bool
    stage: Stage
    reason: str
    changes: tuple[Change, ...] = ()
    cold_start: str | None = None

    def lines(self) -> tuple[str, ...]:
        head = "Will it start? yes" if self.starts else f"Will it start? no ({self.stage})"
        out = [head, f"  {self.reason}"]
        if self.cold_start:
            out.append(f"  {self.cold_start}")
        if self.changes:
            out.append("  smallest changes that make it start:")
            out += [f"    {c.flag} {c.value}: {c.effect}" for c in self.changes]
        return tuple(out)


def _diagnose(p: CapacityPlan) -> tuple[Stage, str]:
    m, kv = p.memory, p.kv
    rank = f"stage {m.stage} of {m.num_stages}, " if m.num_stages > 1 else ""
    if not m.budget_fits_free:
        free = m.total_bytes - CUDA_CONTEXT
        return "init", (
            f"Free memory on device ({fmt_gib(free)[:-4]}/{fmt_gib(m.total_bytes)[:-4]} GiB) on "
            "startup is less than desired GPU memory utilization "
            f"({m.gpu_memory_utilization}, {fmt_gib(m.requested_bytes)}). Decrease GPU memory "
            "utilization or reduce GPU memory used by other processes."
        )
    if not m.weights_fit:
        free = m.total_bytes - CUDA_CONTEXT
        return "load", (
            f"the weights do not fit: {fmt_gib(m.weights_bytes)} per GPU ({rank}TP "
            f"{p.settings.tensor_parallel_size}) against {fmt_gib(free)} free on a "
            f"{p.gpu.name}; vLLM fails while loading with CUDA out of memory"
        )
    if kv.num_blocks <= 0:
        return "profile", (
            f"{kv.error} (the {rank}weights, activation peak and the rest exceed the "
            f"{fmt_gib(m.requested_bytes)} budget by {fmt_gib(m.shortfall_bytes)})"
        )
    if kv.error is not None:
        return "check", kv.error
    return "ok", (
        f"{kv.num_tokens:,} KV tokens, {kv.max_concurrency:.2f}x requests of "
        f"{kv.max_model_len:,} tokens"
    )


def _tried(p: CapacityPlan, **changes: object) -> CapacityPlan | None:
    try:
        s = dataclasses.replace(p.settings, **changes)  # type: ignore[arg-type]
        return plan(p.model, p.gpu, s, with_cold_start=False)
    except CapacityPlannerError:
        return None


def _effect(q: CapacityPlan) -> str:
    return f"{q.kv.num_tokens:,} KV tokens, {q.kv.max_concurrency:.2f}x at {q.kv.max_model_len:,}"


def _suggest(p: CapacityPlan) -> tuple[Change, ...]:
    s: EngineSettings = p.settings
    out: list[Change] = []
    if p.memory.weights_fit:
        longest = max_model_len_that_fits(p.model, p.gpu, s)
        if longest.feasible and longest.plan is not None and longest.answer:
            out.append(Change("--max-model-len", f"{longest.answer}", _effect(longest.plan)))
    util = s.resolved_gpu_memory_utilization
    # Before 0.34 a budget above the free memory refuses to start: search below it.
    top = 1000
    if p.memory.sizing == "profile":
        top = (p.memory.total_bytes - CUDA_CONTEXT) * 1000 // p.memory.total_bytes
    if util * 1000 > top:
        q = _tried(p, gpu_memory_utilization=top / 1000)
        if q is not None and q.starts:
            out.append(Change("--gpu-memory-utilization", f"{top / 1000:.3f}", _effect(q)))
    elif util * 1000 < top:
        full = _tried(p, gpu_memory_utilization=top / 1000)
        if full is not None and full.starts:
            lo, hi = round(util * 1000), top
            best = full
            while lo < hi:
                mid = (lo + hi) // 2
                q = _tried(p, gpu_memory_utilization=mid / 1000)
                if q is not None and q.starts:
                    hi, best = mid, q
                else:
                    lo = mid + 1
            out.append(Change("--gpu-memory-utilization", f"{hi / 1000:.3f}", _effect(best)))
    tp = s.tensor_parallel_size * 2
    while tp <= 8:
        q = _tried(p, tensor_parallel_size=tp)
        if q is not None and q.starts:
            out.append(Change("--tensor-parallel-size", str(tp), f"{tp} GPUs, " + _effect(q)))
            break
        tp *= 2
    if s.kv_cache_dtype in ("auto", "bfloat16", "float16") and p.kv.kv_cache_dtype != "fp8":
        q = _tried(p, kv_cache_dtype="fp8")
        if q is not None and q.starts:
            out.append(Change("--kv-cache-dtype", "fp8", _effect(q)))
    if s.quantization is None and p.model.quantization is None:
        q = _tried(p, quantization="fp8")
        if q is not None and q.starts:
            out.append(Change("--quantization", "fp8", f"weights halved, {_effect(q)}"))
    if not out:
        out += _combined(p)
    return tuple(out)


def _combined(p: CapacityPlan) -> list[Change]:
    """No single knob helps: the fewest GPUs whose weights load, then the longest length."""
    s = p.settings
    tp = s.tensor_parallel_size * 2
    while tp <= 8:
        q = _tried(p, tensor_parallel_size=tp)
        if q is not None and q.memory.weights_fit:
            wider = dataclasses.replace(s, tensor_parallel_size=tp)
            longest = max_model_len_that_fits(p.model, p.gpu, wider)
            if longest.feasible and longest.plan is not None:
                return [
                    Change(
                        "--tensor-parallel-size",
                        f"{tp} --max-model-len {longest.answer}",
                        f"{tp} GPUs, " + _effect(longest.plan),
                    )
                ]
        tp *= 2
    return []


def will_it_start(p: CapacityPlan, *, suggest: bool = True) -> Verdict:
    """The verdict for plan `p` (its warm start) and, if it fails, the smallest fixes."""
    stage, reason = _diagnose(p)
    cold_note = None
    if p.cold is not None and p.starts and not p.cold.starts:
        _, why = _diagnose(p.cold)
        cold_note = (
            "with a warm torch.compile cache; a first (cold) start may fail: "
            f"{why[:160]}{'...' if len(why) > 160 else ''}"
        )
    elif p.cold is not None and p.starts:
        cold_note = (
            f"cold or warm compile cache alike ({p.cold.kv.num_tokens:,} KV tokens cold, "
            f"{p.kv.num_tokens:,} warm)"
        )
    if stage == "ok":
        return Verdict(True, stage, reason, (), cold_note)
    return Verdict(False, stage, reason, _suggest(p) if suggest else (), cold_note)
