"""Contiguous address spaces for the reservation baselines: first-fit and buddy.

The Orca baselines of PagedAttention §6.1 reserve one contiguous chunk per request from a
buddy allocator (``ContiguousEngine``, at the end of this file, runs them); holes between
live chunks are *external fragmentation* (§3.1, Fig. 3).
Both allocators here manage token slots ``[0, capacity)`` and return the chunk's offset,
so fragmentation is a property of real addresses, not of a counter. A capacity that is not
a power of two is split into aligned power-of-two regions (largest first) for the buddy.
"""

from __future__ import annotations

from bisect import bisect_left, insort

import numpy as np
import numpy.typing as npt

from ..config import SimConfig
from ..errors import ConfigError
from ..report.metrics import SimResult
from ..workload.requests import Workload
from ..workload.stream import RequestStream
from .base import Engine, Window

__all__ = ["BuddySpace", "ContiguousEngine", "FirstFitSpace", "make_space"]

Ints = npt.NDArray[np.int64]


def bit_length(x: Ints) -> Ints:
    """``int.bit_length`` of each element (0 <= x < 2**53, where float64 is exact)."""
    return np.frexp(x.astype(np.float64))[1].astype(np.int64)


class FirstFitSpace:
    """First-fit over a sorted list of holes; frees coalesce with both neighbours."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ConfigError(f"capacity must be >= 1 token slot, got {capacity}")
        self.capacity = capacity
        self._starts: list[int] = [0]  # sorted hole starts
        self._size: dict[int, int] = {0: capacity}  # hole start -> length
        self._live: dict[int, int] = {}  # chunk offset -> length
        self.free_slots = capacity

    def rounded(self, n: int) -> int:
        """Slots actually taken by a request of ``n`` slots (first-fit: exactly ``n``)."""
        return n

    def fits_when_empty(self, n: int) -> bool:
        return n <= self.capacity

    def rounded_many(self, n: Ints) -> Ints:
        """:meth:`rounded` of each element."""
        return n

    def fits_when_empty_many(self, n: Ints) -> npt.NDArray[np.bool_]:
        """:meth:`fits_when_empty` of each element."""
        return n <= self.capacity

    def alloc(self, n: int) -> int | None:
        """Offset of a fresh ``n``-slot chunk, or None when no hole is large enough."""
        for start in self._starts:
            size = self._size[start]
            if size >= n:
                del self._size[start]
                i = bisect_left(self._starts, start)
                if size == n:
                    del self._starts[i]
                else:
                    self._starts[i] = start + n  # order is preserved
                    self._size[start + n] = size - n
                self._live[start] = n
                self.free_slots -= n
                return start
        return None

    def free(self, offset: int) -> int:
        """Free the chunk at ``offset``; returns the size of the hole it ends up in."""
        n = self._live.pop(offset)
        self.free_slots += n
        i = bisect_left(self._starts, offset)
        end = offset + n
        if i < len(self._starts) and self._starts[i] == end:  # merge with the next hole
            n += self._size.pop(end)
            del self._starts[i]
        if i > 0:
            prev = self._starts[i - 1]
            if prev + self._size[prev] == offset:  # merge with the previous hole
                self._size[prev] += n
                return self._size[prev]
        insort(self._starts, offset)
        self._size[offset] = n
        return n

    @property
    def largest_hole(self) -> int:
        return max(self._size.values(), default=0)


class BuddySpace:
    """Binary buddy allocator: chunks are powers of two, aligned to their size.

    The free chunks of each order are one bit map (an int: bit ``k`` set <=> the chunk at
    offset ``k << order`` is free), so "lowest free address first" (the deterministic
    choice) is the lowest set bit, and the buddy test is one shift. A second bit map over
    the orders marks the non-empty ones: finding the smallest order that can serve a
    request, or knowing that none can, is one shift too.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ConfigError(f"capacity must be >= 1 token slot, got {capacity}")
        self.capacity = capacity
        top = capacity.bit_length()
        self._free: list[int] = [0] * top  # order -> bit map of free chunk indices
        self._mask = 0  # bit k set <=> order k has a free chunk
        self._region_of: list[tuple[int, int]] = []  # (start, order), ascending
        base = 0
        for order in range(top - 1, -1, -1):
            if capacity >> order & 1:
                self._free[order] |= 1 << (base >> order)
                self._mask |= 1 << order
                self._region_of.append((base, order))
                base += 1 << order
        # a power-of-two capacity is one region: every chunk may merge up to its top
        self._one_top = self._region_of[0][1] if len(self._region_of) == 1 else -1
        self._live: dict[int, int] = {}  # offset -> order
        self.free_slots = capacity
        self.max_order = top - 1

    @staticmethod
    def rounded(n: int) -> int:
        return 1 << (n - 1).bit_length()

    def fits_when_empty(self, n: int) -> bool:
        return (n - 1).bit_length() <= self.max_order

    def rounded_many(self, n: Ints) -> Ints:
        """:meth:`rounded` of each element (``n >= 1``)."""
        return np.left_shift(1, bit_length(n - 1))

    def fits_when_empty_many(self, n: Ints) -> npt.NDArray[np.bool_]:
        """:meth:`fits_when_empty` of each element (``n >= 1``)."""
        return bit_length(n - 1) <= self.max_order

    def _region_top(self, offset: int) -> int:
        for start, order in reversed(self._region_of):
            if offset >= start:
                return order
        raise AssertionError("offset outside every region")

    def alloc(self, n: int) -> int | None:
        want = (n - 1).bit_length()
        above = self._mask >> want
        if not above:
            return None
        order = want + (above & -above).bit_length() - 1  # smallest order that has one
        fl = self._free
        bits = fl[order]
        low = bits & -bits  # the lowest free chunk of that order
        fl[order] = bits = bits ^ low
        mask = self._mask if bits else self._mask ^ 1 << order
        offset = (low.bit_length() - 1) << order
        while order > want:  # split, keeping the low half; each upper half is a new hole
            order -= 1
            fl[order] |= 2 << (offset >> order)  # index of the upper half: low's + 1
            mask |= 1 << order
        self._mask = mask
        self._live[offset] = want
        self.free_slots -= 1 << want
        return offset

    def free(self, offset: int) -> int:
        """Free the chunk at ``offset``; returns the size of the hole it ends up in."""
        order = self._live.pop(offset)
        self.free_slots += 1 << order
        top = self._one_top if self._one_top >= 0 else self._region_top(offset)
        fl, mask = self._free, self._mask
        k = offset >> order  # chunk index within its order
        while order < top:
            bit = 1 << (k ^ 1)  # the buddy
            bits = fl[order]
            if not bits & bit:
                break
            fl[order] = bits = bits ^ bit
            if not bits:
                mask ^= 1 << order
            k >>= 1  # the merged chunk: the pair's lower index, one order up
            order += 1
        fl[order] |= 1 << k
        self._mask = mask | 1 << order
        return 1 << order

    @property
    def largest_hole(self) -> int:
        return 1 << self._mask.bit_length() - 1 if self._mask else 0


