"""Thin adapter over ``block_allocator``: the only module that touches its objects.

The simulator generates every token id itself (ranges of ints), so it builds and extends
its requests through ``Request``'s trusted path (``validate=False``): the per-token type
check costs ~30 µs for a 1,155-token prompt and would dominate a 12k-request Mooncake
replay. Everything else (ids, block sizes, pool bounds) is still checked by the allocator.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from block_allocator import KVCacheBlock, KVCacheManager, Request
from block_allocator.offload import CPUOffloadTier, OffloadingKVCacheManager

__all__ = [
    "KVCacheBlock",
    "KVCacheManager",
    "OffloadingKVCacheManager",
    "Request",
    "SimRequest",
    "make_manager",
    "make_offloading_manager",
]


class SimRequest(Request):
    """A ``Request`` whose token ids come from the simulator: not re-validated."""

    def __init__(self, request_id: str, prompt_token_ids: Sequence[int]) -> None:
        super().__init__(request_id, prompt_token_ids, validate=False)

    def append_output_token_ids(
        self, token_ids: int | Iterable[int], *, validate: bool = False
    ) -> None:
        super().append_output_token_ids(token_ids, validate=validate)


def make_manager(
    num_usable_blocks: int, block_size: int, enable_caching: bool, events: bool = False
) -> KVCacheManager:
    """A manager with ``num_usable_blocks`` blocks plus the null block."""
    return KVCacheManager(
        num_usable_blocks + 1,
        block_size,
        enable_caching=enable_caching,
        enable_kv_cache_events=events,
    )


def make_offloading_manager(
    num_usable_blocks: int, block_size: int, cpu_blocks: int, events: bool = False
) -> OffloadingKVCacheManager:
    """A prefix-caching manager whose evicted blocks spill into a ``cpu_blocks`` CPU tier
    (the tier learns the evictions from the pool's events)."""
    kvm = make_manager(num_usable_blocks, block_size, True, events=True)
    return OffloadingKVCacheManager(kvm, CPUOffloadTier(cpu_blocks), keep_events=events)
