"""The event loop of the paged hot path: ``Engine.run`` with its per-event hooks inlined.

``simulate()`` replays a single-sequence workload without prefix caching and without a
time series through this function (unless ``SimConfig.use_block_pool`` asks for the real
``BlockPool``). It takes the same steps in the same order as ``Engine.run`` driving
:class:`~frag_sim.engine.paged_fast.SingleSeqPagedEngine`'s hooks: the block-demand check and
preemption of ``pressure``, admission (``try_admit`` + ``start``), completion
(``release`` + ``stop``), the crossings of ``horizon`` and the window of ``integrate``,
with every counter in a local.

Nothing on this path reads which block is which (no prefix cache, no fork, no events),
so it counts free blocks instead of linking ``KVCacheBlock`` objects: every number equals
the ``BlockPool`` run's (a test compares them). A request is three small entries while it
lives: its chunk row (lengths and the slot-step integrals of a first admission,
precomputed per chunk with numpy), its admission step in ``running`` (admission order:
the last is preempted first), and its generated tokens if it was preempted. A completion
heap entry is ``(step, request)``; a preemption removes its entry instead of leaving a
stale one behind.
"""

from __future__ import annotations

import heapq
import math
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ..report.metrics import SimResult
from .base import _EPS, INF
from .paged import PagedEngine

if TYPE_CHECKING:
    from .paged_fast import SingleSeqPagedEngine

__all__ = ["run_single_seq"]

# a chunk row: prompt, output, arrival, final blocks, first token of the last block, its
# slack, and (reservation, internal, allocated) slot-steps of a run from a first admission
Row = tuple[int, int, float, int, int, int, int, int, int]


