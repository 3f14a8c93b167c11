"""Compile the decode kernel for sm_90 without a GPU and count what each launch shape costs:
PTX instructions, byte-wide shared-memory loads, registers (ptxas), shared memory, and how
many K/V tiles the software pipeline keeps in flight (its shared-memory buffers).

Two facts in docs/DESIGN.md come from this script:

- the block-table load takes a pipeline stage of its own ahead of the K/V loads it
  addresses, so ``num_stages = S`` gives ``(S - 1) // 2`` K/V buffers (3 -> 1, 5 -> 2);
- with an fp8 cache, converting V inside the dot's operand load makes every thread read its
  V bytes one ``ld.shared.b8`` at a time; ``early_value_cvt`` converts first.

Usage (any machine with triton; CPU only)::

    python benchmarks/decode_ptx.py
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import subprocess
import tempfile
from collections import Counter
from typing import Any

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from paged_attn_kernels import _triton_decode as td

TYPES = {
    "q_ptr": "*bf16", "block_table_ptr": "*i32", "seq_lens_ptr": "*i32", "out_ptr": "*bf16",
    "part_out_ptr": "*fp32", "part_lse_ptr": "*fp32", "sem_ptr": "*i32", "work_ptr": "*i32",
    "k_scale_ptr": "*fp32", "v_scale_ptr": "*fp32", "qk_scale": "fp32", "v_scale": "fp32",
}  # fmt: skip
_OP = re.compile(r"^\s+(?:@!?%p\d+\s+)?([a-z][\w.]*)", re.M)
_BUFFERS = re.compile(r"local_alloc : \(\) -> !ttg\.memdesc<(\d+)x\d+x\d+x")


def ptxas_info(ptx: str) -> tuple[int, int]:
    """(registers per thread, spill-store bytes) from triton's bundled ptxas."""
    ptxas = next(
        os.path.join(root, "ptxas")
        for root, _, files in os.walk(os.path.dirname(triton.__file__))
        if "ptxas" in files
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.ptx")
        with open(path, "w") as f:
            f.write(ptx)
        info = subprocess.run(
            [ptxas, "-arch=sm_90a", "-v", path, "-o", path + ".cubin"],
            capture_output=True, text=True, check=True,
        ).stderr  # fmt: skip
    regs = int(info.split("Used ")[1].split(" registers")[0])
    spill = int(info.split(" bytes spill stores")[0].split(",")[-1].strip())
    return regs, spill


def compile_sm90(kernel: Any, consts: dict[str, Any], types: dict[str, str], warps: int,
                 stages: int) -> Any:  # fmt: skip
    """``kernel`` compiled for sm_90a as the runtime specialises it: ``consts`` bound, the
    other parameters typed from ``types`` (default ``i32``), pointers and strides 16-aligned."""
    params = list(inspect.signature(kernel.fn).parameters)
    sig = {p: "constexpr" if p in consts else types.get(p, "i32") for p in params}
    aligned = [i for i, p in enumerate(params) if p not in consts and p.endswith("_ptr")]
    aligned += [i for i, p in enumerate(params) if p.startswith("stride")]
    src = ASTSource(
        fn=kernel, signature=sig,
        attrs={(i,): [["tt.divisibility", 16]] for i in aligned},
        constexprs={(params.index(k),): v for k, v in consts.items()},
    )  # fmt: skip
    return triton.compile(
        src, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps, "num_stages": stages}
    )


def measure(cfg: td.LaunchConfig, cache: str, splits: int) -> dict[str, int]:
    """Compile the kernel as a 32/8-head, head_dim 128, block 16 launch with ``splits``
    (fused merge past one) for sm_90a and count what it costs."""
    grid = td.Grid(num_splits=splits, chunk=1024, programs=(1, 8, splits), work_list=None)
    meta = td.constexprs(cfg, grid, (16, 8, 128), 32, torch.device("cpu"))
    warps, stages = meta.pop("num_warps"), meta.pop("num_stages")
    meta["SCALES_FROM_PTR"] = False
    types = {**TYPES, "k_cache_ptr": cache, "v_cache_ptr": cache}
    kernel = compile_sm90(td._paged_decode_kernel, meta, types, warps, stages)
    ops = Counter(_OP.findall(kernel.asm["ptx"]))
    buffers = _BUFFERS.findall(kernel.asm["ttgir"])
    regs, spill = ptxas_info(kernel.asm["ptx"])
    return {
        "instructions": sum(ops.values()),
        "byte_loads": ops["ld.shared.b8"],
        "registers": regs,
        "spill_bytes": spill,
        "shared_bytes": kernel.metadata.shared,
        "kv_buffers": int(buffers[0]) if buffers else 0,
    }


def report(cfg: td.LaunchConfig, cache: str, splits: int) -> str:
    m = measure(cfg, cache, splits)
    regs = str(m["registers"])
    if m["spill_bytes"]:
        regs += f" ({m['spill_bytes']} B spilled)"
    return (
        f"{m['instructions']} | {m['byte_loads']} | {regs} | {m['shared_bytes']} | "
        f"{m['kv_buffers'] or '-'}"
    )


def main() -> None:
    print(f"triton {triton.__version__}, sm_90a; bf16 query, 32/8 heads, head_dim 128, block 16")
    print("| cache | tile / warps / stages | V converted | splits (merge) | PTX instructions | "
          "ld.shared.b8 | registers | shared bytes | K/V buffers |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    bf16 = td.launch_config(torch.bfloat16, torch.bfloat16, 128, 4, False)
    fp8 = td.launch_config(torch.bfloat16, torch.float8_e4m3fn, 128, 4, False)
    early = dataclasses.replace(fp8, early_value_cvt=True)
    rows: list[tuple[str, td.LaunchConfig, int]] = []
    for cfg in (bf16, fp8, early):  # the shipped shapes, without and with the fused merge
        rows += [(cfg_name, c, n) for cfg_name, c, n in (
            ("shipped", cfg, 1), ("shipped", cfg, 32),
            ("shipped", dataclasses.replace(cfg, merge_step=8), 32))]  # fmt: skip
    rows += [("stages", dataclasses.replace(bf16, num_stages=5), 1)]
    rows += [("stages", dataclasses.replace(c, num_stages=7), 1) for c in (fp8, early)]
    rows += [("tile", dataclasses.replace(c, tile_n=128, num_warps=4), 1) for c in (fp8, early)]
    for _, cfg, splits in rows:
        is_fp8 = cfg.compute_dtype == torch.float16
        how = ("as loaded" if cfg.early_value_cvt else "in the operand load") if is_fp8 else "-"
        merge = "none" if splits == 1 else f"{cfg.merge_step or splits} per step"
        print(f"| {'fp8' if is_fp8 else 'bf16'} | {cfg.tile_n} / {cfg.num_warps} / "
              f"{cfg.num_stages} | {how} | {splits} ({merge}) | "
              f"{report(cfg, '*fp8e4nv' if is_fp8 else '*bf16', splits)} |")  # fmt: skip


if __name__ == "__main__":
    main()
