"""One rank's memory story: `MemoryStep` rows and the `MemoryProfile` they add up to."""

from __future__ import annotations

from dataclasses import dataclass, field

from capacity_planner.accounting.terms import CUDA_CONTEXT

__all__ = ["MemoryProfile", "MemoryStep"]


@dataclass(frozen=True)
class MemoryStep:
    """One row of the profile -> subtract -> carve table."""

    label: str
    bytes: int
    detail: str = ""


@dataclass(frozen=True)
class MemoryProfile:
    """One rank's budget, what is subtracted from it, and what is left for the KV cache.

    `available_kv_bytes` is never negative: when the subtractions exceed the budget it is
    0 and `shortfall_bytes` says by how much (vLLM would refuse to start).
    """

    total_bytes: int
    gpu_memory_utilization: float
    requested_bytes: int
    weights_bytes: int
    activation_bytes: int
    non_torch_bytes: int
    cuda_graph_bytes: int
    cuda_graphs_subtracted: bool
    available_kv_bytes: int
    profiled: bool
    profile_tokens: int
    profile_seqs: int
    steps: tuple[MemoryStep, ...]
    notes: tuple[str, ...] = field(default=())
    stage: int = 0
    num_stages: int = 1
    sizing: str = "profile"
    shortfall_bytes: int = 0
    profile_estimate_bytes: int = 0  # 0.34's "Available KV cache memory" (an upper bound)
    free_after_warmup_bytes: int = 0
    transient_bytes: int = 0
    margin_bytes: int = 0
    draft_weights_bytes: int = 0
    cold_compile: bool = False
    tp_ranks: tuple[int, int] = (0, 0)
    tp_size: int = 1
    checks_free_memory: bool = False  # V1 before 0.34 refuses a budget above free memory

    @property
    def rank_label(self) -> str:
        """'stage 1, TP ranks 1-7' style name of the ranks this profile stands for."""
        first, last = self.tp_ranks
        tp = (
            ""
            if first == last == 0 and self.tp_size == 1
            else (f", TP rank {first}" if first == last else f", TP ranks {first}-{last}")
        )
        return f"stage {self.stage}{tp}"

    @property
    def budget_fits_free(self) -> bool:
        """Before 0.34, vLLM refuses a budget above the memory free at start-up ("Free
        memory on device ... is less than desired GPU memory utilization"); the extensible
        cache of 0.34 only caps its budget there."""
        if not self.checks_free_memory:
            return True
        return self.requested_bytes <= self.total_bytes - CUDA_CONTEXT

    @property
    def weights_fit(self) -> bool:
        """The weights (and draft) fit in the memory free at start-up."""
        return self.weights_bytes <= self.total_bytes - CUDA_CONTEXT
