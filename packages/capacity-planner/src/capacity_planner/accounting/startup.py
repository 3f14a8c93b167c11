"""vLLM's start-up memory self-assessment for one rank: profile -> subtract -> carve.

Two regimes, per `versions.py`:

- *profile* (every release before 0.34, and 0.34 with `--kv-cache-memory`): mirrors
  `Worker.determine_available_memory` (`vllm/v1/worker/gpu_worker.py`; V0:
  `vllm/worker/worker.py`). Budget = `total x gpu_memory_utilization`; subtract the
  weights ("Model loading took X GiB"), the torch peak of the profile run (forward of
  `max_num_batched_tokens` tokens, dummy sampler, encoder), the memory allocated outside
  torch and, from 0.20, the estimated CUDA-graph memory.
- *extensible* (0.34 default): the KV cache is committed after warm-up and CUDA-graph
  capture from the memory then free (`extensible_kv_cache.measure_kv_cache_bytes`):
  `non_kv = weights + non-torch + graphs` are resident, the transient peak of warm-up is
  kept free, plus a margin of `max(1 GiB, 0.75 x transient)` against the device
  headroom: `available = min(requested - non_kv, free_at_start - non_kv - margin) -
  transient`. `gpu_memory_utilization` resolves to 1.0, so the device bound decides.

Each rank is one stage of the pipeline (`terms.py` says what differs between stages);
`plan.plan` carves every stage's memory and vLLM's minimum over ranks decides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from capacity_planner._units import GiB, fmt_gib
from capacity_planner.accounting.kv_config import KVCacheConfig, compute_kv_cache_config
from capacity_planner.accounting.memory import MemoryProfile, MemoryStep
from capacity_planner.accounting.settings import EngineSettings
from capacity_planner.accounting.terms import (
    CUDA_CONTEXT,
    CUDA_GRAPH_ESTIMATE,
    draft_layers,
    draft_weight_bytes,
    encoder_activation_bytes,
    encoder_held_bytes,
    encoder_items,
    encoder_tokens,
    forward_activation_bytes,
    non_torch_bytes,
    profile_shape,
    sampler_bytes,
    sampler_path,
    tp_rank_classes,
    weight_bytes_per_rank,
    weight_bytes_per_stage,
)
from capacity_planner.gpus import GPUSpec
from capacity_planner.model.spec import ModelSpec

__all__ = [
    "COLD_COMPILE_EXTRA",
    "COLD_COMPILE_EXTRA_RANGE",
    "EngineSettings",
    "MemoryProfile",
    "MemoryStep",
    "estimate_memory",
    "estimate_stage_memory",
    "kv_config_for",
    "weight_bytes_per_rank",
]

# Extra non-KV memory of a start with a cold torch.compile cache (Inductor compiles and
# autotunes in the worker, and its buffers stay in torch's cache through profiling): a
# bound, not a point. The same configuration started cold and warm moved 1.13-2.09 GiB
# (three public pairs on 16 GB cards), vLLM PR #54479 measured 0.47 GiB per GPU at TP 2,
# and the five cold records imply 0.79-2.20 GiB against the warm estimate
# (docs/MEMORY_MODEL.md section 4). The planner's cold plan takes the upper end.
COLD_COMPILE_EXTRA_RANGE = (int(0.45 * GiB), int(2.25 * GiB))
COLD_COMPILE_EXTRA = COLD_COMPILE_EXTRA_RANGE[1]
MARGIN_FLOOR = 1 * GiB  # KV_CACHE_MARGIN_FLOOR_BYTES on CUDA
MARGIN_FRACTION = 0.75  # KV_CACHE_MARGIN_FRACTION


def _encoder_why(model: ModelSpec, settings: EngineSettings, tokens: int) -> str:
    v = model.vision
    if v is not None and v.unsized_reason is not None:
        return "encoder not counted (see notes)"
    items, budget = encoder_items(model, settings, tokens)
    _, patches = encoder_tokens(model, settings, tokens)
    if items == 0:
        return f"encoder {patches} patches (largest image not modelled)"
    return f"encoder {items} image(s) of a {budget}-token budget, {patches} patches"


def _stage_terms(
    model: ModelSpec, gpu: GPUSpec, settings: EngineSettings, stage: int, tp_rank: int
) -> tuple[int, str, int, str, int, int, int]:
    per_stage, w_how = weight_bytes_per_stage(model, settings, tp_rank)
    last = stage == settings.pipeline_parallel_size - 1
    weights = per_stage[stage] if settings.weights_bytes is None else settings.weights_bytes
    draft = draft_weight_bytes(model, settings) if last else 0
    tokens, seqs, why = profile_shape(model, gpu, settings)
    forward = forward_activation_bytes(model, settings, tokens)
    samples = last and (tp_rank == 0 or settings.formula.engine == "V1")
    sampler = sampler_bytes(model, settings, seqs) if samples else 0
    encoder = encoder_activation_bytes(model, settings, tokens) if stage == 0 else 0
    # 0.11-0.12 keep the widened dummy encoder outputs through the forward and sampler
    held = encoder_held_bytes(model, settings, tokens) if stage == 0 else 0
    forward += held
    sampler += held if sampler else 0
    act = settings.activation_bytes
    if act is None:
        act = max(forward, sampler, encoder)
        parts = {"forward": forward, "sampler": sampler, "encoder": encoder}
        peak = max(parts, key=lambda k: parts[k])
        why = (
            f"{peak} peak; forward of {tokens} tokens ({why}), "
            f"sampler {seqs} seqs ({sampler_path(model, settings)})"
        )
        if stage == 0 and model.vision is not None:
            why += f", {_encoder_why(model, settings, tokens)}"
    else:
        why = "given"
    return weights + draft, w_how, act, why, draft, tokens, seqs


def estimate_stage_memory(
    model: ModelSpec,
    gpu: GPUSpec,
    settings: EngineSettings,
    stage: int = 0,
    *,
    cold_compile: bool = False,
    tp_ranks: tuple[int, int] = (0, 0),
) -> MemoryProfile:
    """Budget, subtractions and available KV memory of one rank of pipeline stage `stage`.

    `tp_ranks` names the tensor-parallel ranks this profile stands for (first, last); they
    differ only where `terms.tp_rank_classes` says so.
    """
    formula = settings.formula
    pp = settings.pipeline_parallel_size
    if not 0 <= stage < pp:
        raise ValueError(f"stage must be in [0, {pp}), got {stage}")
    total = gpu.memory_bytes
    util = settings.resolved_gpu_memory_utilization
    requested = math.ceil(total * util)
    weights, w_how, act, act_why, draft, tokens, seqs = _stage_terms(
        model, gpu, settings, stage, tp_ranks[0]
    )
    non_torch = non_torch_bytes(settings)
    graphs = settings.cuda_graph_bytes
    if graphs is None:
        graphs = 0 if settings.enforce_eager else CUDA_GRAPH_ESTIMATE
    cold = COLD_COMPILE_EXTRA if cold_compile else 0
    notes: list[str] = []
    if draft:
        notes.append(
            f"{settings.speculative_method} draft: {fmt_gib(draft)} of weights on the last "
            f"stage, {draft_layers(model, settings)} extra KV layer(s)"
        )
    w_label = "- model weights" + (" + draft" if draft else "")
    w_detail = w_how if settings.weights_bytes is None else "measured"
    steps = [
        MemoryStep("total GPU memory", total, gpu.name),
        MemoryStep(
            f"x gpu_memory_utilization {util:.2f}",
            requested,
            "budget = total x utilisation (of total, not free, memory)",
        ),
    ]
    extra: dict[str, int] = {}
    if settings.extensible:
        free_start = total - CUDA_CONTEXT
        non_kv = weights + non_torch + graphs + cold
        margin = max(MARGIN_FLOOR, int(act * MARGIN_FRACTION))
        device_bound = free_start - non_kv - margin
        raw = min(requested - non_kv, device_bound) - act
        estimate = requested - weights - non_torch - act
        steps += [
            MemoryStep(w_label, weights, w_detail),
            MemoryStep("- non-torch memory", non_torch, "cuBLAS, NCCL (estimate)"),
            MemoryStep("- CUDA graphs (captured)", graphs, "resident before the cache is sized"),
        ]
        if cold:
            steps.append(MemoryStep("- cold compile cache", cold, "Inductor compiling in-process"))
        steps += [
            MemoryStep(
                "- kept for transient activations",
                act,
                f"warm-up peak: {act_why}",
            ),
            MemoryStep(
                "- margin",
                margin if device_bound <= requested - non_kv else 0,
                f"max(1 GiB, 0.75 x transient) below the {fmt_gib(free_start)} free "
                "at start-up (CUDA context ~0.5 GiB)",
            ),
        ]
        extra = {
            "profile_estimate_bytes": estimate,
            "free_after_warmup_bytes": max(0, free_start - non_kv),
            "transient_bytes": act,
            "margin_bytes": margin,
        }
        notes.append(
            "vLLM >= 0.34 sizes the KV cache after warm-up and CUDA-graph capture from the "
            "memory then free (extensible KV cache)"
        )
    else:
        steps += [
            MemoryStep(w_label, weights, w_detail),
            MemoryStep(
                "- activation peak" + ("" if settings.activation_bytes is None else " (given)"),
                act,
                f"profile run: {act_why}",
            ),
            MemoryStep("- non-torch memory", non_torch, "CUDA context, cuBLAS, NCCL (estimate)"),
        ]
        raw = requested - weights - act - non_torch - cold
        if cold:
            steps.append(MemoryStep("- cold compile cache", cold, "Inductor compiling in-process"))
        if formula.subtracts_cuda_graphs and not settings.enforce_eager:
            steps.append(
                MemoryStep("- CUDA graphs", graphs, "estimated during profiling (>= 0.20)")
            )
            raw -= graphs
        elif not settings.enforce_eager:
            notes.append(
                f"CUDA graphs (~{fmt_gib(graphs)}) are captured after the KV cache is "
                f"allocated in {formula.name}: they must fit in the (1 - utilisation) headroom"
            )
    profiled = settings.kv_cache_memory_bytes is None
    if not profiled:
        raw = int(settings.kv_cache_memory_bytes or 0)
        notes.append("--kv-cache-memory given: profiling skipped, utilisation ignored (as vLLM)")
    available = max(0, raw)
    shortfall = max(0, -raw)
    label = "= available KV cache memory"
    detail = "carved into blocks below" if raw > 0 else f"none: short by {fmt_gib(shortfall)}"
    steps.append(MemoryStep(label, available, detail))
    return MemoryProfile(
        total_bytes=total,
        gpu_memory_utilization=util,
        requested_bytes=requested,
        weights_bytes=weights,
        activation_bytes=act,
        non_torch_bytes=non_torch,
        cuda_graph_bytes=graphs,
        cuda_graphs_subtracted=formula.subtracts_cuda_graphs and not settings.enforce_eager,
        available_kv_bytes=available,
        profiled=profiled,
        profile_tokens=tokens,
        profile_seqs=seqs,
        steps=tuple(steps),
        notes=tuple(notes),
        stage=stage,
        num_stages=pp,
        sizing="extensible" if settings.extensible else "profile",
        shortfall_bytes=shortfall,
        draft_weights_bytes=draft,
        cold_compile=cold_compile,
        tp_ranks=tp_ranks,
        tp_size=settings.tensor_parallel_size,
        checks_free_memory=(
            settings.formula.engine == "V1" and not settings.extensible and profiled
        ),
        **extra,
    )


def estimate_memory(model: ModelSpec, gpu: GPUSpec, settings: EngineSettings) -> MemoryProfile:
    """The rank with the least memory left for the KV cache (every stage, every TP class)."""
    stages = [
        estimate_stage_memory(model, gpu, settings, s, tp_ranks=ranks)
        for s in range(settings.pipeline_parallel_size)
        for ranks in tp_rank_classes(model, settings)
    ]
    return min(stages, key=lambda m: (m.available_kv_bytes, -m.shortfall_bytes))


def kv_config_for(
    model: ModelSpec, settings: EngineSettings, available: int | Sequence[int]
) -> KVCacheConfig:
    """`compute_kv_cache_config` with the settings' knobs (one figure or one per stage)."""
    return compute_kv_cache_config(
        model,
        available,
        block_size=settings.block_size,
        kv_cache_dtype=settings.kv_cache_dtype,
        dtype=settings.dtype,
        tensor_parallel_size=settings.tensor_parallel_size,
        pipeline_parallel_size=settings.pipeline_parallel_size,
        max_model_len=settings.max_model_len,
        max_num_batched_tokens=settings.max_num_batched_tokens,
        vllm_version=settings.vllm_version,
        hybrid_kv_cache_manager=settings.hybrid_kv_cache_manager,
        mamba_cache_mode=settings.mamba_cache_mode,
        swap_space_bytes=settings.swap_space_bytes,
        draft_layers=draft_layers(model, settings),
        gpu_memory_utilization=settings.resolved_gpu_memory_utilization,
    )
