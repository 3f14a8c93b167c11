"""The pool's release path: ``BlockPool.free_blocks`` in one pass, all or nothing.

Mirrors ``BlockPool.free_blocks`` in ``vllm/v1/core/block_pool.py``, which drops the
references and then links the blocks that reached 0 in a second walk. Here one pass
checks each block, drops its reference and, at 0, links it straight onto a run: the tail
of free queue 0, or a detached run behind the ``head_run`` sentinel that is spliced in at
the head at the end (unhashed blocks in the fresh-first order, every block with
``evict_first``). Until that splice only the queue's last block and the runs are written.

The blocks may come from any iterable (``reversed(table)`` included) and are never copied:
a failure midway (double free, null block, foreign block, not a block, an iterator that
raises) is undone from the runs themselves plus the short list of blocks that kept a
reference, so the pool is exactly as it was. With retention priorities in use the
two-step path (``release_per_level``) runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._checks import free_error
from .block import KVCacheBlock
from .free_queue import FreeKVCacheBlockQueue

__all__ = ["release", "release_per_level"]


def release(
    pool: object,
    queue: FreeKVCacheBlockQueue,
    blocks: Iterable[KVCacheBlock],
    fresh_first: bool,
    evict_first: bool,
    head_run: KVCacheBlock,
) -> None:
    """Free ``blocks`` into ``queue`` (no retention priorities in use), in one pass."""
    tail = queue._tail
    anchor: KVCacheBlock = tail.prev_free  # type: ignore[assignment]
    last = anchor
    run_last = head_run
    shared: list[KVCacheBlock] | None = None  # blocks that keep a reference (made on demand)
    freed = 0
    try:
        for block in blocks:
            ref_cnt = block.ref_cnt
            if block._pool is not pool or ref_cnt <= 0:
                raise free_error(pool, block)
            if ref_cnt > 1:
                block.ref_cnt = ref_cnt - 1
                if shared is None:
                    shared = [block]
                else:
                    shared.append(block)
                continue
            block.ref_cnt = 0
            freed += 1
            if evict_first or (fresh_first and block.block_hash is None):
                run_last.next_free = block
                block.prev_free = run_last
                run_last = block
            else:
                last.next_free = block
                block.prev_free = last
                last = block
    except BaseException as exc:
        _undo(shared, anchor, last, head_run, run_last)
        tail.prev_free = anchor
        anchor.next_free = tail
        if isinstance(exc, AttributeError):  # not a block at all
            raise free_error(pool, None) from None
        raise
    last.next_free = tail
    tail.prev_free = last
    if run_last is not head_run:
        head = queue._head
        first: KVCacheBlock = head.next_free  # type: ignore[assignment]
        run: KVCacheBlock = head_run.next_free  # type: ignore[assignment]
        head.next_free = run
        run.prev_free = head
        run_last.next_free = first
        first.prev_free = run_last
        head_run.next_free = None
    queue.num_free_blocks += freed


def _undo(
    shared: list[KVCacheBlock] | None,
    anchor: KVCacheBlock,
    last: KVCacheBlock,
    head_run: KVCacheBlock,
    run_last: KVCacheBlock,
) -> None:
    # Give back every reference a failed release dropped: one per entry of `shared`, one per
    # block linked on either run (a block can be in both when listed twice), and unlink them.
    for block in shared or ():
        block.ref_cnt += 1
    for start, end in ((anchor, last), (head_run, run_last)):
        if end is start:
            continue
        cur: KVCacheBlock = start.next_free  # type: ignore[assignment]
        while True:
            nxt = cur.next_free
            cur.prev_free = cur.next_free = None
            cur.ref_cnt += 1
            if cur is end:
                break
            cur = nxt  # type: ignore[assignment]
    head_run.next_free = None


def release_per_level(
    pool: object,
    queues: Sequence[FreeKVCacheBlockQueue],
    blocks: Iterable[KVCacheBlock],
    fresh_first: bool,
    evict_first: bool,
) -> None:
    """Free ``blocks`` while retention priorities are in use: check all, then link each."""
    blocks = blocks if isinstance(blocks, (list, tuple)) else list(blocks)
    freed: list[KVCacheBlock] = []
    for i, block in enumerate(blocks):
        if not isinstance(block, KVCacheBlock) or block.ref_cnt <= 0 or block._pool is not pool:
            for undo in blocks[:i]:
                undo.ref_cnt += 1
            raise free_error(pool, block)
        block.ref_cnt -= 1
        if block.ref_cnt == 0:
            freed.append(block)
    first = [b for b in freed if evict_first or (fresh_first and b.block_hash is None)]
    if first:
        # Evicted-first blocks go to the head of their own level's queue.
        for level, queue in enumerate(queues):
            queue.prepend_n([b for b in first if b.retention_priority == level])
        freed = [b for b in freed if not (evict_first or (fresh_first and b.block_hash is None))]
    for block in freed:
        queues[block.retention_priority].append(block)
