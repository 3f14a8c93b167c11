"""The hybrid manager: groups in one pool, the common prefix hit, refusals and bad input.

Behaviours follow vLLM's hybrid-allocator tests (``tests/v1/core/test_prefix_caching.py``,
the hybrid coordinator tests): one pool serves every group, a hit must be usable by every
group, sliding-window tables hold only the window, and a refused step changes nothing.
"""

from __future__ import annotations

import pytest
from _hybrid_checks import check_hybrid, naive_hit, snapshot

from block_allocator import FullAttentionSpec, MambaSpec, Request, SlidingWindowSpec
from block_allocator.hybrid import ChunkedLocalAttentionSpec, HybridKVCacheManager

pytestmark = pytest.mark.extended

BS = 4
FULL = FullAttentionSpec(block_size=BS, num_kv_heads=2, head_size=8)  # 256 B a page
SW = SlidingWindowSpec(block_size=BS, num_kv_heads=2, head_size=8, sliding_window=8)
CHUNKED = ChunkedLocalAttentionSpec(
    block_size=BS, num_kv_heads=2, head_size=8, attention_chunk_size=8
)
# 64 B of state, padded to the attention page as vLLM pads Mamba pages.
MAMBA = MambaSpec(
    block_size=BS,
    shapes=((16,),),
    dtypes=("float32",),
    page_size_padded=256,
    mamba_cache_mode="align",
)


def _run(mgr: HybridKVCacheManager, req: Request, chunk: int = 16) -> int:
    """Admit and prefill ``req`` in chunks (Mamba-aligned); returns the hit length."""
    hits, num_hit = mgr.get_computed_blocks(req)
    assert num_hit == naive_hit(mgr, req)
    # The first allocation attaches the hit; num_computed_tokens counts it afterwards.
    n = min(chunk, req.num_tokens - num_hit)
    req.num_computed_tokens = num_hit
    n = mgr.align_num_new_tokens(req, n)
    req.num_computed_tokens = 0
    assert mgr.allocate_slots(req, n, hits) is not None
    req.num_computed_tokens = num_hit + n
    while req.num_computed_tokens < req.num_tokens:
        n = mgr.align_num_new_tokens(req, min(chunk, req.num_tokens - req.num_computed_tokens))
        assert mgr.allocate_slots(req, n) is not None
        req.num_computed_tokens += n
    return num_hit


def test_groups_share_one_pool_and_unequal_pages_are_refused() -> None:
    mgr = HybridKVCacheManager([FULL, SW, MAMBA], num_blocks=64)
    req = Request("a", list(range(30)))
    _run(mgr, req)
    ids = mgr.get_block_ids("a")
    assert len(ids) == 3 and len(set(ids[0]) & set(ids[1])) == 0
    used = sum(1 for group in ids for i in group if i)
    assert mgr.num_free_blocks == 63 - used
    check_hybrid(mgr, {"a": req})
    big = FullAttentionSpec(block_size=BS, num_kv_heads=4, head_size=8)
    with pytest.raises(ValueError, match="page_size_padded on the smaller specs to 512"):
        HybridKVCacheManager([big, SW], num_blocks=8)
    padded = SlidingWindowSpec(
        block_size=BS, num_kv_heads=2, head_size=8, sliding_window=8, page_size_padded=512
    )
    assert HybridKVCacheManager([big, padded], num_blocks=8).num_groups == 2
    with pytest.raises(ValueError, match="same block_size"):
        HybridKVCacheManager(
            [FULL, FullAttentionSpec(block_size=8, num_kv_heads=1, head_size=8)], num_blocks=8
        )
    with pytest.raises(TypeError, match="kv_cache_specs entries"):
        HybridKVCacheManager([FULL, "sliding"], num_blocks=8)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="non-empty"):
        HybridKVCacheManager([], num_blocks=8)


