"""CPU benchmark of the numba backend against numpy baselines measured in the same process.

Each number is a ratio to a baseline timed in the same run (absolute GB/s differ between
machines; the ratios travel):

- decode vs read: ``paged_attention(backend="numba")`` against a read-only pass over the
  same K/V bytes (``numpy.sum`` of both caches), the floor of any decode: it must read
  every byte once and writes almost nothing;
- gather: ``gather_kv`` through a shuffled block table into preallocated dense arrays vs
  ``numpy.copyto`` of the same bytes (both read K/V once and write it once);
- decode: ``paged_attention(backend="numba")`` (block-at-a-time scoring, one rescale per
  block) in GB/s of K/V read, vs copyto's bandwidth and vs the straightforward per-token
  numba loop (``_numba._decode_per_token``) on the same cache;
- what limits it: the same decode on one thread, and the same calls over a block table
  that sends every sequence through the same 4 blocks, so that the K/V bytes stay in L2:
  the kernel's arithmetic rate without DRAM traffic (GB/s of K/V processed).

The machine's load average is printed before and after: on a shared machine another job
on one of the cores costs the two-threaded decode more than the one-threaded read.

Run:  python benchmarks/bench_cpu.py --threads 2 (B=16 x ctx=8192, 1.07 GB of fp32 K/V)
      python benchmarks/bench_cpu.py --threads 2 --compare-prefetch  (both prefetch forms)
      python benchmarks/bench_cpu.py --quick    (small, smoke test only: fits in cache)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from paged_attn_kernels import _numba, gather_kv, paged_attention


def _interleaved_medians(methods: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds per method; one call of each per round, so that load changes on a
    shared machine hit every method alike."""
    for fn in methods.values():
        fn()  # warm-up: numba compile or cache load, first-touch page faults
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, fn in methods.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _with_prefetch_limit(fn: Callable[[], object], limit: int) -> Callable[[], object]:
    """``fn`` with the kernel's block-size limit for the spread prefetch patched (benchmark
    only: the library keeps its measured default)."""

    def run() -> object:
        saved = _numba._SPREAD_MAX_BLOCK_BYTES
        _numba._SPREAD_MAX_BLOCK_BYTES = limit
        try:
            return fn()
        finally:
            _numba._SPREAD_MAX_BLOCK_BYTES = saved

    return run


