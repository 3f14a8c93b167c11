"""A request as the KV-cache manager sees it: tokens, progress and block hashes.

Mirrors the KV-cache-facing part of ``vllm/v1/request.py`` (``Request`` with its
``block_hashes`` kept up to date by a block hasher built in ``kv_cache_utils.py``). The
manager binds a ``block_size`` the first time it sees the request; from then on every
appended token that completes a block extends ``block_hashes``, so a preempted request
finds its own generated blocks in the cache when it comes back.

``num_computed_tokens`` belongs to the caller (the scheduler): it is advanced after each
step, never by the manager.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from ._checks import (
    check_bool,
    check_extra_keys,
    check_int,
    check_optional_int,
    check_priority,
    check_request_id,
    type_name,
)
from .block import BlockHash
from .errors import ArgumentTypeError, ArgumentValueError, RequestStateError
from .hashing import _block_extra_keys, _hash_plain_blocks, hash_block_tokens

__all__ = ["Request"]


_MAX_TOKEN_ID = 2**63  # token ids are hashed as int64


def _check_tokens(token_ids: Iterable[int], what: str) -> list[int]:
    """``token_ids`` as a new list, or TypeError when one is not an int in [0, 2**63).

    One ``struct.pack`` as unsigned 64-bit does the type and range check at C speed (about
    6 ns per token, against 25 for ``array`` plus ``min``): it rejects non-integers,
    negatives and values >= 2**64, and the high byte of each little-endian word, all
    below 0x80 (``isascii``), rules out [2**63, 2**64).
    """
    tokens = list(token_ids)
    try:
        ok = struct.pack(f"<{len(tokens)}Q", *tokens)[7::8].isascii()
    except (struct.error, TypeError):
        ok = False
    if not ok:
        bad = next(t for t in tokens if not isinstance(t, int) or not 0 <= t < _MAX_TOKEN_ID)
        raise ArgumentTypeError(f"{what} must be non-negative ints below 2**63, got {bad!r}")
    return tokens


class Request:
    """One sequence: prompt, generated tokens, extra hash keys and its full-block hashes.

    ``mm_hashes`` holds ``(identifier, offset, length)`` per multimodal item. A
    ``retention_priority`` > 0 marks the request's cached blocks (or only those inside
    its first ``retention_num_tokens`` tokens, e.g. a system prompt) for later eviction.

    ``validate=False`` (here and in :meth:`append_output_token_ids`) skips the per-token
    type and range check for callers whose ids are ints in [0, 2**63) by construction (a
    simulator, a tokenizer's output). Other arguments are still checked. An invalid id
    slipped past it surfaces later, as a TypeError from hashing, with the request's state
    then undefined.
    """

    def __init__(
        self,
        request_id: str,
        prompt_token_ids: Sequence[int],
        *,
        lora_id: int | None = None,
        cache_salt: str | None = None,
        mm_hashes: Sequence[tuple[str, int, int]] = (),
        retention_priority: int = 0,
        retention_num_tokens: int | None = None,
        block_size: int | None = None,
        prefix_cache_hit_limit: int | None = None,
        validate: bool = True,
    ) -> None:
        check_request_id("request_id", request_id)
        check_bool("validate", validate)
        if isinstance(prompt_token_ids, (str, bytes)) or not isinstance(prompt_token_ids, Iterable):
            raise ArgumentTypeError(
                f"prompt_token_ids must be a sequence of ints, got {type_name(prompt_token_ids)}"
            )
        if validate:
            tokens = _check_tokens(prompt_token_ids, "prompt_token_ids")
        else:
            tokens = list(prompt_token_ids)
        if not tokens:
            raise ArgumentValueError("prompt_token_ids must hold at least one token, got 0")
        mm = check_extra_keys(lora_id, cache_salt, mm_hashes)
        check_priority(retention_priority)
        check_optional_int("retention_num_tokens", retention_num_tokens, 0)
        check_optional_int("block_size", block_size, 1)
        check_optional_int("prefix_cache_hit_limit", prefix_cache_hit_limit, 0)
        self.request_id = request_id
        self.prompt_token_ids: tuple[int, ...] = tuple(tokens)
        self.output_token_ids: list[int] = []
        self._all_token_ids = tokens
        self.lora_id = lora_id
        self.cache_salt = cache_salt
        self.mm_hashes: tuple[tuple[str, int, int], ...] = mm
        self.retention_priority = retention_priority
        self.retention_num_tokens = retention_num_tokens
        self.prefix_cache_hit_limit = prefix_cache_hit_limit
        self.num_computed_tokens = 0
        self.num_preemptions = 0
        self.block_hashes: list[BlockHash] = []
        self.block_size: int | None = None
        if block_size is not None:
            self.bind_block_size(block_size)

    @property
    def all_token_ids(self) -> Sequence[int]:
        """Prompt then output tokens (a live view; extend it with append_output_token_ids)."""
        return self._all_token_ids

    @property
    def num_tokens(self) -> int:
        return len(self._all_token_ids)

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    def get_max_cache_hit_length(self, bound: int | None = None) -> int:
        """Longest prefix-cache hit allowed, in tokens (vLLM 0.34's ``Request`` method).

        ``min(num_tokens - 1, prefix_cache_hit_limit, bound)``: the last token is always
        recomputed so there are logits to sample from; ``prefix_cache_hit_limit`` (0 =
        never read the cache) and ``bound`` can only lower it.
        """
        check_optional_int("bound", bound, 0)
        limits = (self.num_tokens - 1, self.prefix_cache_hit_limit, bound)
        return min(limit for limit in limits if limit is not None)

    def append_output_token_ids(
        self, token_ids: int | Iterable[int], *, validate: bool = True
    ) -> None:
        """Append sampled token(s); hashes of blocks they complete are added at once.

        ``validate=False`` skips the per-token check (see the class docstring).
        """
        if type(token_ids) is int:  # one decode step: the common case
            if validate and not 0 <= token_ids < _MAX_TOKEN_ID:
                raise ArgumentTypeError(  # the same class as for a list of ids
                    f"token ids must be non-negative ints below 2**63, got {token_ids}"
                )
            self.output_token_ids.append(token_ids)
            self._all_token_ids.append(token_ids)
        else:
            if validate.__class__ is not bool:
                check_bool("validate", validate)  # type: ignore[unreachable]
            if isinstance(token_ids, (str, bytes, bool)) or not isinstance(token_ids, Iterable):
                raise ArgumentTypeError(
                    f"token_ids must be an int or a sequence of ints, got {type_name(token_ids)}"
                )
            new = _check_tokens(token_ids, "token ids") if validate else list(token_ids)
            self.output_token_ids.extend(new)
            self._all_token_ids.extend(new)
        if self.block_size is not None:
            self._update_block_hashes()

    def bind_block_size(self, block_size: int) -> None:
        """Fix the block size the hashes are computed at (done by the manager on first use)."""
        check_int("block_size", block_size, 1)
        if self.block_size is None:
            self.block_size = block_size
            self._update_block_hashes()
        elif self.block_size != block_size:
            raise RequestStateError(
                f"request {self.request_id!r} is hashed at block_size={self.block_size}, "
                f"cannot use it with block_size={block_size}"
            )

    def block_retention_priority(self, block_index: int) -> int:
        """Retention priority of logical block ``block_index`` of this request."""
        if self.retention_num_tokens is None:
            return self.retention_priority
        assert self.block_size is not None
        inside = (block_index + 1) * self.block_size <= self.retention_num_tokens
        return self.retention_priority if inside else 0

    def _update_block_hashes(self) -> None:
        size: int = self.block_size  # type: ignore[assignment]
        tokens = self._all_token_ids
        hashes = self.block_hashes
        done = len(hashes)
        if (done + 1) * size > len(tokens):
            return  # no newly completed block (every decode step but one per block)
        parent = hashes[-1] if hashes else None
        if self.lora_id is None and self.cache_salt is None and not self.mm_hashes:
            _hash_plain_blocks(parent, tokens[done * size :], size, hashes)
            return
        for i in range(done, len(tokens) // size):
            extra = _block_extra_keys(i, size, self.lora_id, self.cache_salt, self.mm_hashes)
            parent = hash_block_tokens(parent, tokens[i * size : (i + 1) * size], extra)
            hashes.append(parent)

    def _clone(self, request_id: str) -> Request:
        # A fork: same tokens, keys, progress and hashes under a new id.
        child = Request(
            request_id,
            self.prompt_token_ids,
            validate=False,
            lora_id=self.lora_id,
            cache_salt=self.cache_salt,
            mm_hashes=self.mm_hashes,
            retention_priority=self.retention_priority,
            retention_num_tokens=self.retention_num_tokens,
            prefix_cache_hit_limit=self.prefix_cache_hit_limit,
        )
        child.output_token_ids = list(self.output_token_ids)
        child._all_token_ids = list(self._all_token_ids)
        child.num_computed_tokens = self.num_computed_tokens
        child.block_hashes = list(self.block_hashes)
        child.block_size = self.block_size
        return child

    def __repr__(self) -> str:
        return (
            f"Request({self.request_id!r}, num_tokens={self.num_tokens}, "
            f"num_computed_tokens={self.num_computed_tokens}, "
            f"num_block_hashes={len(self.block_hashes)})"
        )
