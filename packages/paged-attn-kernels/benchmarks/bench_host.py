"""Host (Python) cost of a decode call before the kernel launch, without a GPU.

The GPU benchmark (``bench_gpu.py``) measures the whole host cost of a call, Triton's own
launch included. This script measures the part that is ours, on any machine: the tensors
live on torch's ``meta`` device (shapes and dtypes, no memory, so the call takes the CUDA
code path without a device) and the two Triton kernels are replaced by no-ops, so what is
timed is validation, dispatch, the split choice, buffer allocation and argument assembly.

    python benchmarks/bench_host.py                    # B=64 x 8192, bf16, 32/8 heads
    python benchmarks/bench_host.py --src OLD/src      # the same calls on another source tree

Prints µs per call (median of 7 rounds of ``--calls`` calls) for ``plan.run`` (the engine's
per-layer call), the one-shot ``paged_attention`` with its defaults, and ``plan_decode``
(once per step), next to ``torch.add`` of 8 floats on the CPU as a floor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


def per_call_us(fn: Callable[[], Any], calls: int, rounds: int = 7) -> float:
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(times)


class _NoLaunch:
    """Stands in for a ``@triton.jit`` kernel: ``kernel[grid](...)`` does nothing."""

    arg_names: tuple[str, ...] = ()

    def __getitem__(self, grid: Any) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default="", help="import paged_attn_kernels from this directory")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--context", type=int, default=8192)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args()
    if args.src:
        sys.path.insert(0, args.src)
    os.environ.setdefault("TRITON_INTERPRET", "1")  # no CUDA needed to import the kernels
    import torch

    import paged_attn_kernels as pak
    from paged_attn_kernels import _triton_decode as td

    td._paged_decode_kernel = _NoLaunch()  # type: ignore[assignment]
    td._paged_decode_reduce_kernel = _NoLaunch()  # type: ignore[assignment]
    b, n, kv, d, bs = args.batch, args.context, args.kv_heads, 128, 16
    meta = {"device": "meta", "dtype": torch.bfloat16}
    q = torch.empty((b, 32, d), **meta)
    kc = torch.empty((b * n // bs + 8, bs, kv, d), **meta)
    vc = torch.empty_like(kc)
    bt = torch.empty((b, n // bs), device="meta", dtype=torch.int32)
    sl = torch.empty((b,), device="meta", dtype=torch.int32)
    out = torch.empty_like(q)
    lens = [n] * b
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"paged_attn_kernels from {os.path.dirname(pak.__file__)}; B={b} ctx={n} bf16 32/{kv} "
          f"heads; torch {torch.__version__}; load {load:.2f}")  # fmt: skip
    small = torch.ones(8)
    add = per_call_us(lambda: torch.add(small, small, out=small), args.calls)
    print(f"torch.add, 8 floats on the CPU (a floor): {add:7.1f} µs")
    try:
        one = per_call_us(lambda: pak.paged_attention(q, kc, vc, bt, sl, out=out), args.calls)
        label = "paged_attention(...) defaults"
    except Exception:  # an older tree whose default reads values back (no meta copies)
        one = per_call_us(
            lambda: pak.paged_attention(q, kc, vc, bt, sl, out=out, validate=False), args.calls
        )
        label = "paged_attention(..., validate=False)"
    print(f"{label + ':':<41}{one:8.1f} µs")
    plan = pak.plan_decode(q, kc, bt, lens)
    if hasattr(plan, "run"):
        run = per_call_us(lambda: plan.run(q, kc, vc, out=out), args.calls)
        print(f"plan.run(...) per layer:                 {run:8.1f} µs")
    else:
        run = per_call_us(
            lambda: pak.paged_attention(q, kc, vc, bt, sl, out=out, plan=plan, validate=False),
            args.calls,
        )
        print(f"paged_attention(..., plan=plan):         {run:8.1f} µs")
    made = per_call_us(lambda: pak.plan_decode(q, kc, bt, lens), max(1, args.calls // 20))
    print(f"plan_decode(...) per step:               {made:8.1f} µs")


if __name__ == "__main__":
    main()
