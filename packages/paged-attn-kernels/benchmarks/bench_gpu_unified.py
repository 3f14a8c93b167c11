"""H100 benchmark of variable-length paged attention and the cache kernels, peers in one run.

Every figure is ``triton.testing.do_bench`` (its write flush of L2 before each repetition;
median), eager launches, the plan made once outside the timed region and reused as an
engine reuses it across layers. bf16, 32 query heads / 8 KV heads, head_dim 128, 16-token
blocks on a shuffled block table, unless a row says otherwise.

- prefill (no cached prefix), B x L tokens: ours vs torch SDPA's best backend (flash,
  efficient, cuDNN; GQA through ``enable_gqa`` or K/V expanded beforehand) on the same
  tokens laid out densely ``[B, heads, L, 128]`` with ``is_causal=True``.
- chunked prefill, 2048 new tokens on 16384 cached: ours vs gather + SDPA (torch indexing of
  the block table, then SDPA with a lower-right causal mask), our gather kernel + SDPA, dense
  SDPA on K/V already contiguous, and (B=1) FlexAttention over the paged cache (torch's
  experimental ``PagedAttention`` block-mask conversion, ``torch.compile``).
- verification: 4 new tokens per sequence at B=64 x 8192 vs a one-token decode (ours, and
  the package's ``paged_attention``).
- sliding window 4096 over a 32768 context vs a 4096-context decode.
- cache kernels: ``gather_kv_kernel`` and ``copy_blocks_kernel`` vs a device-to-device copy
  of the same bytes (and vs the torch indexing they replace).

Usage (from the package root, CUDA device)::

    python benchmarks/bench_gpu_unified.py --out unified.json
    python benchmarks/bench_gpu_unified.py --sweep      # prefill launch shapes, A/B
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
import triton
from triton.testing import do_bench

from paged_attn_kernels.cache_ops import copy_blocks_kernel, gather_kv_kernel
from paged_attn_kernels.unified import plan_unified

H, HKV, D, BS = 32, 8, 128, 16
GROUP = H // HKV
DEV = "cuda"
# the shapes; a CPU smoke run (TRITON_INTERPRET=1) shrinks them
CHUNK_CTX, CHUNK_NEW = 16384, 2048
VERIFY_B, VERIFY_CTX, VERIFY_Q = 64, 8192, 4
WINDOW_CTX, WINDOW = 32768, 4096
GATHER_SHAPES = ((16, 8192), (64, 8192), (256, 2048))
COPY_PAIRS = (8192, 32768)
SCALE = 1 / math.sqrt(D)


def timed(fn: Callable[[], Any], rep: int) -> float:
    """Median µs, do_bench's flush and warm-up."""
    return float(do_bench(fn, warmup=25, rep=rep, return_mode="median")) * 1e3


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


