"""How the kit reaches into a learner's allocator, and how it describes what changed.

A learner writes the Phase 02 mini-build's API; field and method names follow either the
mini-build (``prev_free``/``next_free``) or vLLM (``prev_free_block``/``next_free_block``,
``req_to_blocks``). These adapters read both, so the checks never depend on extras.
Nothing here imports ``block_allocator``'s implementation: the kit grades a module with
only the standard library and the module itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = ["KitRequest", "PoolState", "diff_states", "free_ids", "make_manager", "make_request"]


def prev_of(block: Any) -> Any:
    return getattr(block, "prev_free", getattr(block, "prev_free_block", None))


def next_of(block: Any) -> Any:
    return getattr(block, "next_free", getattr(block, "next_free_block", None))


def free_ids(pool: Any, limit: int = 1_000_000) -> list[int]:
    """Ids of the free blocks in eviction order (head first); a cycle stops at ``limit``."""
    queue = getattr(pool, "free_block_queue", None)
    if hasattr(pool, "get_free_blocks"):
        blocks = pool.get_free_blocks()
    elif queue is not None and hasattr(queue, "get_all_free_blocks"):
        blocks = queue.get_all_free_blocks()
    else:
        raise AttributeError("the pool needs free_block_queue.get_all_free_blocks()")
    return [b.block_id for b in blocks[:limit]]


def num_free(pool: Any) -> int:
    return int(pool.get_num_free_blocks())


class KitRequest:
    """The request the kit hands a learner's manager when the module exports no ``Request``.

    It carries what the mini-build's manager reads: ``request_id``, ``all_token_ids``,
    ``num_tokens``, ``num_computed_tokens`` and ``block_hashes`` (the chained hashes of the
    full blocks, computed with the learner's own ``hash_block_tokens``).
    """

    def __init__(
        self, request_id: str, token_ids: Sequence[int], block_size: int, hasher: Callable[..., Any]
    ) -> None:
        self.request_id = request_id
        self.prompt_token_ids = list(token_ids)
        self.all_token_ids = list(token_ids)
        self.num_computed_tokens = 0
        self.block_size = block_size
        self._hasher = hasher
        self.block_hashes: list[Any] = []
        self._rehash()

    @property
    def num_tokens(self) -> int:
        return len(self.all_token_ids)

    def append_output_token_ids(self, token_ids: int | Sequence[int]) -> None:
        self.all_token_ids += [token_ids] if isinstance(token_ids, int) else list(token_ids)
        self._rehash()

    def _rehash(self) -> None:
        bs = self.block_size
        parent = self.block_hashes[-1] if self.block_hashes else None
        for i in range(len(self.block_hashes), len(self.all_token_ids) // bs):
            parent = self._hasher(parent, self.all_token_ids[i * bs : (i + 1) * bs])
            self.block_hashes.append(parent)


def make_request(module: ModuleType, rid: str, tokens: Sequence[int], block_size: int) -> Any:
    """The learner's ``Request(request_id, token_ids)`` if it has one, else a KitRequest."""
    cls = getattr(module, "Request", None)
    if cls is not None:
        return cls(rid, list(tokens))
    return KitRequest(rid, tokens, block_size, module.hash_block_tokens)


def make_manager(module: ModuleType, num_blocks: int, block_size: int) -> Any:
    cls = module.KVCacheManager
    params = inspect.signature(cls).parameters
    if "num_blocks" in params and "block_size" in params:
        return cls(num_blocks=num_blocks, block_size=block_size)
    return cls(num_blocks, block_size)


def block_ids_of(manager: Any, request_id: str) -> list[int]:
    """A request's physical block ids, through ``get_block_ids`` or ``req_to_blocks``."""
    if hasattr(manager, "get_block_ids"):
        ids = manager.get_block_ids(request_id)
        if isinstance(ids, tuple) and ids and isinstance(ids[0], list):  # vLLM: one per group
            ids = ids[0]
        return list(ids)
    return [b.block_id for b in manager.req_to_blocks[request_id]]


@dataclass(frozen=True)
class PoolState:
    """What the kit can observe of a pool: per-block fields and the free queue's order."""

    ref_cnt: tuple[int, ...]
    hashed: tuple[bool, ...]
    hashes: tuple[Any, ...]
    queue: tuple[int, ...]
    num_free: int

    @classmethod
    def of(cls, pool: Any) -> PoolState:
        blocks = pool.blocks
        return cls(
            tuple(b.ref_cnt for b in blocks),
            tuple(b.block_hash is not None for b in blocks),
            tuple(b.block_hash for b in blocks),
            tuple(free_ids(pool, len(blocks) + 1)),
            num_free(pool),
        )


def diff_states(before: PoolState, after: PoolState) -> list[str]:
    """Say in words what changed between two pool states, one line per block."""
    lines: list[str] = []
    pos_before = {b: i for i, b in enumerate(before.queue)}
    pos_after = {b: i for i, b in enumerate(after.queue)}
    for bid in range(max(len(before.ref_cnt), len(after.ref_cnt))):
        parts = []
        r0, r1 = before.ref_cnt[bid], after.ref_cnt[bid]
        if r0 != r1:
            parts.append(f"ref_cnt {r0} -> {r1}")
        if before.hashes[bid] != after.hashes[bid]:
            if not after.hashed[bid]:
                parts.append("lost its hash (evicted from the prefix cache)")
            elif not before.hashed[bid]:
                parts.append("gained a hash (cached)")
            else:
                parts.append("was re-hashed under another key")
        if (bid in pos_before) != (bid in pos_after):
            parts.append(
                "left the free queue"
                if bid in pos_before
                else f"entered the free queue at position {pos_after[bid]}"
            )
        if parts:
            lines.append(f"block {bid}: " + ", ".join(parts))
    kept = [b for b in before.queue if b in pos_after]
    if kept != [b for b in after.queue if b in pos_before]:
        lines.append(f"free queue reordered: {list(before.queue)} -> {list(after.queue)}")
    if before.num_free != after.num_free:
        lines.append(f"get_num_free_blocks(): {before.num_free} -> {after.num_free}")
    return lines
