"""The free-block queue: an intrusive doubly linked list with O(1) removal from the middle.

Mirrors ``FreeKVCacheBlockQueue`` in ``vllm/v1/core/kv_cache_utils.py`` (vLLM PR #9972 for
the linked list, PR #21005 for the sentinels, PR #21222 for the bulk operations). The
links live in the blocks themselves (``prev_free``/``next_free``), so no operation allocates
a Python object, and a prefix-cache hit on a free block unlinks it in O(1) where a
``deque.remove`` would scan the whole queue (benchmarked in ``benchmarks/``).

Head = next to be evicted/reused; tail = most recently freed. Two sentinel blocks bracket
the list, so every real block always has both neighbours and no branch checks for ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ._checks import check_int, type_name
from .block import KVCacheBlock
from .errors import ArgumentTypeError, InvalidBlockError, OutOfBlocksError

__all__ = ["FreeKVCacheBlockQueue"]


class FreeKVCacheBlockQueue:
    """Free blocks in eviction order, head first.

    ``popleft``/``popleft_n`` take from the head, ``append``/``append_n`` add at the tail,
    ``prepend_n`` adds at the head (vLLM 0.33's "fresh first" order), ``remove`` unlinks a
    block wherever it is. All are O(1) per block.
    """

    __slots__ = ("_head", "_tail", "num_free_blocks")

    def __init__(self, blocks: Iterable[KVCacheBlock] = ()) -> None:
        self._head = KVCacheBlock(-1)
        self._tail = KVCacheBlock(-1)
        self._head.next_free = self._tail
        self._tail.prev_free = self._head
        self.num_free_blocks = 0
        self.append_n(blocks)

    def __len__(self) -> int:
        return self.num_free_blocks

    def __iter__(self) -> Iterator[KVCacheBlock]:
        tail = self._tail
        cur = self._head.next_free
        while cur is not tail and cur is not None:
            yield cur
            cur = cur.next_free

    def popleft(self) -> KVCacheBlock:
        """Unlink and return the head block."""
        if self.num_free_blocks == 0:
            raise OutOfBlocksError(1, 0)
        head = self._head
        block: KVCacheBlock = head.next_free  # type: ignore[assignment]
        nxt: KVCacheBlock = block.next_free  # type: ignore[assignment]
        head.next_free = nxt
        nxt.prev_free = head
        block.prev_free = block.next_free = None
        self.num_free_blocks -= 1
        return block

    def popleft_n(self, n: int) -> list[KVCacheBlock]:
        """Unlink and return the first ``n`` blocks, head first."""
        check_int("n", n, 0)
        if n > self.num_free_blocks:
            raise OutOfBlocksError(n, self.num_free_blocks)
        out: list[KVCacheBlock] = []
        if n == 0:
            return out
        push = out.append
        cur: KVCacheBlock = self._head.next_free  # type: ignore[assignment]
        for _ in range(n):
            nxt: KVCacheBlock = cur.next_free  # type: ignore[assignment]
            cur.prev_free = cur.next_free = None
            push(cur)
            cur = nxt
        self._head.next_free = cur
        cur.prev_free = self._head
        self.num_free_blocks -= n
        return out

    def remove(self, block: KVCacheBlock) -> None:
        """Unlink ``block`` from wherever it sits in the queue, in O(1)."""
        try:
            prev = block.prev_free
            nxt = block.next_free
        except AttributeError:
            raise ArgumentTypeError(
                f"block must be a KVCacheBlock, got {type_name(block)}"
            ) from None
        if prev is None or nxt is None:
            raise InvalidBlockError(f"block {block.block_id} is not in the free queue")
        prev.next_free = nxt
        nxt.prev_free = prev
        block.prev_free = block.next_free = None
        self.num_free_blocks -= 1

    def append(self, block: KVCacheBlock) -> None:
        """Link ``block`` at the tail (it becomes the last to be evicted)."""
        try:
            linked = block.prev_free  # a queued block has both links set (I3): one suffices
        except AttributeError:
            raise ArgumentTypeError(
                f"block must be a KVCacheBlock, got {type_name(block)}"
            ) from None
        if linked is not None:
            raise InvalidBlockError(f"block {block.block_id} is already in a free queue")
        tail = self._tail
        last: KVCacheBlock = tail.prev_free  # type: ignore[assignment]
        last.next_free = block
        block.prev_free = last
        block.next_free = tail
        tail.prev_free = block
        self.num_free_blocks += 1

    def append_n(self, blocks: Iterable[KVCacheBlock]) -> None:
        """Link ``blocks`` at the tail, in the order given."""
        tail = self._tail
        self._link_run(tail.prev_free, tail, blocks)  # type: ignore[arg-type]

    def prepend_n(self, blocks: Iterable[KVCacheBlock]) -> None:
        """Link ``blocks`` at the head, in the order given (the first one is reused first)."""
        head = self._head
        self._link_run(head, head.next_free, blocks)  # type: ignore[arg-type]

    def _link_run(
        self, before: KVCacheBlock, after: KVCacheBlock, blocks: Iterable[KVCacheBlock]
    ) -> None:
        # Splice `blocks` between two adjacent nodes; all or nothing.
        last = before
        count = 0
        for block in blocks:
            if (
                block.__class__ is not KVCacheBlock
                or block.prev_free is not None
                or block.next_free is not None
            ):
                self._unlink_run(before, count)
                before.next_free = after
                after.prev_free = before
                if block.__class__ is not KVCacheBlock:
                    raise ArgumentTypeError(
                        f"blocks must hold KVCacheBlocks, got {type_name(block)}"
                    )
                raise InvalidBlockError(f"block {block.block_id} is already in a free queue")
            last.next_free = block
            block.prev_free = last
            last = block
            count += 1
        last.next_free = after
        after.prev_free = last
        self.num_free_blocks += count

    @staticmethod
    def _unlink_run(anchor: KVCacheBlock, count: int) -> None:
        # Undo a partly linked bulk insert: clear the links of the `count` blocks after anchor.
        cur = anchor.next_free
        for _ in range(count):
            assert cur is not None
            nxt = cur.next_free
            cur.prev_free = cur.next_free = None
            cur = nxt

    def get_all_free_blocks(self) -> list[KVCacheBlock]:
        """Every block in the queue, head first (O(n); for tests and debugging)."""
        return list(self)
