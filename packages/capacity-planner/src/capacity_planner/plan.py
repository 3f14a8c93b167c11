"""One deployment end to end: model + GPU + vLLM settings -> memory profile + KV config.

`plan()` is the library form of `capacity-planner plan`; `CapacityPlan.log_lines()`
prints what the modelled vLLM version would log, `to_dict()` is the `--json` payload.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from capacity_planner._units import GiB, fmt_gib
from capacity_planner.accounting.kv_config import KVCacheConfig
from capacity_planner.accounting.startup import (
    EngineSettings,
    MemoryProfile,
    estimate_stage_memory,
    kv_config_for,
)
from capacity_planner.accounting.terms import tp_rank_classes
from capacity_planner.errors import SettingError
from capacity_planner.gpus import GPUSpec
from capacity_planner.model.spec import ModelSpec

__all__ = ["CapacityPlan", "plan"]


@dataclass(frozen=True)
class CapacityPlan:
    """A model on a GPU under a vLLM version: the memory story and the numbers it prints."""

    model: ModelSpec
    gpu: GPUSpec
    settings: EngineSettings
    memory: MemoryProfile
    kv: KVCacheConfig
    ranks: tuple[MemoryProfile, ...] = ()
    cold: CapacityPlan | None = None
    auto_fit_line: str | None = None  # vLLM's "Auto-fit max_model_len: ..." line

    @property
    def deciding_rank(self) -> MemoryProfile:
        """The rank whose block count every rank uses (vLLM's minimum over workers)."""
        return self.memory

    @property
    def starts(self) -> bool:
        """vLLM would start: its budget is free, the weights load, one request fits."""
        m = self.memory
        return m.budget_fits_free and m.weights_fit and self.kv.fits

    def log_lines(self) -> tuple[str, ...]:
        m, kv = self.memory, self.kv
        lines: list[str] = []
        if not m.weights_fit:
            # vLLM never reaches its memory report: the load itself runs out of memory.
            return (
                "torch.OutOfMemoryError: CUDA out of memory (loading "
                f"{fmt_gib(m.weights_bytes)} of weights onto a "
                f"{fmt_gib(m.total_bytes)} GPU)",
            )
        if kv.formula.name == "v0":
            lines.append(f"Loading model weights took {m.weights_bytes / GiB:.4f} GB")
            if m.profiled:
                lines.append(
                    f"the current vLLM instance can use total_gpu_memory ({m.total_bytes / GiB:.2f}"
                    f"GiB) x gpu_memory_utilization ({m.gpu_memory_utilization:.2f}) = "
                    f"{m.requested_bytes / GiB:.2f}GiB"
                )
                lines.append(
                    f"model weights take {m.weights_bytes / GiB:.2f}GiB; non_torch_memory takes "
                    f"{m.non_torch_bytes / GiB:.2f}GiB; PyTorch activation peak memory takes "
                    f"{m.activation_bytes / GiB:.2f}GiB; the rest of the memory reserved for KV "
                    f"Cache is {m.available_kv_bytes / GiB:.2f}GiB."
                )
        else:
            lines.append(f"Model loading took {fmt_gib(m.weights_bytes)} memory")
        if self.auto_fit_line is not None:
            lines.append(self.auto_fit_line)
        if m.sizing == "extensible":
            return (*lines, *_extensible_lines(m, kv))
        return (*lines, *kv.log_lines())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (bytes as integers, GiB as rounded floats)."""
        kv, m = self.kv, self.memory
        return {
            "model": {
                "name": self.model.name,
                "source": self.model.source,
                "layers": self.model.num_hidden_layers,
                "layer_kinds": {
                    k: self.model.count(k) for k in ("full", "sliding", "mla", "mamba")
                },
                "params": self.model.param_count(),
            },
            "gpu": {
                "name": self.gpu.name,
                "memory_bytes": self.gpu.memory_bytes,
                "memory_gib": round(self.gpu.memory_gib, 2),
                "source": self.gpu.source,
            },
            "settings": _settings_dict(self.settings),
            "vllm_version": {"name": kv.formula.name, "releases": kv.formula.releases},
            "memory": {
                "steps": [
                    {
                        "label": s.label,
                        "bytes": s.bytes,
                        "gib": round(s.bytes / GiB, 3),
                        "detail": s.detail,
                    }
                    for s in m.steps
                ],
                "available_kv_bytes": m.available_kv_bytes,
                "profile_tokens": m.profile_tokens,
                "notes": list(m.notes),
            },
            "ranks": [
                {
                    "stage": r.stage,
                    "tp_ranks": list(r.tp_ranks),
                    "rank": r.rank_label,
                    "weights_bytes": r.weights_bytes,
                    "activation_bytes": r.activation_bytes,
                    "available_kv_bytes": r.available_kv_bytes,
                    "shortfall_bytes": r.shortfall_bytes,
                    "num_blocks": kv.stage_num_blocks[r.stage],
                    "deciding": r is self.memory,
                }
                for r in self.ranks
            ],
            "kv_cache": kv_config_dict(kv),
            "starts": self.starts,
            "cold_start": None
            if self.cold is None
            else {
                "available_kv_bytes": self.cold.memory.available_kv_bytes,
                "num_gpu_blocks": self.cold.kv.num_blocks,
                "starts": self.cold.starts,
            },
            "log_lines": list(self.log_lines()),
        }


def kv_config_dict(kv: KVCacheConfig) -> dict[str, Any]:
    """JSON view of a KVCacheConfig."""
    return {
        "formula": kv.formula.name,
        "available_bytes": kv.available_bytes,
        "block_size": kv.block_size,
        "kv_cache_dtype": kv.kv_cache_dtype,
        "groups": [
            {
                "kind": g.kind,
                "layers": g.num_layers,
                "padding_layers": g.padding_layers,
                "page_size_bytes": g.page_size_bytes,
                "block_size": g.block_size,
            }
            for g in kv.groups
        ],
        "group_size": kv.group_size,
        "page_size_bytes": kv.page_size_bytes,
        "bytes_per_block": kv.bytes_per_block,
        "num_gpu_blocks": kv.num_blocks,
        "stage_num_blocks": list(kv.stage_num_blocks),
        "gpu_kv_cache_tokens": kv.num_tokens,
        "max_model_len": kv.max_model_len,
        "blocks_per_request": kv.blocks_per_request,
        "max_concurrency": round(kv.max_concurrency, 4),
        "required_bytes": kv.required_bytes,
        "fits": kv.fits,
        "estimated_max_model_len": kv.estimated_max_model_len,
        "error": kv.error,
        "notes": list(kv.notes),
    }


def _settings_dict(s: EngineSettings) -> dict[str, Any]:
    return {f.name: getattr(s, f.name) for f in dataclasses.fields(s)}


def _extensible_lines(m: MemoryProfile, kv: KVCacheConfig) -> tuple[str, ...]:
    """0.34's lines: the profiled upper bound, the post-warm-up sizing, the extension."""
    blocks_gib = kv.num_blocks * kv.bytes_per_block / GiB
    lines = [
        f"Available KV cache memory: {fmt_gib(max(0, m.profile_estimate_bytes))}",
        f"Memory after warmup: {fmt_gib(m.free_after_warmup_bytes)} free, 0.00 GiB "
        f"committed to the KV cache, {fmt_gib(m.transient_bytes)} kept for transient "
        f"activations ({fmt_gib(m.transient_bytes)} allocated at peak, 0.00 GiB of "
        f"torch reservation growth); {kv.num_blocks} KV cache blocks ({blocks_gib:.2f} GiB) "
        f"fit within the requested {fmt_gib(m.requested_bytes)}.",
    ]
    if kv.error is None:
        lines.append(f"Extended KV cache to {kv.num_blocks} blocks ({blocks_gib:.2f} GiB).")
    return (*lines, *kv.log_lines()[1:])


def _plan_once(
    model: ModelSpec, gpu: GPUSpec, settings: EngineSettings, cold: bool
) -> tuple[tuple[MemoryProfile, ...], KVCacheConfig]:
    classes = tp_rank_classes(model, settings)
    ranks = tuple(
        estimate_stage_memory(model, gpu, settings, s, cold_compile=cold, tp_ranks=c)
        for s in range(settings.pipeline_parallel_size)
        for c in classes
    )
    if settings.max_num_batched_tokens is None:
        # The scheduler's token budget also bounds sliding-window usage per request.
        settings = dataclasses.replace(settings, max_num_batched_tokens=ranks[0].profile_tokens)
    # Every rank of a stage has that stage's layout: the stage's poorest rank decides it.
    per_stage = [
        min(r.available_kv_bytes for r in ranks if r.stage == s)
        for s in range(settings.pipeline_parallel_size)
    ]
    kv = kv_config_for(model, settings, per_stage)
    return ranks, kv


def _deciding(ranks: tuple[MemoryProfile, ...], kv: KVCacheConfig) -> MemoryProfile:
    stage = [r for r in ranks if r.stage == kv.deciding_stage]
    return min(stage, key=lambda r: (r.available_kv_bytes, -r.shortfall_bytes))


def _auto_fit(
    model: ModelSpec, gpu: GPUSpec, settings: EngineSettings
) -> tuple[EngineSettings, str]:
    """`--max-model-len -1`: the longest length that fits on every rank (vLLM's
    `_auto_fit_max_model_len`, bisection with the start-up check's own function)."""
    full = dataclasses.replace(settings, max_model_len=model.max_position_embeddings)
    _, kv = _plan_once(model, gpu, full, cold=False)
    memory = f"{fmt_gib(kv.checked_bytes)} GPU"
    if kv.fits:
        return full, (
            f"Auto-fit max_model_len: full model context length {kv.max_model_len} fits in "
            f"available KV cache memory ({memory})"
        )
    if kv.estimated_max_model_len <= 0:
        raise SettingError(
            "Cannot auto-fit max_model_len: not enough GPU memory available to serve even a "
            "single token"
        )
    fitted = dataclasses.replace(settings, max_model_len=kv.estimated_max_model_len)
    return fitted, (
        f"Auto-fit max_model_len: reduced from {kv.max_model_len} to "
        f"{kv.estimated_max_model_len} to fit in available KV cache memory ({memory})"
    )


def plan(
    model: ModelSpec,
    gpu: GPUSpec,
    settings: EngineSettings | None = None,
    *,
    with_cold_start: bool = True,
) -> CapacityPlan:
    """Profile -> subtract -> carve on every rank of `model` on `gpu`; the minimum decides.

    With torch.compile (V1, no `--enforce-eager`) the plan also carries `cold`: the same
    start with a cold compile cache, which needs more non-KV memory.
    """
    settings = settings or EngineSettings()
    auto_fit = None
    if settings.max_model_len == -1:
        settings, auto_fit = _auto_fit(model, gpu, settings)
    ranks, kv = _plan_once(model, gpu, settings, cold=False)
    cold = None
    compiles = settings.formula.engine == "V1" and not settings.enforce_eager
    if with_cold_start and compiles and settings.kv_cache_memory_bytes is None:
        cold_ranks, cold_kv = _plan_once(model, gpu, settings, cold=True)
        cold = CapacityPlan(
            model, gpu, settings, _deciding(cold_ranks, cold_kv), cold_kv, cold_ranks
        )
    return CapacityPlan(model, gpu, settings, _deciding(ranks, kv), kv, ranks, cold, auto_fit)
