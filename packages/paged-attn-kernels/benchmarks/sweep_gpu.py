"""Launch-policy sweeps on a CUDA device: the evidence behind the choices in docs/DESIGN.md.

Not a benchmark of the package as shipped (``bench_gpu.py`` and ``bench_gpu_unified.py``
are): each row here swaps one knob of the launch policy, benchmark-side only, and times the
result the same way those scripts do (``do_bench`` median with its write flush, eager, the
plan made once and reused), as % of a same-run device copy of the same bytes.

- ``decode``: the decode kernel's ``LaunchConfig`` (tile, warps, stages, fused-merge limit)
  and the split size, on the shapes whose targets were missed (bf16: B8 x 8192, B1 x 32768,
  one long sequence among short ones; fp8: every GQA shape with >= 0.5 GB of bf16 K/V and
  the MHA shapes under 1.8x). The policy function is replaced for the duration of a plan's
  construction (``dataclasses.replace`` of the shipped config), nothing else changes.
- ``prefill``: the varlen kernel's prefill class (rows, key tile, warps, stages) on a
  causal prefill and on a chunked prefill (2048 new tokens over 16384 cached).
- ``prefill-floor``: the causal prefill gap to SDPA taken apart: a dense Triton
  FlashAttention-2 (``prefill_floor.py``), our kernel over blocks in order, and over the
  benchmark's shuffled blocks.

    python benchmarks/sweep_gpu.py --sections decode,prefill > sweep.log
    python benchmarks/sweep_gpu.py --sections prefill-floor
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import triton

sys.path.insert(0, str(Path(__file__).parent))
import bench_gpu as bg
import bench_gpu_unified as bu
import prefill_floor

from paged_attn_kernels import _triton_decode as td
from paged_attn_kernels import plan_decode, write_kv_cache
from paged_attn_kernels.unified import plan_unified


@contextlib.contextmanager
def policy(**changes: Any) -> Iterator[None]:
    """Plans made inside see the shipped launch config with ``changes`` applied."""
    shipped = td.launch_config

    def patched(*a: Any) -> td.LaunchConfig:
        return dataclasses.replace(shipped(*a), **changes)

    td.launch_config = patched  # type: ignore[assignment]
    try:
        yield
    finally:
        td.launch_config = shipped


def cases(kv_labels: list[tuple[int, str]]) -> Iterator[bg.Case]:
    args = argparse.Namespace(dtypes=["bfloat16"], kv_heads=[8, 32], quick=False, max_gb=9.0,
                              seed=0)  # fmt: skip
    wanted = set(kv_labels)
    for dt, kv, lens, label in bg.shape_list(args):
        if (kv, label) in wanted:
            case = bg.Case(dt, kv, lens, label, 0)
            yield case
            del case
            torch.cuda.empty_cache()


def timed_plan(case: bg.Case, kc: torch.Tensor, vc: torch.Tensor, out: torch.Tensor,
               changes: dict[str, Any], chunk: int | None, graph: bool = False,
               **scales: Any) -> tuple[float, float | None, Any]:  # fmt: skip
    with policy(**changes):
        plan = plan_decode(case.query, kc, case.block_table, case.lens, chunk=chunk)

    def fn() -> torch.Tensor:
        return plan.run(case.query, kc, vc, out=out, **scales)

    us = bg.bench(fn)
    gus = bg.bench(fn, graph=True) if graph else None
    return us, gus, plan


# (tile_n, num_warps, num_stages) per dtype; the first is the shipped choice. The block-table
# load takes a pipeline stage of its own ahead of the K/V loads it addresses, so S stages give
# (S - 1) // 2 K/V buffers (triton 3.6-3.7 TTGIR, sm_90): 3 -> 1, 5 -> 2, 7 -> 3, 9 -> 4.
BF16_TILES = ((64, 4, 3), (64, 4, 5), (64, 4, 7), (32, 4, 7), (64, 8, 5), (128, 8, 3))
FP8_TILES = ((64, 2, 5), (64, 2, 7), (64, 2, 9), (64, 4, 7), (128, 2, 5), (128, 4, 5),
             (128, 4, 7), (256, 4, 5))  # fmt: skip


def sweep_decode_bf16() -> None:
    for case in cases([(8, "B8x8192"), (8, "B1x32768"), (8, "ragged-1x32k+63x128-1024")]):
        copy_e, copy_g = bg.copy_us(case.kv_bytes, False), bg.copy_us(case.kv_bytes, True)
        out = torch.empty_like(case.query)
        graph = case.label == "B1x32768"
        base = plan_decode(case.query, case.k_cache, case.block_table, case.lens)
        rows: list[tuple[str, dict[str, Any], int | None]] = []
        for tn, w, s in BF16_TILES:
            rows.append((f"tile {tn} warps {w} stages {s}",
                         {"tile_n": tn, "num_warps": w, "num_stages": s}, None))  # fmt: skip
        for f in (0.25, 0.5, 2.0):
            c = max(64, int(base.chunk * f) // 64 * 64)
            rows.append((f"chunk {c}", {}, c))
        rows.append(("merge 8 partials per step", {"merge_step": 8}, None))
        # twice the splits, merged in the kernel: 64 partials at once spill, 8 per step do not
        half = max(64, base.chunk // 2 // 64 * 64)
        rows.append((f"fused merge <= 64, 8 per step, chunk {half}",
                     {"fused_merge_max_splits": 64, "merge_step": 8}, half))  # fmt: skip
        for m in (16, 32, 64):
            rows.append((f"fused merge <= {m}", {"fused_merge_max_splits": m}, None))
            rows.append((f"fused merge <= {m}, chunk {base.chunk * 2}",
                         {"fused_merge_max_splits": m}, base.chunk * 2))  # fmt: skip
        for name, changes, chunk in rows:
            try:
                out.fill_(float("nan"))
                us, gus, plan = timed_plan(case, case.k_cache, case.v_cache, out, changes, chunk,
                                           graph)  # fmt: skip
                err = case.error(out)
            except Exception as exc:
                print(f"decode bf16 {case.label} {name}: {type(exc).__name__} {str(exc)[:200]}")
                continue
            g = f" graph {gus:.1f} us {100 * copy_g / gus:.1f}%" if gus else ""
            print(f"decode bf16 kv{case.num_kv} {case.label} {name}: splits {plan.num_splits} "
                  f"chunk {plan.chunk} merge {plan._meta['MERGE']} eager {us:.1f} us "
                  f"{100 * copy_e / us:.1f}%{g} err {err:.1e}", flush=True)  # fmt: skip


def fp8_cache(case: bg.Case) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    kc, vc = case.k_cache, case.v_cache
    ks, vs = bg.finite_amax(kc) / 448.0, bg.finite_amax(vc) / 448.0
    k8 = torch.empty(kc.shape, dtype=bg.FP8, device="cuda")
    v8 = torch.empty_like(k8)
    flat = (kc.shape[0] * bg.BLOCK_SIZE, case.num_kv, bg.HEAD_DIM)
    slots = torch.arange(flat[0], device="cuda")
    write_kv_cache(kc.view(flat), vc.view(flat), k8, v8, slots, k_scale=ks, v_scale=vs,
                   validate=False)  # fmt: skip
    return k8, v8, ks, vs


def sweep_decode_fp8() -> None:
    shapes = [(8, "B64x2048"), (8, "B8x32768"), (8, "ragged-zipf64"), (32, "B1x32768")]
    for case in cases(shapes):
        copy_e = bg.copy_us(case.kv_bytes / 2, False)
        out = torch.empty_like(case.query)
        us16, _, _ = timed_plan(case, case.k_cache, case.v_cache, out, {}, None)
        k8, v8, ks, vs = fp8_cache(case)
        refs = {b: case.reference(b, k8, v8, ks, vs) for b in case.check}
        base = plan_decode(case.query, k8, case.block_table, case.lens)
        print(f"decode fp8 kv{case.num_kv} {case.label}: bf16 {us16:.1f} us; shipped chunk "
              f"{base.chunk} splits {base.num_splits}", flush=True)  # fmt: skip
        rows: list[tuple[str, dict[str, Any], int | None]] = [
            (f"tile {tn} warps {w} stages {s}", {"tile_n": tn, "num_warps": w, "num_stages": s},
             None)
            for tn, w, s in FP8_TILES
        ]  # fmt: skip
        for tn, w, s in ((64, 2, 5), (64, 2, 7), (64, 4, 7), (128, 2, 5), (128, 4, 5)):
            # V converted as loaded (_triton_tiles.value_operand)
            rows.append((f"tile {tn} warps {w} stages {s}, early V cvt",
                         {"tile_n": tn, "num_warps": w, "num_stages": s, "early_value_cvt": True},
                         None))  # fmt: skip
        rows.append(("tile 64 warps 2 stages 5, early V cvt, merge 8 per step",
                     {"early_value_cvt": True, "merge_step": 8}, None))  # fmt: skip
        for f in (0.5, 2.0):
            c = max(256, int(base.chunk * f) // 256 * 256)
            rows.append((f"tile 64 warps 2 stages 5, chunk {c}", {}, c))
        rows.append(("bf16 dots (no prescale)",
                     {"compute_dtype": torch.bfloat16, "prescale_q": False}, None))  # fmt: skip
        for name, changes, chunk in rows:
            try:
                out.fill_(float("nan"))
                us, _, plan = timed_plan(case, k8, v8, out, changes, chunk, k_scale=ks,
                                         v_scale=vs)  # fmt: skip
                err = case.error(out, refs)
            except Exception as exc:
                print(f"decode fp8 {case.label} {name}: {type(exc).__name__} {str(exc)[:200]}")
                continue
            print(f"decode fp8 kv{case.num_kv} {case.label} {name}: splits {plan.num_splits} "
                  f"eager {us:.1f} us {100 * copy_e / us:.1f}% x_bf16 {us16 / us:.2f} "
                  f"err {err:.1e}", flush=True)  # fmt: skip
        del k8, v8


# (block_m, tile_n, warps, stages) of the prefill class; the first is the shipped choice
PREFILL = ((128, 64, 8, 3), (128, 64, 8, 4), (128, 128, 8, 3), (128, 128, 8, 2), (128, 32, 8, 4),
           (64, 64, 4, 3), (64, 64, 4, 4), (64, 128, 4, 3))  # fmt: skip


def _sweep_tiles(label: str, lens: list[int], q_lens: list[int],
                 result: Callable[[float], str]) -> None:  # fmt: skip
    """Time every ``PREFILL`` launch shape on one batch; ``result`` words a time. Each
    variant's output is compared with the shipped launch's (the first row)."""
    cache = bu.Paged(lens)
    q, qsl = bu.varlen(q_lens)
    res = torch.empty_like(q)
    shipped: torch.Tensor | None = None
    for bm, tn, w, s in PREFILL:
        try:
            plan = plan_unified(q, cache.k, cache.block_table, qsl, cache.seq_lens,
                                block_m=bm, tile_n=tn)  # fmt: skip
            for shape, *_ in plan.launches:
                shape.num_warps, shape.num_stages = w, s
            res.fill_(float("nan"))
            us = bu.timed(lambda plan=plan: plan.run(q, cache.k, cache.v, res), 100)
        except Exception as exc:
            print(f"{label} {bm}/{tn}/{w}/{s}: {type(exc).__name__} {str(exc)[:200]}")
            continue
        if shipped is None:
            shipped = res.clone()
        err = bu.rel(res, shipped)
        print(f"{label} block_m {bm} tile_n {tn} warps {w} stages {s}: {us:.1f} us "
              f"{result(us)} err vs shipped {err:.1e}", flush=True)  # fmt: skip


def sweep_prefill() -> None:
    for b, n in ((1, 8192), (4, 2048), (1, 16384)):
        cache = bu.Paged([n] * b)
        qd = bu.varlen([n] * b)[0].view(b, n, bu.H, bu.D).transpose(1, 2)
        kd = torch.stack([cache.dense(i)[0] for i in range(b)])
        vd = torch.stack([cache.dense(i)[1] for i in range(b)])
        s_us, s_name, _ = bu.sdpa_best(qd, kd, vd, 100, is_causal=True)
        del cache, kd, vd
        flops = 2 * b * bu.H * bu.D * n * (n + 1)
        print(f"prefill B{b}x{n}: SDPA {s_name} {s_us:.1f} us {flops / s_us / 1e6:.0f} TFLOP/s",
              flush=True)  # fmt: skip
        _sweep_tiles(f"prefill B{b}x{n}", [n] * b, [n] * b,
                     lambda us, f=flops, s=s_us: f"{f / us / 1e6:.0f} TFLOP/s {s / us:.2f}x SDPA")  # fmt: skip
        torch.cuda.empty_cache()
    ctx, new = bu.CHUNK_CTX, bu.CHUNK_NEW
    row = bu.chunked_row(1, 100, flex=False)
    print(f"chunked B1 {new} on {ctx}: shipped {row['ours_us']:.1f} us; gather+SDPA "
          f"{row.get('gather_sdpa_us')}; dense SDPA {row.get('sdpa_dense_us')} "
          f"({row.get('sdpa_dense_backend')})", flush=True)  # fmt: skip
    base = row["gather_sdpa_us"] if isinstance(row.get("gather_sdpa_us"), float) else math.nan
    _sweep_tiles(f"chunked B1 {new} on {ctx}", [ctx + new], [new],
                 lambda us: f"{base / us:.2f}x gather+SDPA")  # fmt: skip


def _floor_shape(b: int, n: int) -> None:
    cache = bu.Paged([n] * b)
    q, qsl = bu.varlen([n] * b)
    qd = q.view(b, n, bu.H, bu.D).transpose(1, 2)
    kd = torch.stack([cache.dense(i)[0] for i in range(b)])
    vd = torch.stack([cache.dense(i)[1] for i in range(b)])
    flops = 2 * b * bu.H * bu.D * n * (n + 1)
    label = f"prefill-floor B{b}x{n}"
    s_us, s_name, s_out = bu.sdpa_best(qd, kd, vd, 100, is_causal=True)
    print(f"{label} SDPA {s_name}: {s_us:.1f} us {flops / s_us / 1e6:.0f} TFLOP/s", flush=True)

    def line(name: str, us: float, out: torch.Tensor) -> None:
        err = f"{bu.rel(out, s_out):.1e}" if s_out is not None else "n/a"
        print(f"{label} {name}: {us:.1f} us {flops / us / 1e6:.0f} TFLOP/s "
              f"{s_us / us:.2f}x SDPA err {err}", flush=True)  # fmt: skip

    kx = kd.repeat_interleave(bu.GROUP, dim=1)
    vx = vd.repeat_interleave(bu.GROUP, dim=1)
    for bm, bn, w, st in ((128, 64, 8, 3), (128, 128, 8, 3), (128, 64, 8, 4)):

        def dense(bm: int = bm, bn: int = bn, w: int = w, st: int = st) -> torch.Tensor:
            return prefill_floor.dense_causal(qd, kx, vx, bm, bn, w, st)

        try:
            out = dense()
            us = bu.timed(dense, 100)
        except Exception as exc:
            print(f"{label} dense Triton {bm}/{bn}/{w}/{st}: {type(exc).__name__} "
                  f"{str(exc)[:200]}")  # fmt: skip
            continue
        line(f"dense Triton FA2 {bm}/{bn}/{w}/{st}", us, out)
    # the same K/V in block order: block i of the table is block i of the cache
    per = triton.cdiv(n, cache.bs)
    ids = cache.block_table[:, :per].reshape(-1).long()
    table = torch.arange(b * per, dtype=torch.int32, device="cuda").view(b, per)
    layouts = (("ours, blocks in order", cache.k[ids].contiguous(), cache.v[ids].contiguous(),
                table),
               ("ours, shuffled blocks (shipped)", cache.k, cache.v, cache.block_table))  # fmt: skip
    res = torch.empty_like(q)
    for name, kc, vc, bt in layouts:
        plan = plan_unified(q, kc, bt, qsl, cache.seq_lens)

        def ours(plan: Any = plan, kc: torch.Tensor = kc, vc: torch.Tensor = vc) -> Any:
            return plan.run(q, kc, vc, res)

        us = bu.timed(ours, 100)
        line(name, us, res.view(b, n, bu.H, bu.D).transpose(1, 2))


def sweep_prefill_floor() -> None:
    """Where the prefill gap to SDPA comes from: SDPA's best backend, a dense Triton
    FlashAttention-2 (``prefill_floor.py``: no block table), our kernel over the same cache
    laid out in order (block table 0, 1, 2, ...) and over the benchmark's shuffled blocks."""
    for b, n in ((1, 8192), (4, 2048), (1, 16384)):
        _floor_shape(b, n)
        torch.cuda.empty_cache()


SECTIONS: dict[str, Callable[[], None]] = {
    "decode": sweep_decode_bf16,
    "fp8": sweep_decode_fp8,
    "prefill": sweep_prefill,
    "prefill-floor": sweep_prefill_floor,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sections", default="decode,fp8,prefill")
    args = ap.parse_args()
    props = torch.cuda.get_device_properties(0)
    print(f"{props.name} ({props.multi_processor_count} SMs), torch {torch.__version__}, "
          f"triton {triton.__version__}", flush=True)  # fmt: skip
    for name in args.sections.split(","):
        t0 = time.perf_counter()
        try:
            SECTIONS[name]()
        except Exception as exc:  # one failing section is a result, not the end of the run
            print(f"section {name}: {type(exc).__name__} {exc}", flush=True)
        print(f"section {name}: {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