def test_sliding_window_table_holds_only_the_window_while_decoding() -> None:
    mgr = HybridKVCacheManager([FULL, SW], num_blocks=64)
    req = Request("a", list(range(16)))
    _run(mgr, req)
    for t in range(20):
        req.append_output_token_ids(1000 + t)
        assert mgr.allocate_slots(req, 1) is not None
        req.num_computed_tokens += 1
        full_ids, sw_ids = mgr.get_block_ids("a")
        assert all(full_ids)
        # The next token reads the 7 before it: at most 3 real blocks of 4 tokens.
        assert sum(1 for i in sw_ids if i) <= 3
        assert len(sw_ids) == len(full_ids)
        check_hybrid(mgr, {"a": req})


@pytest.mark.parametrize("specs", [[FULL, SW], [FULL, MAMBA], [SW, MAMBA], [FULL, CHUNKED, SW]])
def test_hit_is_the_longest_every_group_can_serve(specs: list[object]) -> None:
    mgr = HybridKVCacheManager(specs, num_blocks=128)  # type: ignore[arg-type]
    base = list(range(41))
    first = Request("a", base)
    _run(mgr, first)
    mgr.free(first)
    second = Request("b", [*base[:37], 999, 998, 997])
    num_hit = _run(mgr, second)
    assert num_hit >= 32  # Mamba states were cached at the chunk ends 16 and 32
    check_hybrid(mgr, {"b": second})


def test_mamba_and_sliding_window_need_a_fixed_point() -> None:
    # Window blocks 0-9 cached but 5 and 7, Mamba states at blocks 3 and 6: the window
    # offers 40, Mamba 28, the window 20, Mamba 16, the window 16: three rounds.
    mgr = HybridKVCacheManager([SW, MAMBA], num_blocks=64)
    probe = Request("p", list(range(41)), block_size=BS)
    sw_keys, mamba_keys = mgr.group_keys(probe)
    pool = mgr.block_pool
    cached = [sw_keys[i] for i in range(10) if i not in (5, 7)] + [mamba_keys[3], mamba_keys[6]]
    for key in cached:
        block = pool.get_new_blocks(1)[0]
        pool.cache_full_blocks([block], [key])
        pool.free_blocks([block])
    hits, num_hit = mgr.get_computed_blocks(probe)
    assert num_hit == naive_hit(mgr, probe) == 16
    sw_hits, mamba_hits = hits
    assert [b.block_hash for b in sw_hits[2:]] == sw_keys[2:4]
    assert all(b.is_null for b in sw_hits[:2] + mamba_hits[:3])
    assert mamba_hits[3].block_hash == mamba_keys[3]
    assert mgr.allocate_slots(probe, 41 - 16, hits) is not None
    check_hybrid(mgr, {"p": probe})


def test_hit_reuses_blocks_and_keys_differ_per_group() -> None:
    mgr = HybridKVCacheManager([FULL, FULL], num_blocks=32)
    a = Request("a", list(range(9)))
    _run(mgr, a)
    b = Request("b", list(range(9)))
    hits, num_hit = mgr.get_computed_blocks(b)
    assert num_hit == 8
    assert [x.block_id for x in hits[0]] == mgr.get_block_ids("a")[0][:2]
    assert [x.block_id for x in hits[1]] == mgr.get_block_ids("a")[1][:2]
    keys = mgr.group_keys(b)
    assert keys[0][0] != keys[1][0]
    assert mgr.allocate_slots(b, 1, hits) is not None
    assert all(x.ref_cnt == 2 for x in hits[0] + hits[1])
    stats = mgr.prefix_cache_stats
    assert (stats.requests, stats.queries, stats.hits) == (2, 18, 8)


