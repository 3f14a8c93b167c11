"""Micro-benchmarks of the block allocator's hot paths, side by side with vLLM's BlockPool.

Prints one table: ops/s and µs per op of our implementation and, measured in the same
process with the runs interleaved, of vLLM's own pure-Python ``BlockPool`` and
``FreeKVCacheBlockQueue`` loaded from a downloaded wheel (``vllm_block_pool.py``; no
vLLM install needed), then the ratio. Rows: allocation (get + free, with caching on next
to 1,000 cached in-use blocks so the lazy-eviction check runs on every popped block,
and off), a free from an iterator (as vLLM's manager passes ``reversed(blocks)``),
``free_blocks(evict_first=True)``, prefix-cache hits (touch from the middle of the free
queue), caching, lookups, hashing against sha256-over-pickle, and the O(1) middle
removal against ``deque.remove``; then our manager and ``Request`` paths, and an O(1)
scaling check (1k vs 1M blocks).

    pip download vllm==0.34.0 --no-deps -d wheels
    python packages/block-allocator/benchmarks/bench_allocator.py --vllm-wheel wheels/vllm-0.34.0-*.whl

Without ``--vllm-wheel`` (or ``$VLLM_WHEEL``) the vLLM column is skipped with a message.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import pickle
import platform
import random
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from block_allocator import (
    BlockPool,
    FreeKVCacheBlockQueue,
    KVCacheBlock,
    KVCacheManager,
    Request,
    hash_block_tokens,
)


def run_once(fn: Callable[[int], None], iters: int) -> float:
    gc.collect()
    gc.disable()
    t0 = time.perf_counter()
    fn(iters)
    dt = time.perf_counter() - t0
    gc.enable()
    return iters / dt


def measure(fn: Callable[[int], None], iters: int, repeats: int) -> float:
    """Best ops/s of ``fn(iters)`` over ``repeats`` runs (least disturbed by other load), GC off."""
    return max(run_once(fn, iters) for _ in range(repeats))


def measure_pair(
    ours: Callable[[int], None], theirs: Callable[[int], None] | None, iters: int, repeats: int
) -> tuple[float, float | None]:
    """Best ops/s of each, the runs interleaved so both see the same machine load."""
    best_ours, best_theirs = 0.0, 0.0
    for _ in range(repeats):
        best_ours = max(best_ours, run_once(ours, iters))
        if theirs is not None:
            best_theirs = max(best_theirs, run_once(theirs, iters))
    return best_ours, (best_theirs if theirs is not None else None)


def cached_pool(num_blocks: int, vllm: Any = None) -> tuple[Any, list[bytes]]:
    """A pool whose every non-null block is cached and free (eviction candidates)."""
    pool = BlockPool(num_blocks) if vllm is None else vllm.new_pool(num_blocks)
    blocks = pool.get_new_blocks(num_blocks - 1)
    hashes = [hashlib.sha256(i.to_bytes(8, "little")).digest() for i in range(num_blocks - 1)]
    cacher(pool)(blocks, hashes)
    pool.free_blocks(blocks)
    return pool, hashes


def alloc_pool(caching: bool, vllm: Any = None) -> Any:
    """10,000 blocks; with caching on, 1,000 of them cached and in use (a non-empty index)."""
    pool = (
        BlockPool(10_000, enable_caching=caching)
        if vllm is None
        else vllm.new_pool(10_000, caching)
    )
    if caching:
        held = pool.get_new_blocks(1_000)
        cacher(pool)(
            held, [hashlib.sha256(bytes([i % 256, i // 256])).digest() for i in range(1_000)]
        )
    return pool


# -- benchmark bodies ------------------------------------------------------------------
def get_free(pool: Any, n: int, how: str = "list") -> Callable[[int], None]:
    """get_new_blocks(n) then free_blocks: of the list, of ``reversed(list)`` or evict_first."""
    get, free = pool.get_new_blocks, pool.free_blocks

    def run(iters: int) -> None:
        for _ in range(iters):
            free(get(n))

    def run_reversed(iters: int) -> None:
        for _ in range(iters):
            free(reversed(get(n)))

    def run_evict_first(iters: int) -> None:
        for _ in range(iters):
            free(get(n), evict_first=True)

    return {"list": run, "reversed": run_reversed, "evict_first": run_evict_first}[how]


def deque_get_free(num_blocks: int, n: int) -> Callable[[int], None]:
    # nano-vllm style: deque of free ids plus a ref-count list (the in-process baseline)
    free_ids = deque(range(1, num_blocks))
    ref = [0] * num_blocks

    def run(iters: int) -> None:
        popleft, append = free_ids.popleft, free_ids.append
        for _ in range(iters):
            got = [popleft() for _ in range(n)]
            for i in got:
                ref[i] = 1
            for i in reversed(got):
                ref[i] = 0
                append(i)

    return run


def hit_lookup(pool: Any) -> Callable[[bytes], list[Any]]:
    """``[block]`` for a cached hash: ours returns the block, vLLM's a list per KV-cache group."""
    if isinstance(pool, BlockPool):
        get = pool.get_cached_block
        return lambda h: [get(h)]
    get_v = pool.get_cached_block
    groups = [0]
    return lambda h: get_v(h, groups)  # type: ignore[no-any-return]


