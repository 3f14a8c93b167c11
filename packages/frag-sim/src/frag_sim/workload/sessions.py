"""Multi-turn sessions in a trace: which request continues which earlier turn.

The Mooncake traces carry no session id, but their ``hash_ids`` chain the prefix blocks
(each id stands for a 512-token block *and* everything before it), so a later turn of a
conversation starts with the full blocks of the turn before it: its prompt is the old
context plus the old answer plus a new message. :func:`link_turns` links request ``j`` to
the latest earlier request ``i`` whose last full prompt block is the deepest block of
``j``'s prompt seen before ``j``. A block that ends the full prompt of several requests
is a shared prefix (a system prompt), not a conversation, and links nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..errors import ConfigError
from .requests import Workload

__all__ = ["Sessions", "link_turns"]


@dataclass(frozen=True)
class Sessions:
    parent: tuple[int, ...]  # per request: the turn it continues, or -1
    turn: tuple[int, ...]  # per request: 1 for a first turn, parent's turn + 1 otherwise

    @property
    def follow_ups(self) -> int:
        return sum(1 for p in self.parent if p >= 0)

    @property
    def sessions(self) -> int:
        """Conversations with at least two linked turns."""
        return len({self._root(i) for i, p in enumerate(self.parent) if p >= 0})

    def _root(self, i: int) -> int:
        while self.parent[i] >= 0:
            i = self.parent[i]
        return i


def link_turns(wl: Workload) -> Sessions:
    """Link each request of ``wl`` to the earlier turn it continues (see module doc)."""
    if wl.hash_ids is None:
        raise ConfigError(f"workload {wl.name!r} has no hash_ids: turns cannot be linked")
    hb = wl.hash_block_size
    prompts = wl.prompt_len.tolist()
    ends = Counter(h[p // hb - 1] for h, p in zip(wl.hash_ids, prompts, strict=True) if p >= hb)
    seen: set[int] = set()
    last_of: dict[int, int] = {}
    parent: list[int] = []
    turn: list[int] = []
    for j, (h, p) in enumerate(zip(wl.hash_ids, prompts, strict=True)):
        par = -1
        for b in reversed(h):
            if b in seen:
                if ends[b] == 1 and b in last_of:
                    par = last_of[b]
                break
        parent.append(par)
        turn.append(turn[par] + 1 if par >= 0 else 1)
        seen.update(h)
        if p >= hb:
            last_of[h[p // hb - 1]] = j
    return Sessions(tuple(parent), tuple(turn))