def test_refused_step_changes_nothing() -> None:
    mgr = HybridKVCacheManager([FULL, SW, MAMBA], num_blocks=20)
    a = Request("a", list(range(30)))
    n = mgr.align_num_new_tokens(a, 30)
    assert n == 28
    assert mgr.allocate_slots(a, n) is not None
    a.num_computed_tokens = n
    before = snapshot(mgr.block_pool), mgr.get_block_ids("a")
    b = Request("b", list(range(100, 140)))
    assert mgr.allocate_slots(b, 40) is None
    assert (snapshot(mgr.block_pool), mgr.get_block_ids("a")) == before
    with pytest.raises(ValueError, match="cannot compute up to token 31"):
        mgr.allocate_slots(a, 3)
    with pytest.raises(ValueError, match="one list per KV-cache group"):
        mgr.allocate_slots(b, 1, ([], []))
    with pytest.raises(TypeError, match="num_new_tokens must be an int"):
        mgr.allocate_slots(b, 1.0)  # type: ignore[arg-type]
    assert (snapshot(mgr.block_pool), mgr.get_block_ids("a")) == before
    mgr.free(a)
    assert mgr.num_free_blocks == 19 and mgr.reset_prefix_cache()
    assert mgr.block_pool.num_cached_blocks == 0


def test_caching_off_needs_no_align_mode() -> None:
    none = MambaSpec(block_size=BS, shapes=((16,),), dtypes=("float32",), page_size_padded=256)
    mgr = HybridKVCacheManager([FULL, none], num_blocks=16, enable_caching=False)
    req = Request("a", list(range(30)))
    assert mgr.get_computed_blocks(req) == (([], []), 0)
    assert mgr.allocate_slots(req, 30) is not None
    full_ids, mamba_ids = mgr.get_block_ids("a")
    assert len(full_ids) == 8 and len(mamba_ids) == 1
    with pytest.raises(ValueError, match="mamba_cache_mode='align'"):
        HybridKVCacheManager([FULL, none], num_blocks=16)


def test_slot_mapping_per_group() -> None:
    mgr = HybridKVCacheManager([FULL, SW], num_blocks=16)
    req = Request("a", list(range(10)))
    mgr.allocate_slots(req, 10)
    full, sw = mgr.slot_mapping(req, 10)
    ids = mgr.get_block_ids("a")
    assert full[5] == ids[0][1] * BS + 1 and sw[9] == ids[1][2] * BS + 1
    with pytest.raises(ValueError, match="not allocated"):
        mgr.slot_mapping(req, 13)


def test_free_hit_blocks_of_every_group_count_against_the_pool() -> None:
    # After `a` is freed all 5 non-null blocks are free but cached. `b` hits 3 full-attention
    # blocks and the Mamba state at 12; taking them off the free queue plus one new block
    # per group needs 6 blocks, one more than the pool has: refused, nothing changes.
    mgr = HybridKVCacheManager([FULL, MAMBA], num_blocks=6)
    a = Request("a", list(range(12)))
    _run(mgr, a, chunk=8)
    mgr.free(a)
    assert mgr.num_free_blocks == 5
    b = Request("b", [*range(12), 99])
    hits, num_hit = mgr.get_computed_blocks(b)
    assert num_hit == 12 and sum(1 for g in hits for x in g if not x.is_null) == 4
    before = snapshot(mgr.block_pool)
    assert mgr.allocate_slots(b, 1, hits) is None
    assert snapshot(mgr.block_pool) == before


