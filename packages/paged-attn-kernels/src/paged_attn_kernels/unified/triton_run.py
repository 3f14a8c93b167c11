"""Launching the Triton kernels of ``triton_kernel.py``: tile shapes, per-layer checks, launch.

``run_triton`` is ``UnifiedPlan.run`` on the Triton backend: it checks the layer's tensors
against the plan from their attributes alone (no describe, no host read: a few µs),
converts per-head modifiers to float32 device vectors (a no-op for the usual float32 device
tensor), zeroes padding rows, and launches each of the plan's classes (and the merge of a
split class). ``launch_shape`` picks a class's key tile, warps and stages.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import triton
import triton.language as tl

from paged_attn_kernels._validate import KernelDtypeError, KernelInputError
from paged_attn_kernels.unified import triton_kernel as tk
from paged_attn_kernels.unified.options import ScoreMods

if TYPE_CHECKING:
    from paged_attn_kernels.unified.plan import UnifiedPlan

__all__ = ["LaunchShape", "check_torch_run", "launch_shape", "launch_unified", "run_triton"]

_LOG2E = 1.4426950408889634


class LaunchShape:
    """Tile shape of one launch class: ``block_m`` rows = ``block_q`` tokens x the group."""

    __slots__ = ("block_m", "block_q", "num_stages", "num_warps", "tile_n")

    def __init__(self, block_m: int, block_q: int, tile_n: int, num_warps: int, num_stages: int):
        self.block_m, self.block_q, self.tile_n = block_m, block_q, tile_n
        self.num_warps, self.num_stages = num_warps, num_stages

    def __repr__(self) -> str:
        return (
            f"LaunchShape(block_m={self.block_m}, block_q={self.block_q}, tile_n={self.tile_n}, "
            f"num_warps={self.num_warps}, num_stages={self.num_stages})"
        )


def head_pad(head_dim: int) -> int:
    """Head dimension as the kernel's tiles hold it: a power of two, and at least 16, the
    smallest inner dimension ``tl.dot`` compiles for on a GPU (the interpreter takes any)."""
    return max(16, triton.next_power_of_2(head_dim))


def launch_shape(
    block_m: int, group: int, head_dim: int, elem_bytes: int, tile_n: int | None = None
) -> LaunchShape:
    """Rows, key tile, warps and stages for a class of ``block_m``-row programs."""
    pad = head_pad(head_dim)
    if tile_n is None:
        # a K tile of ~16 KB (64 tokens at head_dim 128, bf16), as the decode kernel uses
        tile_n = max(16, min(128, 16384 // (pad * max(2, elem_bytes))))
        if block_m >= 128 and pad > 128:
            tile_n = 32  # acc [128, 256] + scores stay in registers
    warps = 8 if block_m >= 128 else 4
    stages = 3 if pad <= 128 else 2
    return LaunchShape(block_m, max(1, block_m // group), tile_n, warps, stages)


_TL = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}


def launch_unified(
    shape: LaunchShape,
    work: torch.Tensor,  # [num_items, 2] (or [num_items, 4] split) int32 on the device
    merge: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,  # (groups, part_o, lse)
    query: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    block_table: torch.Tensor,
    seq_lens: torch.Tensor,
    query_start_loc: torch.Tensor,
    out: torch.Tensor,
    *,
    scale: float,
    k_scale: float,
    v_scale: float,
    sliding_window: int | None,
    soft_cap: float | None,
    sinks: torch.Tensor | None,
    alibi_slopes: torch.Tensor | None,
) -> None:
    """One launch over ``work`` (and the merge of its splits); inputs are checked by the
    caller (``api.py``)."""
    num_heads, head_dim = query.shape[1], query.shape[2]
    num_kv_heads = key_cache.shape[2]
    group = num_heads // num_kv_heads
    pad = head_pad(head_dim)
    natural = soft_cap is not None or alibi_slopes is not None
    qk_scale = scale * k_scale * (1.0 if natural else _LOG2E)
    compute = query.dtype
    prescale = key_cache.element_size() == 1 and compute != torch.float32
    if prescale:
        compute = torch.float16  # the decode kernel measured bf16 dots on fp8 K/V slower
    placeholder = seq_lens  # never read when its switch is off
    part_o, part_lse = (merge[1], merge[2]) if merge is not None else (placeholder, placeholder)
    grid = (work.shape[0] * num_kv_heads,)
    tk._unified_kernel[grid](
        query, key_cache, value_cache, block_table, seq_lens, query_start_loc, work, out,
        part_o, part_lse,
        sinks if sinks is not None else placeholder,
        alibi_slopes if alibi_slopes is not None else placeholder,
        num_kv_heads, qk_scale, v_scale, soft_cap or 1.0, sliding_window or 0,
        query.stride(0), query.stride(1),
        key_cache.stride(0), key_cache.stride(1), key_cache.stride(2),
        value_cache.stride(0), value_cache.stride(1), value_cache.stride(2),
        block_table.stride(0), out.stride(0), out.stride(1),
        GROUP=group, BLOCK_M=shape.block_m, BLOCK_Q=shape.block_q,
        HEAD_DIM=head_dim, HEAD_PAD=pad,
        BLOCK_SIZE=key_cache.shape[1], TILE_N=shape.tile_n,
        COMPUTE_DTYPE=_TL[compute], IEEE_DOT=compute == torch.float32,
        USE_WINDOW=sliding_window is not None, USE_SOFTCAP=soft_cap is not None,
        USE_SINKS=sinks is not None, USE_ALIBI=alibi_slopes is not None,
        SPLIT=merge is not None, PRESCALE_Q=prescale,
        num_warps=shape.num_warps, num_stages=shape.num_stages,
    )  # fmt: skip
    if merge is None:
        return
    groups = merge[0]
    tk._merge_kernel[(groups.shape[0] * num_kv_heads,)](
        part_o, part_lse, groups, work, query_start_loc, out, num_kv_heads,
        out.stride(0), out.stride(1),
        GROUP=group, BLOCK_M=shape.block_m, BLOCK_Q=shape.block_q,
        HEAD_DIM=head_dim, HEAD_PAD=pad, num_warps=4,
    )  # fmt: skip


def check_torch_run(
    plan: UnifiedPlan, query: Any, key_cache: Any, value_cache: Any, out: Any, ks: Any, vs: Any
) -> tuple[float, float]:
    """The per-layer checks of a Triton run, from tensor attributes only (a few µs): the
    plan's shapes, dtypes and device; float scales (fp8 caches only)."""
    named = [("query", query), ("key_cache", key_cache), ("value_cache", value_cache)]
    if out is not None:
        named.append(("out", out))
    for name, t in named:
        if not isinstance(t, torch.Tensor):
            raise KernelDtypeError(f"{name} must be a torch tensor like the plan's, got {type(t)}")
        if str(t.device) != plan.device:
            raise KernelDtypeError(f"{name} is on {t.device}, the plan on {plan.device}")
    want_q = (plan.num_tokens, plan.num_heads, plan.head_dim)
    if tuple(query.shape) != want_q:
        raise KernelInputError(f"query must be {list(want_q)} as planned, got {list(query.shape)}")
    want_c = (plan.num_blocks, plan.block_size, plan.num_kv_heads, plan.head_dim)
    for name, c in named[1:3]:
        if tuple(c.shape) != want_c:
            raise KernelInputError(f"{name} must be {list(want_c)} as planned, got {list(c.shape)}")
    if query.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise KernelDtypeError(f"query dtype {query.dtype} must be float16/bfloat16/float32")
    fp8 = key_cache.dtype in (torch.float8_e4m3fn, torch.uint8)
    if value_cache.dtype != key_cache.dtype or not (fp8 or key_cache.dtype == query.dtype):
        raise KernelDtypeError(
            f"caches {key_cache.dtype}/{value_cache.dtype} must both equal the query dtype "
            f"{query.dtype}, or both be fp8"
        )
    if out is not None and (out.shape != query.shape or out.dtype != query.dtype):
        raise KernelDtypeError(
            f"out must have query's shape {tuple(query.shape)} and dtype {query.dtype}, got "
            f"{tuple(out.shape)} {out.dtype}"
        )
    scales = []
    for name, x in (("k_scale", ks), ("v_scale", vs)):
        if x is None:
            scales.append(1.0)
            continue
        if not fp8 and x != 1.0:
            raise KernelInputError(f"{name} applies to fp8 caches only")
        if isinstance(x, torch.Tensor):
            if x.numel() != 1:
                raise KernelInputError(f"{name} must be a float or a one-element tensor")
            x = float(x)  # a device scalar is read here: pass floats to avoid the sync
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 < x < math.inf:
            raise KernelInputError(f"{name} must be a finite positive float, got {x!r}")
        scales.append(float(x))
    return scales[0], scales[1]