class Paged:
    """A paged bf16/fp8 cache holding ``lens`` tokens per sequence, spare blocks NaN."""

    def __init__(self, lens: list[int], dtype: torch.dtype = torch.bfloat16, seed: int = 0,
                 block_size: int = BS):  # fmt: skip
        g = torch.Generator(device=DEV).manual_seed(seed)
        self.lens = lens
        self.bs = bs = block_size
        per = [triton.cdiv(n, bs) for n in lens]
        self.max_blocks = max(per)
        nb = sum(per) + 8
        perm = torch.randperm(nb, device=DEV, generator=g).int()
        table = torch.full((len(lens), self.max_blocks), int(perm[-1]), dtype=torch.int32)
        at = 0
        for i, p in enumerate(per):
            table[i, :p] = perm[at : at + p].cpu()
            at += p
        self.block_table = table.to(DEV)
        shape = (nb, bs, HKV, D)
        self.k = torch.randn(shape, device=DEV, generator=g, dtype=torch.bfloat16)
        self.v = torch.randn(shape, device=DEV, generator=g, dtype=torch.bfloat16)
        spare = perm[sum(per) :].long()
        self.k[spare] = float("nan")
        self.v[spare] = float("nan")
        if dtype != torch.bfloat16:
            self.k, self.v = self.k.to(dtype), self.v.to(dtype)
        self.seq_lens = torch.tensor(lens, dtype=torch.int32, device=DEV)

    def dense(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequence i's K/V as ``[HKV, n, D]`` bf16."""
        n = self.lens[i]
        ids = self.block_table[i, : triton.cdiv(n, self.bs)].long()
        k = self.k[ids].reshape(-1, HKV, D)[:n].transpose(0, 1).to(torch.bfloat16)
        v = self.v[ids].reshape(-1, HKV, D)[:n].transpose(0, 1).to(torch.bfloat16)
        return k, v


def varlen(q_lens: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    qsl = torch.zeros(len(q_lens) + 1, dtype=torch.int32)
    qsl[1:] = torch.tensor(q_lens).cumsum(0)
    q = torch.randn(int(qsl[-1]), H, D, device=DEV, dtype=torch.bfloat16)
    return q, qsl.to(DEV)


def sdpa_best(q, k, v, rep, **kw) -> tuple[float, str, torch.Tensor | None]:
    """Fastest working SDPA backend on dense q [B, H, L, D], k/v [B, HKV, S, D]."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    kx = k.repeat_interleave(GROUP, dim=1)
    vx = v.repeat_interleave(GROUP, dim=1)
    best: tuple[float, str, torch.Tensor | None] = (float("inf"), "none", None)
    for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION,
                    SDPBackend.EFFICIENT_ATTENTION):  # fmt: skip
        for gqa in (True, False):
            kk, vv = (k, v) if gqa else (kx, vx)

            def fn(kk=kk, vv=vv, backend=backend, gqa=gqa):
                with sdpa_kernel([backend]):
                    return F.scaled_dot_product_attention(q, kk, vv, enable_gqa=gqa, **kw)

            try:
                o = fn()
                torch.cuda.synchronize()
                us = timed(fn, rep)
            except Exception:
                continue
            name = f"{backend.name.lower()}{'+gqa' if gqa else '+expand'}"
            if us < best[0]:
                best = (us, name, o)
    return best


def prefill_row(b: int, n: int, rep: int) -> dict[str, Any]:
    cache = Paged([n] * b)
    q, qsl = varlen([n] * b)
    plan = plan_unified(q, cache.k, cache.block_table, qsl, cache.seq_lens)
    res = torch.empty_like(q)
    us = timed(lambda: plan.run(q, cache.k, cache.v, res), rep)
    qd = q.view(b, n, H, D).transpose(1, 2)
    kd = torch.stack([cache.dense(i)[0] for i in range(b)])
    vd = torch.stack([cache.dense(i)[1] for i in range(b)])
    s_us, s_name, s_out = sdpa_best(qd, kd, vd, rep, is_causal=True)
    err = rel(res.view(b, n, H, D).transpose(1, 2), s_out) if s_out is not None else None
    flops = 2 * b * H * D * n * (n + 1)  # causal: half of 4 b H D n^2
    return {"section": "prefill", "shape": f"B{b} x {n}", "ours_us": us,
            "ours_tflops": flops / us / 1e6, "sdpa_us": s_us, "sdpa_backend": s_name,
            "sdpa_tflops": flops / s_us / 1e6, "ours_vs_sdpa": s_us / us,
            "rel_err_vs_sdpa": err}  # fmt: skip


def flex_paged_prefill(cache: Paged, q: torch.Tensor, ctx: int, new: int, rep: int):
    from torch.nn.attention.experimental._paged_attention import PagedAttention
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    b = len(cache.lens)
    nb = cache.k.shape[0]
    bs = cache.bs
    pa = PagedAttention(n_pages=nb, page_size=bs, max_batch_size=b, device=DEV)
    bt = cache.block_table.long()
    pa.page_table[:, : cache.max_blocks] = bt
    logical = torch.arange(cache.max_blocks, device=DEV).expand(b, -1)
    pa.physical_to_logical.scatter_(1, bt, logical)

    def causal(bi, h, q_idx, kv_idx):  # type: ignore[no-untyped-def]
        return kv_idx <= q_idx + ctx

    mask = create_block_mask(causal, b, None, new, cache.max_blocks * bs, device=DEV,
                             BLOCK_SIZE=(128, bs))  # fmt: skip
    block_mask = pa.convert_logical_block_mask(mask, kv_len=cache.seq_lens.long())
    kf = cache.k.permute(2, 0, 1, 3).reshape(1, HKV, nb * bs, D).expand(b, -1, -1, -1)
    vf = cache.v.permute(2, 0, 1, 3).reshape(1, HKV, nb * bs, D).expand(b, -1, -1, -1)
    qf = q.view(b, new, H, D).transpose(1, 2)
    compiled = torch.compile(flex_attention, dynamic=False)

    def fn():
        return compiled(qf, kf, vf, block_mask=block_mask, enable_gqa=True, scale=SCALE)

    o = fn()
    torch.cuda.synchronize()
    return timed(fn, rep), o


def chunked_row(b: int, rep: int, flex: bool) -> dict[str, Any]:
    from torch.nn.attention.bias import causal_lower_right

    ctx, new = CHUNK_CTX, CHUNK_NEW
    s = ctx + new
    cache = Paged([s] * b)
    q, qsl = varlen([new] * b)
    plan = plan_unified(q, cache.k, cache.block_table, qsl, cache.seq_lens)
    res = torch.empty_like(q)
    ours = res.view(b, new, H, D).transpose(1, 2)
    us = timed(lambda: plan.run(q, cache.k, cache.v, res), rep)
    qd = q.view(b, new, H, D).transpose(1, 2)
    bias = causal_lower_right(new, s)
    nblk = triton.cdiv(s, BS)

    def gather_sdpa():
        ids = cache.block_table[:, :nblk].long()
        k = cache.k[ids].reshape(b, -1, HKV, D)[:, :s].transpose(1, 2)
        v = cache.v[ids].reshape(b, -1, HKV, D)[:, :s].transpose(1, 2)
        return F.scaled_dot_product_attention(qd, k, v, attn_mask=bias, enable_gqa=True)

    def kernel_sdpa():
        k, v = gather_kv_kernel(cache.k, cache.v, cache.block_table, cache.seq_lens,
                                max_seq_len=s, validate=False)  # fmt: skip
        return F.scaled_dot_product_attention(qd, k.transpose(1, 2), v.transpose(1, 2),
                                              attn_mask=bias, enable_gqa=True)  # fmt: skip

    row: dict[str, Any] = {"section": "chunked", "shape": f"B{b}: {new} new on {ctx}",
                           "ours_us": us}  # fmt: skip
    for name, fn in (("gather_sdpa", gather_sdpa), ("gather_kernel_sdpa", kernel_sdpa)):
        try:
            o = fn()
            row[f"{name}_us"] = timed(fn, rep)
            row[f"{name}_err"] = rel(ours, o)
        except Exception as exc:
            row[f"{name}_us"] = f"{type(exc).__name__}: {str(exc)[:160]}"
    kd = torch.stack([cache.dense(i)[0] for i in range(b)])
    vd = torch.stack([cache.dense(i)[1] for i in range(b)])
    row["sdpa_dense_us"], row["sdpa_dense_backend"], _ = sdpa_best(qd, kd, vd, rep,
                                                                   attn_mask=bias)  # fmt: skip
    del kd, vd
    if flex:
        try:
            row["flex_paged_us"], o = flex_paged_prefill(cache, q, ctx, new, rep)
            row["flex_err"] = rel(ours, o)
        except Exception as exc:
            row["flex_paged_us"] = f"{type(exc).__name__}: {str(exc)[:160]}"
        # FlexAttention's paged path compiles only for pages that its 128-key tile divides:
        # both kernels again over a cache of 128-token blocks
        del cache
        big = Paged([s] * b, block_size=128)
        plan = plan_unified(q, big.k, big.block_table, qsl, big.seq_lens)
        res128 = torch.empty_like(q)
        row["ours_bs128_us"] = timed(lambda: plan.run(q, big.k, big.v, res128), rep)
        try:
            row["flex_paged_bs128_us"], o = flex_paged_prefill(big, q, ctx, new, rep)
            row["flex_bs128_err"] = rel(res128.view(b, new, H, D).transpose(1, 2), o)
        except Exception as exc:
            row["flex_paged_bs128_us"] = f"{type(exc).__name__}: {str(exc)[:160]}"
    return row


def unified_us(cache: Paged, q_len: int, rep: int, **mods: Any) -> tuple[float, float]:
    """Median µs of a planned run, and the host µs one eager ``run`` takes to enqueue."""
    b = len(cache.lens)
    q, qsl = varlen([q_len] * b)
    plan = plan_unified(q, cache.k, cache.block_table, qsl, cache.seq_lens)
    res = torch.empty_like(q)

    def fn():
        return plan.run(q, cache.k, cache.v, res, **mods)

    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(200):
        fn()
    host = (time.perf_counter() - t0) / 200 * 1e6
    torch.cuda.synchronize()
    return timed(fn, rep), host


def package_decode_us(cache: Paged, rep: int) -> float | str:
    try:
        from paged_attn_kernels import paged_attention

        q = torch.randn(len(cache.lens), H, D, device=DEV, dtype=torch.bfloat16)
        bt, sl = cache.block_table, cache.seq_lens
        return timed(lambda: paged_attention(q, cache.k, cache.v, bt, sl), rep)
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc)[:120]}"


def verify_row(dtype: torch.dtype, rep: int) -> dict[str, Any]:
    tag = "bf16" if dtype == torch.bfloat16 else "fp8 cache"
    cache = Paged([VERIFY_CTX] * VERIFY_B, dtype=dtype)
    v4, host4 = unified_us(cache, VERIFY_Q, rep)
    v1, _ = unified_us(cache, 1, rep)
    pkg = package_decode_us(cache, rep) if dtype == torch.bfloat16 else None
    return {"section": "verify", "shape": f"B{VERIFY_B} x {VERIFY_CTX} ({tag})", "verify4_us": v4,
            "decode1_us": v1, "package_decode_us": pkg, "verify_vs_decode": v4 / v1,
            "host_us_per_run": host4, "kv_gbs_verify": cache.k.nbytes * 2 / v4 / 1e3}  # fmt: skip


def window_row(b: int, rep: int) -> dict[str, Any]:
    w, _ = unified_us(Paged([WINDOW_CTX] * b), 1, rep, sliding_window=WINDOW)
    short = Paged([WINDOW] * b)
    d, _ = unified_us(short, 1, rep)
    return {"section": "window", "shape": f"B{b}: window {WINDOW} over {WINDOW_CTX}", "window_us": w,
            "decode4k_us": d, "package_decode4k_us": package_decode_us(short, rep),
            "window_vs_decode": w / d}  # fmt: skip


def gather_row(b: int, n: int, rep: int) -> dict[str, Any]:
    cache = Paged([n] * b)
    bt, sl = cache.block_table, cache.seq_lens
    k, v = gather_kv_kernel(cache.k, cache.v, bt, sl, max_seq_len=n)
    ok = all(torch.equal(k[i].transpose(0, 1), cache.dense(i)[0]) for i in (0, b - 1))
    ours = timed(lambda: gather_kv_kernel(cache.k, cache.v, bt, sl, max_seq_len=n, out=(k, v),
                                          validate=False), rep)  # fmt: skip
    src = torch.empty_like(k)
    copy = timed(lambda: (k.copy_(src), v.copy_(src)), rep)

    def torch_gather():
        ids = bt.long()
        return cache.k[ids].reshape(b, -1, HKV, D), cache.v[ids].reshape(b, -1, HKV, D)

    return {"section": "gather_kv", "shape": f"B{b} x {n}", "out_gb": 2 * k.nbytes / 1e9,
            "ours_us": ours, "copy_us": copy, "pct_of_copy": 100 * copy / ours,
            "torch_index_us": timed(torch_gather, rep), "exact": ok}  # fmt: skip


def copy_blocks_row(pairs: int, rep: int) -> dict[str, Any]:
    nb = 2 * pairs + 16
    kc = torch.randn((nb, BS, HKV, D), device=DEV, dtype=torch.bfloat16)
    vc = torch.randn_like(kc)
    perm = torch.randperm(nb, device=DEV)
    mapping = torch.stack([perm[:pairs], perm[pairs : 2 * pairs]], 1).contiguous()
    want = kc[mapping[:, 0]].clone()
    copy_blocks_kernel(kc, vc, mapping)
    ok = torch.equal(kc[mapping[:, 1]], want)
    ours = timed(lambda: copy_blocks_kernel(kc, vc, mapping, validate=False), rep)
    a = torch.empty(pairs * BS * HKV * D * 2, device=DEV, dtype=torch.bfloat16)
    bbuf = torch.empty_like(a)
    copy = timed(lambda: bbuf.copy_(a), rep)

    def torch_index():
        kc[mapping[:, 1]] = kc[mapping[:, 0]]
        vc[mapping[:, 1]] = vc[mapping[:, 0]]

    return {"section": "copy_blocks", "shape": f"{pairs} pairs", "gb": 2 * a.nbytes / 1e9,
            "ours_us": ours, "copy_us": copy, "pct_of_copy": 100 * copy / ours,
            "torch_index_us": timed(torch_index, rep), "exact": ok}  # fmt: skip


# (block_m, tile_n, warps, stages); 4 warps on 128 x 64 tiles spill (ptxas, sm_90)
SWEEP = ((128, 64, 8, 3), (128, 128, 8, 3), (128, 128, 8, 2), (128, 64, 8, 2), (64, 64, 4, 3),
         (128, 32, 4, 4))  # fmt: skip


def sweep_shape(b: int, n: int, rep: int) -> None:
    """A/B of the prefill launch shape (benchmark-only patch of the plan's launches)."""
    cache = Paged([n] * b)
    q, qsl = varlen([n] * b)
    res = torch.empty_like(q)
    for bm, tn, warps, stages in SWEEP:
        plan = plan_unified(q, cache.k, cache.block_table, qsl, cache.seq_lens,
                            block_m=bm, tile_n=tn)  # fmt: skip
        for shape, *_ in plan.launches:
            shape.num_warps, shape.num_stages = warps, stages
        try:
            us = timed(lambda plan=plan: plan.run(q, cache.k, cache.v, res), rep)
        except Exception as exc:
            print(f"sweep B{b}x{n} {bm}/{tn}/{warps}/{stages}: {type(exc).__name__} {exc}")
            continue
        tf = 2 * b * H * D * n * (n + 1) / us / 1e6
        print(f"sweep B{b}x{n} block_m {bm} tile_n {tn} warps {warps} stages {stages}: "
              f"{us:.1f} us {tf:.0f} TFLOP/s", flush=True)  # fmt: skip


# the 16-row class (decode, verification): (tile_n, stages) at 4 warps; registers per
# thread from ptxas (sm_90): 64/3 163, 64/2 116, 32/3 95, 128/2 166
SWEEP_DECODE = ((64, 3), (64, 2), (32, 3), (32, 4), (128, 2))


def sweep_decode(rep: int) -> None:
    """A/B of the 16-row launch shape on verification (4 tokens) and decode at B64 x 8192."""
    cache = Paged([VERIFY_CTX] * VERIFY_B)
    for q_len in (VERIFY_Q, 1):
        q, qsl = varlen([q_len] * VERIFY_B)
        res = torch.empty_like(q)
        for tn, stages in SWEEP_DECODE:
            plan = plan_unified(q, cache.k, cache.block_table, qsl, cache.seq_lens, tile_n=tn)
            for shape, *_ in plan.launches:
                shape.num_stages = stages
            us = timed(lambda plan=plan, q=q, res=res: plan.run(q, cache.k, cache.v, res), rep)
            gbs = 2 * cache.k.nbytes / us / 1e3
            print(f"sweep decode B{VERIFY_B}x{VERIFY_CTX} q_len {q_len} tile_n {tn} stages "
                  f"{stages}: {us:.1f} us {gbs:.0f} GB/s of K/V", flush=True)  # fmt: skip


def _us(x: Any) -> str:
    return f"{x:.1f}" if isinstance(x, (int, float)) else str(x)[:40]


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """The markdown table of docs/UNIFIED.md: one line per row, ratio to its peer."""
    out = ["| section | shape | ours µs | peer | peer µs | ratio |", "|---|---|---|---|---|---|"]
    for r in rows:
        sec, shape = r.get("section"), r.get("shape", r.get("args"))
        if "error" in r:
            out.append(f"| {sec} | {shape} | error: {r['error'][:80]} | | | |")
        elif sec == "prefill":
            peer = f"SDPA {r['sdpa_backend']}"
            ratio = f"{r['ours_vs_sdpa']:.2f}x of SDPA speed ({r['ours_tflops']:.0f} TFLOP/s)"
            out.append(
                f"| {sec} | {shape} | {_us(r['ours_us'])} | {peer} | {_us(r['sdpa_us'])} | {ratio} |"
            )
        elif sec == "chunked":
            for peer in ("gather_sdpa", "gather_kernel_sdpa", "sdpa_dense", "flex_paged",
                         "flex_paged_bs128"):  # fmt: skip
                v = r.get(f"{peer}_us")
                if v is None:
                    continue
                mine = r["ours_bs128_us"] if peer.endswith("bs128") else r["ours_us"]
                ratio = f"{v / mine:.2f}x faster" if isinstance(v, float) else "-"
                out.append(f"| {sec} | {shape} | {_us(mine)} | {peer} | {_us(v)} | {ratio} |")
        elif sec == "verify":
            out.append(f"| {sec} | {shape} | {_us(r['verify4_us'])} | 1-token decode (ours; "
                       f"package {_us(r['package_decode_us'])}) | {_us(r['decode1_us'])} | "
                       f"{r['verify_vs_decode']:.3f}x |")  # fmt: skip
        elif sec == "window":
            out.append(f"| {sec} | {shape} | {_us(r['window_us'])} | 4k decode (ours; package "
                       f"{_us(r['package_decode4k_us'])}) | {_us(r['decode4k_us'])} | "
                       f"{r['window_vs_decode']:.3f}x |")  # fmt: skip
        elif sec in ("gather_kv", "copy_blocks"):
            out.append(f"| {sec} | {shape} | {_us(r['ours_us'])} | device copy (torch index "
                       f"{_us(r['torch_index_us'])}) | {_us(r['copy_us'])} | "
                       f"{r['pct_of_copy']:.1f}% of copy, exact={r['exact']} |")  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="write the rows as JSON here")
    ap.add_argument("--rep", type=int, default=100, help="do_bench rep (ms)")
    ap.add_argument("--sweep", action="store_true", help="prefill launch-shape A/B only")
    ap.add_argument("--quick", action="store_true", help="one or a few shapes per section")
    ap.add_argument("--no-flex", action="store_true")
    ap.add_argument("--sections", default="prefill,chunked,decode,cache")
    args = ap.parse_args()
    props = torch.cuda.get_device_properties(0)
    meta = {"device": props.name, "sms": props.multi_processor_count, "torch": torch.__version__,
            "triton": triton.__version__, "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "method": "triton.testing.do_bench median (write flush), eager, plan reused"}  # fmt: skip
    print(meta, flush=True)
    if args.sweep:
        for b, n in ((1, 8192), (4, 4096)):
            sweep_shape(b, n, args.rep)
        sweep_decode(args.rep)
        return
    rows: list[dict[str, Any]] = []
    sections = args.sections.split(",")

    def add(make: Callable[..., dict[str, Any]], *a: Any) -> None:
        try:
            row = make(*a)
        except Exception as exc:  # one failing row is a result, not the end of the run
            row = {"section": make.__name__, "args": a, "error": f"{type(exc).__name__}: {exc}"}
        rows.append(row)
        print(row, flush=True)
        torch.cuda.empty_cache()
        if args.out:  # after every row: a run cut short keeps what it measured
            with open(args.out, "w") as f:
                json.dump({"meta": meta, "rows": rows}, f, indent=1, default=str)

    # the cheap sections first; FlexAttention's compile (chunked) last
    if "prefill" in sections:
        shapes = [(1, 1024), (1, 4096), (1, 16384), (4, 4096), (8, 1024), (8, 16384)]
        for b, n in [(1, 4096), (8, 4096), (1, 16384)] if args.quick else shapes:
            add(prefill_row, b, n, args.rep)
    if "decode" in sections:
        for dtype in (torch.bfloat16, torch.float8_e4m3fn):
            add(verify_row, dtype, args.rep)
        for b in (8,) if args.quick else (8, 64):
            add(window_row, b, args.rep)
    if "cache" in sections:
        for b, n in GATHER_SHAPES[1:2] if args.quick else GATHER_SHAPES:
            add(gather_row, b, n, args.rep)
        for pairs in COPY_PAIRS[:1] if args.quick else COPY_PAIRS:
            add(copy_blocks_row, pairs, args.rep)
    if "chunked" in sections:
        for b in (1,) if args.quick else (1, 4):
            add(chunked_row, b, args.rep, b == 1 and not args.no_flex)  # flex compiles ~1 min
    print("\n".join(summary(rows)))


if __name__ == "__main__":
    main()
