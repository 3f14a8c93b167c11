"""The contiguous policies' event loop: ``Engine.run`` with ``ContiguousEngine``'s hooks inlined.

``simulate()`` replays a single-sequence workload under ``max`` / ``pow2`` / ``exact``
without a time series through this function: the same steps in the same order as
``Engine.run`` driving :class:`~frag_sim.engine.contiguous.ContiguousEngine` (admission =
``try_admit`` + ``start``, completion = ``release`` + ``stop``, the window of
``integrate``). Tests compare the loop with ``Engine.run`` on the same engine.

Why it is lighter than the paged loop:

- **Closed forms.** A contiguous request holds one reservation, unchanged, from its
  admission to its last token, and is never preempted. Over its ``o`` running steps it
  holds ``p + 1, ..., p + o`` live slots, ``f = p + o`` reserved and ``r`` / ``ra``
  requested / taken from the allocator, so every slot-step integral but two is a sum over
  requests of a closed form in their lengths (``_chunk_integrals``), computed per chunk
  with numpy. The loop keeps only what depends on the schedule: the queue's integral, the
  free memory while the queue waits on memory (with the taken slots ``sum_a``), busy steps,
  the peak and the clock.
- **The buddy allocator in locals.** With a :class:`BuddySpace` the loop allocates and
  frees on the space's own bit maps (mutated in place) with its order mask in a local,
  written back at the end; every chunk is free again by then, so the space ends exactly as
  ``BuddySpace.alloc`` / ``free`` would leave it. Other spaces are called.
- **One shortcut, exact by construction:** after the queue head failed to get a chunk, it
  is not tried again until a free leaves a hole at least as large as the head needs (a
  failed allocation means no hole was large enough, and a free changes only the hole it
  lands in).
"""

from __future__ import annotations

import heapq
import math
import sys
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ..report.metrics import SimResult
from .base import _EPS, INF
from .contiguous import BuddySpace, Ints

if TYPE_CHECKING:
    from .contiguous import ContiguousEngine

__all__ = ["run_contiguous"]

# a chunk row: request, prompt, output, arrival, reserved slots, slots the allocator takes
Row = tuple[int, int, int, float, int, int]
# per chunk, over the requests that fit: live, reserved-but-unused, internal and buddy
# round-up slot-steps of whole runs, and their running steps
Integrals = tuple[int, int, int, int, int]


def _chunk_integrals(p: Ints, o: Ints, r: Ints, ra: Ints) -> Integrals:
    """``ContiguousEngine.integrate`` summed over whole runs of these requests."""
    live = o * (p + 1) + o * (o - 1) // 2  # p + 1, ..., p + o live slots
    f = p + o
    return (
        int(live.sum()),
        int((f * o).sum()) - int(live.sum()),
        int(((r - f) * o).sum()),
        int(((ra - r) * o).sum()),
        int(o.sum()),
    )


def _rows(eng: ContiguousEngine) -> Iterator[tuple[list[float], list[Row], list[bool], Integrals]]:
    """Per chunk: arrivals (+ INF), rows, fits (``Engine.chunk_fits`` over ``why_not``)
    and the closed-form integrals of the requests that fit."""
    space, mml, base = eng.space, eng.cfg.max_model_len, 0
    for ch in eng._chunks:
        if not len(ch):
            continue
        eng._check_chunk(ch)
        eng.last_arrival = float(ch.arrival_s[-1])
        p, o = ch.prompt_len.astype(np.int64), ch.output_len.astype(np.int64)
        res = eng.reservations(p, o)
        took = space.rounded_many(res)
        fit = (p + o <= mml) & (took <= space.capacity) & space.fits_when_empty_many(res)
        sums = _chunk_integrals(p[fit], o[fit], res[fit], took[fit])
        arr = ch.arrival_s.tolist()
        ids = range(base, base + len(arr))
        base += len(arr)
        rows = list(zip(ids, p.tolist(), o.tolist(), arr, res.tolist(), took.tolist(), strict=True))
        arr.append(INF)
        yield arr, rows, fit.tolist(), sums


