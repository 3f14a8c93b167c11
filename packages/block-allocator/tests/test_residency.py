"""Residency histograms: lifetime, idle time before eviction and reuse gaps on a logical clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from block_allocator import AllBlocksCleared, BlockRemoved, BlockStored, KVCacheManager, Request
from block_allocator.offload import (
    MEDIUM_CPU,
    MEDIUM_GPU,
    CacheHit,
    CPUOffloadTier,
    OffloadingKVCacheManager,
    TierBlockRemoved,
    TierBlockStored,
)
from block_allocator.residency import Histogram, ResidencyTracker

pytestmark = pytest.mark.extended

H = [bytes([i]) * 32 for i in range(8)]


def _stored(*hashes: bytes) -> BlockStored:
    return BlockStored(tuple(hashes), None, (), 4)


def test_lifetime_idle_and_reuse_gap_of_one_block() -> None:
    t = ResidencyTracker()
    t.observe([_stored(H[0])], now=2)
    t.observe([CacheHit("a", (H[0],), MEDIUM_GPU)], now=5)
    t.observe([CacheHit("b", (H[0],), MEDIUM_GPU)], now=9)
    t.observe([BlockRemoved((H[0],))], now=20)
    gpu = t.stats[MEDIUM_GPU]
    assert (gpu.lifetime.count, gpu.lifetime.total) == (1, 18)
    assert (gpu.idle_before_eviction.count, gpu.idle_before_eviction.total) == (1, 11)
    assert (gpu.reuse_gap.count, gpu.reuse_gap.total) == (1, 4)
    assert t.num_live() == 0


def test_never_hit_block_idles_its_whole_life_and_media_are_separate() -> None:
    t = ResidencyTracker()
    t.observe([_stored(H[1]), TierBlockStored((H[2],), MEDIUM_CPU)])
    t.tick(3)
    t.observe([BlockRemoved((H[1],)), TierBlockRemoved((H[2],), MEDIUM_CPU)])
    for medium in (MEDIUM_GPU, MEDIUM_CPU):
        stats = t.stats[medium]
        assert stats.lifetime.total == stats.idle_before_eviction.total == 3
        assert stats.reuse_gap.count == 0


def test_reset_is_not_an_eviction_and_unknown_hashes_are_ignored() -> None:
    t = ResidencyTracker()
    t.observe([_stored(H[0], H[1])])
    t.observe([AllBlocksCleared(), BlockRemoved((H[0],)), CacheHit("x", (H[5],), MEDIUM_GPU)])
    assert t.num_live() == 0 and t.stats[MEDIUM_GPU].lifetime.count == 0


def test_clock_and_histogram_arguments_are_checked() -> None:
    t = ResidencyTracker()
    t.tick(5)
    with pytest.raises(ValueError, match="now must be an int >= the current time 5"):
        t.observe([], now=4)
    with pytest.raises(ValueError, match="steps must be an int >= 0"):
        t.tick(-1)
    with pytest.raises(ValueError, match=r"q must be in \[0, 1\]"):
        Histogram().quantile(1.5)
    with pytest.raises(ValueError, match="histogram values must be >= 0"):
        Histogram().add(-1)


def test_histogram_buckets_are_powers_of_two() -> None:
    h = Histogram()
    for v in (0, 1, 2, 3, 4, 7, 8, 100):
        h.add(v)
    assert h.bucket_edges() == [
        (0, 0, 1),
        (1, 1, 1),
        (2, 3, 2),
        (4, 7, 2),
        (8, 15, 1),
        (64, 127, 1),
    ]
    assert (h.count, h.total, h.max) == (8, 125, 100)
    assert h.quantile(0.5) == 3 and h.quantile(1.0) == 100 and Histogram().quantile(0.5) == 0


_OPS = st.lists(
    st.tuples(st.sampled_from(["store", "hit", "evict"]), st.integers(0, 3), st.integers(0, 5)),
    max_size=40,
)


@settings(max_examples=80, deadline=None)
@given(_OPS)
def test_histograms_equal_a_naive_replay(ops: list[tuple[str, int, int]]) -> None:
    t = ResidencyTracker()
    born: dict[int, int] = {}
    last: dict[int, int] = {}
    lifetimes, idles, gaps = [], [], []
    now = 0
    for op, i, dt in ops:
        now += dt
        if op == "store":
            t.observe([_stored(H[i])], now=now)
            born[i] = now
            last.pop(i, None)
        elif op == "hit":
            t.observe([CacheHit("r", (H[i],), MEDIUM_GPU)], now=now)
            if i in born:
                if i in last:
                    gaps.append(now - last[i])
                last[i] = now
        else:
            t.observe([BlockRemoved((H[i],))], now=now)
            if i in born:
                lifetimes.append(now - born.pop(i))
                idles.append(now - last.pop(i, now - lifetimes[-1]))
    stats = t.stats.get(MEDIUM_GPU)
    if stats is None:
        assert not lifetimes and not gaps
        return
    for hist, values in (
        (stats.lifetime, lifetimes),
        (stats.idle_before_eviction, idles),
        (stats.reuse_gap, gaps),
    ):
        assert (hist.count, hist.total) == (len(values), sum(values))
        for k, n in enumerate(hist.buckets):
            assert n == sum(1 for v in values if v.bit_length() == k)


def test_tracker_follows_an_offloading_manager() -> None:
    kv = OffloadingKVCacheManager(
        KVCacheManager(6, 4, enable_kv_cache_events=True), CPUOffloadTier(8)
    )
    t = ResidencyTracker()
    for step, (rid, base) in enumerate([("a", 0), ("b", 100), ("c", 0)]):
        req = Request(rid, list(range(base, base + 17)))
        blocks, num_hit = kv.get_computed_blocks(req)
        assert kv.allocate_slots(req, req.num_tokens - num_hit, blocks) is not None
        kv.free(req)
        t.observe(kv.take_events(), now=step)
    gpu, cpu = t.stats[MEDIUM_GPU], t.stats[MEDIUM_CPU]
    # a's 4 blocks: born at 0, evicted to the CPU at 1; b's: born at 1, evicted at 2.
    assert gpu.lifetime.count == 8 and gpu.lifetime.total == 8
    assert cpu.reuse_gap.count == 0 and t.num_live(MEDIUM_CPU) == 8
