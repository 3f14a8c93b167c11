"""Sequence groups in the scheduler: parallel samples and beams via fork + copy-on-write.

A request with ``n > 1`` runs as a group of sequences on the real
``block_allocator.KVCacheManager`` (PagedAttention §4.4, vLLM v0's ``SequenceGroup`` and
``BlockSpaceManager.fork``): the prompt is prefilled once into a parent ``Request``,
``fork`` gives every other sequence the parent's block table (``ref_cnt`` += 1 per
block), and the first write of each sequence into the shared partial prompt block makes
``allocate_slots`` copy it; the (src, dst) pairs come out of ``take_blocks_to_copy`` and
are counted as ``cow_copies``.

Beam search (``use_beam_search``): every step, before the step's token is written, each
of the ``w`` beam slots picks a parent among the current beams uniformly at random (a
Wright-Fisher resampling model of candidate selection; the real scores depend on the
model, and the paper's beam traces are not public). The first pick of a parent keeps its
sequence, a repeated pick forks it, a beam nobody picked is freed. Shared blocks
therefore form a tree that coalesces towards the prompt, and every write into a shared
tail block is a real copy-on-write in the pool. All beams of a request generate
``output_len`` tokens (no early end-of-sequence).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .kv import KVCacheBlock, KVCacheManager, Request

__all__ = ["SequenceGroups"]

_TOKEN_BASE = 1 << 50  # generated ids of group sequences: unique, above every prompt id


class SequenceGroups:
    """The ``width`` sequences of every running multi-sequence request."""

    def __init__(self, kvm: KVCacheManager, width: int, caching: bool, seed: int) -> None:
        self.kvm = kvm
        self.bs = kvm.block_size
        self.width = width
        self.caching = caching
        self.seqs: dict[int, list[Request]] = {}
        self.copies = 0
        self._rng = random.Random(seed)
        self._next_id = 0  # fresh sequence ids
        self._tok = _TOKEN_BASE

    def _ids(self, count: int) -> list[int]:
        if not self.caching:
            return [0] * count
        start = self._tok
        self._tok += count
        return list(range(start, start + count))

    def blocks_needed(self, prompt_len: int, c: int, hits: Sequence[KVCacheBlock]) -> int:
        """Free blocks an admission with ``c`` tokens per sequence takes (see ``admit``)."""
        bs = self.bs
        pb = -(-prompt_len // bs)
        revived = sum(1 for b in hits if b.ref_cnt == 0)
        tail_copies = self.width - 1 if prompt_len % bs else 0
        return pb - len(hits) + revived + self.width * (-(-c // bs) - pb) + tail_copies

    def name(self, i: int) -> str:
        """A fresh sequence id for request ``i``."""
        self._next_id += 1
        return f"{i}/{self._next_id}"

    def admit(self, i: int, parent: Request, c: int, hits: list[KVCacheBlock]) -> None:
        """Prefill ``parent``'s prompt once (after ``hits``), fork ``width - 1`` times, then
        every sequence writes its tokens up to ``c`` (the partial prompt tail is copied)."""
        kvm, p = self.kvm, parent.num_tokens
        nhit = len(hits) * self.bs
        if kvm.allocate_slots(parent, p - nhit, hits or None) is None:
            raise RuntimeError(f"internal: prompt of request {i} does not fit after the check")
        parent.num_computed_tokens = p
        group: list[Request] = [parent]
        group += [kvm.fork(parent, self.name(i)) for _ in range(self.width - 1)]
        self.seqs[i] = group
        self.write(i, c)

    def write(self, i: int, c: int) -> None:
        """Every sequence of request ``i`` computes its tokens up to ``c`` (allocating)."""
        kvm = self.kvm
        for seq in self.seqs[i]:
            new = c - seq.num_computed_tokens
            if new <= 0:
                continue
            seq.append_output_token_ids(self._ids(c - seq.num_tokens), validate=False)
            if kvm.allocate_slots(seq, new) is None:
                raise RuntimeError(f"internal: blocks of request {i} not available")
            seq.num_computed_tokens = c
        self.copies += len(kvm.take_blocks_to_copy())

    def resample(self, i: int) -> None:
        """Beam search: each beam slot picks a parent beam (uniform); unpicked beams end."""
        kvm, beams = self.kvm, self.seqs[i]
        w = len(beams)
        rnd = self._rng.randrange
        picks = [rnd(w) for _ in range(w)]
        taken = [False] * w
        new: list[Request] = []
        for k in picks:
            if taken[k]:
                new.append(kvm.fork(beams[k], self.name(i)))
            else:
                taken[k] = True
                new.append(beams[k])
        for k, b in enumerate(beams):
            if not taken[k]:
                kvm.free(b)
        self.seqs[i] = new

    def demand(self, i: int, c: int) -> int:
        """Free blocks the step that brings every beam of ``i`` to ``c`` tokens takes."""
        beams = self.seqs[i]
        if (c - 1) % self.bs == 0:  # the new token opens a block in every beam
            return len(beams)
        get = self.kvm.get_block_ids
        tails = {get(b.request_id)[-1] for b in beams}
        return len(beams) - len(tails)  # r sharers of a partial tail: r - 1 copies

    def free(self, i: int) -> None:
        for seq in reversed(self.seqs.pop(i)):
            self.kvm.free(seq)