def run_contiguous(eng: ContiguousEngine) -> SimResult:
    """Replay ``eng``'s request stream (one sequence each, no time series)."""
    wall = time.perf_counter()
    cfg = eng.cfg
    dt, cap, prefill = cfg.step_time_s, cfg.capacity_tokens, cfg.prefill_time_per_token_s
    space = eng.space
    alloc, free_chunk = space.alloc, space.free
    fl: list[int] | None = None  # a BuddySpace's bit maps, one per order
    mask = one_top = 0
    region_top = None
    if isinstance(space, BuddySpace):
        fl, mask, one_top, region_top = space._free, space._mask, space._one_top, space._region_top
    heappop, heappush, eps, ceil = heapq.heappop, heapq.heappush, _EPS, math.ceil
    i_wait, busy, peak, admissions, completed, lat_sum, extra = 0, 0, 0, 0, 0, 0.0, 0.0
    closed = [0, 0, 0, 0, 0]  # running sums of the chunks' Integrals
    blocked_k = blocked_a = 0  # steps, and taken-slot steps, while memory holds the queue
    sum_a = 0  # slots taken by the running requests
    max_seqs = cfg.max_num_seqs or sys.maxsize
    # The queue holds rows, and a running request lives only in its heap entry
    # (completion step, request, row, chunk offset): the request ids are unique, so
    # tuples never compare past the second field and pop in Engine.run's order.
    waiting: deque[Row] = deque()
    heap: list[tuple[int, int, Row, int]] = []
    n = 0  # running requests
    head_failed = False  # the queue head found no chunk, and no hole of `need` since
    need = 0  # what the head needs: slots (a called space) or an order (the buddy)

    def next_chunk() -> tuple[list[float], list[Row], list[bool]]:
        arr, rows, fit, sums = next(chunks, ([INF], [], [], (0, 0, 0, 0, 0)))
        for x, v in enumerate(sums):
            closed[x] += v
        return arr, rows, fit

    chunks = _rows(eng)
    j = 0
    arr, rows, fit = next_chunk()
    clen = len(rows)
    if not clen:
        from ..errors import EmptyTraceError

        raise EmptyTraceError(f"workload {eng.stream.name!r} holds no request")
    t, now = 0, arr[0]
    first = now
    while True:
        while heap and heap[0][0] <= t:
            _, _, (_, p, o, a, r, ra), off = heappop(heap)
            n -= 1
            sum_a -= ra
            completed += 1
            lat_sum += now - a
            if fl is None:
                if free_chunk(off) >= need:
                    head_failed = False
                continue
            order = ra.bit_length() - 1  # BuddySpace.free on the local bit maps
            top = one_top if one_top >= 0 else region_top(off)  # type: ignore[misc]
            off >>= order  # the chunk's index within its order
            while order < top:
                bit = 1 << (off ^ 1)  # its buddy
                bits = fl[order]
                if not bits & bit:
                    break
                fl[order] = bits = bits ^ bit
                if not bits:
                    mask ^= 1 << order
                off >>= 1  # the merged chunk, one order up
                order += 1
            fl[order] |= 1 << off
            mask |= 1 << order
            if order >= need:
                head_failed = False
        due = now + eps
        while arr[j] <= due:
            if fit[j]:
                waiting.append(rows[j])
            else:
                eng._reject(*rows[j][:3])
            j += 1
            if j == clen:
                j = 0
                arr, rows, fit = next_chunk()
                clen = len(rows)
        while waiting and not head_failed and n < max_seqs:
            row = waiting[0]
            _, p, o, a, r, ra = row
            if fl is None:
                got = alloc(r)
                if got is None:
                    head_failed, need = True, ra
                    break
            else:  # BuddySpace.alloc on the local bit maps
                want = ra.bit_length() - 1
                above = mask >> want
                if not above:
                    head_failed, need = True, want
                    break
                order = want + (above & -above).bit_length() - 1  # smallest that has one
                bits = fl[order]
                low = bits & -bits  # its lowest free chunk
                fl[order] = bits = bits ^ low
                if not bits:
                    mask ^= 1 << order
                got = (low.bit_length() - 1) << order
                while order > want:  # split, keeping the low half
                    order -= 1
                    fl[order] |= 2 << (got >> order)
                    mask |= 1 << order
            waiting.popleft()
            n += 1
            sum_a += ra
            extra += p * prefill
            admissions += 1
            heappush(heap, (t + o, row[0], row, got))
        if n == 0:
            if waiting:
                raise RuntimeError(f"request {waiting[0][0]} cannot run on an empty system")
            if arr[j] == INF:
                break
            now = max(now, arr[j])
            continue
        d = dt + extra
        extra = 0.0
        h = heap[0][0]
        if waiting:
            k = h - t
            i_wait += len(waiting) * k
            if n < max_seqs:  # memory, not the sequence limit, holds the queue
                blocked_k += k
                blocked_a += k * sum_a
            end = now + d + (k - 1) * dt + eps  # Engine._defer_arrivals
            while arr[j] <= end:
                if fit[j]:
                    gap = arr[j] - now - d
                    q = 1 if gap <= eps else 1 + ceil(gap / dt - eps)
                    waiting.append(rows[j])
                    if q < k:
                        i_wait += k - q
                else:
                    eng._reject(*rows[j][:3])
                j += 1
                if j == clen:
                    j = 0
                    arr, rows, fit = next_chunk()
                    clen = len(rows)
        else:
            if arr[j] != INF:
                gap = arr[j] - now - d
                k = 1 if gap <= eps else 1 + ceil(gap / dt - eps)
                if t + k < h:
                    h = t + k
            k = h - t
        busy += k
        if n > peak:
            peak = n
        now += d + (k - 1) * dt
        t = h
    if isinstance(space, BuddySpace):
        space._mask = mask
    i_live, i_resv, i_int, i_ext, i_run = closed
    eng.base, eng.j, eng.first_arrival = admissions + len(eng.rejected), 0, first
    eng.i_live, eng.i_run, eng.i_wait, eng.busy, eng.peak = i_live, i_run, i_wait, busy, peak
    eng.i_resv += i_resv
    eng.i_int += i_int
    eng.i_ext += i_ext + cap * blocked_k - blocked_a
    eng.i_logical += i_live + i_resv + i_int + i_ext
    eng.i_physical += i_live + i_resv + i_int + i_ext
    eng.admissions += admissions
    eng.completed += completed
    eng.lat_sum = lat_sum
    eng.S, eng.extra_time = 0, extra
    return eng._result(now, time.perf_counter() - wall)
