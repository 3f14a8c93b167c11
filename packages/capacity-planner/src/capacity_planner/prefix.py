"""Prefix caching at block granularity: U users sharing a P-token prefix, S tokens each.

vLLM hashes only *full* blocks (`hash_block_tokens(parent_hash, block_token_ids, extra_keys)`
in `vllm/v1/core/kv_cache_utils.py`; block-allocator's `hash_block_tokens` here), so of a
shared prefix of P tokens only `floor(P / block_size)` blocks are shared; the tail of its
last, partial block is private to every request together with the request's own tokens:

    without caching: U * cdiv(P + S, block_size)
    with caching:    floor(P / block_size) + U * cdiv(P mod block_size + S, block_size)

Decode growth is ignored (each user holds only prompt tokens), as in the Phase 02 exercises, ex. 10.
"""

from __future__ import annotations

from dataclasses import dataclass

from block_allocator.kv_cache_spec import cdiv
from capacity_planner._checks import check_int_at_least
from capacity_planner.errors import SettingError

__all__ = ["PrefixCachingEstimate", "prefix_caching_estimate"]


@dataclass(frozen=True)
class PrefixCachingEstimate:
    """Blocks (and bytes, when a block's size is known) with and without prefix caching."""

    prefix_tokens: int
    users: int
    suffix_tokens: int
    block_size: int
    shared_blocks: int
    blocks_per_user_without: int
    blocks_per_user_with: int
    blocks_without: int
    blocks_with: int
    bytes_per_block: int | None = None
    pool_blocks: int | None = None

    @property
    def multiplier(self) -> float:
        """How many times more users the same memory holds with prefix caching."""
        return self.blocks_without / self.blocks_with

    @property
    def bytes_without(self) -> int | None:
        return None if self.bytes_per_block is None else self.blocks_without * self.bytes_per_block

    @property
    def bytes_with(self) -> int | None:
        return None if self.bytes_per_block is None else self.blocks_with * self.bytes_per_block

    @property
    def users_that_fit_without(self) -> int | None:
        """Concurrent users a pool of `pool_blocks` holds without prefix caching."""
        if self.pool_blocks is None:
            return None
        return self.pool_blocks // self.blocks_per_user_without

    @property
    def users_that_fit_with(self) -> int | None:
        if self.pool_blocks is None:
            return None
        if self.pool_blocks < self.shared_blocks:
            return 0
        return (self.pool_blocks - self.shared_blocks) // self.blocks_per_user_with


def prefix_caching_estimate(
    prefix_tokens: int,
    users: int,
    suffix_tokens: int,
    block_size: int = 16,
    *,
    bytes_per_block: int | None = None,
    pool_blocks: int | None = None,
) -> PrefixCachingEstimate:
    """Blocks with and without prefix caching (the Phase 02 exercises, ex. 10: 4096, 1000, 50)."""
    p = check_int_at_least("prefix_tokens", prefix_tokens, 0)
    u = check_int_at_least("users", users, 1)
    s = check_int_at_least("suffix_tokens", suffix_tokens, 0)
    bs = check_int_at_least("block_size", block_size, 1)
    if p + s == 0:
        raise SettingError("prefix_tokens + suffix_tokens must be > 0")
    if bytes_per_block is not None:
        check_int_at_least("bytes_per_block", bytes_per_block, 1)
    if pool_blocks is not None:
        check_int_at_least("pool_blocks", pool_blocks, 0)
    shared = p // bs
    per_without = cdiv(p + s, bs)
    per_with = cdiv(p % bs + s, bs)
    return PrefixCachingEstimate(
        prefix_tokens=p,
        users=u,
        suffix_tokens=s,
        block_size=bs,
        shared_blocks=shared,
        blocks_per_user_without=per_without,
        blocks_per_user_with=per_with,
        blocks_without=u * per_without,
        blocks_with=shared + u * per_with,
        bytes_per_block=bytes_per_block,
        pool_blocks=pool_blocks,
    )
