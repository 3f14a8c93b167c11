"""The paged policy behind the engine: vLLM's on-demand blocks from the real allocator.

``PagedEngine`` is vLLM (PagedAttention §4): ``block_size``-token blocks from the real
``block_allocator`` pool, a new block only when a sequence crosses a block boundary,
optional prefix caching, preemption by recompute (or swap) when blocks run out.

Between events the engine does not call the allocator per token: a ``PhaseHistogram``
counts the block boundaries the running requests cross, and that demand is kept as
``owed`` blocks, allocated for real, in bulk, before the request's blocks are looked at
(completion, preemption, a prefix-cache lookup). Three allocation paths, all on the same
``KVCacheManager``: one sequence without prefix caching takes blocks straight from its
``BlockPool`` into plain block tables (token ids are never read); one sequence with prefix
caching runs the manager (token ids, chained hashes, lookups); ``n > 1`` runs sequence
groups through ``fork`` and copy-on-write (``groups.py``). Parallel samples of a request
generate equally many tokens, so they cross block boundaries together and are preempted
together; beam groups change their block tree every step, so while one runs the engine
advances one step at a time. The pool state, the phase histogram and the window
integrals that make event jumping exact are in ``paged_memory.py``.
"""

from __future__ import annotations

from .kv import KVCacheBlock, SimRequest
from .paged_memory import PagedMemory

__all__ = ["PagedEngine"]

_OUT_BASE = 1 << 40  # generated token ids of single-sequence requests
_PROMPT_BASE = 1 << 45  # private prompt ids, above every generated id


