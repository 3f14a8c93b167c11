"""Bad input to the hybrid manager, the CPU tier and the residency tracker.

Each case must raise the named error (a subclass of the builtin a caller expects) with a
message naming the parameter, and leave the pool, the tables and the tier exactly as
they were (a full snapshot before and after).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from block_allocator import (
    ArgumentTypeError,
    ArgumentValueError,
    BlockAllocatorError,
    BlockPool,
    FullAttentionSpec,
    KVCacheManager,
    MambaSpec,
    Request,
    RequestStateError,
    SlidingWindowSpec,
    UnknownRequestError,
)
from block_allocator.hybrid import ChunkedLocalAttentionSpec, HybridKVCacheManager
from block_allocator.offload import CPUOffloadTier, OffloadingKVCacheManager
from block_allocator.residency import Histogram, ResidencyTracker

pytestmark = pytest.mark.extended

BS = 4
FULL = FullAttentionSpec(block_size=BS, num_kv_heads=1, head_size=8)  # 128 B
SW = SlidingWindowSpec(block_size=BS, num_kv_heads=1, head_size=8, sliding_window=8)
MAMBA = MambaSpec(
    block_size=BS,
    shapes=((4,),),
    dtypes=("float32",),
    page_size_padded=128,
    mamba_cache_mode="align",
)


class World:
    """A hybrid manager with one running request, a looked-up newcomer and a CPU tier."""

    def __init__(self) -> None:
        self.mgr = HybridKVCacheManager([FULL, SW, MAMBA], num_blocks=32)
        self.a = Request("a", list(range(13)))
        self.mgr.allocate_slots(self.a, 12)
        self.a.num_computed_tokens = 12
        self.b = Request("b", list(range(13)))
        self.hits, self.num_hit = self.mgr.get_computed_blocks(self.b)
        self.other_pool = BlockPool(8)
        self.kv = OffloadingKVCacheManager(
            KVCacheManager(16, BS, enable_kv_cache_events=True), CPUOffloadTier(4)
        )
        self.tier = self.kv.cpu_tier
        self.tier.store([bytes([i]) * 32 for i in range(3)])
        self.tracker = ResidencyTracker()
        self.tracker.tick(3)

    def snapshot(self) -> Any:
        pool = self.mgr.block_pool
        return (
            tuple((b.ref_cnt, b.block_hash) for b in pool.blocks),
            tuple(b.block_id for b in pool.get_free_blocks()),
            self.mgr.get_block_ids("a"),
            self.a.num_computed_tokens,
            self.mgr.prefix_cache_stats,
            list(self.tier),
            self.tracker.now,
        )


CASES: list[tuple[str, Callable[[World], object], type[BaseException], str]] = [
    (
        "specs not a list",
        lambda w: HybridKVCacheManager(FULL, 8),
        ArgumentValueError,
        "kv_cache_specs",
    ),  # type: ignore[arg-type]
    (
        "spec of wrong type",
        lambda w: HybridKVCacheManager([FULL, 3], 8),
        ArgumentTypeError,
        "kv_cache_specs entries",
    ),  # type: ignore[list-item]
    (
        "block sizes differ",
        lambda w: HybridKVCacheManager(
            [FULL, FullAttentionSpec(block_size=8, num_kv_heads=1, head_size=4)], 8
        ),
        ArgumentValueError,
        "same block_size",
    ),
    (
        "pages differ",
        lambda w: HybridKVCacheManager(
            [FULL, FullAttentionSpec(block_size=BS, num_kv_heads=2, head_size=8)], 8
        ),
        ArgumentValueError,
        "page_size_padded",
    ),
    (
        "num_blocks float",
        lambda w: HybridKVCacheManager([FULL], 8.0),
        ArgumentTypeError,
        "num_blocks",
    ),  # type: ignore[arg-type]
    ("num_blocks 1", lambda w: HybridKVCacheManager([FULL], 1), ArgumentValueError, "num_blocks"),
    (
        "caching not bool",
        lambda w: HybridKVCacheManager([FULL], 8, enable_caching=1),
        ArgumentTypeError,
        "enable_caching",
    ),  # type: ignore[arg-type]
    (
        "free_order unknown",
        lambda w: HybridKVCacheManager([FULL], 8, free_order="lifo"),
        ArgumentValueError,
        "free_order",
    ),
    (
        "mamba none cached",
        lambda w: HybridKVCacheManager(
            [
                FULL,
                MambaSpec(block_size=BS, shapes=((4,),), dtypes=("float32",), page_size_padded=128),
            ],
            8,
        ),
        ArgumentValueError,
        "mamba_cache_mode",
    ),
    (
        "chunk not multiple",
        lambda w: ChunkedLocalAttentionSpec(
            block_size=BS, num_kv_heads=1, head_size=8, attention_chunk_size=6
        ),
        ValueError,
        "attention_chunk_size",
    ),
    (
        "lookup non-request",
        lambda w: w.mgr.get_computed_blocks("b"),
        ArgumentTypeError,
        "request must be a Request",
    ),  # type: ignore[arg-type]
    (
        "lookup bad bound",
        lambda w: w.mgr.get_computed_blocks(w.b, -1),
        ArgumentValueError,
        "max_cache_hit_length",
    ),
    (
        "allocate non-request",
        lambda w: w.mgr.allocate_slots(None, 1),
        ArgumentTypeError,
        "request must be a Request",
    ),  # type: ignore[arg-type]
    (
        "allocate float",
        lambda w: w.mgr.allocate_slots(w.b, 1.0),
        ArgumentTypeError,
        "num_new_tokens",
    ),  # type: ignore[arg-type]
    (
        "allocate bool",
        lambda w: w.mgr.allocate_slots(w.b, True),
        ArgumentTypeError,
        "num_new_tokens",
    ),
    (
        "allocate negative",
        lambda w: w.mgr.allocate_slots(w.b, -1),
        ArgumentValueError,
        "num_new_tokens",
    ),
    (
        "allocate past end",
        lambda w: w.mgr.allocate_slots(w.a, 2),
        RequestStateError,
        "cannot compute up to token 14",
    ),
    (
        "hits on running",
        lambda w: w.mgr.allocate_slots(w.a, 1, w.hits),
        RequestStateError,
        "first allocation only",
    ),
    (
        "hits wrong arity",
        lambda w: w.mgr.allocate_slots(w.b, 1, w.hits[:2]),
        ArgumentValueError,
        "one list per KV-cache group",
    ),
    (
        "hits not lists",
        lambda w: w.mgr.allocate_slots(w.b, 1, "abc"),
        ArgumentValueError,
        "one list per KV-cache group",
    ),  # type: ignore[arg-type]
    (
        "hits uneven",
        lambda w: w.mgr.allocate_slots(w.b, 1, (w.hits[0], w.hits[1][:1], w.hits[2])),
        ArgumentValueError,
        "equally long",
    ),
    (
        "hits foreign",
        lambda w: w.mgr.allocate_slots(
            w.b, 1, ([w.other_pool.blocks[1]], [w.other_pool.blocks[2]], [w.other_pool.blocks[3]])
        ),
        BlockAllocatorError,
        "another BlockPool",
    ),
    (
        "hits not blocks",
        lambda w: w.mgr.allocate_slots(w.b, 1, ([1], [2], [3])),
        ArgumentTypeError,
        "KVCacheBlocks",
    ),
    (
        "hits swapped",
        lambda w: w.mgr.allocate_slots(w.b, 1, (w.hits[1], w.hits[0], w.hits[2])),
        RequestStateError,
        "not cached under",
    ),
    (
        "hits of a stranger",
        lambda w: w.mgr.allocate_slots(Request("c", [5] * 13, block_size=BS), 1, w.hits),
        RequestStateError,
        "not cached under",
    ),
    (
        "hits unbound",
        lambda w: w.mgr.allocate_slots(Request("d", [5] * 13), 1, w.hits),
        RequestStateError,
        "never looked up",
    ),
    ("align non-request", lambda w: w.mgr.align_num_new_tokens(3, 1), ArgumentTypeError, "request"),  # type: ignore[arg-type]
    (
        "align negative",
        lambda w: w.mgr.align_num_new_tokens(w.a, -2),
        ArgumentValueError,
        "num_new_tokens",
    ),
    ("free non-request", lambda w: w.mgr.free("a"), ArgumentTypeError, "request must be a Request"),  # type: ignore[arg-type]
    ("ids unknown", lambda w: w.mgr.get_block_ids("zz"), UnknownRequestError, "holds no blocks"),
    ("ids not str", lambda w: w.mgr.get_block_ids(7), ArgumentTypeError, "request_id"),  # type: ignore[arg-type]
    ("slots past table", lambda w: w.mgr.slot_mapping(w.a, 9), RequestStateError, "not allocated"),
    ("slots negative", lambda w: w.mgr.slot_mapping(w.a, -1), ArgumentValueError, "num_new_tokens"),
    ("tier negative", lambda w: CPUOffloadTier(-1), ArgumentValueError, "num_blocks"),
    ("tier float", lambda w: CPUOffloadTier(1.5), ArgumentTypeError, "num_blocks"),  # type: ignore[arg-type]
    ("tier medium", lambda w: CPUOffloadTier(4, medium=""), ArgumentValueError, "medium"),
    ("tier store str", lambda w: w.tier.store(["abc"]), ArgumentTypeError, "block_hashes"),  # type: ignore[list-item]
    ("tier store short", lambda w: w.tier.store([bytes(31)]), ArgumentTypeError, "32-byte"),
    (
        "tier store late bad",
        lambda w: w.tier.store([bytes(32) + b"", None]),
        ArgumentTypeError,
        "block_hashes",
    ),  # type: ignore[list-item]
    (
        "wrap non-manager",
        lambda w: OffloadingKVCacheManager(w.mgr, w.tier),
        ArgumentTypeError,
        "manager must be a KVCacheManager",
    ),  # type: ignore[arg-type]
    (
        "wrap non-tier",
        lambda w: OffloadingKVCacheManager(KVCacheManager(8, BS, enable_kv_cache_events=True), 4),
        ArgumentTypeError,
        "cpu_tier",
    ),  # type: ignore[arg-type]
    (
        "wrap without events",
        lambda w: OffloadingKVCacheManager(KVCacheManager(8, BS), w.tier),
        ArgumentValueError,
        "enable_kv_cache_events",
    ),
    (
        "offload lookup non-request",
        lambda w: w.kv.get_computed_blocks("x"),
        ArgumentTypeError,
        "request",
    ),  # type: ignore[arg-type]
    (
        "offload allocate float",
        lambda w: w.kv.allocate_slots(Request("x", [1, 2]), 0.5),
        ArgumentTypeError,
        "num_new_tokens",
    ),  # type: ignore[arg-type]
    ("clock backwards", lambda w: w.tracker.observe([], now=2), ArgumentValueError, "now must be"),
    ("clock float", lambda w: w.tracker.observe([], now=4.0), ArgumentValueError, "now must be"),  # type: ignore[arg-type]
    ("tick negative", lambda w: w.tracker.tick(-1), ArgumentValueError, "steps"),
    ("tick bool", lambda w: w.tracker.tick(True), ArgumentValueError, "steps"),
    ("quantile range", lambda w: Histogram().quantile(-0.1), ArgumentValueError, "q must be"),
    ("histogram negative", lambda w: Histogram().add(-3), ArgumentValueError, ">= 0"),
]


@pytest.mark.parametrize(("name", "call", "error", "match"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_and_changes_nothing(
    name: str, call: Callable[[World], object], error: type[BaseException], match: str
) -> None:
    world = World()
    before = world.snapshot()
    with pytest.raises(error, match=match):
        call(world)
    assert world.snapshot() == before, name
