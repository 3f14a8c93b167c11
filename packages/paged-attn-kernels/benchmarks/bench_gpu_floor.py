"""How fast can any single kernel read this many bytes? Floors for the decode kernel's shapes.

A companion to ``bench_gpu.py`` (same cases, read flush and graph-replay timer, imported
from it) that asks what the timing method itself allows at a shape, by timing beside the
decode kernel ("ours", timed first and last) kernels that do less than it does:

- ``empty``: a Triton kernel with the decode launch's grid that does nothing (launch and
  completion of that many programs);
- ``torch sum``: ``sum`` of a contiguous tensor holding as many bytes as the shape's K/V (a
  tuned library reduction, the simplest streaming read of that size);
- ``torch copy``: a device-to-device copy moving the same number of bytes (half read, half
  written), the copy ceiling's kernel at this size;
- ``dense read`` / ``paged read``: the decode kernel's grid, split and 64-token tile loop,
  with K and V as ``tl.dot`` operands (so Triton pipelines their loads as it does in the
  decode kernel) against a ones matrix instead of the query, no softmax, no merge: over
  contiguous ``[B, Hkv, ctx, D]`` K/V and through the block table of the paged cache.

Each is reported as % of the 2 GiB copy ceiling, like the decode kernel. Uniform shapes only.

    python benchmarks/bench_gpu_floor.py --shapes float16:8:B8xctx8192,bfloat16:8:B64xctx8192
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import torch
import triton
import triton.language as tl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_gpu as bg

from paged_attn_kernels import _triton_decode as dec

SHAPES = [
    ("float16", 8, "B8xctx8192"),
    ("bfloat16", 8, "B8xctx8192"),
    ("bfloat16", 8, "B8xctx32768"),
    ("bfloat16", 8, "B1xctx32768"),
    ("bfloat16", 8, "B64xctx8192"),
]


@triton.jit
def _empty_kernel(x_ptr):
    pass


@triton.jit
def _read_kernel(
    k_ptr,  # paged: [num_blocks, block_size, num_kv_heads, head_dim]; dense: [B, Hkv, ctx, D]
    v_ptr,
    block_table_ptr,  # [num_seqs, max_blocks] int32 (PAGED)
    out_ptr,  # [programs, 16, HEAD_DIM] fp32
    ctx,
    chunk,
    num_kv_heads,
    stride_b,  # paged: per block; dense: per sequence
    stride_s,  # paged: per slot; dense: per token
    stride_h,
    stride_bts,
    PAGED: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    TILE_N: tl.constexpr,
):
    seq, kv_head, split = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    pid = seq + tl.num_programs(0) * (kv_head + num_kv_heads * split)
    offs_n = tl.arange(0, TILE_N)
    offs_d = tl.arange(0, HEAD_DIM)
    ones = tl.full([16, TILE_N], 1.0, dtype=k_ptr.dtype.element_ty)
    acc = tl.zeros([16, HEAD_DIM], dtype=tl.float32)
    start = split * chunk
    end = tl.minimum(ctx, start + chunk)
    bt_row = block_table_ptr + seq.to(tl.int64) * stride_bts
    for tok0 in range(start, end, TILE_N):
        tok = tok0 + offs_n
        valid = tok < end
        if PAGED:
            block = tl.load(bt_row + tok // BLOCK_SIZE, mask=valid, other=0).to(tl.int64)
            rows = block[:, None] * stride_b + (tok % BLOCK_SIZE)[:, None] * stride_s
        else:
            rows = seq.to(tl.int64) * stride_b + tok[:, None].to(tl.int64) * stride_s
        offs = rows + kv_head * stride_h + offs_d[None, :]
        k = tl.load(k_ptr + offs, mask=valid[:, None], other=0.0)
        v = tl.load(v_ptr + offs, mask=valid[:, None], other=0.0)
        acc += tl.dot(ones, k) + tl.dot(ones, v)
    dst = out_ptr + pid * 16 * HEAD_DIM + tl.arange(0, 16)[:, None] * HEAD_DIM + offs_d[None, :]
    tl.store(dst, acc)


def _torch_floors(elems: int, dtype: torch.dtype, rep_ms: float) -> dict[str, float]:
    flat = torch.randn(elems, dtype=dtype, device="cuda")
    half = flat[: elems // 2]
    dst = torch.empty_like(half)
    return {
        "torch sum": bg.bench(lambda: flat.sum(dtype=torch.float32), True, rep_ms),
        "torch copy": bg.bench(lambda: dst.copy_(half), True, rep_ms),
    }


def _read(
    case: bg.Case, paged: bool, splits: int | None, scratch: torch.Tensor
) -> Callable[[], None]:
    """One launch of :func:`_read_kernel` over ``case`` with the decode kernel's split plan."""
    sp = dec.plan_splits(case.query, case.k_cache, case.block_table, splits)
    grid = (case.batch, case.num_kv, sp.num_splits)
    if paged:
        k, v = case.k_cache, case.v_cache
        strides = (k.stride(0), k.stride(1), k.stride(2))
    else:
        k, v, _ = case.dense()  # [B, Hkv, ctx, D]
        strides = (k.stride(0), k.stride(2), k.stride(1))

    def launch() -> None:
        _read_kernel[grid](
            k, v, case.block_table, scratch, case.cap, sp.chunk, case.num_kv,
            *strides, case.block_table.stride(0),
            PAGED=paged, HEAD_DIM=bg.HEAD_DIM, BLOCK_SIZE=bg.BLOCK_SIZE, TILE_N=sp.tile_n,
            num_warps=4, num_stages=3,
        )  # fmt: skip

    return launch