class PagedEngine(PagedMemory):
    """vLLM's paged policy: blocks taken on demand, preemption when they run out."""

    # -- token ids (only matter for prefix caching) --------------------------------------
    def _prompt_ids(self, i: int) -> list[int]:
        p = self.P[i]
        if not self.caching:
            return [0] * p
        st = self.stream
        if st.has_hash_ids:
            hb = st.hash_block_size
            ids: list[int] = []
            for j, h in enumerate(self.H[i]):
                base = (h + 1) * hb
                ids.extend(range(base, base + min(hb, p - j * hb)))
            return ids
        s = min(st.shared_prefix_len, p)
        base = _PROMPT_BASE + i * (1 << 22)
        return [*range(1, s + 1), *range(base, base + p - s)]

    def _out_ids(self, i: int, start: int, count: int) -> list[int]:
        if not self.caching:
            return [0] * count
        base = _OUT_BASE + i * (1 << 22) + start
        return list(range(base, base + count))

    # -- taking and giving back blocks ---------------------------------------------------
    def sync(self, i: int, upto: int) -> None:
        """Allocate, for real, the blocks request ``i`` needs through step ``upto``."""
        if self.beam:
            return  # beam groups allocate every step in pressure()
        c = self.tokens(i, upto)
        new = c - self.syn[i]
        if new <= 0:
            return
        bs = self.bs
        grow = -(-c // bs) - -(-self.syn[i] // bs)
        if self.groups is not None:
            self.groups.write(i, c)
        elif not self.caching:
            if grow:
                self.tables[i] += self.pool.get_new_blocks(grow)
        else:
            r = self.reqs[i]
            r.append_output_token_ids(self._out_ids(i, r.num_tokens, c - r.num_tokens))
            if self.kvm.allocate_slots(r, new) is None:
                raise RuntimeError(f"internal: owed blocks of request {i} not available")
            r.num_computed_tokens = c
        grow *= self.ns
        self.owed -= grow
        self.lsync += grow
        self.syn[i] = c

    def sync_all(self, t: int) -> None:
        if self.owed:
            for j in self.running:
                self.sync(j, t)

    def pressure(self, t: int) -> bool:
        if not self.running:
            return False
        ph = t % self.bs
        ns = self.ns
        need = self.hist.cnt[ph] * ns
        beam_need: dict[int, int] = {}
        if self.beam:
            groups = self.groups
            assert groups is not None
            for i in self.running:
                groups.resample(i)
                beam_need[i] = d = groups.demand(i, self.tokens(i, t))
                need += d
        if not need and not beam_need:
            return False
        preempted = False
        avail = self.avail()
        while need > avail:  # vLLM: preempt the most recently admitted first
            victim = next(reversed(self.running))
            if self.beam:
                need -= beam_need.pop(victim)
            elif self.phase[victim] == ph:
                need -= ns
            self.preempt(victim, t)
            preempted = True
            avail = self.avail()
        if self.beam:
            for i in beam_need:
                self._write_beams(i, self.tokens(i, t))
        else:
            self.owed += need
        return preempted

    def _write_beams(self, i: int, c: int) -> None:
        assert self.groups is not None
        self.groups.write(i, c)
        bs = self.bs
        self.lsync += self.ns * (-(-c // bs) - -(-self.syn[i] // bs))
        self.syn[i] = c

    def try_admit(self, i: int, t: int) -> bool:
        p, e, bs = self.P[i], self.emitted[i], self.bs
        c = p + e + 1
        if self.groups is not None:
            return self._admit_group(i, t, c)
        if not self.caching:
            if -(-c // bs) > self.avail():
                return False
            self.tables[i] = self.pool.get_new_blocks(-(-c // bs))
            self._started(i, t, c, 0)
            return True
        r = self.reqs.get(i)
        if r is None:
            r = self.reqs[i] = SimRequest(str(i), self._prompt_ids(i))
        self.sync_all(t)  # make the pool exact: a lookup may revive a free cached block
        hits, nhit = self.kvm.get_computed_blocks(r)
        need = -(-c // bs) - len(hits) + sum(1 for b in hits if b.ref_cnt == 0)
        if need > self.avail():
            return False
        r.append_output_token_ids(self._out_ids(i, r.num_tokens, 1))
        if self.kvm.allocate_slots(r, c - nhit, hits) is None:
            raise RuntimeError(f"internal: admission of request {i} failed after the check")
        r.num_computed_tokens = c
        self._started(i, t, c, nhit)
        if not self.emitted[i]:
            self.cpu_hit_tokens += nhit - len(hits) * bs  # loaded from the CPU tier
        return True

    def _admit_group(self, i: int, t: int, c: int) -> bool:
        groups = self.groups
        assert groups is not None
        hits: list[KVCacheBlock] = []
        parent = self.parents.get(i)
        if parent is None:
            parent = self.parents[i] = SimRequest(f"{i}/0", self._prompt_ids(i))
        if self.caching:
            self.sync_all(t)
            hits = self.kvm.get_computed_blocks(parent)[0]
        if groups.blocks_needed(self.P[i], c, hits) > self.avail():
            return False
        del self.parents[i]
        groups.admit(i, parent, c, hits)
        self._started(i, t, c, len(hits) * self.bs)
        return True

    def _started(self, i: int, t: int, c: int, nhit: int) -> None:
        p, e, bs, ns = self.P[i], self.emitted[i], self.bs, self.ns
        self.syn[i] = c
        self.lsync += ns * -(-c // bs)
        self.phase[i] = ph = (t - p - e) % bs
        if not self.beam:
            self.hist.add(ph, 1)
        if not e:  # fresh prompts only: a re-admission re-reads its own blocks
            self.query_tokens += p
            self.hit_tokens += nhit
            if self.hits_by_request is not None:
                self.hits_by_request[i] = nhit
        cfg = self.cfg
        if e and cfg.preemption == "swap":
            self.extra_time += (-(-(p + e) // bs) - nhit // bs) * cfg.swap_time_per_block_s
        else:
            self.extra_time += (p + e - nhit) * cfg.prefill_time_per_token_s
        if self.ts is not None:
            self._track_last_block(i, t)

    def _track_last_block(self, i: int, t: int) -> None:
        """Time series only: when does request ``i`` enter its last block (its slack)?"""
        bs, f = self.bs, self.F[i]
        nb_f = -(-f // bs)
        enter = t + bs * (nb_f - 1) - self.P[i] - self.emitted[i]
        self.slack.admit(i, t, enter, self.ns * (bs * nb_f - f), self.epoch[i])

    def release(self, i: int, t: int, preempted: bool) -> None:
        self.sync(i, t - 1)
        bs, ns, f = self.bs, self.ns, self.F[i]
        c0, c1 = self.P[i] + self.emitted[i] + 1, self.syn[i]
        # over its steps the request held c0..c1 tokens per sequence: slot-step integrals
        n = c1 - c0 + 1
        q1, r1 = divmod(c1, bs)
        q0, r0 = divmod(c0 - 1, bs)
        held = bs * (q1 * (q1 + 1) - q0 * (q0 + 1)) // 2 + r1 * (q1 + 1) - r0 * (q0 + 1)
        alloc = bs * held  # sum of bs * ceil(c / bs)
        live = n * c0 + n * (n - 1) // 2
        nb_f = -(-f // bs)
        last = c1 - max(c0, bs * (nb_f - 1) + 1) + 1  # steps spent in the last block
        internal = last * (bs * nb_f - f) if last > 0 else 0  # its never-filled slack
        self.i_resv += ns * (alloc - live - internal)
        self.i_int += ns * internal
        self.i_logical += ns * alloc
        if not self.phys_by_window:  # fixed sharing: the full prompt blocks of a group
            self.i_physical += ns * alloc - (ns - 1) * self.shared_blocks(i) * bs * n
        if self.groups is not None:
            self.groups.free(i)
        elif not self.caching:
            blocks = self.tables.pop(i)
            blocks.reverse()  # tail first, as KVCacheManager.free does
            self.pool.free_blocks(blocks)
        else:
            r = self.reqs[i]
            self.kvm.free(r)
            if preempted:
                r.num_computed_tokens = 0
            else:
                del self.reqs[i]
        if not self.beam:
            self.hist.add(self.phase[i], -1)
        self.lsync -= ns * -(-c1 // bs)
        self.syn[i] = 0
        self.slack.leave(i)
        if preempted and self.cfg.preemption == "swap":
            self.extra_time += -(-c1 // bs) * self.cfg.swap_time_per_block_s
