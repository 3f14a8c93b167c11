"""Which implementation the spec tests exercise: the conformance kit's single switch.

Every test imports the allocator through ``impl`` (never ``import block_allocator``
directly), so pointing ``BLOCK_ALLOCATOR_IMPL`` (or ``pytest --impl``) at another module
grades that module against the same spec, as the seeds' ``LAB_IMPL=starter`` does:

    BLOCK_ALLOCATOR_IMPL=my_allocator python -m pytest packages/block-allocator/tests -m lab01

The module must export the names the selected tests use (see the package README).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

IMPL_ENV = "BLOCK_ALLOCATOR_IMPL"
DEFAULT_IMPL = "block_allocator"
IMPL_NAME = os.environ.get(IMPL_ENV) or DEFAULT_IMPL
impl: ModuleType = importlib.import_module(IMPL_NAME)


# Introspection adapters: ours first, then the seed/vLLM attribute names a learner's pool has.
def free_block_ids(pool: Any) -> list[int]:
    """Ids of the free blocks in eviction order (head first)."""
    if hasattr(pool, "get_free_blocks"):
        return [b.block_id for b in pool.get_free_blocks()]
    return [b.block_id for b in pool.free_block_queue.get_all_free_blocks()]


def num_indexed(pool: Any) -> int:
    """Number of entries in the pool's hash index."""
    if hasattr(pool, "num_cached_blocks"):
        return int(pool.num_cached_blocks)
    return len(pool.cached_block_hash_to_block)