def floors(case: bg.Case, rep_ms: float, read_splits: list[int]) -> dict[str, float]:
    """µs of each floor kernel for ``case`` (uniform lengths), graph replay after a read flush."""
    sp = dec.plan_splits(case.query, case.k_cache, case.block_table)
    grid = (case.batch, case.num_kv, sp.num_splits)
    most = max([sp.num_splits, *read_splits])
    scratch = torch.empty(
        (case.batch * case.num_kv * most, 16, bg.HEAD_DIM), dtype=torch.float32, device="cuda"
    )
    res: dict[str, float] = {}
    res["empty"] = bg.bench(lambda: _empty_kernel[grid](scratch), True, rep_ms)
    res.update(_torch_floors(case.kv_bytes // case.k_cache.element_size(), case.dtype, rep_ms))
    paged = _read(case, True, None, scratch)
    res["paged read"] = bg.bench(paged, True, rep_ms)
    dense = _read(case, False, None, scratch)
    res["dense read"] = bg.bench(dense, True, rep_ms)
    # the two read kernels sum the same tokens: a wrong address would show here
    paged()
    want = scratch.clone()
    dense()
    if not torch.allclose(want, scratch, rtol=1e-3, atol=1e-2):
        raise RuntimeError("paged and dense read kernels disagree: an addressing bug")
    for n in read_splits:
        res[f"paged read s{n}"] = bg.bench(_read(case, True, n, scratch), True, rep_ms)
    return res


def main() -> None:
    ap = bg.companion_parser(__doc__, "floor.json")
    ap.add_argument(
        "--read-splits", default="", help="also the paged read at these split counts, e.g. 4,16"
    )
    args = ap.parse_args()
    gen, copy_gbs, cases = bg.companion_start(args.rep_ms)
    results: list[dict[str, Any]] = []
    read_splits = [int(x) for x in args.read_splits.split(",") if x]
    for dt, kv, label in bg.parse_shapes(args.shapes, SHAPES):
        if len(set(cases[(dt, kv, label)])) != 1:
            raise SystemExit(f"--shapes: {label} is ragged; the floor kernels take uniform shapes")
        case = bg.Case(getattr(torch, dt), kv, cases[(dt, kv, label)], label, gen)
        ours = functools.partial(
            dec.paged_attention_triton,
            case.query, case.k_cache, case.v_cache, case.block_table, case.seq_lens, case.scale,
            torch.empty_like(case.query),
        )  # fmt: skip
        times = {"ours": bg.bench(ours, True, args.rep_ms)}
        times.update(floors(case, args.rep_ms, read_splits))
        times["ours again"] = bg.bench(ours, True, args.rep_ms)
        pct = {k: 100 * case.kv_bytes / (us * 1e-6) / 1e9 / copy_gbs for k, us in times.items()}
        row = {"dtype": dt, "kv": kv, "label": label, "gb": case.kv_bytes / 1e9, "us": times}
        results.append(row)
        cells = "  ".join(
            f"{k} {us:.1f}" + ("" if k == "empty" else f"/{pct[k]:.1f}%") for k, us in times.items()
        )
        print(f"{dt} kv{kv} {label} ({case.kv_bytes / 1e9:.3f} GB): {cells}", flush=True)
        del case
        torch.cuda.empty_cache()
    with open(args.out, "w") as f:
        json.dump({"copy_gbs": copy_gbs, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