def make_space(kind: str, capacity: int) -> FirstFitSpace | BuddySpace:
    if kind == "first_fit":
        return FirstFitSpace(capacity)
    if kind == "buddy":
        return BuddySpace(capacity)
    raise ConfigError(f"allocator must be 'first_fit' or 'buddy', got {kind!r}")


class ContiguousEngine(Engine):
    """Orca-style baselines: each sequence holds one reserved chunk from admission to end."""

    def __init__(self, workload: Workload | RequestStream, config: SimConfig) -> None:
        super().__init__(workload, config)
        self.space = make_space(config.allocator, config.capacity_tokens)
        self.off: dict[int, list[int]] = {}  # request -> one chunk per parallel sample
        self.res: dict[int, tuple[int, int]] = {}  # request -> (reserved, allocated)
        self.sum_f = self.sum_r = self.sum_a = 0

    def reservation(self, p: int, o: int) -> int:
        """Slots reserved for a request of prompt ``p`` and output ``o``."""
        m = self.cfg.max_model_len
        if self.cfg.policy == "max":
            return m
        if self.cfg.policy == "pow2":  # §6.1: outputs over-reserved by at most 2x
            return min(p + (1 << (o - 1).bit_length()), m)
        return p + o

    def reservations(self, p: Ints, o: Ints) -> Ints:
        """:meth:`reservation` of each (prompt, output) pair, for a whole chunk at once."""
        m = self.cfg.max_model_len
        if self.cfg.policy == "max":
            return np.full_like(p, m)
        if self.cfg.policy == "pow2":
            return np.minimum(p + np.left_shift(1, bit_length(o - 1)), m)
        return p + o

    def why_not(self, p: int, o: int) -> str | None:
        r = self.reservation(p, o)
        if self.space.fits_when_empty(r) and self.ns * self.space.rounded(r) <= self.space.capacity:
            return None
        return (
            f"reservation of {r} slots ({self.cfg.allocator} takes {self.space.rounded(r)}) "
            f"exceeds capacity_tokens={self.cfg.capacity_tokens}"
        )

    def try_admit(self, i: int, t: int) -> bool:
        r = self.reservation(self.P[i], self.O[i])
        offs: list[int] = []
        for _ in range(self.ns):  # parallel samples share nothing here: one chunk each
            off = self.space.alloc(r)
            if off is None:
                for o in offs:
                    self.space.free(o)
                return False
            offs.append(off)
        a = self.space.rounded(r)
        self.off[i] = offs
        self.res[i] = (r, a)
        self.sum_f += self.ns * self.F[i]
        self.sum_r += self.ns * r
        self.sum_a += self.ns * a
        self.extra_time += (self.P[i] + self.emitted[i]) * self.cfg.prefill_time_per_token_s
        return True

    def release(self, i: int, t: int, preempted: bool) -> None:
        for off in self.off.pop(i):
            self.space.free(off)
        r, a = self.res.pop(i)
        self.sum_f -= self.ns * self.F[i]
        self.sum_r -= self.ns * r
        self.sum_a -= self.ns * a

    def integrate(self, t: int, k: int, live: int, waiting: bool) -> Window:
        resv = k * self.sum_f - live
        internal = k * (self.sum_r - self.sum_f)
        alloc = k * self.sum_a
        ext = k * (self.sum_a - self.sum_r)  # buddy round-up: "external & others"
        if waiting:
            ext += k * (self.cfg.capacity_tokens - self.sum_a)
        self.i_resv += resv
        self.i_int += internal
        self.i_logical += alloc
        self.i_physical += alloc
        self.i_ext += ext
        return (resv, internal, ext, alloc, alloc)

    def allocated_tokens(self) -> int:
        return self.sum_a

    def run(self) -> SimResult:
        if self.ts is None and self.ns == 1:
            from .contiguous_loop import run_contiguous

            return run_contiguous(self)  # the same steps with the hooks inlined
        return super().run()
