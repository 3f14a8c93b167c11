"""Thin adapter over ``block_allocator``: the only module that touches its objects.

The paged policy runs the real :class:`block_allocator.KVCacheManager` when prefix
caching is on. One workaround lives here: ``Request`` validates every token id in Python
(33 µs for a 1,155-token prompt, against 4 µs without the check), which would dominate a
12k-request Mooncake replay, so requests built by the simulator (whose token ids are
generated, hence known valid) skip that check. If ``Request``'s layout changes, the
checked constructor is used instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from block_allocator import KVCacheBlock, KVCacheManager, Request

__all__ = ["KVCacheBlock", "KVCacheManager", "Request", "SimRequest", "make_manager"]


class SimRequest(Request):
    """A ``Request`` whose generated token ids are trusted (no per-token type check)."""

    def __init__(self, request_id: str, prompt_token_ids: Sequence[int]) -> None:
        super().__init__(request_id, prompt_token_ids[:1])
        try:
            self.prompt_token_ids = tuple(prompt_token_ids)
            self._all_token_ids = list(prompt_token_ids)
            fast = self.num_tokens == len(prompt_token_ids)
        except AttributeError:
            fast = False
        if not fast:  # the allocator changed its layout: take the checked path
            Request.__init__(self, request_id, prompt_token_ids)
        self._fast = fast

    def append_output_token_ids(self, token_ids: int | Sequence[int]) -> None:  # type: ignore[override]
        if not self._fast or self.block_size is not None or isinstance(token_ids, int):
            super().append_output_token_ids(token_ids)  # hashing on: the checked path
            return
        self.output_token_ids.extend(token_ids)
        self._all_token_ids.extend(token_ids)


def make_manager(num_usable_blocks: int, block_size: int, enable_caching: bool) -> KVCacheManager:
    """A manager with ``num_usable_blocks`` blocks plus the null block."""
    return KVCacheManager(num_usable_blocks + 1, block_size, enable_caching=enable_caching)
