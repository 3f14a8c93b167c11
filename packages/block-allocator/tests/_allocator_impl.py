"""The implementation the spec tests exercise, and two introspection adapters.

Grading another allocator is the conformance kit's job (``python -m block_allocator.kit
--impl my_module``, shipped in the wheel); this suite tests our own package.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import block_allocator

IMPL_NAME = "block_allocator"
impl: ModuleType = block_allocator


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
