"""`SimConfig`: one allocation policy on one memory budget, with the scheduler's knobs.

Policies (PagedAttention §6.1 names in brackets): ``max`` reserves ``max_model_len``
contiguous slots [Orca (Max)], ``pow2`` the next power of two of the final length, capped
at ``max_model_len`` [Orca (Pow2)], ``exact`` the final length [Orca (Oracle)], ``paged``
allocates ``block_size``-token blocks on demand through ``block_allocator`` [vLLM].
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ConfigError

__all__ = ["POLICIES", "SimConfig"]

Policy = Literal["max", "pow2", "exact", "paged"]
POLICIES: tuple[str, ...] = ("max", "pow2", "exact", "paged")


@dataclass(frozen=True)
class SimConfig:
    """Everything a run needs besides the workload. Memory is counted in token slots."""

    policy: Policy = "paged"
    capacity_tokens: int = 15_728  # PagedAttention Table 1: OPT-13B on an A100-40GB
    max_model_len: int = 2048
    # vLLM's CacheConfig.DEFAULT_BLOCK_SIZE up to 0.33; 0.34 runs dense models at 64
    # (block_allocator.defaults_for). The paper's block, kept here so every reproduction
    # keeps its numbers; the command line follows --vllm-version.
    block_size: int = 16
    allocator: Literal["buddy", "first_fit"] = "buddy"  # contiguous policies only
    enable_prefix_caching: bool = False
    # a CPU offload tier behind the GPU prefix cache, in token slots (0: none); blocks the
    # GPU evicts are kept there and loaded back on a later hit (block_allocator.offload)
    cpu_cache_tokens: int = 0
    preemption: Literal["recompute", "swap"] = "recompute"
    swap_time_per_block_s: float = 0.0
    prefill_time_per_token_s: float = 0.0
    step_time_s: float = 0.05
    max_num_seqs: int | None = None
    n: int = 1  # sequences per request: parallel samples or beams (vLLM SamplingParams.n)
    use_beam_search: bool = False  # the n sequences are beams (vLLM v0 SamplingParams)
    seed: int = 0  # beam selection (uniform parent resampling, see engine/groups.py)
    record_timeseries: bool = True
    # single sequence, no prefix caching: take real KVCacheBlocks from block_allocator's
    # BlockPool (True) or count free blocks (False, faster). Nothing on that path reads a
    # block's identity, so both give the same numbers (tests compare them).
    use_block_pool: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(f"policy must be one of {POLICIES}, got {self.policy!r}")
        for fname in ("capacity_tokens", "max_model_len", "block_size"):
            v = getattr(self, fname)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{fname} must be an integer >= 1, got {v!r}")
        if self.block_size > 4096:
            raise ConfigError(f"block_size must be in [1, 4096], got {self.block_size}")
        if self.policy == "paged" and self.capacity_tokens // self.block_size < 1:
            raise ConfigError(
                f"capacity_tokens={self.capacity_tokens} holds no block of "
                f"block_size={self.block_size}"
            )
        if self.allocator not in ("buddy", "first_fit"):
            raise ConfigError(f"allocator must be 'buddy' or 'first_fit', got {self.allocator!r}")
        if self.preemption not in ("recompute", "swap"):
            raise ConfigError(f"preemption must be 'recompute' or 'swap', got {self.preemption!r}")
        if not (math.isfinite(self.step_time_s) and self.step_time_s > 0):
            raise ConfigError(f"step_time_s must be a finite number > 0, got {self.step_time_s}")
        for fname in ("swap_time_per_block_s", "prefill_time_per_token_s"):
            v = getattr(self, fname)
            if not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"{fname} must be a finite number >= 0, got {v}")
        if self.max_num_seqs is not None and (
            isinstance(self.max_num_seqs, bool) or self.max_num_seqs < 1
        ):
            raise ConfigError(f"max_num_seqs must be None or >= 1, got {self.max_num_seqs}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or not 1 <= self.n <= 64:
            raise ConfigError(f"n (parallel samples) must be an integer in [1, 64], got {self.n!r}")
        if not isinstance(self.use_beam_search, bool):
            raise ConfigError(f"use_beam_search must be a bool, got {self.use_beam_search!r}")
        if self.use_beam_search and self.n < 2:
            raise ConfigError(f"use_beam_search needs n (the beam width) >= 2, got n={self.n}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")
        for fname in ("record_timeseries", "use_block_pool", "enable_prefix_caching"):
            if not isinstance(getattr(self, fname), bool):
                raise ConfigError(f"{fname} must be a bool, got {getattr(self, fname)!r}")
        c = self.cpu_cache_tokens
        if isinstance(c, bool) or not isinstance(c, int) or c < 0:
            raise ConfigError(f"cpu_cache_tokens must be an integer >= 0, got {c!r}")
        if c and not self.enable_prefix_caching:
            raise ConfigError("cpu_cache_tokens (a CPU offload tier) needs enable_prefix_caching")
        if c and self.n > 1:
            raise ConfigError("cpu_cache_tokens works with one sequence per request (n=1)")
        if c and c < self.block_size:
            raise ConfigError(
                f"cpu_cache_tokens={c} holds no block of block_size={self.block_size}"
            )
        if self.enable_prefix_caching and self.policy != "paged":
            raise ConfigError("enable_prefix_caching needs policy='paged'")

    @property
    def label(self) -> str:
        """Short display name, e.g. ``paged/16`` or ``max (buddy)``."""
        if self.name:
            return self.name
        if self.policy == "paged":
            base = f"paged/{self.block_size}" + ("+prefix" if self.enable_prefix_caching else "")
            if self.cpu_cache_tokens:
                base += f"+cpu{self.cpu_cache_tokens // self.block_size}"
        else:
            base = f"{self.policy} ({self.allocator})"
        if self.n == 1:
            return base
        return base + (f" beam={self.n}" if self.use_beam_search else f" n={self.n}")

    @property
    def num_gpu_blocks(self) -> int:
        """Usable paged blocks: whole blocks of the budget (the pool adds the null block)."""
        return self.capacity_tokens // self.block_size

    def replace(self, **changes: Any) -> SimConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown}; known: {sorted(known)}")
        return cls(**data)
