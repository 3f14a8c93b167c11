"""The contiguous policies' event loop: ``Engine.run`` with ``ContiguousEngine``'s hooks inlined.

``simulate()`` replays a single-sequence workload under ``max`` / ``pow2`` / ``exact``
without a time series through this function: the same steps in the same order as
``Engine.run`` driving :class:`~frag_sim.engine.contiguous.ContiguousEngine` (admission =
``try_admit`` + ``start``, completion = ``release`` + ``stop``, the window of
``integrate``), with the counters in locals and each chunk's reservations computed once
per chunk. Chunks still come from, and go back to, the real address space
(``BuddySpace`` / ``FirstFitSpace``). One shortcut, exact by construction: after the
queue head failed to get a chunk, it is not tried again until a free leaves a hole at least
as large as the head needs (a failed allocation means no hole was large enough, and a free
changes only the hole it lands in, so a smaller one cannot change the answer). Tests compare the loop with
``Engine.run`` on the same engine.
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

if TYPE_CHECKING:
    from .contiguous import ContiguousEngine

__all__ = ["run_contiguous"]

# a chunk row: request, prompt, output, arrival, reserved slots, slots the allocator takes
Row = tuple[int, int, int, float, int, int]


def _rows(eng: ContiguousEngine) -> Iterator[tuple[list[float], list[Row], list[bool]]]:
    """Per chunk: arrivals (+ INF), rows, fits (``Engine.chunk_fits`` over ``why_not``)."""
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
        arr = ch.arrival_s.tolist()
        ids = range(base, base + len(arr))
        base += len(arr)
        rows = list(zip(ids, p.tolist(), o.tolist(), arr, res.tolist(), took.tolist(), strict=True))
        arr.append(INF)
        yield arr, rows, fit.tolist()


def run_contiguous(eng: ContiguousEngine) -> SimResult:
    """Replay ``eng``'s request stream (one sequence each, no time series)."""
    wall = time.perf_counter()
    cfg = eng.cfg
    dt, cap, prefill = cfg.step_time_s, cfg.capacity_tokens, cfg.prefill_time_per_token_s
    alloc, free_chunk = eng.space.alloc, eng.space.free
    heappop, heappush, eps, ceil = heapq.heappop, heapq.heappush, _EPS, math.ceil
    i_live, i_run, i_wait, busy, peak, admissions, completed = 0, 0, 0, 0, 0, 0, 0
    i_resv, i_int, i_alloc, i_ext, lat_sum, extra = 0, 0, 0, 0, 0.0, 0.0
    S = sum_f = sum_r = sum_a = 0
    max_seqs = cfg.max_num_seqs or sys.maxsize
    # The queue holds rows, and a running request lives only in its heap entry
    # (completion step, request, row, admission step, chunk offset): the request ids are
    # unique, so tuples never compare past the second field and pop in Engine.run's order.
    waiting: deque[Row] = deque()
    heap: list[tuple[int, int, Row, int, int]] = []
    n = 0  # running requests
    head_failed = False  # the queue head found no chunk, and no hole of `need` since
    need = 0
    chunks = _rows(eng)
    j = 0
    arr, rows, fit = next(chunks, ([INF], [], []))
    clen = len(rows)
    if not clen:
        from ..errors import EmptyTraceError

        raise EmptyTraceError(f"workload {eng.stream.name!r} holds no request")
    t, now = 0, arr[0]
    first = now
    while True:
        while heap and heap[0][0] <= t:
            _, _, (_, p, o, a, r, ra), t0, off = heappop(heap)
            if free_chunk(off) >= need:
                head_failed = False
            n -= 1
            sum_f -= p + o
            sum_r -= r
            sum_a -= ra
            S -= p + 1 - t0
            completed += 1
            lat_sum += now - a
        due = now + eps
        while arr[j] <= due:
            if fit[j]:
                waiting.append(rows[j])
            else:
                eng._reject(*rows[j][:3])
            j += 1
            if j == clen:
                j = 0
                arr, rows, fit = next(chunks, ([INF], [], []))
                clen = len(rows)
        while waiting and not head_failed and n < max_seqs:
            row = waiting[0]
            _, p, o, a, r, ra = row
            got = alloc(r)
            if got is None:
                head_failed, need = True, ra
                break
            waiting.popleft()
            n += 1
            sum_f += p + o
            sum_r += r
            sum_a += ra
            extra += p * prefill
            S += p + 1 - t
            admissions += 1
            heappush(heap, (t + o, row[0], row, t, got))
        defer = bool(waiting)
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
        if not defer and arr[j] != INF:
            gap = arr[j] - now - d
            k = 1 if gap <= eps else 1 + ceil(gap / dt - eps)
            if t + k < h:
                h = t + k
        k = h - t
        live = k * S + n * (k * t + k * (k - 1) // 2)
        i_live += live
        i_run += n * k
        if defer:  # Engine._defer_arrivals
            i_wait += len(waiting) * k
            end = now + d + (k - 1) * dt + eps
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
                    arr, rows, fit = next(chunks, ([INF], [], []))
                    clen = len(rows)
        busy += k
        if n > peak:
            peak = n
        # ContiguousEngine.integrate
        i_resv += k * sum_f - live
        i_int += k * (sum_r - sum_f)
        i_alloc += k * sum_a
        i_ext += k * (sum_a - sum_r)
        if defer and n < max_seqs:  # memory, not the sequence limit, holds the queue
            i_ext += k * (cap - sum_a)
        now += d + (k - 1) * dt
        t = h
    eng.base, eng.j, eng.first_arrival = admissions + len(eng.rejected), 0, first
    eng.i_live, eng.i_run, eng.i_wait, eng.busy, eng.peak = i_live, i_run, i_wait, busy, peak
    eng.i_resv += i_resv
    eng.i_int += i_int
    eng.i_ext += i_ext
    eng.i_logical += i_alloc
    eng.i_physical += i_alloc
    eng.admissions += admissions
    eng.completed += completed
    eng.lat_sum = lat_sum
    eng.S, eng.extra_time = S, extra
    return eng._result(now, time.perf_counter() - wall)