def _device_vector(x: Any, device: Any) -> Any:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        t = x.to(device=device, dtype=torch.float32)
        return t if t.is_contiguous() else t.contiguous()
    return torch.as_tensor(np.asarray(x, np.float32), device=device)


def run_triton(
    plan: UnifiedPlan,
    query: Any,
    key_cache: Any,
    value_cache: Any,
    out: Any,
    scale: float,
    mods: ScoreMods,
    k_scale: float,
    v_scale: float,
) -> Any:
    if key_cache.dtype == torch.uint8:
        key_cache = key_cache.view(torch.float8_e4m3fn)
        value_cache = value_cache.view(torch.float8_e4m3fn)
    for name, t in (("query", query), ("key_cache", key_cache), ("value_cache", value_cache)):
        if t.stride(-1) != 1:
            raise KernelInputError(f"{name} must be contiguous in head_dim (stride(-1) == 1)")
    if out is None:
        out = torch.empty_like(query)
    elif out.stride(-1) != 1:
        raise KernelInputError("out must be contiguous in head_dim (stride(-1) == 1)")
    used = plan.batch.num_query_tokens
    if used < plan.num_tokens:
        out[used:].zero_()  # padding rows (a CUDA-graph batch padded past its tokens)
    sinks = _device_vector(mods.sinks_arg, query.device)
    alibi = _device_vector(mods.alibi_arg, query.device)
    bt = plan.block_table
    for shape, work, merge in plan.launches:
        launch_unified(
            shape, work, merge, query, key_cache, value_cache, bt, plan.seq_lens,
            plan.query_start_loc, out, scale=scale, k_scale=k_scale, v_scale=v_scale,
            sliding_window=mods.sliding_window, soft_cap=mods.soft_cap, sinks=sinks,
            alibi_slopes=alibi,
        )  # fmt: skip
    return out
