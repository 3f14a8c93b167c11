"""One deployment end to end: model + GPU + vLLM settings -> memory profile + KV config.

`plan()` is the library form of `capacity-planner plan`; `CapacityPlan.log_lines()`
prints what the modelled vLLM version would log, `to_dict()` is the `--json` payload.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from capacity_planner._units import GiB
from capacity_planner.accounting.kv_config import KVCacheConfig
from capacity_planner.accounting.startup import (
    EngineSettings,
    MemoryProfile,
    estimate_memory,
    kv_config_for,
)
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

    def log_lines(self) -> tuple[str, ...]:
        m, kv = self.memory, self.kv
        lines: list[str] = []
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
            lines.append(f"Model loading took {m.weights_bytes / GiB:.2f} GiB memory")
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
            "kv_cache": kv_config_dict(kv),
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


def plan(model: ModelSpec, gpu: GPUSpec, settings: EngineSettings | None = None) -> CapacityPlan:
    """Profile -> subtract -> carve for `model` on `gpu` (one worker per GPU)."""
    settings = settings or EngineSettings()
    memory = estimate_memory(model, gpu, settings)
    if settings.max_num_batched_tokens is None:
        # The scheduler's token budget also bounds sliding-window usage per request.
        settings_kv = dataclasses.replace(settings, max_num_batched_tokens=memory.profile_tokens)
    else:
        settings_kv = settings
    kv = kv_config_for(model, settings_kv, memory.available_kv_bytes)
    return CapacityPlan(model, gpu, settings, memory, kv)
