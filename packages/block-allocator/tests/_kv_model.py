"""A toy physical KV cache: slot -> token id, written through slot_mapping like a kernel.

Lets tests check the whole data path: whatever a request reads back through its block
table must be exactly its own tokens, whether the blocks came from a prefix hit, a fork or
a copy-on-write copy (the lab-06 idea without numpy).
"""

from __future__ import annotations

from typing import Any


class KVModel:
    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.slots: dict[int, int] = {}
        self.copies: list[tuple[int, int]] = []  # every copy applied, in order

    def apply_copies(self, pairs: list[tuple[int, int]]) -> None:
        bs = self.block_size
        self.copies += pairs
        for src, dst in pairs:
            for off in range(bs):
                if src * bs + off in self.slots:
                    self.slots[dst * bs + off] = self.slots[src * bs + off]
                else:
                    self.slots.pop(dst * bs + off, None)

    def step(self, manager: Any, request: Any, num_new_tokens: int) -> None:
        """Write the next ``num_new_tokens`` tokens and mark them computed."""
        self.apply_copies(manager.take_blocks_to_copy())
        start = request.num_computed_tokens
        slots = manager.slot_mapping(request, num_new_tokens)
        for pos, slot in zip(range(start, start + num_new_tokens), slots, strict=True):
            self.slots[slot] = request.all_token_ids[pos]
        request.num_computed_tokens += num_new_tokens

    def read(self, manager: Any, request: Any) -> list[int | None]:
        bs = self.block_size
        ids = manager.get_block_ids(request.request_id)
        return [
            self.slots.get(ids[pos // bs] * bs + pos % bs)
            for pos in range(request.num_computed_tokens)
        ]

    def check(self, manager: Any, request: Any) -> None:
        got = self.read(manager, request)
        want = list(request.all_token_ids[: request.num_computed_tokens])
        assert got == want, f"{request.request_id}: KV read back {got} != tokens {want}"
