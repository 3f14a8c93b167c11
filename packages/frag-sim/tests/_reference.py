"""A deliberately naive token-by-token simulator: the oracle for the event-jumping engine.

It steps every token, counts blocks with plain integers (no allocator, no phases, no
closed forms) and follows the same scheduling rules as ``frag_sim.engine.base``.
``random_workload`` draws the small random streams the engine is compared on.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from frag_sim import SimConfig, Workload


def random_workload(seed: int, n: int, rate: float, pmax: int, omax: int) -> Workload:
    """``n`` Poisson arrivals at ``rate``; prompt and output lengths U[1, pmax] / U[1, omax]."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1 / rate, n)
    gaps[0] = 0
    return Workload(
        "rand",
        np.cumsum(gaps),
        rng.integers(1, pmax + 1, n).astype(np.int64),
        rng.integers(1, omax + 1, n).astype(np.int64),
    )


@dataclass
class RefResult:
    admissions: int
    preemptions: int
    peak: int
    run_steps: int  # sum over busy steps of running requests
    busy: int
    live: int  # sum over busy steps of live tokens
    alloc: int  # sum over busy steps of allocated slots, as if unshared
    physical: int  # sum over busy steps of slots actually held
    completed: int
    rejected: int
    wait_steps: int = 0  # sum over busy steps of queued requests
    # per busy step: (live, allocated as if unshared, internal, physical) slots
    steps: list[tuple[int, int, int, int]] = field(default_factory=list)


def reference(wl: Workload, cfg: SimConfig) -> RefResult:
    P = wl.prompt_len.tolist()
    O = wl.output_len.tolist()  # noqa: E741 (the paper's P and O)
    arr = wl.arrival_s.tolist()
    n = len(P)
    bs = cfg.block_size
    paged = cfg.policy == "paged"
    usable = cfg.capacity_tokens // bs if paged else cfg.capacity_tokens
    emitted = [0] * n
    C = [0] * n  # tokens held during the last step run
    running: list[int] = []
    waiting: deque[int] = deque()
    held = [0] * n  # blocks (paged) or slots (contiguous)
    free = usable
    t, now, nxt = 0, arr[0], 0
    res = RefResult(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    ns = cfg.n

    def group(i: int, c: int) -> int:  # blocks of ns samples sharing full prompt blocks
        sh = P[i] // bs if ns > 1 else 0
        return sh + ns * (-(-c // bs) - sh)

    max_seqs = cfg.max_num_seqs or n + 1

    def reserve(i: int) -> int:
        f = P[i] + O[i]
        if cfg.policy == "max":
            return cfg.max_model_len
        if cfg.policy == "pow2":
            return min(P[i] + (1 << (O[i] - 1).bit_length()), cfg.max_model_len)
        return f

    while True:
        for i in [i for i in running if C[i] == P[i] + O[i]]:
            running.remove(i)
            free += held[i]
            res.completed += 1
        while nxt < n and arr[nxt] <= now + 1e-9:
            f = P[nxt] + O[nxt]
            too_big = group(nxt, f) > usable if paged else ns * reserve(nxt) > usable
            if f > cfg.max_model_len or too_big:
                res.rejected += 1
            else:
                waiting.append(nxt)
            nxt += 1
        preempted = False
        if paged:
            need = [i for i in running if C[i] % bs == 0]  # the next token opens a block
            while ns * len(need) > free:
                v = running.pop()
                if v in need:
                    need.remove(v)
                free += held[v]
                emitted[v] = C[v] - P[v]
                waiting.appendleft(v)
                res.preemptions += 1
                preempted = True
            for i in need:
                held[i] += ns
                free -= ns
        if not preempted or not running:
            while waiting and len(running) < max_seqs:
                i = waiting[0]
                c = P[i] + emitted[i] + 1
                cost = group(i, c) if paged else ns * reserve(i)
                if cost > free:
                    break
                waiting.popleft()
                free -= cost
                held[i] = cost
                C[i] = c - 1  # incremented below
                running.append(i)
                res.admissions += 1
        if not running:
            if nxt >= n:
                return res
            now = max(now, arr[nxt])
            continue
        for i in running:
            C[i] += 1
        res.busy += 1
        res.wait_steps += len(waiting)
        res.peak = max(res.peak, len(running))
        res.run_steps += len(running)
        live = ns * sum(C[i] for i in running)
        physical = sum(held[i] * (bs if paged else 1) for i in running)
        sizes = [-(-C[i] // bs) * bs if paged else reserve(i) for i in running]
        alloc = ns * sum(sizes)
        internal = ns * sum(a - min(a, P[i] + O[i]) for a, i in zip(sizes, running, strict=True))
        res.live += live
        res.physical += physical
        res.alloc += alloc
        res.steps.append((live, alloc, internal, physical))
        now += cfg.step_time_s
        t += 1
        assert math.isfinite(now)
