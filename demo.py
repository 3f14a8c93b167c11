"""The main demo: PagedAttention from the allocator to the kernel, on a CPU, in four acts.

1. allocate  - block_allocator: prefix sharing, copy-on-write fork, reverse-order free, eviction
2. simulate  - frag_sim: contiguous reservation vs paged on one memory budget (paper Fig. 13)
3. plan      - capacity_planner: what vLLM prints at start-up and why (profile, subtract, carve)
4. attend    - paged_attn_kernels: K/V written through slot_mapping into a shuffled cache,
               read back through block_table; paged attention == dense attention

Run it with `pip install nox && nox -s demo` (or `python demo.py` where the four packages
are installed). `--full` runs the simulator's full-size reproductions instead of quick ones.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from block_allocator import KVCacheManager, Request, pad_block_tables
from capacity_planner import EngineSettings, ModelSpec, gpu_from_name, plan, prefix_caching_estimate
from capacity_planner.report import format_plan, format_prefix
from frag_sim import run_experiment
from paged_attn_kernels import (
    available_backends,
    dense_attention_reference,
    gather_kv,
    paged_attention,
    slot_mapping,
    write_kv_cache,
)


def act(title: str) -> None:
    print(f"\n{'=' * 78}\n{title}\n{'=' * 78}")


def allocate() -> None:
    act("1. allocate: a vLLM-v1 block manager, block_size 4, 12 usable blocks")
    mgr = KVCacheManager(num_blocks=13, block_size=4)
    system_prompt = list(range(100, 110))  # 10 tokens: two full blocks + a partial one

    a = Request("a", [*system_prompt, 1, 2])
    hit, n = mgr.get_computed_blocks(a)
    mgr.allocate_slots(a, a.num_tokens - n, hit)
    a.num_computed_tokens = a.num_tokens
    b = Request("b", [*system_prompt, 7, 8, 9])
    hit, n = mgr.get_computed_blocks(b)
    print(f"request b finds {len(hit)} cached blocks ({n} tokens) of request a's prompt")
    mgr.allocate_slots(b, b.num_tokens - n, hit)
    b.num_computed_tokens = b.num_tokens
    print(f"block_table a = {mgr.get_block_ids('a')}")
    print(f"block_table b = {mgr.get_block_ids('b')}   (shared blocks have ref_cnt 2)")

    child = mgr.fork(b, "b.1")  # parallel sampling: the child shares every block
    for req, tok in ((b, 11), (child, 22)):
        req.append_output_token_ids(tok)
        mgr.allocate_slots(req, 1)
        print(f"{req.request_id:>4} writes token {tok} at slot {mgr.slot_mapping(req, 1)[0]}")
        req.num_computed_tokens += 1
    print(f"copy-on-write copies for the kernel side (src, dst): {mgr.take_blocks_to_copy()}")
    print(f"block_table b   = {mgr.get_block_ids('b')}")
    print(f"block_table b.1 = {mgr.get_block_ids('b.1')}")

    for req in (a, b, child):
        mgr.free(req)  # each request frees tail first: its deepest blocks are evicted first
    print(f"all freed: usage {mgr.usage:.0%}, cached blocks stay findable until reused")
    again = Request("c", [*system_prompt, 5])
    hit, n = mgr.get_computed_blocks(again)
    print(f"a newcomer with the same system prompt revives {len(hit)} blocks from the free queue")
    stats = mgr.prefix_cache_stats
    print(f"prefix cache: {stats.hits} hit tokens of {stats.queries} queried")


def simulate(full: bool) -> None:
    act("2. simulate: one request stream, one memory budget, four allocation policies")
    for name in ("fig13", "lab02"):
        report = run_experiment(name, quick=not full)
        print(report.render(), end="\n\n")


def capacity() -> None:
    act("3. plan: what vLLM will print at start-up, before renting the GPU")
    model = ModelSpec.from_name("llama-3.1-8b")
    print(format_plan(plan(model, gpu_from_name("H100"), EngineSettings(max_model_len=8192))))
    print()
    print(format_prefix(prefix_caching_estimate(4096, 1000, 50), model_name=model.name))


def attend() -> None:
    act("4. attend: write through slot_mapping, read through block_table")
    rng = np.random.default_rng(0)
    block_size, num_kv_heads, num_heads, head_dim = 8, 2, 8, 64
    # Caching off + vLLM 0.33's fresh-first order: freed blocks are reused first (LIFO),
    # so interleaved allocations and frees scatter each sequence over the pool.
    mgr = KVCacheManager(
        num_blocks=64, block_size=block_size, enable_caching=False, free_order="fresh_first"
    )
    fillers = [Request(f"filler{i}", [0] * int(rng.integers(1, 40))) for i in range(12)]
    for filler in fillers:
        mgr.allocate_slots(filler, filler.num_tokens)
    seq_lens = [37, 5, 61]
    reqs = []
    for i, n in enumerate(seq_lens):
        for filler in fillers[i::3][::-1]:
            mgr.free(filler)
        req = Request(f"seq{i}", [0] * n)
        mgr.allocate_slots(req, n)
        reqs.append(req)
    tables = np.array(pad_block_tables([mgr.get_block_ids(r.request_id) for r in reqs]), np.int32)
    print(f"block_table (physical ids, 0 = null-block padding):\n{tables}")

    shape = (64, block_size, num_kv_heads, head_dim)  # [num_blocks, block_size, kv_heads, head_dim]
    key_cache = np.full(shape, np.nan)  # poisoned: any read of an unwritten slot shows up
    value_cache = np.full(shape, np.nan)
    for i, n in enumerate(seq_lens):
        slots = slot_mapping(tables[i], np.arange(n), block_size)
        k, v = rng.standard_normal((2, n, num_kv_heads, head_dim))
        write_kv_cache(k, v, key_cache, value_cache, slots, backend="numpy")
    query = rng.standard_normal((len(seq_lens), num_heads, head_dim))
    lens = np.array(seq_lens, np.int32)
    keys, values = gather_kv(key_cache, value_cache, tables, lens)
    dense = dense_attention_reference(query, keys, values, lens)
    for backend in available_backends():
        if backend == "triton":
            continue  # needs a CUDA device; see packages/paged-attn-kernels/README.md
        out = paged_attention(query, key_cache, value_cache, tables, lens, backend=backend)
        err = float(np.max(np.abs(out - dense)))
        print(f"paged_attention[{backend:>5}] vs dense: max |diff| = {err:.1e}  (float64)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full-size simulator runs")
    args = parser.parse_args(argv)
    allocate()
    simulate(args.full)
    capacity()
    attend()
    return 0


if __name__ == "__main__":
    sys.exit(main())
