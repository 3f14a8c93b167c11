"""Per-group managers of hybrid models, in the behaviours vLLM's tests pin down.

The cases follow vLLM's ``tests/v1/core/test_single_type_kv_cache_manager.py`` (sliding
window and chunked local attention: which cached blocks make a hit, which blocks leave
the window, how many blocks an allocation takes), plus the Mamba "align" rules of
``single_type_kv_cache_manager.py``.
"""

from __future__ import annotations

import random
from hashlib import sha256

import pytest

from block_allocator import BlockPool, FullAttentionSpec, MambaSpec, Request, SlidingWindowSpec
from block_allocator.hybrid import (
    ChunkedLocalAttentionManager,
    ChunkedLocalAttentionSpec,
    FullAttentionManager,
    MambaManager,
    SlidingWindowManager,
)

pytestmark = pytest.mark.extended


def _key(i: int) -> bytes:
    return sha256(b"test-key-%d" % i).digest()


def _sw(window: int = 4, bs: int = 2) -> SlidingWindowSpec:
    return SlidingWindowSpec(block_size=bs, num_kv_heads=1, head_size=1, sliding_window=window)


def _chunked(chunk: int = 4, bs: int = 2) -> ChunkedLocalAttentionSpec:
    return ChunkedLocalAttentionSpec(
        block_size=bs, num_kv_heads=1, head_size=1, attention_chunk_size=chunk
    )


def _cache(pool: BlockPool, pattern: list[bool]) -> tuple[list[bytes], dict[int, int]]:
    """Cache key i (free, findable) for every True; returns keys and key index -> block id."""
    keys = [_key(i) for i in range(len(pattern))]
    ids = {}
    for i, cached in enumerate(pattern):
        if cached:
            block = pool.get_new_blocks(1)[0]
            pool.cache_full_blocks([block], [keys[i]])
            pool.free_blocks([block])
            ids[i] = block.block_id
    return keys, ids


SW_CASES = [
    ([False] * 10, 0),
    ([True], 1),
    ([True, False], 1),
    ([True, True], 2),
    ([True, True, False], 2),
    ([True, True, True], 3),
    ([True, True, True, False], 3),
    ([True, True, False, True, False, False, True, True, False, True, True, True], 12),
    ([True, True, False, True, False, False, True, True, False, False, False], 8),
    ([True, True, False, True, False, False, True, True, False, False, False, True], 8),
]


@pytest.mark.parametrize(("pattern", "expect_blocks"), SW_CASES)
def test_sliding_window_hit_needs_only_the_window(pattern: list[bool], expect_blocks: int) -> None:
    # window 4, block 2: the next token reads 3 earlier tokens, i.e. the last 2 blocks.
    pool = BlockPool(100)
    mgr = SlidingWindowManager(_sw(), pool, 0, True)
    keys, ids = _cache(pool, pattern)
    hits, length = mgr.find_longest_cache_hit(keys, len(pattern) * 2)
    assert length == expect_blocks * 2 == len(hits) * 2
    assert all(b.is_null for b in hits[: expect_blocks - 2])
    for i in range(max(0, expect_blocks - 2), expect_blocks):
        assert hits[i].block_id == ids[i]


CHUNKED_CASES = [
    ([True], 0, 1),
    ([True], 1, 1),
    ([True, False], 0, 2),
    ([True, False], 1, 2),
    ([True, True], 0, 2),
    ([True, True, False], 0, 2),
    ([True, True, True], 1, 3),
    ([True, True, True, False], 0, 4),
    ([True, True, True, False], 1, 4),
    ([False] * 8 + [True], 1, 9),
    ([False] * 8 + [False], 1, 8),
    ([True] * 8 + [True, True], 1, 10),
    ([False] * 8 + [True, False], 0, 10),
    ([False] * 8 + [False, True], 1, 10),
    ([False] * 8 + [False, False], 1, 10),
]


@pytest.mark.parametrize(("pattern", "tail", "expect_blocks"), CHUNKED_CASES)
def test_chunked_local_hit_needs_only_the_current_chunk(
    pattern: list[bool], tail: int, expect_blocks: int
) -> None:
    # chunk 4, block 2: blocks of earlier chunks count as computed without a lookup.
    pool = BlockPool(100)
    mgr = ChunkedLocalAttentionManager(_chunked(), pool, 0, True)
    keys, _ = _cache(pool, pattern)
    hits, length = mgr.find_longest_cache_hit(keys, len(pattern) * 2 + tail)
    assert len(hits) == expect_blocks and length == expect_blocks * 2
    chunk_start = (len(pattern) * 2 + tail) // 4 * 2
    assert all(b.is_null for b in hits[:chunk_start])
    assert not any(b.is_null for b in hits[chunk_start:])


