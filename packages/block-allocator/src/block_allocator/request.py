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

from array import array
from collections.abc import Iterable, Sequence

from .block import NUM_RETENTION_PRIORITIES, BlockHash
from .hashing import block_extra_keys, hash_block_tokens

__all__ = ["Request"]


def _check_tokens(token_ids: Iterable[int], what: str) -> list[int]:
    tokens = list(token_ids)
    try:
        array("q", tokens)  # type and range check at C speed (~5 ns per token)
        ok = not tokens or min(tokens) >= 0
    except (TypeError, OverflowError):
        ok = False
    if not ok:
        bad = next(t for t in tokens if not isinstance(t, int) or not 0 <= t < 2**63)
        raise TypeError(f"{what} must be non-negative ints below 2**63, got {bad!r}")
    return tokens


class Request:
    """One sequence: prompt, generated tokens, extra hash keys and its full-block hashes.

    ``mm_hashes`` holds ``(identifier, offset, length)`` per multimodal item. A
    ``retention_priority`` > 0 marks the request's cached blocks (or only those inside
    its first ``retention_num_tokens`` tokens, e.g. a system prompt) for later eviction.
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
    ) -> None:
        if not isinstance(request_id, str) or not request_id:
            raise ValueError(f"request_id must be a non-empty str, got {request_id!r}")
        tokens = _check_tokens(prompt_token_ids, "prompt_token_ids")
        if not tokens:
            raise ValueError("prompt_token_ids must hold at least one token")
        if not 0 <= retention_priority < NUM_RETENTION_PRIORITIES:
            raise ValueError(
                f"retention_priority must be in [0, {NUM_RETENTION_PRIORITIES - 1}], "
                f"got {retention_priority}"
            )
        if retention_num_tokens is not None and retention_num_tokens < 0:
            raise ValueError(f"retention_num_tokens must be >= 0, got {retention_num_tokens}")
        self.request_id = request_id
        self.prompt_token_ids: tuple[int, ...] = tuple(tokens)
        self.output_token_ids: list[int] = []
        self._all_token_ids = tokens
        self.lora_id = lora_id
        self.cache_salt = cache_salt
        self.mm_hashes: tuple[tuple[str, int, int], ...] = tuple(mm_hashes)
        self.retention_priority = retention_priority
        self.retention_num_tokens = retention_num_tokens
        self.num_computed_tokens = 0
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

    def append_output_token_ids(self, token_ids: int | Iterable[int]) -> None:
        """Append sampled token(s); hashes of blocks they complete are added at once."""
        new = _check_tokens([token_ids] if isinstance(token_ids, int) else token_ids, "token ids")
        self.output_token_ids.extend(new)
        self._all_token_ids.extend(new)
        if self.block_size is not None:
            self._update_block_hashes()

    def bind_block_size(self, block_size: int) -> None:
        """Fix the block size the hashes are computed at (done by the manager on first use)."""
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size <= 0:
            raise ValueError(f"block_size must be an int > 0, got {block_size!r}")
        if self.block_size is None:
            self.block_size = block_size
            self._update_block_hashes()
        elif self.block_size != block_size:
            raise ValueError(
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
        plain = self.lora_id is None and self.cache_salt is None and not self.mm_hashes
        for i in range(len(hashes), len(tokens) // size):
            extra = (
                None
                if plain
                else block_extra_keys(
                    i,
                    size,
                    lora_id=self.lora_id,
                    cache_salt=self.cache_salt,
                    mm_hashes=self.mm_hashes,
                )
            )
            parent = hashes[-1] if hashes else None
            hashes.append(hash_block_tokens(parent, tokens[i * size : (i + 1) * size], extra))

    def _clone(self, request_id: str) -> Request:
        # A fork: same tokens, keys, progress and hashes under a new id.
        child = Request(
            request_id,
            self.prompt_token_ids,
            lora_id=self.lora_id,
            cache_salt=self.cache_salt,
            mm_hashes=self.mm_hashes,
            retention_priority=self.retention_priority,
            retention_num_tokens=self.retention_num_tokens,
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