def touch_middle(pool: Any, hashes: list[bytes], picks: list[int]) -> Callable[[int], None]:
    """Prefix hit on a free cached block wherever it sits in the queue, then release it."""
    keys = [hashes[i] for i in picks]
    lookup, touch, free = hit_lookup(pool), pool.touch, pool.free_blocks

    def run(iters: int) -> None:
        for h in keys[:iters]:
            block = lookup(h)
            touch(block)
            free(block)

    return run


def touch_in_hand(pool: BlockPool, blocks: list[Any], idx: list[int]) -> Callable[[int], None]:
    """touch + free of blocks already in hand (no lookup): the free queue alone."""
    chosen = [[blocks[i]] for i in idx]
    touch, free = pool.touch, pool.free_blocks

    def run(iters: int) -> None:
        for one in chosen[:iters]:
            touch(one)
            free(one)

    return run


def attribute_reads(pool: BlockPool, picks: list[int]) -> Callable[[int], None]:
    """Memory-latency yardstick: read one field of a random block (no allocator logic)."""
    blocks = pool.blocks

    def run(iters: int) -> None:
        for i in picks[:iters]:
            blocks[i + 1].ref_cnt  # noqa: B018

    return run


def touch_prefix(pool: Any, hashes: list[bytes]) -> Callable[[int], None]:
    lookup = hit_lookup(pool)
    prefix = [lookup(h)[0] for h in hashes[1000:1064]]
    rev = prefix[::-1]

    def run(iters: int) -> None:
        for _ in range(iters):
            pool.touch(prefix)
            pool.free_blocks(rev)

    return run


def cache_cycle(pool: Any) -> Callable[[int], None]:
    rounds = [[hashlib.sha256(f"{r}/{i}".encode()).digest() for i in range(256)] for r in range(8)]
    cache = cacher(pool)

    def run(iters: int) -> None:
        for k in range(iters):
            blocks = pool.get_new_blocks(256)  # evicts whatever these blocks cached before
            cache(blocks, rounds[k % 8])
            pool.free_blocks(blocks[::-1])

    return run


def cacher(pool: Any) -> Callable[[list[Any], list[bytes]], None]:
    """Index blocks under hashes. vLLM's ``cache_full_blocks`` needs a Request, so its side
    runs the insertion that call makes per block (``_insert_block_hash``, group 0)."""
    if isinstance(pool, BlockPool):
        return pool.cache_full_blocks
    insert = pool._insert_block_hash
    group0 = (0).to_bytes(4, "big")

    def cache(blocks: list[Any], hashes: list[bytes]) -> None:
        for block, h in zip(blocks, hashes, strict=True):
            insert(h + group0, block, None)

    return cache


def lookups(pool: Any, keys: list[bytes]) -> Callable[[int], None]:
    if isinstance(pool, BlockPool):
        get = pool.get_cached_block

        def run(iters: int) -> None:
            n = len(keys)
            for i in range(iters):
                get(keys[i % n])

        return run
    get_v, groups = pool.get_cached_block, [0]

    def run_v(iters: int) -> None:
        n = len(keys)
        for i in range(iters):
            get_v(keys[i % n], groups)

    return run_v


def hashing(kind: str) -> Callable[[int], None]:
    tokens = list(range(1000, 1016))
    parent = hashlib.sha256(b"p").digest()

    def ours(iters: int) -> None:
        for _ in range(iters):
            hash_block_tokens(parent, tokens)

    def pickled(iters: int) -> None:  # vLLM's default recipe: sha256(pickle(tuple))
        for _ in range(iters):
            hashlib.sha256(pickle.dumps((parent, tuple(tokens), None), protocol=5)).digest()

    def builtin(iters: int) -> None:
        for _ in range(iters):
            hash((parent, tuple(tokens)))

    return {"ours": ours, "pickle": pickled, "builtin": builtin}[kind]