def test_chunked_local_with_random_old_chunks_ignores_them() -> None:
    rng = random.Random(0)
    for _ in range(20):
        pool = BlockPool(100)
        mgr = ChunkedLocalAttentionManager(_chunked(), pool, 0, True)
        pattern = [rng.random() < 0.5 for _ in range(8)] + [True]
        keys, _ = _cache(pool, pattern)
        assert mgr.find_longest_cache_hit(keys, 19)[1] == 18


def _table_ids(mgr: object, rid: str) -> list[int]:
    return [b.block_id for b in mgr.req_to_blocks[rid]]  # type: ignore[attr-defined]


def test_sliding_window_frees_blocks_that_leave_the_window() -> None:
    pool = BlockPool(100)
    mgr = SlidingWindowManager(_sw(), pool, 0, True)
    mgr.allocate_new_blocks("r", 22)
    ids = _table_ids(mgr, "r")
    expected = list(ids)
    for computed, num_null in [(0, 0), (4, 0), (5, 1), (6, 1), (7, 2)]:
        # After `computed` tokens the next reads tokens computed-3 .. computed-1.
        mgr.remove_skipped_blocks("r", computed)
        expected[:num_null] = [0] * num_null
        assert _table_ids(mgr, "r") == expected, computed
    free_before = pool.get_num_free_blocks()
    mgr.remove_skipped_blocks("r", 11)  # tokens 0-7 out: blocks 2 and 3 go, deepest first
    assert _table_ids(mgr, "r") == [0] * 4 + ids[4:]
    assert pool.get_num_free_blocks() == free_before + 2
    assert [b.block_id for b in pool.get_free_blocks()[-2:]] == [ids[3], ids[2]]


def test_chunked_local_frees_earlier_chunks() -> None:
    pool = BlockPool(100)
    mgr = ChunkedLocalAttentionManager(_chunked(), pool, 0, True)
    mgr.allocate_new_blocks("r", 22)
    ids = _table_ids(mgr, "r")
    mgr.remove_skipped_blocks("r", 0)
    assert _table_ids(mgr, "r") == ids
    mgr.remove_skipped_blocks("r", 4)
    assert _table_ids(mgr, "r") == [0, 0, *ids[2:]]
    mgr.remove_skipped_blocks("r", 6)
    assert _table_ids(mgr, "r") == [0, 0, *ids[2:]]
    mgr.remove_skipped_blocks("r", 12)
    assert _table_ids(mgr, "r") == [0] * 6 + ids[6:]


@pytest.mark.parametrize("manager_cls", [SlidingWindowManager, ChunkedLocalAttentionManager])
def test_blocks_to_allocate_count_null_hits_as_free(manager_cls: type) -> None:
    pool = BlockPool(100)
    spec = _sw() if manager_cls is SlidingWindowManager else _chunked()
    mgr = manager_cls(spec, pool, 0, True)
    cached = pool.blocks[1:11]  # free (ref_cnt 0): touching them takes them off the queue
    assert mgr.get_num_blocks_to_allocate("a", 40, cached, 0) == 20
    padded = [pool.null_block] * 5 + pool.blocks[1:6]
    assert mgr.get_num_blocks_to_allocate("b", 40, padded, 0) == 15


def test_evictable_hit_is_counted_but_not_allocated_twice() -> None:
    pool = BlockPool(100)
    mgr = SlidingWindowManager(_sw(), pool, 0, True)
    hit = pool.blocks[1]
    assert mgr.get_num_blocks_to_allocate("r", 4, [hit], 2) == 2
    mgr.add_computed_blocks("r", [hit], 2)
    assert len(mgr.allocate_new_blocks("r", 4)) == 1
    assert len(mgr.req_to_blocks["r"]) == 2 and hit.ref_cnt == 1


def test_full_attention_hit_is_the_cached_prefix() -> None:
    pool = BlockPool(20)
    spec = FullAttentionSpec(block_size=2, num_kv_heads=1, head_size=1)
    mgr = FullAttentionManager(spec, pool, 0, True)
    keys, ids = _cache(pool, [True, True, False, True])
    hits, length = mgr.find_longest_cache_hit(keys, 8)
    assert [b.block_id for b in hits] == [ids[0], ids[1]] and length == 4
    assert mgr.find_longest_cache_hit(keys, 2)[1] == 2  # bounded by max_length


