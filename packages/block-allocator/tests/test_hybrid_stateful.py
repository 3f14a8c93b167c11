"""Hypothesis state machine over the hybrid manager: random admits, steps, frees, resets.

After every step: every block is in exactly one place (the free queue or one group's
tables) with ``ref_cnt`` equal to its holders, free + used == N - 1, cached blocks hold
the key of their position, windowed tables are null exactly below the window, Mamba
tables hold at most two states; every lookup equals a brute-force model of the hit every
group can serve; and a refused step leaves the pool unchanged.
"""

from __future__ import annotations

import pytest
from _hybrid_checks import check_hybrid, naive_hit, snapshot
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from block_allocator import (
    AllBlocksCleared,
    BlockRemoved,
    BlockStored,
    FullAttentionSpec,
    MambaSpec,
    Request,
    SlidingWindowSpec,
)
from block_allocator.hybrid import ChunkedLocalAttentionSpec, HybridKVCacheManager

pytestmark = pytest.mark.extended

BS = 2
_ATTN = {"block_size": BS, "num_kv_heads": 1, "head_size": 4}  # 32 B a page
FULL = FullAttentionSpec(**_ATTN)
SW4 = SlidingWindowSpec(**_ATTN, sliding_window=4)
SW5 = SlidingWindowSpec(**_ATTN, sliding_window=5)
CHUNKED = ChunkedLocalAttentionSpec(**_ATTN, attention_chunk_size=4)
MAMBA = MambaSpec(
    block_size=BS,
    shapes=((2,),),
    dtypes=("float32",),
    page_size_padded=32,
    mamba_cache_mode="align",
)
CONFIGS = {
    "full+sw": [FULL, SW4],
    "full+mamba": [FULL, MAMBA],
    "sw+mamba": [SW5, MAMBA],
    "full+chunked": [FULL, CHUNKED],
    "full+sw+mamba": [FULL, SW5, MAMBA],
    "chunked+sw+full": [CHUNKED, SW4, FULL],
}
PREFIXES = [[], [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 9, 9, 9, 9], [7] * 10]


class HybridMachine(RuleBasedStateMachine):
    @initialize(
        config=st.sampled_from(sorted(CONFIGS)),
        num_blocks=st.integers(6, 40),
        free_order=st.sampled_from(["classic", "fresh_first"]),
    )
    def setup(self, config: str, num_blocks: int, free_order: str) -> None:
        self.mgr = HybridKVCacheManager(
            CONFIGS[config], num_blocks, free_order=free_order, enable_kv_cache_events=True
        )
        self.mirror: set[bytes] = set()  # the index as a router replaying the events sees it
        self.running: dict[str, Request] = {}
        self.skip_base: dict[str, int] = {}  # computed tokens at the request's last allocation
        self.next_id = 0

    def _allocate(self, req: Request, n: int, hits: object = None, base: int = 0) -> bool:
        before = snapshot(self.mgr.block_pool)
        new = self.mgr.allocate_slots(req, n, hits)  # type: ignore[arg-type]
        if new is None:
            assert snapshot(self.mgr.block_pool) == before, "a refused step changed the pool"
            return False
        self.skip_base[req.request_id] = base
        return True

    @rule(
        prefix=st.sampled_from(PREFIXES),
        suffix=st.lists(st.integers(0, 3), max_size=7),
        chunk=st.integers(1, 12),
    )
    def admit(self, prefix: list[int], suffix: list[int], chunk: int) -> None:
        tokens = prefix + suffix
        if not tokens:
            return
        req = Request(f"r{self.next_id}", tokens)
        self.next_id += 1
        hits, num_hit = self.mgr.get_computed_blocks(req)
        assert num_hit == naive_hit(self.mgr, req)
        keys = self.mgr.group_keys(req)
        for g, blocks in enumerate(hits):
            assert len(blocks) == num_hit // BS
            for i, b in enumerate(blocks):
                assert b.is_null or b.block_hash == keys[g][i]
        req.num_computed_tokens = num_hit
        n = self.mgr.align_num_new_tokens(req, min(chunk, req.num_tokens - num_hit))
        req.num_computed_tokens = 0
        if self._allocate(req, n, hits, num_hit):
            req.num_computed_tokens = num_hit + n
            self.running[req.request_id] = req
        else:
            self.mgr.free(req)  # drop the lookup

    @precondition(lambda self: self.running)
    @rule(data=st.data(), chunk=st.integers(1, 6), token=st.integers(0, 3))
    def step(self, data: st.DataObject, chunk: int, token: int) -> None:
        rid = data.draw(st.sampled_from(sorted(self.running)))
        req = self.running[rid]
        if req.num_computed_tokens < req.num_tokens:
            remaining = req.num_tokens - req.num_computed_tokens
            n = self.mgr.align_num_new_tokens(req, min(chunk, remaining))
        else:
            req.append_output_token_ids(token)
            n = 1
        if self._allocate(req, n, None, req.num_computed_tokens):
            req.num_computed_tokens += n

    @precondition(lambda self: self.running)
    @rule(data=st.data())
    def free(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(sorted(self.running)))
        self.mgr.free(self.running.pop(rid))

    @rule()
    def reset(self) -> None:
        cached = self.mgr.block_pool.num_cached_blocks
        assert self.mgr.reset_prefix_cache() == (not self.running)
        assert self.mgr.block_pool.num_cached_blocks == (0 if not self.running else cached)

    @invariant()
    def pool_is_consistent(self) -> None:
        check_hybrid(self.mgr, self.running)

    @invariant()
    def events_replay_to_the_index(self) -> None:
        for event in self.mgr.take_events():
            if isinstance(event, BlockStored):
                assert not self.mirror & set(event.block_hashes), "stored twice"
                self.mirror |= set(event.block_hashes)
            elif isinstance(event, BlockRemoved):
                assert set(event.block_hashes) <= self.mirror, "removed unknown key"
                self.mirror -= set(event.block_hashes)
            elif isinstance(event, AllBlocksCleared):
                self.mirror.clear()
        cached = {b.block_hash for b in self.mgr.block_pool.blocks if b.block_hash is not None}
        assert self.mirror == cached

    @invariant()
    def windows_hold_only_what_they_read(self) -> None:
        for rid in self.running:
            base = self.skip_base[rid]
            for m, blocks in zip(self.mgr.managers, self.mgr.get_blocks(rid), strict=True):
                kind = type(m).__name__
                if kind == "MambaManager":
                    real = [b for b in blocks if not b.is_null]
                    assert len(real) <= 2 and (not blocks or not blocks[-1].is_null)
                    continue
                cut = min(m.get_num_skipped_tokens(base) // BS, len(blocks))
                assert all(b.is_null for b in blocks[:cut]), f"{kind}: a block left the window"
                assert not any(b.is_null for b in blocks[cut:]), f"{kind}: a needed block is null"


HybridMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestHybridMachine = HybridMachine.TestCase