def _inputs(
    rng: np.random.Generator, shape: tuple[int, ...], q_shape: tuple[int, ...], dtype: str
) -> tuple[Any, Any, Any]:
    """(key_cache, value_cache, query) in the storage the benchmark asks for."""
    if dtype == "fp8":

        def codes() -> np.ndarray:
            c = rng.integers(0, 256, size=shape, dtype=np.uint8)
            c[(c & 0x7F) == 0x7F] = 0  # no NaN codes
            return c

        return codes(), codes(), rng.standard_normal(q_shape, dtype=np.float32)
    kc = rng.standard_normal(shape, dtype=np.float32)
    vc = rng.standard_normal(shape, dtype=np.float32)
    q = rng.standard_normal(q_shape, dtype=np.float32)
    if dtype == "float16":
        return kc.astype(np.float16), vc.astype(np.float16), q.astype(np.float16)
    if dtype == "bfloat16":
        import torch

        return tuple(torch.from_numpy(x).to(torch.bfloat16) for x in (kc, vc, q))  # type: ignore[return-value]
    return kc, vc, q


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch", type=int, default=16, help="sequences (default 16)")
    p.add_argument("--context", type=int, default=8192, help="tokens per sequence (default 8192)")
    p.add_argument("--heads", type=int, default=32, help="query heads (default 32)")
    p.add_argument("--kv-heads", type=int, default=8, help="KV heads (default 8)")
    p.add_argument("--head-dim", type=int, default=128, help="head size (default 128)")
    p.add_argument("--block-size", type=int, default=16, help="tokens per block (default 16)")
    p.add_argument("--repeats", type=int, default=7, help="timed rounds (median, default 7)")
    p.add_argument("--threads", type=int, default=None, help="numba threads (default: all)")
    p.add_argument("--seed", type=int, default=0, help="RNG seed (default 0)")
    p.add_argument(
        "--dtype",
        choices=("float32", "float16", "bfloat16", "fp8"),
        default="float32",
        help="cache dtype (default float32; bfloat16 needs torch; the per-token baseline "
        "and its ratio are float32 only)",
    )
    p.add_argument("--quick", action="store_true", help="tiny shape, 2 repeats (smoke test)")
    p.add_argument(
        "--compare-prefetch",
        action="store_true",
        help="add decode rows with each next-block prefetch forced: spread over the block "
        "(the kernel's choice for blocks of up to 32 KB) and one line per KB at its start",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.context, args.repeats = 4, 1024, 2
    if args.threads:
        numba.set_num_threads(args.threads)

    rng = np.random.default_rng(args.seed)
    bs, kvh, d = args.block_size, args.kv_heads, args.head_dim
    blocks_per_seq = -(-args.context // bs)
    num_blocks = args.batch * blocks_per_seq + 8  # 8 spare blocks no sequence owns
    shape = (num_blocks, bs, kvh, d)  # [num_blocks, block_size, num_kv_heads, head_dim]
    key_cache, value_cache, query = _inputs(rng, shape, (args.batch, args.heads, d), args.dtype)
    block_table = (
        rng.permutation(args.batch * blocks_per_seq).reshape(args.batch, blocks_per_seq) + 8
    ).astype(np.int32)  # a shuffled physical layout, as an allocator leaves it
    seq_lens = np.full(args.batch, args.context, np.int32)
    if args.dtype == "bfloat16":  # every argument from one framework
        import torch

        block_table, seq_lens = torch.from_numpy(block_table), torch.from_numpy(seq_lens)
    itemsize = {"float32": 4, "float16": 2, "bfloat16": 2, "fp8": 1}[args.dtype]
    kv_bytes = 2 * args.batch * args.context * kvh * d * itemsize

    group = args.heads // kvh
    if args.dtype == "bfloat16":
        import torch
    src = np.ones(kv_bytes, np.uint8)
    dst = np.empty_like(src)
    dense_shape = (args.batch, blocks_per_seq * bs, kvh, d)
    if args.dtype == "bfloat16":
        import torch

        dense: tuple[object, object] | None = (
            torch.empty(dense_shape, dtype=torch.bfloat16),
            torch.empty(dense_shape, dtype=torch.bfloat16),
        )
    elif args.dtype == "fp8":
        dense = None  # fp8 gathers dequantise into new float32 arrays
    else:
        dense = (np.empty(dense_shape, key_cache.dtype), np.empty(dense_shape, key_cache.dtype))
    scales = {"k_scale": 0.05, "v_scale": 0.05} if args.dtype == "fp8" else {}
    fp32 = args.dtype == "float32"
    q = (
        np.ascontiguousarray((query / np.sqrt(d)).reshape(args.batch, kvh, group, d))
        if fp32
        else None
    )

    def copy() -> None:
        np.copyto(dst, src)

    def as_f32(cache: Any) -> np.ndarray:
        # the cache's bytes seen as float32: every dtype is read the same way (vector adds)
        bits = cache if isinstance(cache, np.ndarray) else cache.view(torch.int16).numpy()
        return np.asarray(bits).reshape(-1).view(np.float32)

    flat = [as_f32(key_cache), as_f32(value_cache)]

    def read() -> None:
        for x in flat:
            np.sum(x)

    def gather() -> None:
        gather_kv(key_cache, value_cache, block_table, seq_lens, backend="numba", out=dense,
                  **scales)  # fmt: skip

    def decode() -> object:
        return paged_attention(query, key_cache, value_cache, block_table, seq_lens,
                               backend="numba", **scales)  # fmt: skip

    # the same calls over a block table that sends every sequence through the same 4 blocks
    # (K and V: 8 x block_size x kv_heads x d elements, 512 KB at the default shape): the
    # same work, with the K/V bytes in the core's L2, i.e. the kernel's arithmetic rate
    hot_table = (np.arange(args.batch * blocks_per_seq) % 4 + 8).astype(np.int32)
    hot_table = hot_table.reshape(args.batch, blocks_per_seq)
    if args.dtype == "bfloat16":
        hot_table = torch.from_numpy(hot_table)
    threads = numba.get_num_threads()

    def one_thread(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            numba.set_num_threads(1)
            try:
                return fn()
            finally:
                numba.set_num_threads(threads)

        return run

    def in_cache() -> object:
        return paged_attention(query, key_cache, value_cache, hot_table, seq_lens,
                               backend="numba", **scales)  # fmt: skip

    def per_token() -> object:
        return _numba.decode(q, key_cache, value_cache, block_table, seq_lens, "float32",
                             per_token=True)  # fmt: skip

    methods = {"copy": copy, "read": read, "gather": gather, "decode": decode,
               "decode_1t": one_thread(decode), "in_cache": in_cache,
               "in_cache_1t": one_thread(in_cache)}  # fmt: skip
    if fp32:
        methods["per_token"] = per_token
    if args.compare_prefetch:
        methods["prefetch_spread"] = _with_prefetch_limit(decode, 1 << 62)
        methods["prefetch_prime"] = _with_prefetch_limit(decode, -1)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    t = _interleaved_medians(methods, args.repeats)
    if fp32:
        out = np.asarray(decode())
        base = np.asarray(per_token()).reshape(out.shape)
        agree = float(np.abs(out - base).max() / np.abs(base).max())

    gb = kv_bytes / 1e9
    gather_gb = gb + (4 * gb if args.dtype == "fp8" else gb)  # fp8 is written as float32
    copy_rw = 2 * gb / t["copy"]
    gather_ratio = (gather_gb / t["gather"]) / copy_rw
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(
        f"machine: {platform.machine()} {os.cpu_count()} CPUs, {threads} numba threads, "
        f"numba {numba.__version__}, numpy {np.__version__}, load average (1/5/15 min) "
        f"{'/'.join(f'{x:.2f}' for x in load_before)} before, "
        f"{'/'.join(f'{x:.2f}' for x in load)} after"
    )
    print(
        f"shape: B={args.batch} ctx={args.context} heads={args.heads}/{kvh} d={d} "
        f"block={bs} {args.dtype}, K/V = {gb:.3f} GB, median of {args.repeats} interleaved rounds"
    )
    print(f"{'method':<36}{'ms':>9}{'GB/s':>9}  ratio")
    rows = [
        ("numpy.copyto (read+write)", "copy", 2 * gb, "1.00 (baseline)"),
        ("numpy.sum of K and V (read)", "read", gb, "1.00 (decode's baseline)"),
        ("gather_kv numba (read+write)", "gather", gather_gb, f"{gather_ratio:.2f} of copy GB/s"),
    ]
    if fp32:
        rows.append(("decode, per-token loop (K/V read)", "per_token", gb, ""))
    speedup = f", {t['per_token'] / t['decode']:.2f}x per-token" if fp32 else ""
    rows.append(("decode, paged_attention (K/V read)", "decode", gb,
                 f"{t['read'] / t['decode']:.2f} of read, {gb / t['decode'] / copy_rw:.2f} of "
                 f"copy GB/s{speedup}"))  # fmt: skip
    rows.append(("decode, 1 thread (K/V read)", "decode_1t", gb,
                 f"{t['read'] / t['decode_1t']:.2f} of read"))  # fmt: skip
    rows.append(("decode, K/V in L2 (4 blocks reused)", "in_cache", gb,
                 f"{t['read'] / t['in_cache']:.2f} of read: arithmetic ceiling"))  # fmt: skip
    rows.append(("decode, K/V in L2, 1 thread", "in_cache_1t", gb,
                 f"{t['read'] / t['in_cache_1t']:.2f} of read"))  # fmt: skip
    for key, label in (("prefetch_spread", "spread"), ("prefetch_prime", "1 line/KB")):
        if key in t:
            rows.append((f"decode, prefetch {label}", key, gb,
                         f"{t['read'] / t[key]:.2f} of read"))  # fmt: skip
    for label, key, nbytes, note in rows:
        print(f"{label:<36}{t[key] * 1e3:9.1f}{nbytes / t[key]:9.1f}  {note}")
    if fp32:
        print(f"max relative difference decode vs per-token: {agree:.1e}")
    print(
        f"summary: {args.dtype} gather {gather_ratio:.0%} of copy; decode {gb / t['decode']:.1f} "
        f"GB/s of K/V = {t['read'] / t['decode']:.0%} of the read-only pass "
        f"({gb / t['read']:.1f} GB/s), {gb / t['decode'] / copy_rw:.0%} of copy's read+write GB/s"
        + (f" = {t['per_token'] / t['decode']:.2f}x the per-token loop" if fp32 else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