def _rows(eng: SingleSeqPagedEngine) -> Iterator[tuple[list[float], list[Row], list[bool]]]:
    """Per chunk: arrivals (+ INF), rows, fits; vectorised closed forms of ``release``."""
    bs = eng.bs
    for ch in eng._chunks:
        if not len(ch):
            continue
        eng._check_chunk(ch)
        eng.last_arrival = float(ch.arrival_s[-1])
        p = ch.prompt_len.astype(np.int64)
        f = p + ch.output_len
        nb_f = -(-f // bs)
        last_in = bs * (nb_f - 1) + 1
        slack = bs * nb_f - f
        c0, dn = p + 1, f - p - 1
        q1, r1 = np.divmod(f, bs)
        q0, r0 = np.divmod(c0 - 1, bs)
        alloc = bs * (bs * (q1 * (q1 + 1) - q0 * (q0 + 1)) // 2 + r1 * (q1 + 1) - r0 * (q0 + 1))
        last = f - np.maximum(c0, last_in) + 1
        internal = np.where(last > 0, last * slack, 0)
        resv = alloc - (dn + 1) * c0 - dn * (dn + 1) // 2 - internal
        cols = (p, ch.output_len, ch.arrival_s, nb_f, last_in, slack, resv, internal, alloc)
        arr = ch.arrival_s.tolist()
        arr.append(INF)
        yield arr, list(zip(*(c.tolist() for c in cols), strict=True)), eng.chunk_fits(p, f - p)


def run_single_seq(eng: SingleSeqPagedEngine) -> SimResult:
    """Replay ``eng``'s request stream (no time series) and return its :class:`SimResult`."""
    wall = time.perf_counter()
    cfg = eng.cfg
    dt, cap, bs, usable = cfg.step_time_s, cfg.capacity_tokens, eng.bs, eng.usable
    waiting, hist = eng.waiting, eng.hist
    cnt, pc = hist.cnt, hist.pc
    heappop, heappush, weighted = heapq.heappop, heapq.heappush, hist.weighted
    swap, swap_cost = cfg.preemption == "swap", cfg.swap_time_per_block_s
    prefill, floor, eps, ceil = cfg.prefill_time_per_token_s, eng.floor, _EPS, math.ceil
    i_live, i_run, i_wait, i_ext, busy, peak, admissions, completed = 0, 0, 0, 0, 0, 0, 0, 0
    i_resv, i_int, i_alloc, query, k_blocked, preemptions = 0, 0, 0, 0, 0, 0
    free, owed, S, extra, hn, lat_sum = eng.free, 0, 0, 0.0, 0, 0.0
    max_seqs = cfg.max_num_seqs or sys.maxsize
    live_rows: dict[int, Row] = {}  # request -> its chunk row, from arrival to completion
    running: dict[int, int] = {}  # request -> admission step, in admission order
    emitted: dict[int, int] = {}  # tokens generated before a preemption (preempted only)
    heap: list[tuple[int, int]] = []  # (completion step, request)
    chunks = _rows(eng)
    base, j = 0, 0
    arr, rows, fit = next(chunks, ([INF], [], []))
    clen = len(rows)
    if not clen:
        from ..errors import EmptyTraceError

        raise EmptyTraceError(f"workload {eng.stream.name!r} holds no request")
    t, now = 0, arr[0]
    first = now

    def preempt(v: int, t: int) -> tuple[int, float]:
        """Release running request ``v`` before step ``t`` (recompute or swap): returns
        the change of ``owed`` and the swap seconds; updates the integrals via eng."""
        p, _, _, _, last_in, sl, _, _, _ = live_rows[v]
        e, t0 = emitted.get(v, 0), running.pop(v)
        c0 = p + e + 1
        c1 = c0 + t - 1 - t0
        grow = -(-c1 // bs) - -(-c0 // bs)
        n = c1 - c0 + 1
        q1, r1 = divmod(c1, bs)
        q0, r0 = divmod(c0 - 1, bs)
        alloc = bs * (bs * (q1 * (q1 + 1) - q0 * (q0 + 1)) // 2 + r1 * (q1 + 1) - r0 * (q0 + 1))
        last = c1 - max(c0, last_in) + 1
        internal = last * sl if last > 0 else 0
        eng.i_resv += alloc - n * c0 - n * (n - 1) // 2 - internal
        eng.i_int += internal
        eng.i_logical += alloc
        eng.i_physical += alloc
        ph = (t0 - p - e) % bs
        cnt[ph] -= 1
        pc[ph] -= ph
        heap.remove((t0 + live_rows[v][1] - e, v))
        heapq.heapify(heap)
        emitted[v] = e + t - t0
        waiting.appendleft(v)
        return grow, -(-c1 // bs) * swap_cost if swap else 0.0

    while True:
        while heap and heap[0][0] <= t:
            _, i = heappop(heap)
            # release(i, t, False) + stop(i, t): it held c0 .. F tokens over its steps
            p, o, a, nb_f, last_in, sl, resv0, int0, alloc0 = live_rows.pop(i)
            t0 = running.pop(i)
            if i in emitted:  # a re-admission: its slot-step integrals from c0 on
                e = emitted.pop(i)
                c0 = p + e + 1
                c1 = p + o
                dn = c1 - c0
                q1, r1 = divmod(c1, bs)
                q0, r0 = divmod(c0 - 1, bs)
                alloc = bs * (
                    bs * (q1 * (q1 + 1) - q0 * (q0 + 1)) // 2 + r1 * (q1 + 1) - r0 * (q0 + 1)
                )
                last = c1 - max(c0, last_in) + 1  # steps spent in its last block
                internal = last * sl if last > 0 else 0
                i_resv += alloc - (dn + 1) * c0 - dn * (dn + 1) // 2 - internal
                i_int += internal
                i_alloc += alloc
            else:
                e = 0
                c0 = p + 1
                i_resv += resv0
                i_int += int0
                i_alloc += alloc0
            nb0 = -(-c0 // bs)  # taken at admission; the rest were owed until now
            free += nb0
            owed -= nb_f - nb0
            ph = (t0 - p - e) % bs
            cnt[ph] -= 1
            pc[ph] -= ph
            hn -= 1
            S -= c0 - t0
            completed += 1
            lat_sum += now - a
        due = now + eps
        while arr[j] <= due:
            i = base + j
            if fit[j]:
                live_rows[i] = rows[j]
                waiting.append(i)
            else:
                eng._reject(i, rows[j][0], rows[j][1])
            j += 1
            if j == clen:
                base += clen
                j = 0
                arr, rows, fit = next(chunks, ([INF], [], []))
                clen = len(rows)
        need, blocked = cnt[t % bs], False
        if need:
            if need <= free - owed:
                owed += need
            else:  # PagedEngine.pressure: preempt the most recently admitted first
                ph = t % bs
                while need > free - owed:
                    v = next(reversed(running))
                    p, _, _, _, _, _, _, _, _ = live_rows[v]
                    e = emitted.get(v, 0)
                    if (running[v] - p - e) % bs == ph:
                        need -= 1
                    S -= p + e + 1 - running[v]
                    hn -= 1
                    free += -(-(p + e + 1) // bs)
                    grow, sw = preempt(v, t)
                    owed -= grow
                    extra += sw
                    preemptions += 1
                owed += need
                blocked = True
        if not blocked or not running:
            while waiting and len(running) < max_seqs:
                i = waiting[0]
                p, o = live_rows[i][0], live_rows[i][1]
                e = emitted.get(i, 0)
                c = p + e + 1
                nb = -(-c // bs)
                if nb > free - owed:
                    break
                waiting.popleft()
                free -= nb
                ph = (t - p - e) % bs
                cnt[ph] += 1
                pc[ph] += ph
                hn += 1
                if not e:
                    query += p
                if e and swap:
                    extra += -(-(p + e) // bs) * swap_cost
                else:
                    extra += (p + e) * prefill
                running[i] = t
                S += c - t
                admissions += 1
                heappush(heap, (t + o - e, i))
        n = len(running)
        defer = bool(waiting)  # behind a blocked queue head arrivals are not events
        mem_blocked = defer and n < max_seqs
        if n == 0:
            if waiting:
                raise RuntimeError(f"request {waiting[0]} cannot run on an empty system")
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
        m, cross = h - t - 1, 0
        if m > 0:
            if m < bs:
                rem = m
            else:
                full, rem = divmod(m, bs)
                cross = hn * full
            if rem:
                s = (t + 1) % bs
                e = s + rem
                cross += sum(cnt[s:e]) if e <= bs else sum(cnt[s:]) + sum(cnt[: e - bs])
            if cross > free - owed:  # the first step short of blocks: bisect
                eng.free, eng.owed, hist.n = free, owed, hn
                h = PagedEngine.horizon(eng, t, h)
                cross = eng.cross
        k = h - t
        live = k * S + n * (k * t + k * (k - 1) // 2)
        i_live += live
        i_run += n * k
        if defer:  # Engine._defer_arrivals: queued in closed form up to step h
            i_wait += len(waiting) * k
            end = now + d + (h - t - 1) * dt + eps  # start of step h
            while arr[j] <= end:
                i = base + j
                if fit[j]:
                    gap = arr[j] - now - d
                    q = 1 if gap <= eps else 1 + ceil(gap / dt - eps)
                    live_rows[i] = rows[j]
                    waiting.append(i)
                    if t + q < h:
                        i_wait += h - t - q
                else:
                    eng._reject(i, rows[j][0], rows[j][1])
                j += 1
                if j == clen:
                    base += clen
                    j = 0
                    arr, rows, fit = next(chunks, ([INF], [], []))
                    clen = len(rows)
        busy += k
        if n > peak:
            peak = n
        if mem_blocked:  # free memory is external fragmentation (integrate())
            hist.n = hn
            opened = weighted(t, k) if k > 1 else 0
            i_ext += k * cap - bs * (k * (usable - free + owed) + opened)
            k_blocked += k
        owed += cross
        now += d + (k - 1) * dt
        t = h
    eng.base, eng.j = base, 0
    eng.first_arrival = first
    eng.i_live, eng.i_run, eng.i_wait, eng.busy, eng.peak = i_live, i_run, i_wait, busy, peak
    eng.free, eng.owed, eng.S, eng.extra_time, hist.n = free, owed, S, extra, hn
    eng.query_tokens += query
    eng.i_ext += i_ext + floor * (busy - k_blocked)  # below one block: always waste
    eng.i_resv += i_resv
    eng.i_int += i_int
    eng.i_logical += i_alloc
    eng.i_physical += i_alloc
    eng.admissions += admissions
    eng.preemptions += preemptions
    eng.completed += completed
    eng.lat_sum = lat_sum
    return eng._result(now, time.perf_counter() - wall)
