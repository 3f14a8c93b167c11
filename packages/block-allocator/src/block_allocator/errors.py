"""Exceptions raised by the block allocator: one class per kind of mistake.

One base class, :class:`BlockAllocatorError`. Each subclass also derives from the builtin
a caller would expect (``TypeError`` for a wrong type, ``ValueError`` for a value out of
range or a block in the wrong state, ``KeyError`` for an unknown id, ``RuntimeError`` for
exhaustion), so generic handlers keep working. vLLM raises bare ``ValueError`` or
``AssertionError`` in the same places (``vllm/v1/core/block_pool.py``,
``kv_cache_utils.py``); we name them, and every message names the parameter and the
allowed range.

Every public call checks all of its arguments before it changes anything, so after any of
these errors the allocator (pool, manager, request) is exactly as it was before the call.
"""

from __future__ import annotations

__all__ = [
    "ArgumentTypeError",
    "ArgumentValueError",
    "BlockAllocatorError",
    "DoubleFreeError",
    "ForeignBlockError",
    "InvalidBlockError",
    "NullBlockAccessError",
    "OutOfBlocksError",
    "RequestStateError",
    "UnknownRequestError",
]


class BlockAllocatorError(Exception):
    """Base class of every error raised by ``block_allocator``."""


class ArgumentTypeError(BlockAllocatorError, TypeError):
    """An argument has the wrong type (``bool`` and ``float`` are never counts or ids)."""


class ArgumentValueError(BlockAllocatorError, ValueError):
    """An argument has the right type but lies outside its allowed range or set."""


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


class NullBlockAccessError(InvalidBlockError):
    """A token position maps into the null block, a placeholder that stores nothing."""


class RequestStateError(BlockAllocatorError, ValueError):
    """A call does not fit the request's progress (e.g. more tokens than it holds)."""


class UnknownRequestError(BlockAllocatorError, KeyError):
    """A request id the :class:`~block_allocator.KVCacheManager` does not track."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "unknown request"
