"""What the step-through page shows at one step: the pool, the free queue, tables, chains.

A snapshot is plain data (ints, strings, lists, dicts) so it can be embedded in the page as
JSON and compared with what the browser shows. It is read through the manager's and the
pool's public views; taking one changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from ..errors import BlockAllocatorError
from ..kv_cache_manager import KVCacheManager
from ..request import Request

__all__ = ["BLOCK_STATES", "Snapshot", "block_state", "take_snapshot"]

BLOCK_STATES = ("null", "free", "cached", "used", "shared")
"""A block's state as the page colours it.

``null``: block 0, the placeholder that is never handed out. ``free``: in a free queue,
no content worth keeping. ``cached``: in a free queue but still in the prefix cache (an
eviction candidate that a prefix hit can revive). ``used``: one block table holds it.
``shared``: several block tables hold it (``ref`` says how many).
"""


def block_state(ref_cnt: int, is_null: bool, cached: bool) -> str:
    """The page's colour class of a block with these fields."""
    if is_null:
        return "null"
    if ref_cnt == 0:
        return "cached" if cached else "free"
    return "used" if ref_cnt == 1 else "shared"


def _short(block_hash: bytes | None) -> str | None:
    return None if block_hash is None else block_hash.hex()[:8]


@dataclass(frozen=True)
class Snapshot:
    """The allocator's visible state after one recorded call."""

    blocks: list[dict[str, Any]]  # one per physical block: id, state, ref, hash, prio
    free_queue: list[int]  # block ids in eviction order: the head is evicted first
    tables: dict[str, list[int]]  # live request id -> physical block ids, logical order
    chains: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # id -> hashes
    num_free_blocks: int = 0
    usage: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "blocks": self.blocks,
            "free_queue": self.free_queue,
            "tables": self.tables,
            "chains": self.chains,
            "num_free_blocks": self.num_free_blocks,
            "usage": round(self.usage, 6),
        }


def take_snapshot(manager: KVCacheManager, requests: Iterable[Request] = ()) -> Snapshot:
    """Read the pool, its free queues and the tables and hash chains of ``requests``.

    Requests without blocks (never allocated, or freed) have no table; their hash chains
    stay, each hash pointing at the block that still caches it, or at nothing once it was
    evicted: the biography of a cached block.
    """
    pool = manager.block_pool
    blocks = [
        {
            "id": b.block_id,
            "state": block_state(b.ref_cnt, b.is_null, b.block_hash is not None),
            "ref": b.ref_cnt,
            "hash": _short(b.block_hash),
            "prio": b.retention_priority,
        }
        for b in pool.blocks
    ]
    tables: dict[str, list[int]] = {}
    chains: dict[str, list[dict[str, Any]]] = {}
    for request in requests:
        rid = request.request_id
        with suppress(BlockAllocatorError):  # not allocated yet, or freed: no table
            tables[rid] = manager.get_block_ids(rid)
        chain = []
        for h in request.block_hashes:
            holder = pool.get_cached_block(h)
            chain.append({"hash": _short(h), "block": None if holder is None else holder.block_id})
        chains[rid] = chain
    return Snapshot(
        blocks=blocks,
        free_queue=[b.block_id for b in pool.get_free_blocks()],
        tables=tables,
        chains=chains,
        num_free_blocks=pool.get_num_free_blocks(),
        usage=pool.get_usage(),
    )
