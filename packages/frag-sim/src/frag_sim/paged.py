"""The paged policy behind the engine: vLLM's on-demand blocks from the real allocator.

``PagedEngine`` is vLLM (PagedAttention §4): ``block_size``-token blocks from the real
``block_allocator.KVCacheManager``, a new block only when a sequence crosses a block
boundary, optional prefix caching, preemption by recompute (or swap) when blocks run out.

Between events the paged engine does not call the allocator per token: it counts the
block boundaries crossed (a request crosses one every ``block_size`` steps at a fixed
phase, so a histogram of phases answers "how many blocks will the next k steps need?")
and keeps that demand as ``owed`` blocks, which are allocated for real, in bulk, before
the request's blocks are looked at (completion, preemption, a prefix-cache lookup).

Parallel sampling (``SimConfig.n > 1``, PagedAttention §4.4): the ``n`` samples of a
request share its full prompt blocks (one physical copy, ``ref_cnt == n``, as
``KVCacheManager.fork`` would leave them) and each gets a private copy of the partial
prompt tail at its first write (copy-on-write); samples of one request generate equally
many tokens, so they cross block boundaries together and are preempted together.
"""

from __future__ import annotations

from ._engine import Engine
from ._kv import KVCacheBlock, SimRequest, make_manager
from .config import SimConfig
from .workload import Workload

__all__ = ["PagedEngine"]

_OUT_BASE = 1 << 40  # generated token ids live above every prompt id


