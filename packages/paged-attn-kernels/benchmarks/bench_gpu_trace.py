"""Per-program timeline of the split decode kernel on a GPU: which SM, when, for how long.

A poor man's profiler for the ragged shapes (Nsight Compute is not on the device image):
the kernel's ``TRACE`` hook stamps every program's ``%smid`` and its ``%globaltimer`` at
start, at the end of its token loop and at exit into an int64 ``[programs, 4]`` buffer. This
script launches each chosen shape once after an L2 flush (eager, not graph replay, so the reduce
kernel is not in the span), for the default grid and for 1-D grids over host work lists
(``_triton_decode.plan_decode``), and prints per launch: the span, the real and empty
programs' durations, the SMs' peak residency, when the last real program started, and a
timeline of running programs and achieved bandwidth. Raw traces go to ``--out`` (npz).

    python benchmarks/bench_gpu_trace.py --out trace.npz
    # --variants '{"grid": {}, "plan": {"work_order": "lpt"}, "plan512": {"work_order": "lpt", "chunk": 512}}'
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from typing import Any

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_gpu as bg

from paged_attn_kernels import _triton_decode as dec

SHAPES = [
    ("bfloat16", 8, "ragged-1x32k+63x128-1024"),
    ("bfloat16", 8, "ragged-zipf64"),
    ("bfloat16", 8, "B1xctx32768"),
    ("bfloat16", 8, "B8xctx8192"),
]
VARIANTS: dict[str, dict[str, Any]] = {
    "grid": {},
    "plan-grid-order": {"work_order": "grid"},
    "plan": {"work_order": "lpt"},
}


def summarize(tr: np.ndarray, tokens: np.ndarray, bytes_per_token: int, copy_gbs: float) -> str:
    """Text summary of one trace: ``tr`` int64 [P, 4], ``tokens`` [P] (0 = empty program)."""
    sm, t0, t1, t_loop = tr[:, 0], tr[:, 1], tr[:, 2], tr[:, 3]
    base = t0.min()
    s, e, le = (t0 - base) / 1e3, (t1 - base) / 1e3, (t_loop - base) / 1e3  # µs
    span = e.max()
    real = tokens > 0
    dur = e - s
    lines = [f"  span {span:.1f} us, {real.sum()} real + {(~real).sum()} empty programs"]
    if (~real).any():
        lines.append(
            f"  empty: median {np.median(dur[~real]):.2f} us,"
            f" p90 {np.percentile(dur[~real], 90):.2f} us"
        )
    rb = tokens[real] * bytes_per_token
    rate = rb / np.maximum(dur[real], 1e-3) / 1e3  # GB/s
    lines.append(
        f"  real: dur p10/50/90 {np.percentile(dur[real], 10):.1f}/{np.median(dur[real]):.1f}/"
        f"{np.percentile(dur[real], 90):.1f} us; GB/s per program p10/50/90 "
        f"{np.percentile(rate, 10):.1f}/{np.median(rate):.1f}/{np.percentile(rate, 90):.1f}"
    )
    after = e[real] - le[real]  # partial store, arrival and (last program) merge
    lines.append(
        f"  loop ends p10/50/90/max {np.percentile(le[real], 10):.1f}/{np.median(le[real]):.1f}/"
        f"{np.percentile(le[real], 90):.1f}/{le[real].max():.1f} us; after the loop median "
        f"{np.median(after):.2f}, max {after.max():.2f} us"
    )
    lines.append(
        f"  last real start {s[real].max():.1f} us; last real end {e[real].max():.1f}; "
        f"first real end {e[real].min():.1f}; last empty end {e[~real].max() if (~real).any() else 0:.1f}"
    )
    # peak residency per SM from start/end events
    peak = 0
    for k in np.unique(sm):
        idx = sm == k
        ev = np.concatenate(
            [np.stack([s[idx], np.ones(idx.sum())], 1), np.stack([e[idx], -np.ones(idx.sum())], 1)]
        )
        ev = ev[np.lexsort((ev[:, 1], ev[:, 0]))]
        peak = max(peak, int(np.cumsum(ev[:, 1]).max()))
    lines.append(f"  SMs used {len(np.unique(sm))}, peak programs resident on one SM {peak}")
    # SMs do not all stream at one rate (docs/GPU_NOTES.md section 15): per SM, the mean
    # loop end of its real programs, and how many SMs end theirs 5% before the median SM
    sm_end = np.array([le[real & (sm == k)].mean() for k in np.unique(sm[real])])
    early = int((sm_end < 0.95 * np.median(sm_end)).sum())
    lines.append(
        f"  per-SM mean loop end p10/50/90 {np.percentile(sm_end, 10):.1f}/"
        f"{np.median(sm_end):.1f}/{np.percentile(sm_end, 90):.1f} us; {early} SMs 5% early"
    )
    # timeline: 10 buckets over the span
    nb = 12
    edges = np.linspace(0, span, nb + 1)
    row_r, row_e, row_bw = [], [], []
    for a, b in itertools.pairwise(edges):
        ov = np.clip(np.minimum(e, b) - np.maximum(s, a), 0, None)
        row_r.append(ov[real].sum() / (b - a))
        row_e.append(ov[~real].sum() / (b - a))
        frac = ov[real] / np.maximum(dur[real], 1e-3)
        row_bw.append(100 * (frac * rb).sum() / ((b - a) * 1e-6) / 1e9 / copy_gbs)
    lines.append("  t(us)  " + " ".join(f"{x:6.0f}" for x in edges[1:]))
    lines.append("  real   " + " ".join(f"{x:6.0f}" for x in row_r))
    lines.append("  empty  " + " ".join(f"{x:6.0f}" for x in row_e))
    lines.append("  %copy  " + " ".join(f"{x:6.0f}" for x in row_bw))
    return "\n".join(lines)


def main() -> None:
    ap = bg.companion_parser(__doc__, "trace.npz")
    ap.add_argument("--variants", default="")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    gen, copy_gbs, cases = bg.companion_start(args.rep_ms)
    variants = json.loads(args.variants) if args.variants else VARIANTS
    shapes = bg.parse_shapes(args.shapes, SHAPES)
    saved: dict[str, np.ndarray] = {}
    for dt, kv, label in shapes:
        lens = cases[(dt, kv, label)]
        case = bg.Case(getattr(torch, dt), kv, lens, label, gen)
        out = torch.empty_like(case.query)
        inputs = (case.query, case.k_cache, case.v_cache, case.block_table, case.seq_lens)
        bpt = bg.HEAD_DIM * 2 * case.query.element_size()  # per token of one KV head
        for name, over in variants.items():
            over = dict(over)
            order = over.pop("work_order", None)
            nsplit = over.pop("num_splits", None)
            plan = dec.plan_splits(case.query, case.k_cache, case.block_table, nsplit)
            host_plan = None
            if order is not None:
                chunk = over.pop("chunk", None)
                host_plan = dec.plan_decode(
                    case.query, case.k_cache, case.block_table, lens, chunk=chunk, order=order
                )
                tokens = host_plan.items[:, 3].copy()
                nsplit = None
            else:
                # 3-D grid, program id = seq + S * (head + H * split)
                sp = np.arange(plan.num_splits)[:, None, None]
                ln = np.asarray(lens)[None, None, :]
                tokens = np.clip(np.minimum(ln, (sp + 1) * plan.chunk) - sp * plan.chunk, 0, None)
                tokens = np.broadcast_to(tokens, (plan.num_splits, kv, len(lens))).reshape(-1)
                tokens = tokens.copy()
                # split 0 of an empty sequence runs (writes zeros): mark as real with 0 bytes
            trace = torch.zeros((tokens.shape[0], 4), dtype=torch.int64, device="cuda")
            dec._LAUNCH_OVERRIDES.update(over)
            try:
                dec.paged_attention_triton(
                    *inputs, case.scale, out, num_splits=nsplit, plan=host_plan
                )
                err = case.error(out)
                dec._LAUNCH_TENSORS["trace"] = trace
                spans = []
                for r in range(args.repeats):
                    bg.flush_l2()
                    dec.paged_attention_triton(
                        *inputs, case.scale, out, num_splits=nsplit, plan=host_plan
                    )
                    torch.cuda.synchronize()
                    tr = trace.cpu().numpy()
                    spans.append((tr[:, 2].max() - tr[:, 1].min()) / 1e3)
                    saved[f"{dt}_kv{kv}_{label}_{name}_{r}"] = tr
            finally:
                dec._LAUNCH_OVERRIDES.clear()
                dec._LAUNCH_TENSORS.clear()
            saved[f"{dt}_kv{kv}_{label}_{name}_tokens"] = tokens
            print(
                f"{dt} kv{kv} {label} [{name}] splits {(host_plan or plan).num_splits} "
                f"chunk {(host_plan or plan).chunk} "
                f"err {err:.1e} spans " + " ".join(f"{x:.1f}" for x in spans),
                flush=True,
            )
            print(summarize(tr, tokens, bpt, copy_gbs), flush=True)
        del case
        torch.cuda.empty_cache()
    np.savez_compressed(args.out, copy_gbs=copy_gbs, **saved)


if __name__ == "__main__":
    main()
