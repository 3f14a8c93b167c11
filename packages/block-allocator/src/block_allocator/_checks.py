"""Argument and state checks shared by the pool: each raises before anything changes."""

from __future__ import annotations

from collections.abc import Sequence

from .block import NUM_RETENTION_PRIORITIES, BlockHash, KVCacheBlock
from .errors import DoubleFreeError, ForeignBlockError, InvalidBlockError


def check_int(name: str, value: object, minimum: int, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}{why}, got {value}")
    return value


def check_owned(pool: object, blocks: Sequence[KVCacheBlock]) -> None:
    for block in blocks:
        if block._pool is not pool:
            raise ForeignBlockError(f"block {block.block_id} belongs to another BlockPool")


def check_in_use(pool: object, block: KVCacheBlock) -> None:
    if block._pool is not pool:
        raise ForeignBlockError(f"block {block.block_id} belongs to another BlockPool")
    if block.is_null:
        raise InvalidBlockError("the null block (block 0) cannot be cached or copied")
    if block.ref_cnt <= 0:
        raise InvalidBlockError(f"block {block.block_id} is free (ref_cnt == 0)")


def check_priority(priority: int) -> None:
    if not 0 <= priority < NUM_RETENTION_PRIORITIES:
        raise ValueError(
            f"retention priority must be in [0, {NUM_RETENTION_PRIORITIES - 1}], got {priority}"
        )


def free_error(pool: object, block: KVCacheBlock) -> InvalidBlockError:
    """The error for a block that ``free_blocks`` cannot release."""
    if block._pool is not pool:
        return ForeignBlockError(f"block {block.block_id} belongs to another BlockPool")
    if block.is_null:
        return InvalidBlockError("the null block (block 0) is never allocated or freed")
    return DoubleFreeError(f"block {block.block_id} freed more times than referenced")


def check_cache_args(
    pool: object,
    blocks: Sequence[KVCacheBlock],
    block_hashes: Sequence[BlockHash],
    token_ids: Sequence[int] | None,
    block_size: int | None,
    retention_priority: int,
) -> None:
    """Validate a ``cache_full_blocks`` call completely before it changes anything."""
    if len(blocks) != len(block_hashes):
        raise ValueError(f"{len(blocks)} blocks but {len(block_hashes)} block_hashes")
    check_priority(retention_priority)
    expected = None if block_size is None else len(blocks) * block_size
    if token_ids is not None and expected is not None and len(token_ids) != expected:
        raise ValueError(
            f"{len(blocks)} full blocks of block_size={block_size} hold "
            f"{expected} tokens, got {len(token_ids)} token_ids"
        )
    for block, block_hash in zip(blocks, block_hashes, strict=True):
        check_in_use(pool, block)
        if type(block_hash) is not bytes:
            raise TypeError(f"block hashes are bytes, got {type(block_hash).__name__}")
        if block.block_hash is not None and block.block_hash != block_hash:
            raise InvalidBlockError(f"block {block.block_id} is already cached under another hash")