class PagedEngine(Engine):
    def __init__(self, workload: Workload, config: SimConfig) -> None:
        super().__init__(workload, config)
        self.bs = bs = config.block_size
        self.usable = config.num_gpu_blocks
        self.caching = config.enable_prefix_caching
        self.kvm = make_manager(self.usable, bs, self.caching)
        self.pool = self.kvm.block_pool
        n = len(self.P)
        self.reqs: dict[int, SimRequest] = {}
        # Without prefix caching no token id is ever read, so blocks come straight from the
        # real BlockPool into plain block tables (the manager's per-block BlockTable checks
        # would double the cost); with caching the full KVCacheManager path runs.
        self.tables: dict[int, list[list[KVCacheBlock]]] = {}  # request -> one per sample
        self.saved_exact = 0  # slot-steps saved by sharing prompt blocks among samples
        self.syn = [0] * n  # tokens allocated in the manager (= its num_computed_tokens)
        self.phase = [0] * n
        self.cnt = [0] * bs  # running requests per boundary phase
        self.owed = 0  # blocks crossed but not yet allocated in the manager
        self.cross = 0
        self.hit_tokens = 0
        self.query_tokens = 0

    # -- token ids (only matter for prefix caching) --------------------------------------
    def _prompt_ids(self, i: int) -> list[int]:
        p = self.P[i]
        if not self.caching:
            return [0] * p
        wl = self.wl
        if wl.hash_ids is not None:
            hb = wl.hash_block_size
            ids: list[int] = []
            for j, h in enumerate(wl.hash_ids[i]):
                base = (h + 1) * hb
                ids.extend(range(base, base + min(hb, p - j * hb)))
            return ids
        s = min(wl.shared_prefix_len, p)
        base = _OUT_BASE // 2 + i * (1 << 22)
        return [*range(1, s + 1), *range(base, base + p - s)]

    def _out_ids(self, i: int, start: int, count: int) -> list[int]:
        if not self.caching:
            return [0] * count
        base = _OUT_BASE + i * (1 << 22) + start
        return list(range(base, base + count))

    # -- block accounting ---------------------------------------------------------------
    def crossings(self, a: int, b: int) -> int:
        """Blocks the running requests need over steps [a, b)."""
        k = b - a
        if k <= 0:
            return 0
        bs = self.bs
        full, rem = divmod(k, bs)
        total = len(self.running) * full
        if rem:
            s = a % bs
            e = s + rem
            cnt = self.cnt
            total += sum(cnt[s:e]) if e <= bs else sum(cnt[s:]) + sum(cnt[: e - bs])
        return total * self.ns

    def shared_blocks(self, i: int) -> int:
        """Full prompt blocks the samples of request ``i`` share (0 without sampling)."""
        return self.P[i] // self.bs if self.ns > 1 else 0

    def group_blocks(self, i: int, c: int) -> int:
        """Physical blocks request ``i`` holds with ``c`` tokens in every sample."""
        sh = self.shared_blocks(i)
        return sh + self.ns * (-(-c // self.bs) - sh)

    def avail(self) -> int:
        return self.pool.get_num_free_blocks() - self.owed

    def sync(self, i: int, upto: int) -> None:
        """Allocate, for real, the blocks request ``i`` needs through step ``upto``."""
        c = self.P[i] + self.emitted[i] + 1 + upto - self.t0[i]
        new = c - self.syn[i]
        if new <= 0:
            return
        bs = self.bs
        grow = -(-c // bs) - -(-self.syn[i] // bs)
        if not self.caching:
            if grow:
                for table in self.tables[i]:
                    table += self.pool.get_new_blocks(grow)
        else:
            r = self.reqs[i]
            r.append_output_token_ids(self._out_ids(i, r.num_tokens, c - r.num_tokens))
            if self.kvm.allocate_slots(r, new) is None:
                raise RuntimeError(f"internal: owed blocks of request {i} not available")
            r.num_computed_tokens = c
        self.owed -= grow * self.ns
        self.syn[i] = c

    # -- engine hooks -------------------------------------------------------------------
    def never_fits(self, i: int) -> str | None:
        need = self.group_blocks(i, self.F[i])
        if need <= self.usable:
            return None
        return f"needs {need} blocks of {self.bs} tokens, the pool has {self.usable}"

    def pressure(self, t: int) -> bool:
        if not self.running:
            return False
        ph = t % self.bs
        need = self.cnt[ph] * self.ns
        if not need:
            return False
        preempted = False
        avail = self.avail()
        while need > avail:  # vLLM: preempt the most recently admitted first
            victim = next(reversed(self.running))
            if self.phase[victim] == ph:
                need -= self.ns
            self.preempt(victim, t)
            preempted = True
            avail = self.avail()
        self.owed += need
        return preempted

    def try_admit(self, i: int, t: int) -> bool:
        p, e, bs = self.P[i], self.emitted[i], self.bs
        c = p + e + 1
        if not self.caching:
            if self.group_blocks(i, c) > self.avail():
                return False
            pool = self.pool
            sh = self.shared_blocks(i)
            shared = pool.get_new_blocks(sh) if sh else []
            for _ in range(self.ns - 1):  # every further sample references the prompt
                pool.touch(shared)
            own = -(-c // bs) - sh
            self.tables[i] = [shared + pool.get_new_blocks(own) for _ in range(self.ns)]
            self._started(i, t, c, 0)
            return True
        r = self.reqs.get(i)
        if r is None:
            r = self.reqs[i] = SimRequest(str(i), self._prompt_ids(i))
        if self.owed:  # make the pool exact: a lookup may revive a free cached block
            for j in self.running:
                self.sync(j, t)
        hits, nhit = self.kvm.get_computed_blocks(r)
        need = -(-c // bs) - len(hits) + sum(1 for b in hits if b.ref_cnt == 0)
        if need > self.avail():
            return False
        r.append_output_token_ids(self._out_ids(i, r.num_tokens, 1))
        if self.kvm.allocate_slots(r, c - nhit, hits) is None:
            raise RuntimeError(f"internal: admission of request {i} failed after the check")
        r.num_computed_tokens = c
        self._started(i, t, c, nhit)
        return True

    def _started(self, i: int, t: int, c: int, nhit: int) -> None:
        p, e, bs = self.P[i], self.emitted[i], self.bs
        self.syn[i] = c
        self.phase[i] = ph = (t - p - e) % bs
        self.cnt[ph] += 1
        if not e:  # fresh prompts only: a re-admission re-reads its own blocks
            self.query_tokens += p
            self.hit_tokens += nhit
        cfg = self.cfg
        if e and cfg.preemption == "swap":
            self.extra_time += (-(-(p + e) // bs) - nhit // bs) * cfg.swap_time_per_block_s
        else:
            self.extra_time += (p + e - nhit) * cfg.prefill_time_per_token_s

    def release(self, i: int, t: int, preempted: bool) -> None:
        self.sync(i, t - 1)
        p, e, bs = self.P[i], self.emitted[i], self.bs
        c0, c1, f = p + e + 1, self.syn[i], self.F[i]
        n = c1 - c0 + 1
        alloc = bs * (_cdiv_prefix_sum(c1, bs) - _cdiv_prefix_sum(c0 - 1, bs))
        live = n * c0 + n * (n - 1) // 2
        nb_f = -(-f // bs)
        in_last = max(0, c1 - max(c0, bs * (nb_f - 1) + 1) + 1)
        capped = alloc - in_last * (bs * nb_f - f)  # sum of min(allocated, F)
        ns = self.ns
        self.i_resv += ns * (capped - live)
        self.i_int += ns * (alloc - capped)
        self.i_logical += ns * alloc
        self.saved_exact += (ns - 1) * self.shared_blocks(i) * bs * n
        if not self.caching:
            for blocks in self.tables.pop(i):
                blocks.reverse()  # tail first, as KVCacheManager.free does
                self.pool.free_blocks(blocks)
        else:
            r = self.reqs[i]
            self.kvm.free(r)
            if preempted:
                r.num_computed_tokens = 0
            else:
                del self.reqs[i]
        self.cnt[self.phase[i]] -= 1
        self.syn[i] = 0
        if preempted and self.cfg.preemption == "swap":
            self.extra_time += -(-c1 // bs) * self.cfg.swap_time_per_block_s

    def horizon(self, t: int, h: int) -> int:
        a = t + 1
        cross = self.crossings(a, h)
        avail = self.avail()
        if cross > avail:  # the first step whose demand exceeds the free blocks
            lo, hi = a, h - 1
            while lo < hi:
                mid = (lo + hi) // 2
                if self.crossings(a, mid + 1) > avail:
                    hi = mid
                else:
                    lo = mid + 1
            h = lo
            cross = self.crossings(a, h)
        self.cross = cross
        return h

    def integrate(self, t: int, k: int, live: float, waiting: bool) -> None:
        bs, cap = self.bs, self.cfg.capacity_tokens
        phys = self.usable - self.pool.get_num_free_blocks() + self.owed
        # blocks crossed inside the window arrive spread over its k steps (exact for bs=1)
        phys_int = bs * (k * phys + self.cross * k / 2)
        self.i_physical += phys_int
        rem = cap - self.usable * bs  # below one block: never allocatable
        self.i_ext += (k * cap - phys_int) if waiting else k * rem
        self.owed += self.cross

    def allocated_tokens(self) -> int:
        return (self.usable - self.pool.get_num_free_blocks() + self.owed) * self.bs

    def extras(self) -> dict[str, float]:
        if not self.caching:
            self.i_physical = self.i_logical - self.saved_exact  # exact
        q = self.query_tokens
        return {"prefix_hit_rate": self.hit_tokens / q if q else 0.0}


def _cdiv_prefix_sum(x: int, bs: int) -> int:
    """sum of ceil(c / bs) for c in 1..x."""
    if x <= 0:
        return 0
    q, r = divmod(x, bs)
    return bs * q * (q + 1) // 2 + r * (q + 1)
