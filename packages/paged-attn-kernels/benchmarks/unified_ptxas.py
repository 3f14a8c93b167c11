"""Compile the variable-length kernel's launch classes for sm_90 without a GPU, and report
what ptxas says about each: registers per thread, spills, shared memory, and whether the
products are Hopper ``wgmma`` or ``mma.sync``.

Usage (any machine with triton; CPU only)::

    python benchmarks/unified_ptxas.py
"""

from __future__ import annotations

from typing import Any

import triton
import triton.language as tl
from decode_ptx import compile_sm90, ptxas_info

from paged_attn_kernels.unified.plan import ROW_CLASSES
from paged_attn_kernels.unified.triton_kernel import _unified_kernel
from paged_attn_kernels.unified.triton_run import launch_shape

POINTERS = {
    "q_ptr": "*bf16", "k_cache_ptr": "*bf16", "v_cache_ptr": "*bf16", "block_table_ptr": "*i32",
    "seq_lens_ptr": "*i32", "qsl_ptr": "*i32", "work_ptr": "*i32", "out_ptr": "*bf16",
    "part_o_ptr": "*fp32", "part_lse_ptr": "*fp32", "sinks_ptr": "*fp32", "alibi_ptr": "*fp32",
    "qk_scale": "fp32", "v_scale": "fp32", "soft_cap": "fp32",
}  # fmt: skip
FP8 = {"k_cache_ptr": "*fp8e4nv", "v_cache_ptr": "*fp8e4nv"}


def report(consts: dict[str, Any], types: dict[str, str], warps: int, stages: int) -> str:
    kernel = compile_sm90(_unified_kernel, consts, {**POINTERS, **types}, warps, stages)
    ptx = kernel.asm["ptx"]
    regs, spill = ptxas_info(ptx)
    mma = "wgmma" if "wgmma" in ptx else "mma.sync"
    return f"{regs} | {spill} | {kernel.metadata.shared} | {mma}"


def main() -> None:
    print(f"triton {triton.__version__}, sm_90; bf16 query, 32/8 heads, head_dim 128, block 16")
    print("| launch | tile_n | warps / stages | registers | spill bytes | shared bytes | dots |")
    print("|---|---|---|---|---|---|---|")
    base = dict(GROUP=4, HEAD_DIM=128, HEAD_PAD=128, BLOCK_SIZE=16, COMPUTE_DTYPE=tl.bfloat16,
                IEEE_DOT=False, USE_WINDOW=False, USE_SOFTCAP=False, USE_SINKS=False,
                USE_ALIBI=False, SPLIT=False, PRESCALE_Q=False)  # fmt: skip
    every = dict(USE_WINDOW=True, USE_SOFTCAP=True, USE_SINKS=True, USE_ALIBI=True)
    fp8 = dict(COMPUTE_DTYPE=tl.float16, PRESCALE_Q=True)
    for rows in ROW_CLASSES:
        shape = launch_shape(rows, 4, 128, 2)
        fp8_shape = launch_shape(rows, 4, 128, 1)
        variants = [("bf16", {}, {}, shape), ("bf16, all modifiers", every, {}, shape),
                    ("fp8 cache", fp8, FP8, fp8_shape)]  # fmt: skip
        if rows <= 64:
            variants.append(("bf16, split", {"SPLIT": True}, {}, shape))
        for name, over, types, s in variants:
            consts = {**base, **over, "BLOCK_M": rows, "BLOCK_Q": s.block_q, "TILE_N": s.tile_n}
            line = report(consts, types, s.num_warps, s.num_stages)
            print(f"| {rows} rows, {name} | {s.tile_n} | {s.num_warps} / {s.num_stages} | {line} |")


if __name__ == "__main__":
    main()
