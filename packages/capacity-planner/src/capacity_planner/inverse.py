"""Inverse questions: what utilisation, TP size or GPU count reaches a target concurrency
at a context length, and the longest `max_model_len` vLLM would accept.

Each answer is checked by running the forward model (`plan`) at the answer, so it is
exactly what the planner predicts vLLM prints, not an algebraic approximation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from capacity_planner._checks import check_positive_int
from capacity_planner.accounting.startup import EngineSettings
from capacity_planner.errors import CapacityPlannerError, SettingError
from capacity_planner.gpus import GPUSpec
from capacity_planner.model.spec import ModelSpec
from capacity_planner.plan import CapacityPlan, plan

__all__ = [
    "InverseResult",
    "max_model_len_that_fits",
    "required_gpus",
    "required_tensor_parallel",
    "required_utilization",
]


@dataclass(frozen=True)
class InverseResult:
    """The answer to one inverse question, with the forward plan that confirms it."""

    question: str
    answer: float | int | None
    feasible: bool
    explanation: str
    plan: CapacityPlan | None = None


def _check_target(target_concurrency: float, context_len: int) -> None:
    if not isinstance(target_concurrency, (int, float)) or target_concurrency <= 0:
        raise SettingError(f"target concurrency must be > 0, got {target_concurrency!r}")
    check_positive_int("context length", context_len)


def _meets(p: CapacityPlan, target: float) -> bool:
    return p.kv.fits and p.kv.max_concurrency >= target


def _plan(model: ModelSpec, gpu: GPUSpec, s: EngineSettings) -> CapacityPlan:
    return plan(model, gpu, s, with_cold_start=False)


def required_utilization(
    model: ModelSpec,
    gpu: GPUSpec,
    target_concurrency: float,
    context_len: int,
    settings: EngineSettings | None = None,
) -> InverseResult:
    """Smallest --gpu-memory-utilization (to 0.001) giving `target` x `context_len` tokens.

    The KV memory grows with the utilisation in every regime (in 0.34 until the device
    bound takes over), so the answer is found by bisection over thousandths, each step a
    full forward plan.
    """
    _check_target(target_concurrency, context_len)
    base = dataclasses.replace(settings or EngineSettings(), max_model_len=context_len)

    def at(milli: int) -> CapacityPlan:
        return _plan(model, gpu, dataclasses.replace(base, gpu_memory_utilization=milli / 1000))

    ref = at(1000)
    if not _meets(ref, target_concurrency):
        return InverseResult(
            "gpu_memory_utilization",
            None,
            False,
            f"even --gpu-memory-utilization 1.0 gives {ref.kv.max_concurrency:.2f}x < "
            f"{target_concurrency:g}x at {context_len:,} tokens on one {gpu.name}",
            ref,
        )
    lo, hi = 1, 1000  # at(hi) meets the target
    while lo < hi:
        mid = (lo + hi) // 2
        if _meets(at(mid), target_concurrency):
            hi = mid
        else:
            lo = mid + 1
    p = at(hi)
    util = hi / 1000
    return InverseResult(
        "gpu_memory_utilization",
        util,
        True,
        f"--gpu-memory-utilization {util:.3f} gives {p.kv.max_concurrency:.2f}x at "
        f"{context_len:,} tokens ({p.kv.num_blocks:,} blocks)",
        p,
    )


def _try(model: ModelSpec, gpu: GPUSpec, s: EngineSettings) -> CapacityPlan | None:
    try:
        return _plan(model, gpu, s)
    except CapacityPlannerError:
        return None  # this parallel layout does not divide the model


def required_tensor_parallel(
    model: ModelSpec,
    gpu: GPUSpec,
    target_concurrency: float,
    context_len: int,
    settings: EngineSettings | None = None,
    max_tp: int = 64,
) -> InverseResult:
    """Smallest --tensor-parallel-size (powers of two) reaching the target."""
    _check_target(target_concurrency, context_len)
    base = dataclasses.replace(settings or EngineSettings(), max_model_len=context_len)
    tp = 1
    while tp <= max_tp:
        p = _try(model, gpu, dataclasses.replace(base, tensor_parallel_size=tp))
        if p is not None and _meets(p, target_concurrency):
            return InverseResult(
                "tensor_parallel_size",
                tp,
                True,
                f"--tensor-parallel-size {tp} ({tp * base.pipeline_parallel_size} GPUs) gives "
                f"{p.kv.max_concurrency:.2f}x at {context_len:,} tokens",
                p,
            )
        tp *= 2
    return InverseResult(
        "tensor_parallel_size",
        None,
        False,
        f"no tensor-parallel size up to {max_tp} reaches {target_concurrency:g}x "
        f"(KV heads stop shrinking per rank once TP exceeds them)",
    )


def required_gpus(
    model: ModelSpec,
    gpu: GPUSpec,
    target_concurrency: float,
    context_len: int,
    settings: EngineSettings | None = None,
    gpus_per_node: int = 8,
    max_gpus: int = 64,
) -> InverseResult:
    """Fewest GPUs (TP within a node, pipeline stages across nodes) reaching the target."""
    _check_target(target_concurrency, context_len)
    base = dataclasses.replace(settings or EngineSettings(), max_model_len=context_len)
    n = 1
    while n <= max_gpus:
        tp = min(n, gpus_per_node)
        s = dataclasses.replace(base, tensor_parallel_size=tp, pipeline_parallel_size=n // tp)
        p = _try(model, gpu, s)
        if p is not None and _meets(p, target_concurrency):
            return InverseResult(
                "num_gpus",
                n,
                True,
                f"{n} x {gpu.name} (TP {tp} x PP {n // tp}) gives {p.kv.max_concurrency:.2f}x "
                f"at {context_len:,} tokens",
                p,
            )
        n *= 2
    return InverseResult(
        "num_gpus", None, False, f"no layout up to {max_gpus} GPUs reaches {target_concurrency:g}x"
    )


def max_model_len_that_fits(
    model: ModelSpec,
    gpu: GPUSpec,
    settings: EngineSettings | None = None,
    target_concurrency: float | None = None,
) -> InverseResult:
    """Longest --max-model-len (<= the model's own limit) that starts and, if given, still
    serves `target_concurrency` requests of that length at once."""
    base = settings or EngineSettings()
    if target_concurrency is not None:
        _check_target(target_concurrency, 1)

    def ok(p: CapacityPlan) -> bool:
        if not p.starts:
            return False
        return target_concurrency is None or p.kv.max_concurrency >= target_concurrency

    lo, hi = 0, model.max_position_embeddings
    best: CapacityPlan | None = None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        p = _plan(model, gpu, dataclasses.replace(base, max_model_len=mid))
        if ok(p):
            lo, best = mid, p
        else:
            hi = mid - 1
    want = "" if target_concurrency is None else f" at {target_concurrency:g}x concurrency"
    if best is None:
        return InverseResult("max_model_len", None, False, f"no length fits{want}")
    return InverseResult(
        "max_model_len",
        lo,
        True,
        f"--max-model-len {lo:,} fits{want} ({best.kv.num_tokens:,} KV tokens, "
        f"{best.kv.max_concurrency:.2f}x)",
        best,
    )