def test_full_and_two_windows_as_vllms_prefill_hybrid_test(monkeypatch: pytest.MonkeyPatch) -> None:
    # vLLM's test_prefill_hybrid_model: one full-attention group and two sliding-window
    # groups (window of two blocks), 16-token blocks, a pool of 21.
    bs = 16
    full = FullAttentionSpec(block_size=bs, num_kv_heads=1, head_size=8)
    swa = SlidingWindowSpec(block_size=bs, num_kv_heads=1, head_size=8, sliding_window=2 * bs)
    mgr = HybridKVCacheManager([full, swa, swa], num_blocks=21)
    common = [i for i in range(3) for _ in range(bs)]
    req0 = Request("0", [*common, *[3] * 7])
    hits, num_hit = mgr.get_computed_blocks(req0)
    assert num_hit == 0
    new = mgr.allocate_slots(req0, 55, hits)
    assert new is not None
    assert [[b.block_id for b in g] for g in new] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]
    keys = mgr.group_keys(req0)
    for i, ids in enumerate([(1, 5, 9), (2, 6, 10), (3, 7, 11)]):
        for g, block_id in enumerate(ids):
            block = mgr.block_pool.blocks[block_id]
            assert block.block_hash == keys[g][i] and block.ref_cnt == 1
    assert all(mgr.block_pool.blocks[i].block_hash is None for i in (4, 8, 12))

    req1 = Request("1", [*common, *[3] * 5])
    hits, num_hit = mgr.get_computed_blocks(req1)
    assert num_hit == 48
    assert [[b.block_id for b in g] for g in hits] == [[1, 2, 3], [0, 6, 7], [0, 10, 11]]
    new = mgr.allocate_slots(req1, 53 - 48, hits)
    assert new is not None and [[b.block_id for b in g] for g in new] == [[13], [14], [15]]
    assert all(b.ref_cnt == 2 for g in hits for b in g if not b.is_null)
    mgr.free(req0)
    mgr.free(req1)

    pool = mgr.block_pool
    lookup = pool.get_cached_block

    def hit_without(rid: str, evicted: list[tuple[int, int]]) -> int:
        # Hide (block index, group) keys from the index, as vLLM's test pops them.
        req = Request(rid, [*common, *[3] * 5])
        gone = {mgr.group_keys(req)[g][i] for i, g in evicted}
        monkeypatch.setattr(pool, "get_cached_block", lambda h: None if h in gone else lookup(h))
        hits, num_hit = mgr.get_computed_blocks(req)
        assert all(len(g) == num_hit // bs for g in hits)
        monkeypatch.setattr(pool, "get_cached_block", lookup)
        mgr.free(req)
        return num_hit // bs

    assert hit_without("2", [(0, 1), (0, 2)]) == 3  # outside the window: no effect
    assert hit_without("3", [(0, 0)]) == 0  # full attention's first block: total miss
    assert hit_without("4", [(2, 0), (2, 1), (2, 2)]) == 2
    assert hit_without("5", [(2, 0)]) == 2
    assert hit_without("6", [(2, 1)]) == 2
    assert hit_without("7", [(2, 2)]) == 2
    # Full attention offers 2 blocks, the windows 3 but not 2: nothing in common.
    assert hit_without("8", [(2, 0), (0, 1), (0, 2)]) == 0


def test_windows_of_different_sizes_agree_on_one_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    # vLLM's test_partial_cache_hit_different_sliding_windows: full, SW-64 and SW-32.
    bs = 16
    attn = {"block_size": bs, "num_kv_heads": 1, "head_size": 8}
    specs = [
        FullAttentionSpec(**attn),
        SlidingWindowSpec(**attn, sliding_window=64),
        SlidingWindowSpec(**attn, sliding_window=32),
    ]
    mgr = HybridKVCacheManager(specs, num_blocks=50)
    common = [i for i in range(5) for _ in range(bs)]
    req0 = Request("0", common)
    assert mgr.allocate_slots(req0, 80) is not None
    mgr.free(req0)
    req1 = Request("1", common)
    hits, num_hit = mgr.get_computed_blocks(req1)
    assert num_hit == 64 and [len(g) for g in hits] == [4, 4, 4]
    mgr.free(req1)
    # Without SW-32's block 2, SW-32 serves 32 at most; SW-64 and full attention follow.
    pool = mgr.block_pool
    lookup = pool.get_cached_block
    gone = mgr.group_keys(Request("2", common))[2][2]
    monkeypatch.setattr(pool, "get_cached_block", lambda h: None if h == gone else lookup(h))
    req2 = Request("2", common)
    hits, num_hit = mgr.get_computed_blocks(req2)
    assert num_hit == 32 and [len(g) for g in hits] == [2, 2, 2]
    assert naive_hit(mgr, req2) == 32
