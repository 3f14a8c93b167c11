"""Turns of a conversation are linked through the chained prefix-block ids."""

from __future__ import annotations

import numpy as np
import pytest

from frag_sim import ConfigError, Workload
from frag_sim.workload.sessions import link_turns


def _wl(rows: list[tuple[int, tuple[int, ...]]]) -> Workload:
    n = len(rows)
    return Workload(
        "s",
        np.arange(n, dtype=np.float64),
        np.array([p for p, _ in rows], dtype=np.int64),
        np.ones(n, dtype=np.int64),
        tuple(h for _, h in rows),
        hash_block_size=4,
    )


def test_a_conversation_links_and_a_shared_system_prompt_does_not() -> None:
    wl = _wl(
        [  # blocks of 4 tokens; an id stands for its block and everything before it
            (6, (1, 2)),  # system prompt (block 1) + a message: a first turn
            (6, (1, 3)),  # the same system prompt, another user: a first turn
            (10, (1, 14, 15)),  # shares only the system prompt with both: a first turn
            (13, (1, 5, 6, 7)),  # a new conversation; its full blocks end at 6
            (18, (1, 5, 6, 10, 11)),  # turn 2 of it: starts with 1, 5, 6
            (22, (1, 5, 6, 10, 12, 13)),  # turn 3: starts with turn 2's full blocks
        ]
    )
    s = link_turns(wl)
    # block 1 ends the full prompt of requests 0 and 1: a shared prefix, no link
    assert s.parent[:4] == (-1, -1, -1, -1)
    assert s.parent[4] == 3 and s.parent[5] == 4
    assert s.turn == (1, 1, 1, 1, 2, 3)
    assert s.follow_ups == 2 and s.sessions == 1


def test_needs_hash_ids() -> None:
    wl = Workload("x", np.zeros(1), np.ones(1, dtype=np.int64), np.ones(1, dtype=np.int64))
    with pytest.raises(ConfigError, match="hash_ids"):
        link_turns(wl)
