"""Argument and state checks shared by the public entry points; each raises before any change.

Every message names the parameter and the allowed range or set. ``bool`` is refused where
an int is expected (``True`` as a block count is a bug, not a 1), and so are floats, even
integral ones, because a float count or level means the caller computed something else.
"""

from __future__ import annotations

from collections.abc import Sequence

from .block import NUM_RETENTION_PRIORITIES, BlockHash, KVCacheBlock
from .errors import (
    ArgumentTypeError,
    ArgumentValueError,
    DoubleFreeError,
    ForeignBlockError,
    InvalidBlockError,
)

_HASH_BYTES = 32


def type_name(value: object) -> str:
    return "None" if value is None else type(value).__name__


def check_int(
    name: str, value: object, minimum: int, why: str = "", maximum: int | None = None
) -> int:
    """``value`` as an int in ``[minimum, maximum]``; bools and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        bound = f"[{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ArgumentTypeError(f"{name} must be an int {bound}{why}, got {type_name(value)}")
    if value < minimum:
        raise ArgumentValueError(f"{name} must be >= {minimum}{why}, got {value}")
    if maximum is not None and value > maximum:
        raise ArgumentValueError(f"{name} must be in [{minimum}, {maximum}]{why}, got {value}")
    return value


def check_optional_int(name: str, value: object, minimum: int) -> int | None:
    return None if value is None else check_int(name, value, minimum, " or None")


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be True or False, got {type_name(value)}")
    return value


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ArgumentValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_priority(value: object, name: str = "retention_priority") -> int:
    return check_int(name, value, 0, maximum=NUM_RETENTION_PRIORITIES - 1)


def check_hash(name: str, value: object, optional: bool = False) -> BlockHash | None:
    if value is None and optional:
        return None
    if type(value) is not bytes or len(value) != _HASH_BYTES:
        allowed = "None or a 32-byte BlockHash" if optional else "a 32-byte BlockHash"
        shown = f"{len(value)} bytes" if isinstance(value, bytes) else type_name(value)
        raise ArgumentTypeError(f"{name} must be {allowed}, got {shown}")
    return value


def check_block_list(pool: object, blocks: object, name: str = "blocks") -> Sequence[KVCacheBlock]:
    """``blocks`` as a list or tuple of blocks of ``pool`` (the null block included)."""
    if not isinstance(blocks, (list, tuple)):
        raise ArgumentTypeError(
            f"{name} must be a list or tuple of KVCacheBlocks, got {type_name(blocks)}"
        )
    for block in blocks:
        check_block(pool, block, name)
    return blocks


def check_block(pool: object, block: object, name: str = "block") -> KVCacheBlock:
    if not isinstance(block, KVCacheBlock):
        raise ArgumentTypeError(f"{name} must hold KVCacheBlocks, got {type_name(block)}")
    if block._pool is not pool:
        raise ForeignBlockError(f"block {block.block_id} belongs to another BlockPool")
    return block


def check_in_use(pool: object, block: object) -> KVCacheBlock:
    checked = check_block(pool, block)
    if checked.is_null:
        raise InvalidBlockError("the null block (block 0) cannot be cached or copied")
    if checked.ref_cnt <= 0:
        raise InvalidBlockError(f"block {checked.block_id} is free (ref_cnt == 0)")
    return checked


def free_error(pool: object, block: object) -> BaseException:
    """The error for a block that ``free_blocks`` cannot release."""
    if not isinstance(block, KVCacheBlock):
        return ArgumentTypeError(f"blocks must hold KVCacheBlocks, got {type_name(block)}")
    if block._pool is not pool:
        return ForeignBlockError(f"block {block.block_id} belongs to another BlockPool")
    if block.is_null:
        return InvalidBlockError("the null block (block 0) is never allocated or freed")
    return DoubleFreeError(f"block {block.block_id} freed more times than referenced")


def check_cache_args(
    pool: object,
    blocks: object,
    block_hashes: object,
    parent_block_hash: object,
    token_ids: object,
    block_size: int | None,
    lora_id: object,
    retention_priority: object,
) -> None:
    """Validate a ``cache_full_blocks`` call completely before it changes anything."""
    check_block_list(pool, blocks)
    if not isinstance(block_hashes, (list, tuple)):
        raise ArgumentTypeError(
            f"block_hashes must be a list or tuple, got {type_name(block_hashes)}"
        )
    assert isinstance(blocks, (list, tuple))
    if len(blocks) != len(block_hashes):
        raise ArgumentValueError(
            f"block_hashes must hold one hash per block: {len(blocks)} blocks, "
            f"got {len(block_hashes)} block_hashes"
        )
    check_hash("parent_block_hash", parent_block_hash, optional=True)
    check_optional_int("lora_id", lora_id, 0)
    check_priority(retention_priority)
    if token_ids is not None:
        if not isinstance(token_ids, (list, tuple)):
            raise ArgumentTypeError(
                f"token_ids must be a list, tuple or None, got {type_name(token_ids)}"
            )
        for token in token_ids:
            check_int("token_ids[i]", token, 0)
        if block_size is not None and len(token_ids) != len(blocks) * block_size:
            raise ArgumentValueError(
                f"token_ids must hold {len(blocks) * block_size} tokens ({len(blocks)} full "
                f"blocks of block_size={block_size}), got {len(token_ids)}"
            )
    for block, block_hash in zip(blocks, block_hashes, strict=True):
        check_in_use(pool, block)
        check_hash("block_hashes[i]", block_hash)
        if block.block_hash is not None and block.block_hash != block_hash:
            raise InvalidBlockError(f"block {block.block_id} is already cached under another hash")


def check_mm_hashes(mm_hashes: object) -> tuple[tuple[str, int, int], ...]:
    """``mm_hashes`` as a tuple of ``(identifier: str, offset: int >= 0, length: int >= 1)``."""
    if isinstance(mm_hashes, (str, bytes)) or not isinstance(mm_hashes, (list, tuple)):
        raise ArgumentTypeError(
            f"mm_hashes must be a list or tuple of (identifier, offset, length), "
            f"got {type_name(mm_hashes)}"
        )
    items = []
    for i, item in enumerate(mm_hashes):
        if not isinstance(item, tuple) or len(item) != 3:
            raise ArgumentTypeError(
                f"mm_hashes[{i}] must be a tuple (identifier: str, offset: int, length: int), "
                f"got {item!r}"
            )
        identifier, offset, length = item
        if not isinstance(identifier, str) or not identifier:
            raise ArgumentTypeError(
                f"mm_hashes[{i}] identifier must be a non-empty str, got {identifier!r}"
            )
        check_int(f"mm_hashes[{i}] offset", offset, 0)
        check_int(f"mm_hashes[{i}] length", length, 1)
        items.append((identifier, offset, length))
    return tuple(items)


def check_request_id(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{name} must be a non-empty str, got {type_name(value)}")
    if not value:
        raise ArgumentValueError(f"{name} must be a non-empty str, got ''")
    return value


def check_extra_keys(
    lora_id: object, cache_salt: object, mm_hashes: object
) -> tuple[tuple[str, int, int], ...]:
    """Check the hash's extra keys; returns ``mm_hashes`` as a tuple of tuples."""
    check_optional_int("lora_id", lora_id, 0)
    if cache_salt is not None:
        if not isinstance(cache_salt, str):
            raise ArgumentTypeError(
                f"cache_salt must be a non-empty str or None, got {type_name(cache_salt)}"
            )
        if not cache_salt:
            raise ArgumentValueError("cache_salt must be a non-empty str or None, got ''")
    return check_mm_hashes(mm_hashes)
