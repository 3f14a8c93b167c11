"""The pool's release path: ``BlockPool.free_blocks`` in one pass, all or nothing.

Mirrors ``BlockPool.free_blocks`` in ``vllm/v1/core/block_pool.py``, which drops the
references and then appends the blocks that reached 0 in a second walk. Here one pass
checks each block, drops its reference and, at 0, links it straight onto a run: the tail
of free queue 0, or (fresh-first order, unhashed block) a detached run behind the
``fresh`` sentinel that is spliced in at the head at the end. Until that splice only the
queue's last block and the runs are written, so a failure midway (double free, null
block, foreign block, not a block) gives the references back, unlinks the runs and leaves
the pool exactly as it was. With retention priorities in use the two-step path runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._checks import free_error
from .block import KVCacheBlock
from .errors import InvalidBlockError
from .free_queue import FreeKVCacheBlockQueue

__all__ = ["release", "release_per_level"]


def release(
    pool: object,
    queue: FreeKVCacheBlockQueue,
    blocks: Sequence[KVCacheBlock],
    fresh_first: bool,
    fresh: KVCacheBlock,
) -> None:
    """Free ``blocks`` into ``queue`` (no retention priorities in use), in one pass."""
    tail = queue._tail
    anchor: KVCacheBlock = tail.prev_free  # type: ignore[assignment]
    last = anchor
    fresh_last = fresh
    num_shared = 0  # blocks that keep a reference and stay out of the queue
    i = 0
    try:
        for i, block in enumerate(blocks):  # noqa: B007 (i is read by the except clause)
            ref_cnt = block.ref_cnt
            if block._pool is not pool or ref_cnt <= 0:
                raise free_error(pool, block)
            if ref_cnt > 1:
                block.ref_cnt = ref_cnt - 1
                num_shared += 1
                continue
            block.ref_cnt = 0
            if fresh_first and block.block_hash is None:
                fresh_last.next_free = block
                block.prev_free = fresh_last
                fresh_last = block
            else:
                last.next_free = block
                block.prev_free = last
                last = block
    except (InvalidBlockError, AttributeError) as exc:
        _undo(blocks[:i], anchor, tail, fresh)
        if isinstance(exc, AttributeError):
            bad = type(blocks[i]).__name__
            raise TypeError(f"free_blocks takes KVCacheBlocks, got {bad}") from None
        raise
    last.next_free = tail
    tail.prev_free = last
    if fresh_last is not fresh:
        head = queue._head
        first: KVCacheBlock = head.next_free  # type: ignore[assignment]
        run: KVCacheBlock = fresh.next_free  # type: ignore[assignment]
        head.next_free = run
        run.prev_free = head
        fresh_last.next_free = first
        first.prev_free = fresh_last
        fresh.next_free = None
    queue.num_free_blocks += len(blocks) - num_shared


def _undo(
    done: Sequence[KVCacheBlock], anchor: KVCacheBlock, tail: KVCacheBlock, fresh: KVCacheBlock
) -> None:
    # Give back the references a failed release dropped and unlink its runs.
    for block in done:
        if block.ref_cnt == 0:
            block.prev_free = block.next_free = None
        block.ref_cnt += 1
    anchor.next_free = tail
    fresh.next_free = None


def release_per_level(
    pool: object,
    queues: Sequence[FreeKVCacheBlockQueue],
    blocks: Sequence[KVCacheBlock],
    fresh_first: bool,
) -> None:
    """Free ``blocks`` while retention priorities are in use: check all, then link each."""
    freed: list[KVCacheBlock] = []
    for i, block in enumerate(blocks):
        valid = isinstance(block, KVCacheBlock)
        if not valid or block.ref_cnt <= 0 or block._pool is not pool:
            for undo in blocks[:i]:
                undo.ref_cnt += 1
            if not valid:
                raise TypeError(f"free_blocks takes KVCacheBlocks, got {type(block).__name__}")
            raise free_error(pool, block)
        block.ref_cnt -= 1
        if block.ref_cnt == 0:
            freed.append(block)
    if fresh_first:
        queues[0].prepend_n([b for b in freed if b.block_hash is None])
        freed = [b for b in freed if b.block_hash is not None]
    for block in freed:
        queues[block.retention_priority].append(block)
