"""A guided tour of PagedAttention on a CPU, from the block allocator to the kernel.

Six acts, each printed with the numbers it explains:

1. share     two prompts with one system prompt converge on the same physical blocks
2. evict     freed blocks stay cached; an allocation evicts one, a later request misses
             exactly there, and a hit revives blocks from the middle of the free queue
3. fork      vLLM v0's beam-search fork: every block shared, copied on the first write
4. simulate  contiguous reservation vs paged on one memory budget (the capstone's
             workload; PagedAttention Fig. 2 and Fig. 13, each compared with the paper)
5. plan      what vLLM prints at start-up for the Phase 02 lab-03 run, and why
6. attend    K/V written through slot_mapping, read through block_table: paged == dense

It writes its plots and a summary into ``--out`` (default ``demo-output/``) and lists
them at the end. Needs block-allocator, frag-sim[plot], capacity-planner and
paged-attn-kernels[numba]; ``nox -s demo`` installs exactly those.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

from block_allocator import BlockRemoved, KVCacheManager, Request, pad_block_tables
from block_allocator.stepthrough import Recorder
from capacity_planner import EngineSettings, ModelSpec, gpu_from_name, plan
from frag_sim import LengthDist, SimConfig, SimResult, SyntheticWorkload, simulate
from paged_attn_kernels import (
    available_backends,
    gather_kv,
    paged_attention,
    slot_mapping,
    write_kv_cache,
)

WIDTH = 96  # every printed line stays under 100 columns
SUMMARY: dict[str, dict[str, Any]] = {}


def act(number: int, title: str) -> None:
    print(f"\n{'=' * WIDTH}\n{number}. {title}\n{'=' * WIDTH}")


def say(text: str, indent: str = "") -> None:
    """Print a paragraph wrapped to WIDTH columns."""
    for line in textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent):
        print(line)


def versus_paper(
    ours: float, paper: float, what: str, *, rel: float = 0.0, points: float = 0.0
) -> tuple[str, bool]:
    """A line saying whether our number reproduces the paper's (within ``rel`` of it, or
    ``points`` percentage points), and by how much; and whether it did."""
    if points:
        gap, ok = f"{ours - paper:+.1f} points", abs(ours - paper) <= points
    else:
        gap, ok = f"{(ours - paper) / paper:+.1%}", abs(ours - paper) <= rel * paper
    verdict = "reproduces it" if ok else "MISSES it"
    return f"{what}: {ours:.2f} vs the paper's {paper:.2f} ({gap}): {verdict}", ok


# ---------------------------------------------------------------- 1-3. the block allocator
def queue_str(mgr: Any, names: dict[int, str]) -> str:
    """The free queue from head (evicted first) to tail, cached blocks marked with *."""
    free = mgr.block_pool.get_free_blocks()
    cells = [f"{names.get(b.block_id, str(b.block_id))}{'*' if b.block_hash else ''}" for b in free]
    return "[" + " ".join(cells) + "]"


def share_and_evict() -> Recorder:
    act(1, "share: two prompts, one system prompt, the same physical blocks")
    recorder = Recorder(
        KVCacheManager(num_blocks=11, block_size=4, enable_kv_cache_events=True),
        title="The demo's acts 1 and 2: share, evict, miss, revive",
    )
    mgr = recorder.manager  # the manager, with every call recorded for the step-through page
    system = list(range(100, 108))  # an 8-token system prompt: two full blocks of 4
    say(
        "A pool of 10 usable blocks of 4 tokens (block 0 is vLLM's null block). Request a is "
        "an 8-token system prompt plus 5 tokens of its own; b is the same system prompt plus 3."
    )
    a = Request("a", [*system, 1, 2, 3, 4, 5])
    hit, n_hit = mgr.get_computed_blocks(a)
    mgr.allocate_slots(a, a.num_tokens - n_hit, hit)
    a.num_computed_tokens = a.num_tokens
    b = Request("b", [*system, 7, 8, 9])
    hit, n_hit = mgr.get_computed_blocks(b)
    mgr.allocate_slots(b, b.num_tokens - n_hit, hit)
    b.num_computed_tokens = b.num_tokens
    ta, tb = mgr.get_block_ids("a"), mgr.get_block_ids("b")
    shared = [i for i in tb if i in ta]
    print(f"  block_table a = {ta}   ({a.num_tokens} tokens: 3 full blocks + 1 token)")
    print(f"  block_table b = {tb}   ({b.num_tokens} tokens)")
    say(
        f"b's lookup found a's first {len(hit)} blocks ({n_hit} of its {b.num_tokens} prompt "
        f"tokens): blocks {shared} now have ref_cnt 2 and b computed only "
        f"{b.num_tokens - n_hit} tokens. Only full blocks are shared; each partial tail stays "
        "private.",
        "  ",
    )
    stats = mgr.prefix_cache_stats
    say(
        f"Prefix-cache counters: {stats.requests} lookups, {stats.queries} prompt tokens "
        f"queried ({a.num_tokens} for a, {b.num_tokens} for b), {stats.hits} hits (all b's: a "
        "came first and found nothing).",
        "  ",
    )
    recorder.note(f"b shares blocks {shared} with a (ref_cnt 2) and computes 3 tokens.")
    SUMMARY["share"] = {"shared_blocks": shared, "hit_tokens": n_hit, "prompt_tokens_b": 11}
    mgr.take_events()

    act(2, "evict: freed blocks linger, get evicted tail first, and are revived mid-queue")
    names = {ta[0]: "s0", ta[1]: "s1", ta[2]: "a2", ta[3]: "a3", tb[2]: "b2"}
    mgr.free(a)
    mgr.free(b)
    recorder.note("Freed tail first: the system prompt's blocks are last in the queue.")
    say(
        "a and b finish. Each frees its blocks in reverse order, so a request's tail reaches "
        "the free queue before its prefix. Free queue, head (evicted first) to tail; * = "
        "still cached (s0, s1 = the system prompt, a2 = a's third block). This is the "
        "labs' classic order; vLLM 0.33+ puts blocks without a hash (a3, b2) at the head:",
        "  ",
    )
    print(f"  {queue_str(mgr, names)}")
    say(
        f"usage reads {mgr.usage:.0%} although 3 blocks still hold cached KV: a free cached "
        "block counts as free (vLLM issue #5176).",
        "  ",
    )

    c = Request("c", list(range(500, 528)))  # 28 tokens: 7 blocks
    mgr.allocate_slots(c, c.num_tokens)
    c.num_computed_tokens = c.num_tokens
    evicted = sum(len(e.block_hashes) for e in mgr.take_events() if isinstance(e, BlockRemoved))
    recorder.note("c's seventh block was a's cached third block: its KV is evicted.")
    say(
        f"Request c (28 unrelated tokens) takes 7 blocks from the head: the 5 never used, a's "
        f"uncached tail a3, then a2, whose cached KV is evicted ({evicted} BlockRemoved event). "
        "The system prompt survives at the tail because tails were freed first.",
        "  ",
    )
    tc = mgr.get_block_ids("c")
    print(f"  {queue_str(mgr, names)}   c holds {tc}")
    names.update({bid: f"c{i}" for i, bid in enumerate(tc)})
    mgr.free(c)
    say("c finishes too; its blocks join the tail (its 7 full blocks are cached now):", "  ")
    print(f"  {queue_str(mgr, names)}")

    queue_before = [blk.block_id for blk in mgr.block_pool.get_free_blocks()]
    d = Request("d", [*system, 1, 2, 3, 4, 5])  # a's prompt again
    hit, n_hit = mgr.get_computed_blocks(d)
    positions = [queue_before.index(blk.block_id) + 1 for blk in hit]
    mgr.allocate_slots(d, d.num_tokens - n_hit, hit)
    d.num_computed_tokens = d.num_tokens
    recorder.note("d hits the system prompt (revived mid-queue) and misses a's evicted block.")
    could = (d.num_tokens - 1) // 4 * 4
    say(
        f"Request d sends a's prompt again. It hits {len(hit)} blocks ({n_hit} tokens) and "
        f"misses at its third block: that is a2, which c's allocation evicted. Without the "
        f"eviction it would have hit {could} tokens (never the last one: the hit is capped at "
        f"num_tokens - 1 = {d.num_tokens - 1}); now it recomputes {d.num_tokens - n_hit} "
        "tokens instead of 1.",
        "  ",
    )
    say(
        f"Both hits were free blocks in the middle of the {len(queue_before)}-block free queue "
        f"(s0 at position {positions[0]}, s1 at {positions[1]}, counting from the head): touch() "
        "unlinks them in O(1), the reason the free queue is a doubly linked list and not a "
        "deque. Queue after d:",
        "  ",
    )
    print(f"  {queue_str(mgr, names)}")
    SUMMARY["evict"] = {
        "evicted_blocks": evicted,
        "d_hit_tokens": n_hit,
        "d_hit_tokens_without_eviction": could,
        "revived_queue_positions": positions,
        "free_queue_length": len(queue_before),
    }
    return recorder


def fork() -> None:
    act(3, "fork: vLLM v0's beam-search fork, copy-on-write on the first write")
    say(
        "vLLM v0's block manager forked a running sequence for beam search and parallel "
        "sampling: the child shares every block and the first write into a shared block "
        "copies it. (vLLM v1 has no fork: its requests share prompts through the prefix "
        "cache.) block-allocator keeps v0's fork on the v1 manager:"
    )
    mgr = KVCacheManager(num_blocks=8, block_size=4)
    p = Request("p", [11, 12, 13, 14, 15, 16])  # one full block + 2 tokens
    mgr.allocate_slots(p, p.num_tokens)
    p.num_computed_tokens = p.num_tokens
    child = mgr.fork(p, "p/beam1")
    print(f"  after fork:  p = {mgr.get_block_ids('p')}  p/beam1 = {mgr.get_block_ids('p/beam1')}")
    copies = []
    for req, token in ((p, 21), (child, 22)):
        req.append_output_token_ids(token)
        mgr.allocate_slots(req, 1)
        slot = mgr.slot_mapping(req, 1)[0]
        req.num_computed_tokens += 1
        copies.append(mgr.take_blocks_to_copy())
        say(
            f"{req.request_id} writes token {token} into slot {slot}: copies owed (src, dst) = "
            f"{copies[-1]}",
            "  ",
        )
    say(
        "p's write hit the shared partial block, so p got a private copy and the kernel side "
        "must copy the block first (copy_blocks); p/beam1 then owns the original alone and "
        "writes in place. The full first block stays shared by both:",
        "  ",
    )
    print(f"  now:         p = {mgr.get_block_ids('p')}  p/beam1 = {mgr.get_block_ids('p/beam1')}")
    SUMMARY["fork"] = {"copies_owed": [list(map(list, c)) for c in copies]}


# ---------------------------------------------------------------------- 4. the simulator
# PagedAttention (Kwon et al., SOSP 2023), Fig. 2 (% of KV memory: token states, reservation,
# internal, external) and Fig. 13 (mean batched requests, ShareGPT at 2 req/s), OPT-13B.
PAPER_FIG2 = {
    "max": (20.4, 13.3, 57.3, 8.9),
    "pow2": (26.8, 17.9, 13.6, 41.6),
    "exact": (38.2, 25.2, 0.0, 36.6),
    "paged": (96.3, 0.0, 0.0, 3.7),
}
PAPER_FIG13 = {"max": 7.00, "pow2": 9.81, "exact": 13.62, "paged": 30.42}
LABELS = {
    "max": "Orca (Max)",
    "pow2": "Orca (Pow2)",
    "exact": "Orca (Oracle)",
    "paged": "vLLM (paged/16)",
}


def simulate_act(out: Path, quick: bool, plots: list[Path]) -> None:
    act(4, "simulate: one request stream, one memory budget, four allocation policies")
    capstone = SyntheticWorkload(
        prompt=LengthDist.uniform(200, 4000),
        output=LengthDist.uniform(50, 500),
        num_requests=300 if quick else 1000,
        rate=8.0,
        seed=3,
        name="capstone",
    ).generate()
    cfg = SimConfig(capacity_tokens=32 * 4500, max_model_len=4500, allocator="first_fit")
    runs = {
        "naive (reserve max)": simulate(
            capstone, cfg.replace(policy="max", record_timeseries=True)
        ),
        "paged/16": simulate(capstone, cfg.replace(policy="paged", record_timeseries=True)),
    }
    naive, paged = runs.values()
    say(
        f"The capstone's workload ({len(capstone)} requests, prompts U[200, 4000], outputs "
        "U[50, 500], Poisson 8 req/s) on 144,000 token slots, max_model_len 4,500. Live "
        f"tokens / allocated slots: naive {naive.token_usage:.1%}, paged {paged.token_usage:.1%} "
        "(the capstone expects ~50% and ~100%); requests running at once on average: naive "
        f"{naive.mean_running:.1f}, paged {paged.mean_running:.1f}.",
        "  ",
    )
    n = 800 if quick else 3000
    sharegpt = SyntheticWorkload.from_mix("sharegpt", num_requests=n, rate=2.0, seed=0).generate()
    fig = SimConfig(capacity_tokens=15_728, max_model_len=2048, allocator="buddy", step_time_s=0.05)
    figs = {p: simulate(sharegpt, fig.replace(policy=p)) for p in PAPER_FIG13}
    say(
        f"PagedAttention Fig. 13: {n} ShareGPT-like requests (synthetic, matched to the "
        "paper's length means) at 2 req/s on OPT-13B's 15,728 slots (12 GiB / 800 KiB), "
        "buddy allocator. Mean requests batched at once:",
        "  ",
    )
    missed = []
    for p, r in figs.items():
        line, ok = versus_paper(r.mean_running, PAPER_FIG13[p], f"{LABELS[p]:<16}", rel=0.10)
        print(f"    {line}")
        missed += [] if ok else [f"Fig. 13 {LABELS[p]}"]
    say("Fig. 2, share of KV memory holding token states (%; within 4 points counts):", "  ")
    for p, r in figs.items():
        tok = r.breakdown.fig2_row()["token_states"]
        line, ok = versus_paper(tok, PAPER_FIG2[p][0], f"{LABELS[p]:<16}", points=4.0)
        print(f"    {line}")
        missed += [] if ok else [f"Fig. 2 {LABELS[p]}"]
    if missed:
        say(
            f"Missed: {', '.join(missed)}."
            + (
                f" This --quick run has {n} requests: memory starts empty, and in a short run "
                "the filling phase weighs more. Run without --quick (3,000 requests)."
                if quick
                else " The workload is synthetic (the paper's traces are not public)."
            ),
            "  ",
        )
    SUMMARY["simulate"] = {
        "capstone": {
            k: {"token_usage": r.token_usage, "mean_running": r.mean_running}
            for k, r in runs.items()
        },
        "fig13_mean_batched": {p: r.mean_running for p, r in figs.items()},
        "fig2_token_states": {p: r.breakdown.fig2_row()["token_states"] for p, r in figs.items()},
        "requests": n,
    }
    try:
        from frag_sim.report import plot
    except ImportError:
        say("(plots skipped: matplotlib is missing; pip install 'frag-sim[plot]')", "  ")
        return
    plots.append(
        plot.plot_usage_over_time(
            runs, out / "capstone-usage.png", title="Capstone workload: naive vs paged"
        )
    )
    plots.append(
        plot.plot_waste_breakdown(
            {LABELS[p]: r for p, r in figs.items()},
            out / "fig2-waste.png",
            paper={LABELS[p]: PAPER_FIG2[p] for p in figs},
        )
    )
    plots.append(plot_fig13(figs, out / "fig13-batch.png"))
    from frag_sim.memmap import default_workload, memory_maps, plot_memory_maps

    maps = memory_maps(default_workload())
    plot_memory_maps(maps, out / "memory-maps.png", title="Where each request's KV sits")
    plots.append(out / "memory-maps.png")
    say(
        "memory-maps.png draws the address space over time (one colour per request) for "
        "first-fit and buddy reservation against paged blocks on one small stream: the "
        "holes and pale reserved tails of the first two are the waste counted above.",
        "  ",
    )


def plot_fig13(figs: dict[str, SimResult], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.2), layout="constrained")
    x = np.arange(len(figs))
    ours = [r.mean_running for r in figs.values()]
    ax.bar(x - 0.2, ours, 0.4, label="this run", color="#3b6ea8")
    ax.bar(x + 0.2, [PAPER_FIG13[p] for p in figs], 0.4, label="paper (Fig. 13)", color="#bbb")
    for xi, v in zip(x, ours, strict=True):
        ax.text(xi - 0.2, v + 0.5, f"{v:.1f}", ha="center", fontsize=8)
    ax.set_xticks(x, [LABELS[p] for p in figs], fontsize=8)
    ax.set_ylabel("mean requests batched")
    ax.set_title("ShareGPT-like, 2 req/s, OPT-13B memory (15,728 slots)", fontsize=10)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


# ------------------------------------------------------------------------ 5. the planner
def plan_act() -> None:
    act(5, "plan: what vLLM prints at start-up, before renting the GPU")
    say(
        "Phase 02 lab-03's captured run: Llama-3-8B on an A100-40GB, vLLM's V0 engine, "
        "--gpu-memory-utilization 0.83, --max-model-len 2048. Profile, subtract, carve:"
    )
    p = plan(
        ModelSpec.from_name("meta-llama/Meta-Llama-3-8B"),
        gpu_from_name("A100-40GB"),
        EngineSettings(gpu_memory_utilization=0.83, max_model_len=2048, vllm_version="v0"),
    )
    for step in p.memory.steps:
        print(f"  {step.label:<32} {step.bytes / 2**30:7.2f} GiB")
    say("vLLM would print:", "  ")
    for line in p.log_lines():
        say(line, "    ")
    blocks = p.kv.num_blocks
    say(
        f"One block of 16 tokens holds 16 x 128 KiB = 2 MiB of K and V, so {blocks:,} blocks "
        f"hold {blocks * 16:,} tokens: {blocks * 16 / 2048:.2f} requests of 2,048 tokens. The "
        "lab's text quotes '# GPU blocks: 8788' and 68.65x. 8,788 blocks print 68.66x "
        "(8788 / 128 = 68.656); 68.65x is what 8,787 blocks print. Our 8,789 is one block "
        "(2 MiB) above 8,788, inside the error of the estimated activation peak.",
        "  ",
    )
    SUMMARY["plan"] = {"num_gpu_blocks": blocks, "max_concurrency": p.kv.max_concurrency}


# ------------------------------------------------------------------------ 6. the kernels
def attend() -> None:
    act(6, "attend: write through slot_mapping, read through block_table")
    rng = np.random.default_rng(0)
    block_size, num_kv_heads, num_heads, head_dim = 8, 2, 8, 64
    # Caching off: freed blocks go back to the head of the queue (vLLM 0.33+ with caching
    # off), so interleaved allocations and frees scatter each sequence over the pool.
    mgr = KVCacheManager(
        num_blocks=64, block_size=block_size, enable_caching=False, free_order="fresh_first"
    )
    fillers = [Request(f"filler{i}", [0] * int(rng.integers(1, 40))) for i in range(12)]
    for filler in fillers:
        mgr.allocate_slots(filler, filler.num_tokens)
    seq_lens = [37, 5, 61]
    for i, n in enumerate(seq_lens):
        for filler in fillers[i::3][::-1]:
            mgr.free(filler)
        mgr.allocate_slots(Request(f"seq{i}", [0] * n), n)
    tables = np.array(
        pad_block_tables([mgr.get_block_ids(f"seq{i}") for i in range(len(seq_lens))]), np.int32
    )
    say(
        f"Three sequences of {seq_lens} tokens, block_size {block_size}, allocated between "
        "other requests' frees, so their blocks are scattered. block_table (0 = padding):",
        "  ",
    )
    for row in tables:
        print(f"    {row.tolist()}")
    shape = (64, block_size, num_kv_heads, head_dim)  # [num_blocks, block_size, kv_heads, d]
    key_cache = np.full(shape, np.nan)  # poisoned: a read of any unwritten slot shows as NaN
    value_cache = np.full(shape, np.nan)
    for i, n in enumerate(seq_lens):
        slots = slot_mapping(tables[i], np.arange(n), block_size)
        if i == 0:
            say(
                f"seq0's slots start {slots[:10].tolist()}...: slot = block_table[pos // "
                f"{block_size}] x {block_size} + pos % {block_size}.",
                "  ",
            )
        k, v = rng.standard_normal((2, n, num_kv_heads, head_dim))
        write_kv_cache(k, v, key_cache, value_cache, slots, backend="numpy")
    query = rng.standard_normal((len(seq_lens), num_heads, head_dim))
    lens = np.array(seq_lens, np.int32)
    keys, values = gather_kv(key_cache, value_cache, tables, lens, backend="numpy")
    dense = dense_attention(query, keys, values, seq_lens)
    say(
        f"Every unwritten slot holds NaN. {num_heads} query heads share {num_kv_heads} KV "
        "heads (GQA). Paged attention against softmax over the gathered, contiguous K/V:",
        "  ",
    )
    errors = {}
    for backend in available_backends():
        if backend == "triton":
            continue  # needs a CUDA device; see the kernels package's README
        if backend == "numba":
            print(
                "    numba: compiling the CPU kernel (first call only, a few seconds)...",
                flush=True,
            )
        t0 = time.perf_counter()
        out = paged_attention(query, key_cache, value_cache, tables, lens, backend=backend)
        took = time.perf_counter() - t0
        errors[backend] = float(np.max(np.abs(out - dense)))
        print(
            f"    paged_attention[{backend}]: max |paged - dense| = {errors[backend]:.1e} "
            f"(float64, {took:.2f} s)"
        )
    SUMMARY["attend"] = {"max_abs_error": errors}


def dense_attention(query: Any, keys: Any, values: Any, seq_lens: list[int]) -> Any:
    """Plain softmax over contiguous K/V, written out here so the comparison is visible."""
    out = np.zeros_like(query)
    group = query.shape[1] // keys.shape[2]
    for i, n in enumerate(seq_lens):
        k = np.repeat(keys[i, :n], group, axis=1)  # [n, num_heads, d]
        v = np.repeat(values[i, :n], group, axis=1)
        s = np.einsum("hd,thd->ht", query[i], k) / np.sqrt(query.shape[2])
        w = np.exp(s - s.max(axis=1, keepdims=True))
        out[i] = np.einsum("ht,thd->hd", w / w.sum(axis=1, keepdims=True), v)
    return out


# ----------------------------------------------------------------------------- summary
def write_summary(out: Path, plots: list[Path], seconds: float) -> Path:
    (out / "summary.json").write_text(json.dumps(SUMMARY, indent=2, default=float) + "\n")
    sim = SUMMARY.get("simulate", {})
    lines = [
        "# PagedAttention demo: summary",
        "",
        f"Ran in {seconds:.0f} s (`python demo.py`).",
        "",
        "| act | number |",
        "| --- | --- |",
        f"| share | b reused {SUMMARY['share']['hit_tokens']} of its 11 prompt tokens |",
        f"| evict | d hit {SUMMARY['evict']['d_hit_tokens']} tokens; "
        f"{SUMMARY['evict']['d_hit_tokens_without_eviction']} without the eviction |",
        "| fork | copies owed (src, dst): "
        + "; ".join(
            f"{who} {c}"
            for who, c in zip(("p", "p/beam1"), SUMMARY["fork"]["copies_owed"], strict=True)
        )
        + " |",
    ]
    for p, v in sim.get("fig13_mean_batched", {}).items():
        lines.append(f"| Fig. 13, {LABELS[p]} | {v:.2f} batched (paper {PAPER_FIG13[p]:.2f}) |")
    lines += [
        f"| plan | {SUMMARY['plan']['num_gpu_blocks']:,} GPU blocks, "
        f"{SUMMARY['plan']['max_concurrency']:.2f}x |",
        *(
            f"| attend, {b} | max abs error {e:.1e} |"
            for b, e in SUMMARY["attend"]["max_abs_error"].items()
        ),
        "",
        *(f"![{p.stem}]({p.name})" for p in plots),
        "",
    ]
    path = out / "summary.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("demo-output"), help="output folder (default: demo-output)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="shorter simulations (their numbers drift from the paper)",
    )
    args = parser.parse_args(argv)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, no permission: one line, no traceback
        parser.error(f"--out {args.out}: cannot create the folder ({exc.strerror})")
    start = time.perf_counter()
    plots: list[Path] = []
    recorder = share_and_evict()
    fork()
    simulate_act(args.out, args.quick, plots)
    plan_act()
    attend()
    page = recorder.write_page(args.out / "allocator-steps.html")
    summary = write_summary(args.out, plots, time.perf_counter() - start)
    print(f"\n{'=' * WIDTH}\nwritten to {args.out}/:")
    for path in [*plots, page, summary, args.out / "summary.json"]:
        print(f"  {path.name}")
    print(f"open {page.name} in a browser to step through acts 1 and 2 block by block")
    return 0


if __name__ == "__main__":
    sys.exit(main())
