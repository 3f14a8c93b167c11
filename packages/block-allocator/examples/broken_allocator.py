"""A deliberately buggy "learner" allocator: the conformance kit's worked example.

It re-exports block_allocator and breaks two things learners commonly get wrong:

1. ``free`` releases a request's blocks head first (the Phase 02 exercises ask why not),
   so the shared prefix reaches the head of the free queue before the private tail;
2. ``get_computed_blocks`` forgets the ``num_tokens - 1`` cap, so a fully cached prompt
   would leave nothing to compute and no logits to sample from.

Grade it from this directory (or put it on ``PYTHONPATH``)::

    python -m block_allocator.kit --impl broken_allocator --lab lab05
"""

from __future__ import annotations

from block_allocator import *  # noqa: F403  (a learner module exports the same names)
from block_allocator import KVCacheBlock, Request
from block_allocator import KVCacheManager as _ReferenceManager


class KVCacheManager(_ReferenceManager):  # type: ignore[no-redef]
    def free(self, request: Request) -> None:
        self._tables.pop(request.request_id, None)
        blocks = self._req_blocks.pop(request.request_id, None)
        if blocks is None:
            return
        self.block_pool.free_blocks(blocks)  # BUG: should be reversed(blocks)
        self._num_cached_block.pop(request.request_id, None)

    def get_computed_blocks(self, request: Request) -> tuple[list[KVCacheBlock], int]:
        request.bind_block_size(self.block_size)
        hits: list[KVCacheBlock] = []
        for block_hash in request.block_hashes:  # BUG: no (num_tokens - 1) // block_size cap
            block = self.block_pool.get_cached_block(block_hash)
            if block is None:
                break
            hits.append(block)
        return hits, len(hits) * self.block_size
