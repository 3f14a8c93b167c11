"""Exceptions raised by the block allocator.

One base class, :class:`BlockAllocatorError`, and one subclass per kind of misuse. Each
subclass also derives from the builtin a caller would expect (``ValueError`` for bad
arguments, ``KeyError`` for unknown ids, ``RuntimeError`` for exhaustion), so generic
handlers keep working. vLLM raises bare ``ValueError``/``AssertionError`` in the same
places (``vllm/v1/core/block_pool.py``, ``kv_cache_utils.py``); we name them.

Every operation that raises leaves the allocator exactly as it was before the call.
"""

from __future__ import annotations

__all__ = [
    "BlockAllocatorError",
    "DoubleFreeError",
    "ForeignBlockError",
    "InvalidBlockError",
    "OutOfBlocksError",
    "UnknownRequestError",
]


class BlockAllocatorError(Exception):
    """Base class of every error raised by ``block_allocator``."""


class OutOfBlocksError(BlockAllocatorError, RuntimeError):
    """More blocks were requested than the pool has free (cached free blocks included)."""

    def __init__(self, requested: int, available: int) -> None:
        super().__init__(f"need {requested} blocks, {available} free")
        self.requested = requested
        self.available = available


class InvalidBlockError(BlockAllocatorError, ValueError):
    """A block was used in a way its state forbids (null block, not in use, hash clash...)."""


class DoubleFreeError(InvalidBlockError):
    """A block was freed more times than it was referenced (``ref_cnt`` would go below 0)."""


class ForeignBlockError(InvalidBlockError):
    """A block that belongs to another :class:`~block_allocator.BlockPool` was passed in."""


class UnknownRequestError(BlockAllocatorError, KeyError):
    """A request id the :class:`~block_allocator.KVCacheManager` does not track."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "unknown request"
