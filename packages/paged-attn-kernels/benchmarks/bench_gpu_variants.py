"""GPU A/B of opt-in launch variants on chosen shapes: the default launch against each variant.

A short companion to ``bench_gpu.py`` (same cases, poisoning, L2 flush and graph-replay
timing, imported from it) for one device call: per shape, the automatic plan and the same
plan with each variant's ``_LAUNCH_OVERRIDES`` (default: the PDL reduce; ``--variants``
takes any keys of that hook, e.g. ``{"s2": {"num_stages": 2}}``, plus ``num_splits``, passed as the
argument, and ``work_order``/``chunk``, a host plan (``plan_decode``) in that order).

    python benchmarks/bench_gpu_variants.py --out variants.json
    # --fp8: also fp8 caches, at the key shape or at the GQA shapes named by --fp8-shapes
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_gpu as bg

from paged_attn_kernels import _triton_decode as dec

SHAPES: list[tuple[str, int, str]] = [
    ("bfloat16", 8, "B64xctx8192"),
    ("bfloat16", 8, "B8xctx8192"),
    ("bfloat16", 8, "ragged-1x32k+63x128-1024"),
    ("bfloat16", 8, "ragged-zipf64"),
    ("bfloat16", 8, "B1xctx32768"),
    ("bfloat16", 8, "B8xctx32768"),
    ("bfloat16", 8, "B64xctx32768"),
    ("bfloat16", 8, "B8xctx2048"),
    ("bfloat16", 8, "B1xctx8192"),
    ("bfloat16", 32, "ragged-zipf64"),
    ("bfloat16", 32, "ragged-1x32k+63x128-1024"),
    ("bfloat16", 32, "B1xctx32768"),
    ("bfloat16", 32, "B8xctx32768"),
    ("bfloat16", 32, "B8xctx8192"),
]
VARIANTS: dict[str, dict[str, Any]] = {
    "auto": {},
    "pdl": {"pdl": 1},
}


def _with_overrides(
    over: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any], lens: list[int]
) -> Callable[[], torch.Tensor]:
    """One launch of ``paged_attention_triton(*args, **kwargs)`` under ``over``, hook reset after.

    ``work_order`` (``"lpt"``, ``"grid"``, ``"seq"``) launches the host plan for ``lens``
    (``_triton_decode.plan_decode``, made once, before any capture); ``chunk`` pins its split.
    """
    over = dict(over)
    if "num_splits" in over:  # a forced split count is an argument, not a launch override
        kwargs = {**kwargs, "num_splits": over.pop("num_splits")}
    plan = None
    if "work_order" in over:
        query, key_cache, _, block_table = args[:4]
        chunk = over.pop("chunk", None)
        plan = dec.plan_decode(
            query, key_cache, block_table, lens, chunk=chunk, order=over.pop("work_order")
        )
        kwargs = {**kwargs, "plan": plan}

    def fn() -> torch.Tensor:
        dec._LAUNCH_OVERRIDES.clear()
        dec._LAUNCH_OVERRIDES.update(over)
        try:
            return dec.paged_attention_triton(*args, **kwargs)
        finally:
            dec._LAUNCH_OVERRIDES.clear()

    return fn


def main() -> None:
    ap = bg.companion_parser(__doc__, "variants.json")
    ap.add_argument("--fp8", action="store_true", help="also fp8 caches at the key shape")
    ap.add_argument(
        "--fp8-shapes",
        default="B64xctx8192",
        help="with --fp8: labels of bf16 GQA shapes to run with fp8 caches, comma-separated",
    )
    ap.add_argument(
        "--variants",
        default="",
        help='JSON {name: overrides}, e.g. {"auto": {}, "s2": {"num_stages": 2}}',
    )
    args = ap.parse_args()
    gen, copy_gbs, cases = bg.companion_start(args.rep_ms)
    results: list[dict[str, Any]] = []
    variants = json.loads(args.variants) if args.variants else VARIANTS
    shapes = bg.parse_shapes(args.shapes, SHAPES)
    for dt, kv, label in shapes:
        lens = cases[(dt, kv, label)]
        case = bg.Case(getattr(torch, dt), kv, lens, label, gen)
        row: dict[str, Any] = {"dtype": dt, "kv": kv, "label": label, "gb": case.kv_bytes / 1e9}
        out = torch.empty_like(case.query)
        inputs = (case.query, case.k_cache, case.v_cache, case.block_table, case.seq_lens)
        for name, over in variants.items():
            fn = _with_overrides(over, (*inputs, case.scale, out), {}, lens)
            out.fill_(float("nan"))
            try:
                fn()
                err = case.error(out)
                us = bg.bench(fn, True, args.rep_ms)
            except Exception as exc:  # a variant that does not fit (e.g. shared memory)
                print(f"   {name}: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
                continue
            pct = 100 * case.kv_bytes / (us * 1e-6) / 1e9 / copy_gbs
            row[name] = {"us": us, "pct": pct, "err": err}
        results.append(row)
        cells = "  ".join(
            f"{k} {v['us']:.1f}/{v['pct']:.1f}%" for k, v in row.items() if isinstance(v, dict)
        )
        print(f"{dt} kv{kv} {label}: {cells}", flush=True)
        errs = [v["err"] for v in row.values() if isinstance(v, dict)] or [float("nan")]
        print(f"   max err {max(errs):.2e}", flush=True)
        del case
        torch.cuda.empty_cache()
    for fp8_label in args.fp8_shapes.split(",") if args.fp8 else []:
        case = bg.Case(torch.bfloat16, 8, cases[("bfloat16", 8, fp8_label)], fp8_label, gen)
        kc, vc = case.k_cache, case.v_cache
        ks, vs = bg.finite_amax(kc) / 448.0, bg.finite_amax(vc) / 448.0
        k8 = torch.empty(kc.shape, dtype=bg.FP8, device="cuda")
        v8 = torch.empty_like(k8)
        nb = kc.shape[0] * bg.BLOCK_SIZE
        slots = torch.arange(nb, device="cuda")
        flat = (nb, 8, bg.HEAD_DIM)
        from paged_attn_kernels._triton_write import write_kv_cache_triton

        write_kv_cache_triton(kc.view(flat), vc.view(flat), k8, v8, slots, k_scale=ks, v_scale=vs)
        out = torch.empty_like(case.query)
        fp8_args = (case.query, k8, v8, case.block_table, case.seq_lens, case.scale, out)
        for variant, over in variants.items():
            name = f"fp8 {fp8_label} {variant}"
            fn8 = _with_overrides(
                over, fp8_args, {"k_scale": ks, "v_scale": vs}, cases[("bfloat16", 8, fp8_label)]
            )
            out.fill_(float("nan"))
            fn8()
            err = case.error(out)
            us = bg.bench(fn8, True, args.rep_ms)
            print(f"{name}: {us:.1f} us err {err:.2e}", flush=True)
            results.append({"label": name, "us": us, "err": err})
    with open(args.out, "w") as f:
        json.dump({"copy_gbs": copy_gbs, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