def _mamba(mode: str = "align", bs: int = 4) -> MambaSpec:
    return MambaSpec(block_size=bs, shapes=((8,),), dtypes=("float32",), mamba_cache_mode=mode)


def test_mamba_hit_is_the_last_cached_state() -> None:
    pool = BlockPool(20)
    mgr = MambaManager(_mamba(bs=2), pool, 0, True)
    keys, ids = _cache(pool, [True, False, True, False, False])
    hits, length = mgr.find_longest_cache_hit(keys, 10)
    assert length == 6 and [b.block_id for b in hits] == [0, 0, ids[2]]
    assert mgr.find_longest_cache_hit(keys, 4)[1] == 2  # below the candidate length
    assert mgr.find_longest_cache_hit(keys, 1) == ([], 0)


def test_mamba_align_moves_the_state_and_caches_only_at_step_ends() -> None:
    pool = BlockPool(20)
    mgr = MambaManager(_mamba(), pool, 0, True)
    req = Request("r", list(range(14)), block_size=4)
    keys = req.block_hashes
    # Prefill split at the block boundary 8 (vLLM's scheduler does this in "align" mode).
    assert mgr.get_num_blocks_to_allocate("r", 8, [], 0) == 1
    new = mgr.allocate_new_blocks("r", 8)
    assert _table_ids(mgr, "r") == [0, new[0].block_id]
    mgr.cache_blocks(req, 8, keys)
    assert new[0].block_hash == keys[1]  # the state after 8 tokens
    # Next chunk, 8 -> 13: the state moves to block 3; blocks 0-1 hold no live state.
    mgr.remove_skipped_blocks("r", 8)
    assert mgr.get_num_blocks_to_allocate("r", 13, [], 8) == 1
    state = mgr.allocate_new_blocks("r", 13)[0]
    assert _table_ids(mgr, "r") == [0, new[0].block_id, 0, state.block_id]
    mgr.cache_blocks(req, 13, keys)
    assert state.block_hash is None  # 13 is not a boundary: block 2's state never existed
    mgr.remove_skipped_blocks("r", 13)
    assert _table_ids(mgr, "r") == [0, 0, 0, state.block_id]
    assert new[0].ref_cnt == 0 and pool.get_cached_block(keys[1]) is new[0]  # lingers, cached


def test_mamba_none_holds_one_block_and_refuses_caching() -> None:
    pool = BlockPool(20)
    mgr = MambaManager(_mamba("none"), pool, 0, False)
    assert mgr.get_num_blocks_to_allocate("r", 100, [], 0) == 1
    assert len(mgr.allocate_new_blocks("r", 100)) == 1
    assert mgr.allocate_new_blocks("r", 400) == []
    mgr.free("r")
    assert pool.get_num_free_blocks() == 19
    with pytest.raises(ValueError, match="mamba_cache_mode='align'"):
        MambaManager(_mamba("none"), pool, 0, True)


def test_full_attention_spec_is_not_a_window() -> None:
    spec = FullAttentionSpec(block_size=2, num_kv_heads=1, head_size=1)
    assert FullAttentionManager(spec, BlockPool(4), 0, True).get_num_skipped_tokens(100) == 0


def test_mamba_all_keeps_every_boundary_state() -> None:
    pool = BlockPool(20)
    mgr = MambaManager(_mamba("all"), pool, 0, True)
    req = Request("r", list(range(13)), block_size=4)
    assert mgr.get_num_blocks_to_allocate("r", 13, [], 0) == 4
    blocks = mgr.allocate_new_blocks("r", 13)
    mgr.cache_blocks(req, 13, req.block_hashes)
    mgr.remove_skipped_blocks("r", 13)  # nothing is skipped in "all" mode
    assert _table_ids(mgr, "r") == [b.block_id for b in blocks]
    assert [b.block_hash for b in blocks[:3]] == req.block_hashes
    hits, length = mgr.find_longest_cache_hit(req.block_hashes, 12)
    assert length == 12 and hits[-1] is blocks[2] and all(b.is_null for b in hits[:2])
    assert mgr.find_longest_cache_hit(req.block_hashes, 11)[1] == 8
