"""GPU benchmark: Triton paged decode attention against its peers, as % of copy bandwidth.

Issue 5's benchmark script, used for issue 6's H100 targets. Per shape (head_dim 128,
block_size 16, bf16/fp16, 32 query heads over 8 or 32 KV heads, batch {1, 8, 64, 256} x
context {512, 2048, 8192, 32768} up to 20 GB of K/V, and two ragged batches) it reports the
median time of each method, with L2 flushed before every repetition and every method timed
as CUDA-graph replay (``--graph-small-only``: only under 50 MB of K/V and at batch 1):

- ours: ``paged_attention_triton`` with the automatic split, forced unsplit, one
  alternative split count, eager launches, and the same run after a write-based L2 flush;
  fp8 (e4m3) caches written by ``write_kv_cache_triton`` (bf16 shapes);
- SDPA dense: ``F.scaled_dot_product_attention`` on contiguous ``[B, Hkv, ctx, D]`` K/V
  (the query group passed as G query rows; ragged batches padded and masked);
- gather + SDPA: ``k_cache[block_table]`` then the same SDPA call;
- FlexAttention paged: ``torch.compile(flex_attention)`` with torch's experimental
  ``PagedAttention`` block-mask conversion (bf16, uniform batches, caches < 2^31 elements;
  MHA shapes with ``--flex-all``).

Bandwidth = K/V bytes that must be read / median time, as % of a device-to-device copy
(bytes read + written) measured in the same run. Every output is checked against fp32
attention on the gathered K/V; spare blocks, block-table padding and slots past each
sequence's end hold NaN, so a masking bug shows as a NaN error.

    python benchmarks/bench_gpu.py --flex-all --out gpu.json   # full grid, ~3 min on an H100
    python benchmarks/bench_gpu.py --quick --out quick.json     # key shapes only
    python benchmarks/bench_gpu.py --sweep --configs "64,4,3,0;128,4,3,0,32" ...  # tuning

``bench_gpu_report.py`` renders the JSON as the tables of docs/GPU.md; ``bench_gpu_variants.py``
A/B-times opt-in launch variants (the PDL reduce, any ``_LAUNCH_OVERRIDES``) on chosen shapes;
``bench_gpu_trace.py`` stamps every program's SM and times; ``bench_gpu_floor.py`` times what
kernels doing less than ours (an empty launch, a torch sum, a compute-free read) reach.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
import triton
from bench_gpu_report import cell  # the report's cell format (a torch-free sibling script)

from paged_attn_kernels import _triton_decode as _dec
from paged_attn_kernels._triton_decode import paged_attention_triton, plan_splits
from paged_attn_kernels._triton_write import write_kv_cache_triton

HEAD_DIM = 128
BLOCK_SIZE = 16
NUM_HEADS = 32
SPARE_BLOCKS = 8
MAX_KV_GB = 20.0
GRAPH_BELOW_BYTES = 50e6
FP8 = torch.float8_e4m3fn


_FLUSH_BUF: torch.Tensor | None = None
FLUSH_MODE = "read"


def flush_l2() -> None:
    """Evict L2 (50 MB on H100) by streaming a 256 MB buffer through it.

    ``read`` (default) leaves clean lines behind; ``write`` is ``do_bench``'s ``zero_()``,
    which leaves up to 50 MB of dirty lines that the timed kernel then pays to write back
    (~17 µs at 3 TB/s: a fixed cost that dominates small shapes, see docs/GPU_NOTES.md).
    """
    global _FLUSH_BUF
    if _FLUSH_BUF is None:
        _FLUSH_BUF = torch.ones(64 << 20, dtype=torch.int32, device="cuda")
    if FLUSH_MODE == "read":
        _FLUSH_BUF.amax()
    else:
        _FLUSH_BUF.zero_()


def bench(fn: Callable[[], Any], graph: bool, rep_ms: float) -> float:
    """Median µs of ``fn`` (optionally as CUDA-graph replay), L2 flushed before each run."""
    fn()
    torch.cuda.synchronize()
    if graph:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            fn()
        run = g.replay
    else:
        run = fn
    t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    t0.record()
    for _ in range(5):
        run()
    t1.record()
    torch.cuda.synchronize()
    est_ms = max(t0.elapsed_time(t1) / 5, 1e-3) + 0.1  # + the flush
    # a long warm-up: the card idles at a low clock between shapes (compiles, setup)
    for _ in range(int(min(max(50.0, rep_ms) / est_ms, 2000))):
        flush_l2()
        run()
    n = int(min(max(rep_ms / est_ms, 10), 1000))
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    for i in range(n):
        flush_l2()
        starts[i].record()
        run()
        ends[i].record()
    torch.cuda.synchronize()
    times = sorted(s.elapsed_time(e) for s, e in zip(starts, ends, strict=True))
    return float(times[n // 2]) * 1e3


def copy_ceiling(rep_ms: float) -> float:
    """Device-to-device copy bandwidth in GB/s (bytes read + written), 2 GiB each way."""
    n = 1 << 30
    src = torch.empty(n, dtype=torch.int16, device="cuda").random_()
    dst = torch.empty_like(src)

    def copy() -> torch.Tensor:
        return dst.copy_(src)

    us = bench(copy, graph=False, rep_ms=rep_ms)
    return 2 * 2 * n / (us * 1e-6) / 1e9


def finite_amax(x: torch.Tensor) -> float:
    """max |x| over finite entries, in slices so that an 8 GB cache needs no 8 GB temporary."""
    best = 0.0
    for part in x.split(4096):
        best = max(best, float(torch.nan_to_num(part.float(), nan=0.0).abs().amax()))
    return best


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.float() - ref).norm() / ref.norm())


class Case:
    """One shape: a shuffled, poisoned physical cache and everything the methods need."""

    def __init__(
        self, dtype: torch.dtype, num_kv: int, lens: list[int], label: str, gen: torch.Generator
    ):
        self.dtype, self.num_kv, self.lens, self.label = dtype, num_kv, lens, label
        self.batch = len(lens)
        self.group = NUM_HEADS // num_kv
        self.cap = max(lens)
        self.max_blocks = triton.cdiv(self.cap, BLOCK_SIZE)
        self.uniform = len(set(lens)) == 1
        owned = [triton.cdiv(n, BLOCK_SIZE) for n in lens]
        nb = sum(owned) + SPARE_BLOCKS
        dev = "cuda"
        shape = (nb, BLOCK_SIZE, num_kv, HEAD_DIM)
        self.k_cache = torch.randn(shape, dtype=dtype, device=dev, generator=gen)
        self.v_cache = torch.randn(shape, dtype=dtype, device=dev, generator=gen)
        perm = torch.randperm(nb, device=dev, generator=gen).to(torch.int32)
        spare = perm[sum(owned) :]
        self.k_cache[spare.long()] = float("nan")
        self.v_cache[spare.long()] = float("nan")
        bt = spare[0].repeat(self.batch, self.max_blocks)  # padding rows -> a NaN block
        pos = 0
        for b, n in enumerate(owned):
            bt[b, :n] = perm[pos : pos + n]
            pos += n
            tail = lens[b] % BLOCK_SIZE
            if tail:  # slots past seq_len in the last owned block
                last = int(perm[pos - 1])
                self.k_cache[last, tail:] = float("nan")
                self.v_cache[last, tail:] = float("nan")
        self.block_table = bt.contiguous()
        self.seq_lens = torch.tensor(lens, dtype=torch.int32, device=dev)
        self.query = torch.randn(
            (self.batch, NUM_HEADS, HEAD_DIM), dtype=dtype, device=dev, generator=gen
        )
        self.scale = 1.0 / math.sqrt(HEAD_DIM)
        self.kv_bytes = sum(lens) * num_kv * HEAD_DIM * 2 * self.k_cache.element_size()
        self.check_seqs = sorted(
            {0, self.batch // 2, self.batch - 1, int(torch.tensor(lens).argmax())}
        )
        self.refs = {b: self.reference(b) for b in self.check_seqs}

    def gathered(
        self, b: int, k_cache: torch.Tensor, v_cache: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.lens[b]
        ids = self.block_table[b, : triton.cdiv(n, BLOCK_SIZE)].long()
        k = k_cache[ids].reshape(-1, self.num_kv, HEAD_DIM)[:n]
        v = v_cache[ids].reshape(-1, self.num_kv, HEAD_DIM)[:n]
        return k, v

    def reference(self, b: int) -> torch.Tensor:
        k, v = self.gathered(b, self.k_cache, self.v_cache)
        k = k.float().repeat_interleave(self.group, dim=1).transpose(0, 1)  # [H, n, D]
        v = v.float().repeat_interleave(self.group, dim=1).transpose(0, 1)
        q = self.query[b].float()[:, None, :]  # [H, 1, D]
        p = torch.softmax((q @ k.transpose(1, 2)) * self.scale, dim=-1)
        return (p @ v)[:, 0, :]  # [H, D]

    def error(self, out: torch.Tensor) -> float:
        if not torch.isfinite(out.float()).all():
            return float("nan")
        return max(rel_err(out[b], self.refs[b]) for b in self.check_seqs)

    def dense(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Contiguous ``[B, Hkv, cap, D]`` K/V (zero padded) and a mask when lengths differ."""
        ids = self.block_table.long()
        k = self.k_cache[ids].reshape(self.batch, -1, self.num_kv, HEAD_DIM)[:, : self.cap]
        v = self.v_cache[ids].reshape(self.batch, -1, self.num_kv, HEAD_DIM)[:, : self.cap]
        k = k.transpose(1, 2).contiguous()
        v = v.transpose(1, 2).contiguous()
        if self.uniform:
            return k, v, None
        keep = torch.arange(self.cap, device="cuda")[None, :] < self.seq_lens[:, None]
        k = k.masked_fill(~keep[:, None, :, None], 0.0)
        v = v.masked_fill(~keep[:, None, :, None], 0.0)
        return k, v, keep[:, None, None, :]


