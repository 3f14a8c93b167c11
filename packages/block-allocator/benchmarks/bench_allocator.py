"""Micro-benchmarks of the block allocator's hot paths, with in-process baselines.

Prints one table: ops/s, µs per op and blocks/s for allocation (get + free), prefix-cache
hits (touch from the middle of the free queue), caching, lookups and hashing; the seed 002
exercise 12 comparison of ``deque.remove`` with the linked list at 1k/10k/100k blocks; and
an O(1) scaling check (1k vs 1M blocks). "get+free n" with caching on runs next to 1,000
cached in-use blocks, so the lazy-eviction check runs on every popped block. The "vLLM 0.33" column quotes the pure-Python
vLLM BlockPool figures of shared/reference/vllm-block-manager.md §7 (2-core AMD EPYC,
Python 3.11): a yardstick from another machine, not an in-process measurement; the
"vs baseline" column is measured here, in this process.

    python packages/block-allocator/benchmarks/bench_allocator.py [--quick]
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

from block_allocator import (
    BlockPool,
    FreeKVCacheBlockQueue,
    KVCacheBlock,
    KVCacheManager,
    Request,
    hash_block_tokens,
)

VLLM = {  # ops/s from reference §7 (vLLM 0.33.0 BlockPool, 10k blocks, block_size 16)
    "get+free 1": 1_101_550,
    "get+free 16": 167_954,
    "get+free 256": 11_694,
    "get+free 1 (no cache)": 1_376_455,
    "get+free 16 (no cache)": 316_330,
    "get+free 256 (no cache)": 26_530,
    "touch middle + free": 1_254_635,
    "touch 64 prefix + free": 66_650,
    "cache 256 + evict cycle": 2_318,
    "get_cached_block hit": 2_000_486,
    "get_cached_block miss": 2_018_838,
    "hash 16 tokens": 867_615,
    "remove middle 1000": 7_110_000,
    "remove middle 10000": 6_860_000,
    "remove middle 100000": 2_760_000,
}


def measure(fn: Callable[[int], None], iters: int, repeats: int) -> float:
    """Best ops/s of ``fn(iters)`` over ``repeats`` runs (least disturbed by other load), GC off."""
    rates = []
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        t0 = time.perf_counter()
        fn(iters)
        dt = time.perf_counter() - t0
        gc.enable()
        rates.append(iters / dt)
    return max(rates)


def cached_pool(num_blocks: int) -> tuple[BlockPool, list[bytes]]:
    """A pool whose every non-null block is cached and free (eviction candidates)."""
    pool = BlockPool(num_blocks)
    blocks = pool.get_new_blocks(num_blocks - 1)
    hashes = [hashlib.sha256(i.to_bytes(8, "little")).digest() for i in range(num_blocks - 1)]
    pool.cache_full_blocks(blocks, hashes)
    pool.free_blocks(blocks)
    return pool, hashes


# -- benchmark bodies ------------------------------------------------------------------
def get_free(pool: BlockPool, n: int) -> Callable[[int], None]:
    get, free = pool.get_new_blocks, pool.free_blocks

    def run(iters: int) -> None:
        for _ in range(iters):
            free(get(n))

    return run


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


def touch_middle(pool: BlockPool, hashes: list[bytes], picks: list[int]) -> Callable[[int], None]:
    """Prefix hit on a free cached block wherever it sits in the queue, then release it."""
    keys = [hashes[i] for i in picks]
    lookup, touch, free = pool.get_cached_block, pool.touch, pool.free_blocks

    def run(iters: int) -> None:
        for h in keys[:iters]:
            block = [lookup(h)]
            touch(block)
            free(block)

    return run


def attribute_reads(pool: BlockPool, picks: list[int]) -> Callable[[int], None]:
    """Memory-latency yardstick: read one field of a random block (no allocator logic)."""
    blocks = pool.blocks

    def run(iters: int) -> None:
        for i in picks[:iters]:
            blocks[i + 1].ref_cnt  # noqa: B018

    return run


def touch_prefix(pool: BlockPool, hashes: list[bytes]) -> Callable[[int], None]:
    prefix = [pool.get_cached_block(h) for h in hashes[1000:1064]]
    rev = prefix[::-1]

    def run(iters: int) -> None:
        for _ in range(iters):
            pool.touch(prefix)
            pool.free_blocks(rev)

    return run


def cache_cycle(num_blocks: int) -> Callable[[int], None]:
    pool = BlockPool(num_blocks)
    rounds = [[hashlib.sha256(f"{r}/{i}".encode()).digest() for i in range(256)] for r in range(8)]

    def run(iters: int) -> None:
        for k in range(iters):
            blocks = pool.get_new_blocks(256)  # evicts whatever these blocks cached before
            pool.cache_full_blocks(blocks, rounds[k % 8])
            pool.free_blocks(blocks[::-1])

    return run


def lookups(pool: BlockPool, keys: list[bytes]) -> Callable[[int], None]:
    get = pool.get_cached_block

    def run(iters: int) -> None:
        n = len(keys)
        for i in range(iters):
            get(keys[i % n])

    return run


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


def list_remove(n: int, picks: list[int]) -> Callable[[int], None]:
    blocks = [KVCacheBlock(i) for i in range(n)]
    queue = FreeKVCacheBlockQueue(blocks)
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
Row = tuple[str, float, int, str, "float | None"]


def print_table(rows: list[Row]) -> None:
    print(
        f"| {'benchmark (one op =)':<30} | {'ops/s':>12} | {'µs/op':>7} | {'blocks/s':>9} "
        f"| {'vLLM 0.33':>10} | {'vs vLLM':>7} | {'vs in-process baseline':>24} |"
    )
    print(f"|{'-' * 32}|{'-' * 13}:|{'-' * 8}:|{'-' * 10}:|{'-' * 11}:|{'-' * 8}:|{'-' * 25}:|")
    for name, rate, nblk, base, ratio in rows:
        ref = VLLM.get(name)
        bps = f"{rate * nblk / 1e6:.2f} M" if nblk else "–"
        ref_s = f"{ref:,}" if ref else "–"
        vs = f"{rate / ref:.2f}×" if ref else "–"
        base_s = f"{ratio:,.1f}× {base}" if ratio else "–"
        print(
            f"| {name:<30} | {rate:>12,.0f} | {1e6 / rate:>7.3f} | {bps:>9} | {ref_s:>10} "
            f"| {vs:>7} | {base_s:>24} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="fewer iterations/repeats, 200k-block scaling pool"
    )
    ap.add_argument("--seed", type=int, default=0, help="random seed for queue positions and picks")
    ap.add_argument(
        "--manager-only", action="store_true", help="only the KVCacheManager and Request rows"
    )
    ap.add_argument("--big", type=int, default=1_000_000, help="blocks in the large scaling pool")
    args = ap.parse_args()
    scale, repeats = (0.1, 3) if args.quick else (1.0, 7)
    big = min(args.big, 200_000) if args.quick else args.big
    rng = random.Random(args.seed)
    trusted = "validate" in Request.__init__.__code__.co_varnames  # older versions: no keyword

    def it(n: int) -> int:
        return max(10, int(n * scale))

    rows: list[Row] = []

    def row(
        name: str, rate: float, nblk: int = 0, base: str = "", base_rate: float | None = None
    ) -> None:
        rows.append((name, rate, nblk, base, rate / base_rate if base_rate else None))
        print(".", end="", flush=True)

    for n, iters in ((1, 100_000), (16, 30_000), (128, 4_000)):
        for caching, suffix in ((False, " (no cache)"), (True, " (hit)")):
            rate = measure(manager_alloc_free(n, caching), it(iters), repeats)
            row(f"mgr {'admit' if caching else 'alloc'}+free {n}{suffix}", rate, n)
    row("mgr decode step (64+ blocks)", measure(manager_decode(64), it(200_000), repeats), 1)
    req_rate = measure(make_requests(None), it(20_000), repeats)
    row("Request 1k tokens", req_rate, 0)
    if trusted:
        row("Request 1k tokens, no check", measure(make_requests(False), it(20_000), repeats))
    row("Request 1k: bind, 64 hashes", measure(hash_request, it(3_000), repeats), 64)
    if args.manager_only:
        print()
        print_table(rows)
        return

    for n, iters in ((1, 300_000), (16, 40_000), (256, 3_000)):
        base = measure(deque_get_free(10_000, n), it(iters), repeats)
        for caching, suffix in ((True, ""), (False, " (no cache)")):
            pool = BlockPool(10_000, enable_caching=caching)
            if caching:  # a non-empty index, so every popped block is checked for a hash
                held = pool.get_new_blocks(1_000)
                pool.cache_full_blocks(
                    held,
                    [hashlib.sha256(bytes([i % 256, i // 256])).digest() for i in range(1_000)],
                )
            row(
                f"get+free {n}{suffix}",
                measure(get_free(pool, n), it(iters), repeats),
                n,
                "deque of ids",
                base,
            )

    pool, hashes = cached_pool(10_000)
    picks = [rng.randrange(9_999) for _ in range(it(300_000))]
    dq = measure(deque_remove(10_000, picks), it(3_000), repeats)
    row(
        "touch middle + free",
        measure(touch_middle(pool, hashes, picks), len(picks), repeats),
        1,
        "deque.remove",
        dq,
    )
    row("touch 64 prefix + free", measure(touch_prefix(pool, hashes), it(30_000), repeats), 64)
    row("cache 256 + evict cycle", measure(cache_cycle(10_000), it(3_000), repeats), 256)
    row("get_cached_block hit", measure(lookups(pool, hashes), it(1_000_000), repeats))
    misses = [hashlib.sha256(b"miss" + i.to_bytes(4, "little")).digest() for i in range(1000)]
    row("get_cached_block miss", measure(lookups(pool, misses), it(1_000_000), repeats))
    pk = measure(hashing("pickle"), it(200_000), repeats)
    row("hash 16 tokens", measure(hashing("ours"), it(200_000), repeats), 1, "sha256(pickle)", pk)
    row("hash 16 tokens (builtin hash)", measure(hashing("builtin"), it(200_000), repeats), 1)

    for n in (1_000, 10_000, 100_000):
        picks = [rng.randrange(n) for _ in range(it(300_000))]
        dq = measure(deque_remove(n, picks), it(max(200, 3_000_000 // n)), repeats)
        row(
            f"remove middle {n}",
            measure(list_remove(n, picks), len(picks), repeats),
            1,
            "deque.remove",
            dq,
        )

    # O(1) scaling. "hot": hits land on the same 1,000 blocks spread through the queue, so
    # only the queue length changes; "uniform": hits land anywhere, so a large pool also
    # pays DRAM latency, measured separately by reading one field of a random block.
    scaling: dict[str, list[float]] = {}
    for n in (1_000, big):
        pool = BlockPool(n + 1)
        scaling.setdefault("get+free 1", []).append(
            measure(get_free(pool, 1), it(300_000), repeats)
        )
        pool, hashes = cached_pool(n + 1)
        hot = rng.sample(range(n), 1_000)
        hot_picks = [hot[rng.randrange(1_000)] for _ in range(it(300_000))]
        uniform = [rng.randrange(n) for _ in range(it(300_000))]
        for name, fn in (
            ("touch middle, hot 1k", touch_middle(pool, hashes, hot_picks)),
            ("touch middle, uniform", touch_middle(pool, hashes, uniform)),
            ("random block field read", attribute_reads(pool, uniform)),
        ):
            scaling.setdefault(name, []).append(measure(fn, len(uniform), repeats))
        del pool, hashes
    print()

    print(
        f"\nblock_allocator micro-benchmarks ({platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.python_implementation()} {platform.python_version()}; "
        f"{'--quick, ' if args.quick else ''}best of {repeats}, GC off while timing)\n"
    )
    print_table(rows)
    print(f"\nO(1) scaling: ops/s at 1,000 vs {big:,} blocks\n")
    print(f"| {'operation':<26} | {'1,000 blocks':>13} | {f'{big:,} blocks':>16} | {'ratio':>6} |")
    print(f"|{'-' * 28}|{'-' * 14}:|{'-' * 17}:|{'-' * 7}:|")
    for name, (small, large) in scaling.items():
        print(f"| {name:<26} | {small:>13,.0f} | {large:>16,.0f} | {large / small:>6.2f} |")
    worst = min(
        scaling["get+free 1"][1] / scaling["get+free 1"][0],
        scaling["touch middle, hot 1k"][1] / scaling["touch middle, hot 1k"][0],
    )
    verdict = "within" if worst >= 0.8 else "NOT within"
    print(
        f"\nallocator cost vs pool size (get+free, hot touch): worst ratio {worst:.2f}, {verdict} 20%"
    )
    u = scaling["touch middle, uniform"]
    r = scaling["random block field read"]
    print(
        f"uniform touch slows {u[0] / u[1]:.2f}×; a bare random field read slows {r[0] / r[1]:.2f}× "
        "(memory latency, not queue length)"
    )


if __name__ == "__main__":
    main()
