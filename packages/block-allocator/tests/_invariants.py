"""Invariant checks and state snapshots shared by the spec tests.

Phase 02 lab-01 names four invariants I1-I4 without listing them; this suite reads them
from the Phase 02 mini-build as the four bug classes an allocator can have:

- I1 ref counts: ``ref_cnt >= 0`` and equals the number of block tables holding the block.
- I2 null block: block 0 is never handed out, freed, queued or cached.
- I3 link hygiene: a block is linked (both ``prev_free``/``next_free`` set) iff it is in the
  free queue; the queue has no duplicates and its counter matches its length.
- I4 content keys: a block cached under hash ``h`` holds the tokens ``h`` names: in every
  block table, block ``i``'s hash is None or the request's chained hash of blocks ``0..i``
  (a reused block never keeps a stale hash).

and adds four more of its own:

- E1 the free queue holds exactly the non-null blocks with ``ref_cnt == 0``;
- E2 a block is in the hash index iff it holds a hash (under that hash);
- E3 only full blocks are hashed;
- E4 free + in use == num_blocks - 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from _allocator_impl import free_block_ids, num_indexed


def _bid(block: Any) -> int | None:
    return None if block is None else block.block_id


def check_pool(pool: Any, holders: Mapping[str, Iterable[int]] | None = None) -> None:
    """Assert I1-I3 and E1, E2, E4 on a pool; ``holders`` maps request id -> block ids."""
    blocks = pool.blocks
    null = pool.null_block
    free_ids = free_block_ids(pool)
    free_set = set(free_ids)
    # I2
    assert blocks[0] is null and null.is_null and null.block_id == 0
    assert 0 not in free_set, "null block is in the free queue"
    assert null.block_hash is None, "null block is cached"
    assert not any(b.is_null for b in blocks[1:]), "a second null block"
    # I3
    assert len(free_ids) == len(free_set), "a block is twice in the free queue"
    for b in blocks:
        linked = b.prev_free is not None, b.next_free is not None
        if b.block_id in free_set:
            assert linked == (True, True), f"free block {b.block_id} is not linked"
        else:
            assert linked == (False, False), f"block {b.block_id} outside the queue keeps links"
    # I1
    assert all(b.ref_cnt >= 0 for b in blocks), "negative ref_cnt"
    if holders is not None:
        counts = Counter(i for ids in holders.values() for i in ids)
        for b in blocks[1:]:
            assert b.ref_cnt == counts.get(b.block_id, 0), (
                f"block {b.block_id}: ref_cnt {b.ref_cnt} but {counts.get(b.block_id, 0)} holders"
            )
    # E1
    expected_free = {b.block_id for b in blocks if not b.is_null and b.ref_cnt == 0}
    assert free_set == expected_free, f"free queue {sorted(free_set)} != {sorted(expected_free)}"
    # E2
    hashed = [b for b in blocks if b.block_hash is not None]
    for b in hashed:
        assert pool.get_cached_block(b.block_hash) is b, f"block {b.block_id} hash not indexed"
    assert num_indexed(pool) == len(hashed), "hash index holds blocks without a hash"
    # E4
    in_use = sum(1 for b in blocks[1:] if b.ref_cnt > 0)
    assert pool.get_num_free_blocks() == len(free_ids)
    assert pool.get_num_free_blocks() + in_use == pool.num_blocks - 1


def check_manager(manager: Any, requests: Mapping[str, Any]) -> None:
    """All invariants on a manager; ``requests`` are the ones currently holding blocks."""
    pool = manager.block_pool
    tables = {rid: manager.get_block_ids(rid) for rid in requests}
    check_pool(pool, tables)
    bs = manager.block_size
    for rid, ids in tables.items():
        req = requests[rid]
        for i, block_id in enumerate(ids):
            h = pool.blocks[block_id].block_hash
            if h is None:
                continue
            # E3: only full blocks; I4: the hash names this request's prefix up to block i
            assert (i + 1) * bs <= req.num_tokens, f"{rid}: partial block {i} is hashed"
            assert h == req.block_hashes[i], f"{rid}: block {i} cached under a foreign hash"


def pool_snapshot(pool: Any) -> tuple[Any, ...]:
    """Everything observable about a pool, for before/after comparisons."""
    return (
        tuple(
            (
                b.block_id,
                b.ref_cnt,
                b.block_hash,
                getattr(b, "retention_priority", 0),
                _bid(b.prev_free),
                _bid(b.next_free),
            )
            for b in pool.blocks
        ),
        tuple(free_block_ids(pool)),
        pool.get_num_free_blocks(),
        num_indexed(pool),
        tuple(getattr(getattr(pool, "_index", None), "events", ())),
    )


def manager_snapshot(manager: Any, request_ids: Iterable[str]) -> tuple[Any, ...]:
    tables = tuple((rid, tuple(manager.get_block_ids(rid))) for rid in request_ids)
    copies = tuple(getattr(manager, "_blocks_to_copy", ()))
    return pool_snapshot(manager.block_pool), tables, copies
