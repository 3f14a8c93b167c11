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

from ..config import SimConfig
from ..errors import ConfigError
from ..report.metrics import SimResult
from ..workload.requests import Workload
from ..workload.stream import RequestStream
from .base import Engine, Window

__all__ = ["BuddySpace", "ContiguousEngine", "FirstFitSpace", "make_space"]


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

    def free(self, offset: int) -> None:
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
                return
        insort(self._starts, offset)
        self._size[offset] = n

    @property
    def largest_hole(self) -> int:
        return max(self._size.values(), default=0)


class BuddySpace:
    """Binary buddy allocator: chunks are powers of two, aligned to their size."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ConfigError(f"capacity must be >= 1 token slot, got {capacity}")
        self.capacity = capacity
        top = capacity.bit_length()
        self._free: list[set[int]] = [set() for _ in range(top)]  # order -> offsets
        self._region_order: dict[int, int] = {}  # offset of a region -> its order
        self._region_of: list[tuple[int, int]] = []  # (start, order), ascending
        base = 0
        for order in range(top - 1, -1, -1):
            if capacity >> order & 1:
                self._free[order].add(base)
                self._region_of.append((base, order))
                base += 1 << order
        self._live: dict[int, int] = {}  # offset -> order
        self.free_slots = capacity
        self.max_order = top - 1

    @staticmethod
    def rounded(n: int) -> int:
        return 1 << (n - 1).bit_length()

    def fits_when_empty(self, n: int) -> bool:
        return (n - 1).bit_length() <= self.max_order

    def _region_top(self, offset: int) -> int:
        for start, order in reversed(self._region_of):
            if offset >= start:
                return order
        raise AssertionError("offset outside every region")

    def alloc(self, n: int) -> int | None:
        want = (n - 1).bit_length()
        for order in range(want, len(self._free)):
            if self._free[order]:
                offset = min(self._free[order])  # lowest address first: deterministic
                self._free[order].remove(offset)
                while order > want:  # split, keeping the low half
                    order -= 1
                    self._free[order].add(offset + (1 << order))
                self._live[offset] = want
                self.free_slots -= 1 << want
                return offset
        return None

    def free(self, offset: int) -> None:
        order = self._live.pop(offset)
        self.free_slots += 1 << order
        top = self._region_top(offset)
        while order < top:
            buddy = offset ^ (1 << order)
            if buddy not in self._free[order]:
                break
            self._free[order].remove(buddy)
            offset = min(offset, buddy)
            order += 1
        self._free[order].add(offset)

    @property
    def largest_hole(self) -> int:
        for order in range(len(self._free) - 1, -1, -1):
            if self._free[order]:
                return 1 << order
        return 0


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
