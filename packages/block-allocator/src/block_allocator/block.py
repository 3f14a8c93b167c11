"""The KV-cache block: one fixed-size page of KV memory, described in metadata only.

Mirrors ``KVCacheBlock`` in ``vllm/v1/core/kv_cache_utils.py`` (and the paper's "physical
KV block", PagedAttention §4.1). The tensor memory itself lives elsewhere (the kernels'
``[num_blocks, block_size, num_kv_heads, head_dim]`` cache); a block is an id plus the
bookkeeping the pool needs.

Differences from vLLM: a plain ``block_hash`` slot instead of a checked property (the
pool is the only writer), a ``retention_priority`` slot that selects one of the pool's
free queues, and an owner slot so a block from another pool is rejected. Equality is
identity, as in vLLM since PR #21005: a field-wise ``__eq__`` would make every list
membership test O(fields) and two blocks with equal fields would compare equal.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["NUM_RETENTION_PRIORITIES", "BlockHash", "KVCacheBlock", "RetentionPriority"]

BlockHash = bytes
"""A block's content hash: 32 sha256 bytes (see :mod:`block_allocator.hashing`)."""


class RetentionPriority(IntEnum):
    """How long a cached block should survive once free. Higher levels are evicted later.

    Each level has its own free queue in the :class:`~block_allocator.BlockPool`; eviction
    drains ``DEFAULT`` before ``HIGH`` before ``PINNED``. ``PINNED`` is still evictable as a
    last resort, so pinning can never make an allocation fail that would otherwise succeed.
    """

    DEFAULT = 0
    HIGH = 1
    PINNED = 2


NUM_RETENTION_PRIORITIES = len(RetentionPriority)


class KVCacheBlock:
    """Metadata of one physical KV block.

    ``ref_cnt`` counts the block tables that hold the block; ``block_hash`` is set once the
    block is full and cached, and stays set after the block is freed (lazy eviction) until
    the pool hands the block out again. ``prev_free``/``next_free`` are owned by the free
    queue: both ``None`` exactly when the block is not in a free queue.
    """

    __slots__ = (
        "_pool",
        "block_hash",
        "block_id",
        "is_null",
        "next_free",
        "prev_free",
        "ref_cnt",
        "retention_priority",
    )

    def __init__(self, block_id: int, *, is_null: bool = False, pool: object | None = None) -> None:
        self.block_id = block_id
        self.ref_cnt = 0
        self.block_hash: BlockHash | None = None
        self.is_null = is_null
        self.prev_free: KVCacheBlock | None = None
        self.next_free: KVCacheBlock | None = None
        self.retention_priority = 0
        self._pool = pool

    def reset_hash(self) -> None:
        """Forget the cached content (the pool also drops the block from its hash index)."""
        self.block_hash = None
        self.retention_priority = 0

    def __repr__(self) -> str:
        h = self.block_hash.hex()[:8] if self.block_hash is not None else None
        prev_id = self.prev_free.block_id if self.prev_free is not None else None
        next_id = self.next_free.block_id if self.next_free is not None else None
        null = ", null" if self.is_null else ""
        return (
            f"KVCacheBlock(block_id={self.block_id}, ref_cnt={self.ref_cnt}, block_hash={h}, "
            f"prev_free={prev_id}, next_free={next_id}{null})"
        )
