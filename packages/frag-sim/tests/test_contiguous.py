"""Address-space allocators: stateful checks of no overlap, accounting and coalescing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from frag_sim import BuddySpace, ConfigError, FirstFitSpace, SimConfig, Workload
from frag_sim.engine.contiguous import ContiguousEngine


def test_first_fit_external_fragmentation() -> None:
    s = FirstFitSpace(100)
    a, b, c = s.alloc(30), s.alloc(30), s.alloc(30)
    assert (a, b, c) == (0, 30, 60)
    s.free(a)
    s.free(c)
    assert s.free_slots == 70 and s.largest_hole == 40
    assert s.alloc(50) is None  # 70 free, no 50-slot hole: external fragmentation
    s.free(b)
    assert s.largest_hole == 100 and s.alloc(100) == 0


def test_buddy_rounds_and_merges() -> None:
    s = BuddySpace(15_728)  # 8192 + 4096 + 2048 + 1024 + 256 + 64 + 32 + 16
    offs = [s.alloc(2048) for _ in range(8)]
    assert offs.count(None) == 1  # exactly 7 chunks of 2048 fit
    assert s.rounded(300) == 512 and s.rounded(512) == 512
    for o in offs:
        if o is not None:
            s.free(o)
    assert s.free_slots == 15_728 and s.largest_hole == 8192
    with pytest.raises(ConfigError):
        BuddySpace(0)


class _SpaceMachine(RuleBasedStateMachine):
    cls: type = FirstFitSpace

    def __init__(self) -> None:
        super().__init__()
        self.cap = 1000
        self.space = self.cls(self.cap)
        self.live: dict[int, int] = {}

    @rule(n=st.integers(1, 300))
    def alloc(self, n: int) -> None:
        off = self.space.alloc(n)
        if off is not None:
            size = self.space.rounded(n)
            for o, sz in self.live.items():
                assert off + size <= o or o + sz <= off, "chunks overlap"
            assert off >= 0 and off + size <= self.cap
            self.live[off] = size

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def free(self, data: st.DataObject) -> None:
        off = data.draw(st.sampled_from(sorted(self.live)))
        self.space.free(off)
        del self.live[off]

    @invariant()
    def accounting(self) -> None:
        assert self.space.free_slots == self.cap - sum(self.live.values())
        if not self.live:
            assert self.space.largest_hole == (self.cap if self.cls is FirstFitSpace else 512)


class FirstFitMachine(_SpaceMachine):
    cls = FirstFitSpace


class BuddyMachine(_SpaceMachine):
    cls = BuddySpace


TestFirstFit = FirstFitMachine.TestCase
TestFirstFit.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestBuddy = BuddyMachine.TestCase
TestBuddy.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


class _SetBuddy:
    """The textbook buddy allocator: a set of free offsets per order, lowest address first.

    The model ``BuddySpace`` (bit maps, an order mask) must agree with on every call."""

    def __init__(self, capacity: int) -> None:
        top = capacity.bit_length()
        self.free: list[set[int]] = [set() for _ in range(top)]
        self.regions: list[tuple[int, int]] = []
        base = 0
        for order in range(top - 1, -1, -1):
            if capacity >> order & 1:
                self.free[order].add(base)
                self.regions.append((base, order))
                base += 1 << order
        self.live: dict[int, int] = {}

    def alloc(self, n: int) -> int | None:
        want = (n - 1).bit_length()
        for order in range(want, len(self.free)):
            if self.free[order]:
                off = min(self.free[order])
                self.free[order].remove(off)
                while order > want:
                    order -= 1
                    self.free[order].add(off + (1 << order))
                self.live[off] = want
                return off
        return None

    def free_chunk(self, off: int) -> int:
        order = self.live.pop(off)
        top = next(o for s, o in reversed(self.regions) if off >= s)
        while order < top and off ^ (1 << order) in self.free[order]:
            self.free[order].remove(off ^ (1 << order))
            off = min(off, off ^ (1 << order))
            order += 1
        self.free[order].add(off)
        return 1 << order

    def holes(self) -> set[tuple[int, int]]:
        return {(off, 1 << order) for order, offs in enumerate(self.free) for off in offs}


def _holes(space: BuddySpace) -> set[tuple[int, int]]:
    return {
        (k << order, 1 << order)
        for order, bits in enumerate(space._free)
        for k in range(bits.bit_length())
        if bits >> k & 1
    }


@settings(max_examples=80, deadline=None)
@given(
    cap=st.integers(1, 5000),
    ops=st.lists(
        st.tuples(st.booleans(), st.integers(1, 1200), st.integers(0, 10**6)), max_size=80
    ),
)
def test_buddy_bit_maps_agree_with_the_set_allocator(
    cap: int, ops: list[tuple[bool, int, int]]
) -> None:
    fast, ref = BuddySpace(cap), _SetBuddy(cap)
    live: list[int] = []
    for is_alloc, n, pick in ops:
        if is_alloc or not live:
            got = fast.alloc(n)
            assert got == ref.alloc(n)  # same chunk, or the same refusal
            if got is None:  # refused only when no free hole is large enough
                assert fast.largest_hole < fast.rounded(n) or not fast.fits_when_empty(n)
            else:
                live.append(got)
        else:
            off = live.pop(pick % len(live))
            hole = fast.free(off)
            assert hole == ref.free_chunk(off)
            assert (off & ~(hole - 1), hole) in _holes(fast)  # the hole it ended up in
        assert _holes(fast) == ref.holes()
        assert fast._mask == sum(1 << o for o, bits in enumerate(fast._free) if bits)
        assert fast.free_slots == cap - sum(1 << order for order in fast._live.values())


@settings(max_examples=60, deadline=None)
@given(
    p=st.lists(st.integers(1, 5000), min_size=1, max_size=30),
    o=st.lists(st.integers(1, 5000), min_size=1, max_size=30),
    policy=st.sampled_from(["max", "pow2", "exact"]),
    allocator=st.sampled_from(["buddy", "first_fit"]),
)
def test_vectorised_chunk_helpers_equal_the_scalar_ones(
    p: list[int], o: list[int], policy: str, allocator: str
) -> None:
    n = min(len(p), len(o))
    pa, oa = np.array(p[:n], dtype=np.int64), np.array(o[:n], dtype=np.int64)
    cfg = SimConfig(policy=policy, allocator=allocator, capacity_tokens=9000, max_model_len=8192)  # type: ignore[arg-type]
    eng = ContiguousEngine(Workload("w", np.zeros(n), pa, oa), cfg)
    res = eng.reservations(pa, oa)
    assert res.tolist() == [eng.reservation(a, b) for a, b in zip(p[:n], o[:n], strict=True)]
    assert eng.space.rounded_many(res).tolist() == [eng.space.rounded(r) for r in res.tolist()]
    fits = eng.space.fits_when_empty_many(res).tolist()
    assert fits == [eng.space.fits_when_empty(r) for r in res.tolist()]


@pytest.mark.parametrize("cap", [4096, 5000])  # one buddy region, and several
def test_the_loop_leaves_the_buddy_space_as_it_found_it(cap: int) -> None:
    rng = np.random.default_rng(7)
    n = 300
    wl = Workload(
        "w",
        np.sort(rng.uniform(0, 5, n)),
        rng.integers(1, 400, n),
        rng.integers(1, 300, n),
    )
    cfg = SimConfig(
        policy="exact", capacity_tokens=cap, max_model_len=1024, record_timeseries=False
    )
    eng = ContiguousEngine(wl, cfg)
    fresh = BuddySpace(cap)
    r = eng.run()
    assert r.completed > 0 and eng.space._free == fresh._free and eng.space._mask == fresh._mask
    assert eng.space.free_slots == cap and not eng.space._live