def run_case(case: Case, args: argparse.Namespace, copy_gbs: float, sms: int) -> dict[str, Any]:
    rows: dict[str, Any] = {
        "label": case.label,
        "dtype": str(case.dtype).replace("torch.", ""),
        "q_heads": NUM_HEADS,
        "kv_heads": case.num_kv,
        "batch": case.batch,
        "ctx": case.cap if case.uniform else None,
        "total_tokens": sum(case.lens),
        "kv_gb": case.kv_bytes / 1e9,
        "methods": {},
    }
    graph = not args.graph_small_only or case.kv_bytes < GRAPH_BELOW_BYTES or case.batch == 1
    rows["graph"] = graph
    rep = args.rep_ms
    q, kc, vc, bt, sl, scale = (
        case.query,
        case.k_cache,
        case.v_cache,
        case.block_table,
        case.seq_lens,
        case.scale,
    )

    def record(name: str, us: float, err: float, bytes_: float | None = None, **extra: Any) -> None:
        b = case.kv_bytes if bytes_ is None else bytes_
        gbs = b / (us * 1e-6) / 1e9
        rows["methods"][name] = {
            "us": us,
            "gbs": gbs,
            "pct_copy": 100 * gbs / copy_gbs,
            "err": err,
            **extra,
        }

    auto_splits = plan_splits(q, kc, bt).num_splits
    fill_splits = max(2, round(4 * sms / (case.batch * case.num_kv)))
    variants: dict[str, int | None] = {"ours": None, "ours_s1": 1}
    alt = fill_splits if auto_splits == 1 else max(1, auto_splits // 2)
    if alt not in (1, auto_splits):
        variants["ours_alt"] = alt
    if args.sweep and case.batch <= 8:
        for s in (2, 4, 8, 16, 24, 32, 48, 64, 96, 128):
            variants[f"ours_s{s}"] = s
    out = torch.empty_like(q)
    if args.configs:
        for cfg in args.configs.split(";"):
            vals = [int(x) for x in cfg.split(",")]
            tile, warps, stages, pref = vals[:4]
            over = {"tile_n": tile, "num_warps": warps, "num_stages": stages, "prefetch": pref}
            forced: list[int | None] = [*vals[4:]] or (
                [None, 1] if case.batch >= 64 and case.uniform else [None]
            )
            for fns in forced:

                def cfn(ns: int | None = fns, over: dict[str, int] = over) -> torch.Tensor:
                    _dec._LAUNCH_OVERRIDES.clear()
                    _dec._LAUNCH_OVERRIDES.update(over)
                    try:
                        return paged_attention_triton(q, kc, vc, bt, sl, scale, out, num_splits=ns)
                    finally:
                        _dec._LAUNCH_OVERRIDES.clear()

                out.fill_(float("nan"))
                cfn()
                err = case.error(out)
                label = f"cfg_{cfg.replace(',', '_')}_s{fns or 'auto'}"
                record(label, bench(cfn, graph, rep), err)
    # "ours": the launch planned on the host from the batch's lengths (plan_decode, made
    # once, outside the timed region, as FlashInfer's plan()); "ours_grid": the launch from
    # shapes alone; the split variants force num_splits on the latter.
    host_plan = _dec.plan_decode(q, kc, bt, case.lens)
    rows["plan"] = {"chunk": host_plan.chunk, "items": host_plan.num_items}
    variants = {
        "ours": None,
        "ours_grid": None,
        **{k: v for k, v in variants.items() if k != "ours"},
    }
    for name, ns in variants.items():

        def fn(ns: int | None = ns, planned: bool = name == "ours") -> torch.Tensor:
            p = host_plan if planned else None
            return paged_attention_triton(q, kc, vc, bt, sl, scale, out, num_splits=ns, plan=p)

        out.fill_(float("nan"))
        fn()
        err = case.error(out)
        us = bench(fn, graph, rep)
        eff = host_plan.num_splits if name == "ours" else plan_splits(q, kc, bt, ns).num_splits
        record(name, us, err, splits=eff)
        if name == "ours" and graph:
            record("ours_nograph", bench(fn, False, rep), err, splits=eff)
        if name == "ours" and case.kv_bytes < 0.6e9:
            global FLUSH_MODE
            keep, FLUSH_MODE = FLUSH_MODE, "write"
            record("ours_writeflush", bench(fn, graph, rep), err, splits=eff)
            FLUSH_MODE = keep

    if not args.no_fp8 and case.dtype == torch.bfloat16:
        k_scale = finite_amax(kc) / 448.0
        v_scale = finite_amax(vc) / 448.0
        k8 = torch.empty(kc.shape, dtype=FP8, device="cuda")
        v8 = torch.empty_like(k8)
        slots = torch.arange(kc.shape[0] * BLOCK_SIZE, device="cuda", dtype=torch.int64)
        flat = (kc.shape[0] * BLOCK_SIZE, case.num_kv, HEAD_DIM)

        def wfn() -> None:
            write_kv_cache_triton(
                kc.view(flat), vc.view(flat), k8, v8, slots, k_scale=k_scale, v_scale=v_scale
            )

        wus = bench(wfn, False, rep)
        wbytes = kc.numel() * (kc.element_size() + 1) * 2
        rows["write_fp8"] = {"us": wus, "gbs": wbytes / (wus * 1e-6) / 1e9}

        # the fp8 cache's own plan (its tile may differ from bf16's), made outside timing
        plan8 = _dec.plan_decode(q, k8, bt, case.lens)

        def fn8() -> torch.Tensor:
            return paged_attention_triton(
                q, k8, v8, bt, sl, scale, out, k_scale=k_scale, v_scale=v_scale, plan=plan8
            )

        for cfg in filter(None, args.fp8_configs.split(";")):
            vals = [int(x) for x in cfg.split(",")]
            over = dict(
                zip(
                    ("tile_n", "num_warps", "num_stages", "prefetch", "fp16_dot"),
                    vals,
                    strict=False,
                )
            )

            def cfn8(over: dict[str, int] = over) -> torch.Tensor:
                _dec._LAUNCH_OVERRIDES.clear()
                _dec._LAUNCH_OVERRIDES.update(over)
                try:
                    return fn8()
                finally:
                    _dec._LAUNCH_OVERRIDES.clear()

            out.fill_(float("nan"))
            cfn8()
            record(
                f"cfg8_{cfg.replace(',', '_')}",
                bench(cfn8, graph, rep),
                case.error(out),
                bytes_=case.kv_bytes / 2,
            )
        out.fill_(float("nan"))
        fn8()
        err8 = case.error(out)
        us8 = bench(fn8, graph, rep)
        record(
            "ours_fp8",
            us8,
            err8,
            bytes_=case.kv_bytes / 2,
            speedup_vs_bf16=rows["methods"]["ours"]["us"] / us8,
        )
        rows["methods"]["ours_fp8"]["pct_copy"] = (
            100 * (case.kv_bytes / 2) / (us8 * 1e-6) / 1e9 / copy_gbs
        )
        del k8, v8

    if not args.no_peers:
        kd, vd, mask = case.dense()
        qd = q.view(case.batch, case.num_kv, case.group, HEAD_DIM)

        def sdpa() -> torch.Tensor:
            return F.scaled_dot_product_attention(qd, kd, vd, attn_mask=mask, scale=scale)

        o = sdpa().reshape(case.batch, NUM_HEADS, HEAD_DIM)
        record("sdpa_dense", bench(sdpa, graph, rep), case.error(o), padded=mask is not None)
        del kd, vd
        ids = bt.long()

        def gather_sdpa() -> torch.Tensor:
            kg = kc[ids].view(case.batch, -1, case.num_kv, HEAD_DIM)[:, : case.cap].transpose(1, 2)
            vg = vc[ids].view(case.batch, -1, case.num_kv, HEAD_DIM)[:, : case.cap].transpose(1, 2)
            if mask is not None:  # padded rows of the block table point at NaN blocks
                kg = kg.masked_fill(~mask.transpose(2, 3), 0.0)
                vg = vg.masked_fill(~mask.transpose(2, 3), 0.0)
            return F.scaled_dot_product_attention(qd, kg, vg, attn_mask=mask, scale=scale)

        o = gather_sdpa().reshape(case.batch, NUM_HEADS, HEAD_DIM)
        record(
            "gather_sdpa", bench(gather_sdpa, graph, rep), case.error(o), padded=mask is not None
        )
        torch.cuda.empty_cache()
        flex_ok = case.dtype == torch.bfloat16 and case.uniform and not args.no_flex
        flex_ok = flex_ok and kc.numel() < 2**31 and (args.flex_all or case.num_kv == 8)
        if flex_ok:
            try:
                rows["methods"]["flex_paged"] = run_flex(case, graph, rep, copy_gbs)
            except Exception as exc:  # a compile failure is a result, not a crash
                rows["methods"]["flex_paged"] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return rows


def run_flex(case: Case, graph: bool, rep: float, copy_gbs: float) -> dict[str, Any]:
    from torch.nn.attention.experimental._paged_attention import PagedAttention
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    torch._dynamo.reset()
    t0 = time.perf_counter()
    nb = case.k_cache.shape[0]
    pa = PagedAttention(n_pages=nb, page_size=BLOCK_SIZE, max_batch_size=case.batch, device="cuda")
    bt = case.block_table.long()
    pa.page_table[:, : case.max_blocks] = bt
    logical = torch.arange(case.max_blocks, device="cuda").expand(case.batch, -1)
    pa.physical_to_logical.scatter_(1, bt, logical)
    kv_len = case.seq_lens.long()

    def live(b, h, q_idx, kv_idx):  # type: ignore[no-untyped-def]
        return kv_idx < kv_len[b]

    logical_mask = create_block_mask(
        live,
        case.batch,
        None,
        1,
        case.max_blocks * BLOCK_SIZE,
        device="cuda",
        BLOCK_SIZE=(128, BLOCK_SIZE),
    )
    block_mask = pa.convert_logical_block_mask(logical_mask, kv_len=kv_len)
    kf = case.k_cache.permute(2, 0, 1, 3).reshape(1, case.num_kv, nb * BLOCK_SIZE, HEAD_DIM)
    vf = case.v_cache.permute(2, 0, 1, 3).reshape(1, case.num_kv, nb * BLOCK_SIZE, HEAD_DIM)
    qf = case.query.view(case.batch, NUM_HEADS, 1, HEAD_DIM)
    # flex needs one batch for K/V: expand the single physical cache over the batch
    kf = kf.expand(case.batch, -1, -1, -1)
    vf = vf.expand(case.batch, -1, -1, -1)
    compiled = torch.compile(flex_attention, dynamic=False)

    def fn() -> torch.Tensor:
        return compiled(qf, kf, vf, block_mask=block_mask, enable_gqa=True, scale=case.scale)

    o = fn().reshape(case.batch, NUM_HEADS, HEAD_DIM)
    torch.cuda.synchronize()
    setup_s = time.perf_counter() - t0
    err = case.error(o)
    try:
        us = bench(fn, graph, rep)
    except Exception:
        us = bench(fn, False, rep)
    gbs = case.kv_bytes / (us * 1e-6) / 1e9
    return {"us": us, "gbs": gbs, "pct_copy": 100 * gbs / copy_gbs, "err": err, "setup_s": setup_s}


def shape_list(args: argparse.Namespace) -> list[tuple[torch.dtype, int, list[int], str]]:
    dtypes = [getattr(torch, d) for d in args.dtypes]
    batches = [1, 8, 64, 256]
    ctxs = [512, 2048, 8192, 32768]
    out = []
    for dt in dtypes:
        for kv in args.kv_heads:
            for b in batches:
                for c in ctxs:
                    if args.quick and (b, c) not in {(64, 8192), (1, 32768), (8, 8192), (8, 32768)}:
                        continue
                    gb = b * c * kv * HEAD_DIM * 2 * dt.itemsize / 1e9
                    if gb > MAX_KV_GB:
                        continue
                    out.append((dt, kv, [c] * b, f"B{b}xctx{c}"))
            if not args.no_ragged:
                g = torch.Generator().manual_seed(args.seed)
                short = torch.randint(128, 1025, (63,), generator=g).tolist()
                lens = [*short[:31], 32768, *short[31:]]
                out.append((dt, kv, lens, "ragged-1x32k+63x128-1024"))
                zipf = [32768 // r for r in range(1, 65)]
                perm = torch.randperm(64, generator=g).tolist()
                out.append((dt, kv, [zipf[i] for i in perm], "ragged-zipf64"))
    return out


def cases_by_label() -> dict[tuple[str, int, str], list[int]]:
    """Every case of the full run as ``{(dtype name, kv heads, label): seq_lens}``."""
    ns = argparse.Namespace(
        dtypes=["bfloat16", "float16"], kv_heads=[8, 32], quick=False, no_ragged=False, seed=0
    )
    return {
        (str(dt).replace("torch.", ""), kv, label): lens for dt, kv, lens, label in shape_list(ns)
    }


def companion_parser(doc: str, out: str) -> argparse.ArgumentParser:
    """The companion scripts' common flags: ``--out``, ``--rep-ms`` and ``--shapes``."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--out", default=out)
    ap.add_argument("--rep-ms", type=float, default=60.0)
    ap.add_argument(
        "--shapes", default="", help="dtype:kv:label,... (default: the script's SHAPES)"
    )
    return ap


def companion_start(
    rep_ms: float,
) -> tuple[torch.Generator, float, dict[tuple[str, int, str], list[int]]]:
    """A companion script's seeded generator, copy ceiling (printed) and every case's lengths."""
    gen = torch.Generator(device="cuda").manual_seed(0)
    copy_gbs = copy_ceiling(rep_ms)
    print(f"copy {copy_gbs:.0f} GB/s", flush=True)
    return gen, copy_gbs, cases_by_label()


def parse_shapes(arg: str, default: list[tuple[str, int, str]]) -> list[tuple[str, int, str]]:
    """``dtype:kv:label,...`` (the companion scripts' ``--shapes``), or ``default``."""
    if not arg:
        return default
    return [(d, int(k), lab) for d, k, lab in (x.split(":") for x in arg.split(","))]


def env_info(copy_gbs: float) -> dict[str, Any]:
    try:
        drv = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
    except Exception:
        drv = "unknown"
    p = torch.cuda.get_device_properties(0)
    return {
        "device": p.name,
        "sms": p.multi_processor_count,
        "driver": drv,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "copy_gbs": copy_gbs,
    }


COLS = [
    ("ours", "ours"),
    ("ours_grid", "ours, no plan"),
    ("ours_s1", "unsplit"),
    ("ours_alt", "alt split"),
    ("ours_fp8", "ours fp8"),
    ("sdpa_dense", "SDPA dense"),
    ("gather_sdpa", "gather+SDPA"),
    ("flex_paged", "Flex paged"),
]


def markdown(info: dict[str, Any], results: list[dict[str, Any]]) -> str:
    lines = [
        f"Device {info['device']} ({info['sms']} SMs), driver {info['driver']}, torch {info['torch']}, "
        f"triton {info['triton']}, CUDA {info['cuda']}, {info['date']}; copy ceiling "
        f"{info['copy_gbs']:.0f} GB/s. Cells: median µs / % of copy (splits); "
        "g = timed with CUDA-graph replay.",
        "",
        "| dtype | kv heads | shape | KV GB | "
        + " | ".join(h for _, h in COLS)
        + " | max err ours / SDPA |",
        "|" + "---|" * (5 + len(COLS)),
    ]
    for r in results:
        ms = r["methods"]
        cells = [cell(ms.get(k), splits=k.startswith("ours") and k != "ours_fp8") for k, _ in COLS]
        e_ours = ms["ours"]["err"]
        e_sdpa = ms.get("sdpa_dense", {}).get("err", float("nan"))
        lines.append(
            f"| {r['dtype']} | {r['kv_heads']} | {r['label']}{' g' if r['graph'] else ''} | {r['kv_gb']:.3f} | "
            + " | ".join(cells)
            + f" | {e_ours:.1e} / {e_sdpa:.1e} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--out", default="gpu_bench.json", help="JSON path; markdown goes beside it (.md)"
    )
    ap.add_argument("--quick", action="store_true", help="key shapes only")
    ap.add_argument("--dtypes", nargs="+", default=["bfloat16", "float16"])
    ap.add_argument("--kv-heads", nargs="+", type=int, default=[8, 32])
    ap.add_argument("--rep-ms", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sweep", action="store_true", help="also time fixed split counts for B <= 8")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--no-flex", action="store_true")
    ap.add_argument("--flex-all", action="store_true", help="FlexAttention for MHA shapes too")
    ap.add_argument("--no-fp8", action="store_true")
    ap.add_argument(
        "--graph-all", action="store_true", help="(default) CUDA-graph replay for every shape"
    )
    ap.add_argument(
        "--graph-small-only",
        action="store_true",
        help="graph replay only under 50 MB of K/V and at batch 1; eager launches elsewhere",
    )
    ap.add_argument("--configs", default="", help="launch sweep: 'tile,warps,stages,prefetch;...'")
    ap.add_argument(
        "--fp8-configs",
        default="",
        help="fp8 launch sweep: 'tile,warps,stages,prefetch,fp16dot;...'",
    )
    ap.add_argument("--flush", choices=["read", "write"], default="read", help="L2 flush kind")
    ap.add_argument("--only", default="", help="comma-separated shape labels to run")
    ap.add_argument("--no-ragged", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_gpu.py needs CUDA")
    global FLUSH_MODE
    FLUSH_MODE = args.flush
    torch.manual_seed(args.seed)
    gen = torch.Generator(device="cuda").manual_seed(args.seed)
    copy_gbs = copy_ceiling(args.rep_ms)
    info = env_info(copy_gbs)
    print(json.dumps(info), flush=True)
    results = []
    for dt, kv, lens, label in shape_list(args):
        if args.only and label not in args.only.split(","):
            continue
        t0 = time.perf_counter()
        case = Case(dt, kv, lens, label, gen)
        r = run_case(case, args, copy_gbs, info["sms"])
        del case
        torch.cuda.empty_cache()
        results.append(r)
        summary = ", ".join(
            f"{k} {v['us']:.1f}us {v['pct_copy']:.1f}%"
            for k, v in r["methods"].items()
            if "us" in v
        )
        print(
            f"[{time.perf_counter() - t0:.1f}s] {r['dtype']} kv{kv} {label}: {summary}", flush=True
        )
        with open(args.out, "w") as f:  # keep partial results if the run is cut short
            json.dump({"env": info, "results": results}, f, indent=1)
    md = markdown(info, results)
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
