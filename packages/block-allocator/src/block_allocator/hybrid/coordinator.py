"""The hybrid KV-cache coordinator: one pool, several groups, one common prefix hit.

Mirrors ``HybridKVCacheCoordinator`` in vLLM 0.34.0's ``vllm/v1/core/kv_cache_coordinator.py``.
A hit of L tokens is usable only if EVERY group can serve it: full attention needs all
L/block_size blocks, a sliding window only its last few, Mamba the one state at L. Each
group's lookup returns the longest length <= a candidate that it can serve; the
coordinator starts from the longest allowed length and feeds each group's answer to the
next until no group shortens it (a fixed point, reached because lengths only shrink).
Full attention goes first and is looked up once: its hits are downward-closed, so later
rounds just trim it.

Cache keys. All groups index one pool, so the same token block needs a different key in
each group (vLLM's ``BlockHashWithGroupId`` in ``kv_cache_utils.py`` appends the group
id). Group 0 uses the request's block hash itself and group g > 0 uses
:func:`group_block_hash`, a sha256 of the hash and g, so keys stay 32-byte
``BlockHash`` values the pool and its events already handle.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256

from ..block import BlockHash, KVCacheBlock
from .single_type import SingleTypeKVCacheManager

__all__ = ["HybridKVCacheCoordinator", "group_block_hash"]


def group_block_hash(block_hash: BlockHash, group_id: int) -> BlockHash:
    """The cache key of ``block_hash`` in KV-cache group ``group_id`` (group 0: the hash itself)."""
    if group_id == 0:
        return block_hash
    return sha256(block_hash + b"kv-cache-group" + group_id.to_bytes(4, "little")).digest()


class HybridKVCacheCoordinator:
    """Finds the longest prefix hit that every group of a hybrid model can serve."""

    def __init__(self, managers: Sequence[SingleTypeKVCacheManager]) -> None:
        self.managers = tuple(managers)
        # Full attention first: its one prefix scan bounds the others' searches.
        self.lookup_order = sorted(
            range(len(self.managers)), key=lambda g: not self.managers[g].downward_closed
        )
        self._simple = (
            len(self.managers) == 2 and self.managers[self.lookup_order[0]].downward_closed
        )

    def find_longest_cache_hit(
        self, keys: Sequence[Sequence[BlockHash]], max_length: int
    ) -> tuple[tuple[list[KVCacheBlock], ...], int]:
        """Per-group hit blocks (each ``hit_length // block_size`` long) and the hit length."""
        managers = self.managers
        hits: list[list[KVCacheBlock] | None] = [None] * len(managers)
        lengths = [0] * len(managers)
        hit_length = max_length
        while True:
            candidate = hit_length
            for g in self.lookup_order:
                manager = managers[g]
                if manager.downward_closed and hits[g] is not None:
                    candidate = min(candidate, lengths[g])
                    continue
                hits[g], lengths[g] = manager.find_longest_cache_hit(keys[g], candidate)
                candidate = lengths[g]
            if candidate >= hit_length:
                break
            hit_length = candidate
            if self._simple:  # full attention + one other: the other answered last
                break
        out: list[list[KVCacheBlock]] = []
        for g, blocks in enumerate(hits):
            kept = [] if blocks is None else blocks[: hit_length // managers[g].block_size]
            out.append(kept)
        return tuple(out), hit_length