def list_remove(
    n: int, picks: list[int], block_cls: Any = KVCacheBlock, queue_cls: Any = FreeKVCacheBlockQueue
) -> Callable[[int], None]:
    blocks = [block_cls(i) for i in range(n)]
    queue = queue_cls(blocks)
    chosen = [blocks[i] for i in picks]

    def run(iters: int) -> None:
        remove, append = queue.remove, queue.append
        for b in chosen[:iters]:
            remove(b)
            append(b)

    return run


def deque_remove(n: int, picks: list[int]) -> Callable[[int], None]:
    dq = deque(range(n))

    def run(iters: int) -> None:
        remove, append = dq.remove, dq.append
        for i in picks[:iters]:
            remove(i)
            append(i)

    return run


def manager_alloc_free(num_blocks: int, caching: bool) -> Callable[[int], None]:
    """Admit a ``num_blocks``-block prompt through the manager, then free it.

    Caching off: allocate_slots + free. Caching on, as a scheduler does it: lookup, then
    allocate_slots with the hit (the same prompt every time, so all but the last block
    hit), then free.
    """
    mgr = KVCacheManager(10_000, 16, enable_caching=caching)
    req = Request("r", [7 + i % 30_000 for i in range(16 * num_blocks)])
    lookup, allocate, free = mgr.get_computed_blocks, mgr.allocate_slots, mgr.free
    num_tokens = req.num_tokens

    def run(iters: int) -> None:
        if caching:
            for _ in range(iters):
                hits, num_hit = lookup(req)
                allocate(req, num_tokens - num_hit, hits)
                free(req)
        else:
            for _ in range(iters):
                allocate(req, num_tokens)
                free(req)

    return run


