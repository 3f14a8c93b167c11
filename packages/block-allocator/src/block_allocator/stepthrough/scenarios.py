"""Named scenarios for the step-through page, each narrated as it runs.

- ``biography``: the life of a cached block (Phase 02 lab-05, "share and evict"): sharing,
  reverse-order free, an eviction and the later miss it causes, a revival from the middle
  of the free queue, and the ``num_tokens - 1`` cap on a hit.
- ``beam``: vLLM v0's beam-search fork with copy-on-write (``BlockSpaceManager.fork``;
  vLLM v1 has no fork), as the Phase 02 exercises (ex. 7) and the 300-line capstone
  (step 04) build it.
- ``serving``: a short serving run in the spirit of the fragmentation simulator: requests
  with a shared system prompt arrive, decode round-robin, finish and free; an admission
  is refused while the pool is short.

The narration reads its numbers off the calls' results, so it cannot drift from what the
allocator did.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ..kv_cache_manager import KVCacheManager
from ..request import Request
from .recorder import Recorder

__all__ = ["SCENARIOS", "record_scenario"]

PREFIX = list(range(100, 108))  # two full blocks at block size 4


def _ids(blocks: object) -> str:
    """Blocks (or block ids) as "#1, #2"."""
    if not isinstance(blocks, list):
        return "none"
    return ", ".join(f"#{getattr(b, 'block_id', b)}" for b in blocks) or "none"


def biography() -> Recorder:
    """The life of a cached block: sharing, eviction, a later miss, a revival."""
    rec = Recorder(KVCacheManager(10, 4), title="The biography of a cached block")
    rec.note("Block #0 is the null block; the other 9 wait in the free queue, head first.")
    a = Request("a", [*PREFIX, 1])
    rec.admit(a)
    rec.note(
        f"Request a's 9 prompt tokens fill blocks {_ids(rec.target.get_block_ids('a'))} "
        "(2 full blocks are hashed into the prefix cache; the last one is partial)."
    )
    b = Request("b", [*PREFIX, 2])
    hits, _ = rec.manager.get_computed_blocks(b)
    rec.note(f"b starts with the same 8 tokens: the lookup finds {len(hits)} cached blocks.")
    rec.manager.allocate_slots(b, b.num_tokens - 8, hits)
    b.num_computed_tokens = b.num_tokens
    rec.note("b now shares those blocks with a (ref_cnt 2) and writes only its own tail.")
    x = Request("x", list(range(200, 208)))
    rec.admit(x)
    rec.note("An unrelated request x takes two more blocks.")
    rec.decode(a, [3, 4, 5])
    rec.note("a decodes 3 tokens: its tail block fills up and is cached too.")
    rec.manager.free(a)
    rec.note(
        "a finishes. Its blocks are freed tail first; the shared ones stay with b "
        "(ref_cnt 1), a's private tail joins the free queue but keeps its hash."
    )
    rec.manager.free(b)
    rec.note(
        "b finishes: reverse order puts its tail ahead of the shared prefix in the queue, "
        "so eviction will take tails before prefixes another request may still hit."
    )
    rec.manager.free(x)
    rec.note("x finishes: its blocks go behind the prefix, which now sits mid-queue.")
    c = Request("c", list(range(300, 314)))
    rec.admit(c)
    rec.note(
        f"c needs 4 blocks and takes them from the head: {_ids(rec.target.get_block_ids('c'))}. "
        "#3 still held a's third hash: taking it evicts that block from the prefix cache."
    )
    d = Request("d", [*PREFIX, 1, 3, 4, 5, 9])
    hits, tokens = rec.manager.get_computed_blocks(d)
    rec.note(
        f"d repeats a's text. The lookup revives {len(hits)} blocks ({_ids(hits)}) from the "
        f"middle of the free queue: {tokens} tokens need no recomputation. a's third block "
        "was evicted by c, so the hit stops there: the miss that eviction caused."
    )
    rec.manager.allocate_slots(d, d.num_tokens - tokens, hits)
    d.num_computed_tokens = d.num_tokens
    e = Request("e", list(PREFIX))
    hits, tokens = rec.manager.get_computed_blocks(e)
    rec.note(
        f"e is exactly the 8 prefix tokens, two cached blocks, yet it hits only {tokens}: "
        "the last token is always recomputed (the hit is capped at num_tokens - 1) so the "
        "model has a position to produce the next token from."
    )
    return rec


def beam() -> Recorder:
    """vLLM v0's beam-search fork: shared blocks, copy-on-write on the first write."""
    rec = Recorder(KVCacheManager(8, 4), title="Beam search with copy-on-write (vLLM v0's fork)")
    rec.note("vLLM v0 forked sequences for beam search; vLLM v1 has no fork. 7 usable blocks.")
    parent = Request("beam0", [10, 11, 12, 13, 14, 15])
    rec.admit(parent)
    rec.note("The prompt fills one block and half of a second.")
    child = rec.manager.fork(parent, "beam1")
    rec.note("fork: the child shares both blocks (ref_cnt 2); no KV is copied yet.")
    rec.decode(child, [20])
    pairs = rec.manager.take_blocks_to_copy()
    rec.note(
        f"The child writes into the shared partial block: it gets a private copy. The kernel "
        f"side must copy {pairs} (src, dst) before the step runs."
    )
    rec.decode(parent, [21])
    rec.note("The parent writes its own token into the original, now private, block.")
    rec.decode(parent, [22, 23])
    rec.note("The parent's block fills and a new one is allocated for the next token.")
    rec.manager.free(parent)
    rec.note("The parent's beam is pruned: only the shared first block stays, with the child.")
    rec.manager.free(child)
    rec.note("The child finishes too; the full first block stays cached, free.")
    return rec


def serving(seed: int = 0) -> Recorder:
    """A short serving run: arrivals with a shared system prompt, decode, free."""
    rng = random.Random(seed)
    rec = Recorder(KVCacheManager(24, 4), title="A short serving run (23 blocks of 4 tokens)")
    system = list(range(1000, 1008))  # a shared system prompt, two full blocks
    running: dict[str, tuple[Request, int]] = {}
    waiting: list[tuple[Request, int]] = []
    rec.note("Requests share an 8-token system prompt; each decodes a few tokens, then frees.")
    next_id = 0
    for _ in range(14):
        if rng.random() < 0.7:
            user = [rng.randrange(2000, 3000) for _ in range(rng.randint(2, 9))]
            waiting.append((Request(f"r{next_id}", system + user), rng.randint(2, 9)))
            next_id += 1
        while waiting:
            request, budget = waiting[0]
            if rec.admit(request) is None:
                rec.note(f"{request.request_id} is refused for now: the pool is short.")
                break
            waiting.pop(0)
            running[request.request_id] = (request, budget)
        for rid, (request, budget) in list(running.items()):
            token = rng.randrange(3000, 4000)
            if not rec.decode(request, [token]):
                continue
            if budget <= 1:
                rec.manager.free(request)
                del running[rid]
            else:
                running[rid] = (request, budget - 1)
    for request, _ in list(running.values()):
        rec.manager.free(request)
    rec.note("Everything has finished: only cached blocks remain, waiting to be evicted.")
    return rec


SCENARIOS: dict[str, Callable[[], Recorder]] = {
    "biography": biography,
    "beam": beam,
    "serving": serving,
}


def record_scenario(name: str) -> Recorder:
    """Run the named scenario and return its recording."""
    if name not in SCENARIOS:
        raise ValueError(f"scenario must be one of {sorted(SCENARIOS)}, got {name!r}")
    return SCENARIOS[name]()
