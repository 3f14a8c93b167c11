"""Host (Python) cost of ``UnifiedPlan.run`` and ``plan_unified``, without a GPU.

The Triton kernels are replaced by no-ops and the tensors live on the CPU (the Triton path
under ``TRITON_INTERPRET=1``), so what is timed is ours: the per-layer checks, the modifier
checks, argument assembly, one (stubbed) launch per launch class; Triton's own launch cost
comes on top on a GPU. Batch: a 2048-token chunk on 8192 cached, 63 decodes at 4096, and 8
four-token verifications (three launch classes), bf16, 32/8 heads, head_dim 128.

    python benchmarks/bench_host_unified.py
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any


def per_call_us(fn: Callable[[], Any], calls: int = 2000, rounds: int = 7) -> float:
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

    def __getitem__(self, grid: Any) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def main() -> None:
    os.environ.setdefault("TRITON_INTERPRET", "1")
    import torch

    from paged_attn_kernels.unified import plan_unified
    from paged_attn_kernels.unified import triton_kernel as tk

    tk._unified_kernel = _NoLaunch()  # type: ignore[assignment]
    tk._merge_kernel = _NoLaunch()  # type: ignore[assignment]
    seqs = [(8192, 2048)] + [(4095, 1)] * 63 + [(4092, 4)] * 8  # (cached, new)
    q_lens = [n for _, n in seqs]
    lens = [c + n for c, n in seqs]
    qsl = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32)
    blocks = [-(-n // 16) for n in lens]
    table = torch.zeros((len(seqs), max(blocks)), dtype=torch.int32)
    num_blocks = sum(blocks)
    kc = torch.empty((num_blocks, 16, 8, 128), dtype=torch.bfloat16)
    vc = torch.empty_like(kc)
    q = torch.empty((int(qsl[-1]), 32, 128), dtype=torch.bfloat16)
    out = torch.empty_like(q)
    seq_lens = torch.tensor(lens, dtype=torch.int32)
    sinks = torch.zeros(32)
    plan = plan_unified(q, kc, table, qsl, seq_lens, backend="triton")
    rows = [
        ("plan.run(q, k, v, out)", lambda: plan.run(q, kc, vc, out)),
        (
            "plan.run(..., sliding_window=4096, sinks=...)",
            lambda: plan.run(q, kc, vc, out, sliding_window=4096, sinks=sinks),
        ),
        (
            "plan_unified(...) (once per step)",
            lambda: plan_unified(q, kc, table, qsl, seq_lens, backend="triton"),
        ),
        ("torch.add of 8 floats (floor)", lambda: torch.add(sinks[:8], 1.0)),
    ]
    print(f"launches per run: {len(plan.launches)}")
    for name, fn in rows:
        calls = 200 if name.startswith("plan_unified") else 2000
        print(f"{name}: {per_call_us(fn, calls):.1f} us")


if __name__ == "__main__":
    main()