def manager_decode(prompt_blocks: int, steps: int = 1_024) -> Callable[[int], None]:
    """One decode step: append a token, allocate_slots(req, 1), advance (caching on).

    Requests with a ``prompt_blocks``-block prompt decode ``steps`` tokens each, then free;
    building and admitting each prompt is amortised over its steps (about 4% of the time).
    """
    prompt = list(range(16 * prompt_blocks))

    def run(iters: int) -> None:
        mgr = KVCacheManager(2 * (prompt_blocks + steps // 16 + 1), 16)
        allocate = mgr.allocate_slots
        done = 0
        while done < iters:
            req = Request("d", prompt)
            allocate(req, req.num_tokens)
            req.num_computed_tokens = req.num_tokens
            append = req.append_output_token_ids
            for i in range(min(steps, iters - done)):
                append(i)
                allocate(req, 1)
                req.num_computed_tokens += 1
            done += steps
            mgr.free(req)

    return run


def make_requests(validate: bool | None) -> Callable[[int], None]:
    """Request construction from a 1,024-token prompt (None: the constructor's default)."""
    prompt = list(range(1_000, 2_024))
    kw = {} if validate is None else {"validate": validate}

    def run(iters: int) -> None:
        for _ in range(iters):
            Request("r", prompt, **kw)

    return run


def hash_request(iters: int) -> None:
    """Binding a block size to a 1,024-token request: 64 chained block hashes."""
    prompt = list(range(1_000, 2_024))
    for _ in range(iters):
        Request("r", prompt).bind_block_size(16)


# -- driver ------------------------------------------------------------------------------
Row = tuple[str, float, "float | None", str, "float | None"]  # name, ours, vLLM, base, ratio


def load_vllm(path: str | None) -> Any:
    """vLLM's BlockPool from the wheel at ``path``, or None with the reason printed."""
    if not path:
        print(
            "vLLM column skipped: no wheel given. Get one with "
            "`pip download vllm==0.34.0 --no-deps -d wheels` and pass --vllm-wheel."
        )
        return None
    wheel = Path(path)
    if not wheel.is_file():
        print(f"vLLM column skipped: {wheel.name} is not a file.")
        return None
    import vllm_block_pool

    return vllm_block_pool.load(wheel)


def print_table(rows: list[Row], vllm_label: str) -> None:
    print(
        f"| {'benchmark (one op =)':<30} | {'ours ops/s':>11} | {'µs/op':>6} | {vllm_label:>12} "
        f"| {'ours / vLLM':>11} | {'vs other baseline':>24} |"
    )
    print(f"|{'-' * 32}|{'-' * 12}:|{'-' * 7}:|{'-' * 13}:|{'-' * 12}:|{'-' * 25}:|")
    for name, rate, theirs, base, ratio in rows:
        v_s = f"{theirs:,.0f}" if theirs else "–"
        vs = f"{rate / theirs:.2f}×" if theirs else "–"
        base_s = f"{ratio:,.1f}× {base}" if ratio else "–"
        print(
            f"| {name:<30} | {rate:>11,.0f} | {1e6 / rate:>6.3f} | {v_s:>12} | {vs:>11} "
            f"| {base_s:>24} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations and repeats")
    ap.add_argument("--seed", type=int, default=0, help="random seed for queue positions and picks")
    ap.add_argument(
        "--vllm-wheel",
        default=os.environ.get("VLLM_WHEEL"),
        help="a vllm wheel (default $VLLM_WHEEL)",
    )
    ap.add_argument("--big", type=int, default=1_000_000, help="blocks in the large scaling pool")
    args = ap.parse_args()
    scale, repeats = (0.1, 3) if args.quick else (1.0, 7)
    rng = random.Random(args.seed)
    vllm = load_vllm(args.vllm_wheel)
    vllm_label = f"vLLM {vllm.version}" if vllm else "vLLM (skipped)"

    def it(n: int) -> int:
        return max(10, int(n * scale))

    rows: list[Row] = []

    def row(
        name: str, pair: tuple[float, float | None], base: str = "", base_rate: float | None = None
    ) -> None:
        ours, theirs = pair
        rows.append((name, ours, theirs, base, ours / base_rate if base_rate else None))
        print(".", end="", flush=True)

    def both(
        make: Callable[[Any], Callable[[int], None]], iters: int
    ) -> tuple[float, float | None]:
        return measure_pair(make(None), make(vllm) if vllm else None, it(iters), repeats)

    for n, iters in ((1, 300_000), (16, 40_000), (256, 3_000)):
        for caching, suffix in ((True, ""), (False, " (no cache)")):
            pair = both(lambda v, n=n, c=caching: get_free(alloc_pool(c, v), n), iters)
            base = measure(deque_get_free(10_000, n), it(iters), repeats)
            row(f"get+free {n}{suffix}", pair, "deque of ids", base)
    row(
        "get+free 16, reversed()",
        both(lambda v: get_free(alloc_pool(True, v), 16, "reversed"), 40_000),
    )
    row(
        "get+free 16, evict_first",
        both(lambda v: get_free(alloc_pool(True, v), 16, "evict_first"), 40_000),
    )

    picks = [rng.randrange(9_999) for _ in range(it(300_000))]
    pools = {v: cached_pool(10_000, v) for v in ((None, vllm) if vllm else (None,))}
    dq = measure(deque_remove(10_000, picks), it(3_000), repeats)
    row(
        "touch middle + free",
        both(lambda v: touch_middle(*pools[v], picks), 300_000),
        "deque.remove",
        dq,
    )
    row("touch 64 prefix + free", both(lambda v: touch_prefix(*pools[v]), 30_000))
    fresh = {v: (BlockPool(10_000) if v is None else v.new_pool(10_000)) for v in pools}
    row("cache 256 + evict cycle", both(lambda v: cache_cycle(fresh[v]), 3_000))
    row("get_cached_block hit", both(lambda v: lookups(pools[v][0], pools[v][1]), 1_000_000))
    misses = [hashlib.sha256(b"miss" + i.to_bytes(4, "little")).digest() for i in range(1000)]
    row("get_cached_block miss", both(lambda v: lookups(pools[v][0], misses), 1_000_000))
    pk = measure(hashing("pickle"), it(200_000), repeats)
    row(
        "hash 16 tokens",
        (measure(hashing("ours"), it(200_000), repeats), None),
        "sha256(pickle)",
        pk,
    )

    for n in (1_000, 10_000, 100_000):
        picks = [rng.randrange(n) for _ in range(it(300_000))]
        dq = measure(deque_remove(n, picks), it(max(200, 3_000_000 // n)), repeats)
        v_cls = (
            (vllm.kv_cache_utils.KVCacheBlock, vllm.kv_cache_utils.FreeKVCacheBlockQueue)
            if vllm
            else ()
        )
        pair = measure_pair(
            list_remove(n, picks),
            list_remove(n, picks, *v_cls) if vllm else None,
            len(picks),
            repeats,
        )
        row(f"remove middle {n}", pair, "deque.remove", dq)

    for n, iters in ((1, 100_000), (16, 30_000), (128, 4_000)):
        for caching, suffix in ((False, " (no cache)"), (True, " (hit)")):
            rate = measure(manager_alloc_free(n, caching), it(iters), repeats)
            row(f"mgr {'admit' if caching else 'alloc'}+free {n}{suffix}", (rate, None))
    row("mgr decode step (64+ blocks)", (measure(manager_decode(64), it(200_000), repeats), None))
    row("Request 1k tokens", (measure(make_requests(None), it(20_000), repeats), None))
    row("Request 1k tokens, no check", (measure(make_requests(False), it(20_000), repeats), None))
    row("Request 1k: bind, 64 hashes", (measure(hash_request, it(3_000), repeats), None))

    # O(1) scaling: the same operations in a 1,000-block and a 1,000,000-block pool, the
    # two interleaved. "fresh-first" get+free reuses the block it just freed (vLLM 0.33/0.34
    # order); the classic order cycles through every block, so in a big pool each op also
    # pays a cache miss on a cold block. "hot 1k, in hand" touches and frees 1,000
    # contiguous cached blocks from the middle of the queue without a lookup: only the
    # queue's length differs. The rows with a lookup or uniform picks add the hash index's
    # and the blocks' memory footprint, which the last row measures on its own.
    scaling: dict[str, list[float]] = {}
    sizes = (1_000, args.big)
    for label, order in (
        ("get+free 1, fresh-first", "fresh_first"),
        ("get+free 1, classic", "classic"),
    ):
        plain = [BlockPool(n + 1, free_order=order) for n in sizes]
        pair = measure_pair(get_free(plain[0], 1), get_free(plain[1], 1), it(300_000), repeats)
        scaling[label] = [pair[0], pair[1] or 0.0]
        del plain
    cached = [cached_pool(n + 1) for n in sizes]
    fns: dict[str, list[Callable[[int], None]]] = {}
    for n, (pool, hashes) in zip(sizes, cached, strict=True):
        start = rng.randrange(n - 1_000 + 1)  # a contiguous run of ids, anywhere in the queue
        hot_blocks = [pool.blocks[1 + start + i] for i in range(1_000)]
        hot_idx = [rng.randrange(1_000) for _ in range(it(300_000))]
        hot = rng.sample(range(n), 1_000)
        hot_picks = [hot[rng.randrange(1_000)] for _ in range(it(300_000))]
        uniform = [rng.randrange(n) for _ in range(it(300_000))]
        fns.setdefault("touch+free, hot 1k, in hand", []).append(
            touch_in_hand(pool, hot_blocks, hot_idx)
        )
        fns.setdefault("lookup+touch+free, hot 1k", []).append(
            touch_middle(pool, hashes, hot_picks)
        )
        fns.setdefault("lookup+touch+free, uniform", []).append(touch_middle(pool, hashes, uniform))
        fns.setdefault("random block field read", []).append(attribute_reads(pool, uniform))
    for name, (small_fn, big_fn) in fns.items():
        pair = measure_pair(small_fn, big_fn, it(300_000), repeats)
        scaling[name] = [pair[0], pair[1] or 0.0]
    del cached, fns
    print()

    where = (
        f"vLLM {vllm.version} (commit {vllm.commit}) loaded from its wheel" if vllm else "no vLLM"
    )
    print(
        f"\nblock_allocator micro-benchmarks ({platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.python_implementation()} {platform.python_version()}; {where}; "
        f"{'--quick, ' if args.quick else ''}best of {repeats} interleaved runs, GC off)\n"
    )
    print_table(rows, vllm_label)
    big = args.big
    print(f"\nO(1) scaling: ops/s at 1,000 vs {big:,} blocks\n")
    print(f"| {'operation':<30} | {'1,000 blocks':>13} | {f'{big:,} blocks':>16} | {'ratio':>6} |")
    print(f"|{'-' * 32}|{'-' * 14}:|{'-' * 17}:|{'-' * 7}:|")
    for name, (small, large) in scaling.items():
        print(f"| {name:<30} | {small:>13,.0f} | {large:>16,.0f} | {large / small:>6.2f} |")
    worst = min(
        scaling["get+free 1, fresh-first"][1] / scaling["get+free 1, fresh-first"][0],
        scaling["touch+free, hot 1k, in hand"][1] / scaling["touch+free, hot 1k, in hand"][0],
    )
    verdict = "within" if worst >= 0.8 else "NOT within"
    print(
        f"\nqueue cost vs pool size (fresh-first get+free, hot touch in hand): worst ratio "
        f"{worst:.2f}, {verdict} 20%"
    )
    u = scaling["lookup+touch+free, uniform"]
    r = scaling["random block field read"]
    print(
        f"uniform lookup+touch slows {u[0] / u[1]:.2f}×; a bare random field read slows {r[0] / r[1]:.2f}× "
        "(memory latency, not queue length)"
    )


if __name__ == "__main__":
    main()
