# mypy: disable-error-code="no-untyped-def,untyped-decorator"
# (Triton kernels: only tl.constexpr parameters carry annotations; the launchers are typed.)
"""Triton K/V cache write: scatter new tokens' K and V into their slots.

Mirrors vLLM's ``reshape_and_cache_flash`` (``csrc/cache_kernels.cu``; Triton twin
``vllm/attention/ops/triton_reshape_and_cache_flash.py``) for the flash layout
``[num_blocks, block_size, num_kv_heads, head_dim]``: token ``t`` goes to block
``slot_mapping[t] // block_size``, row ``slot_mapping[t] % block_size``; a negative slot
is padding and is skipped. With an fp8 (e4m3) cache the stored value is
``x / scale`` rounded to e4m3 after clamping to its finite range (vLLM's
``kv_cache_dtype="fp8"`` with per-tensor ``k_scale``/``v_scale``); the decode kernel in
:mod:`paged_attn_kernels._triton_decode` multiplies the scale back.

One program per (token, group of KV heads), written in the Triton tutorials' order:
kernel, then launcher. No validation here: :mod:`paged_attn_kernels.api` checks inputs.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["write_kv_cache_triton"]

_FP8_E4M3_MAX = 448.0


@triton.jit
def _write_kv_kernel(
    key_ptr,  # [num_tokens, num_kv_heads, head_dim]
    value_ptr,  # [num_tokens, num_kv_heads, head_dim]
    k_cache_ptr,  # [num_blocks, block_size, num_kv_heads, head_dim]
    v_cache_ptr,
    slot_mapping_ptr,  # [num_tokens]
    k_scale_ptr,
    v_scale_ptr,
    k_scale_val,
    v_scale_val,
    num_kv_heads,
    stride_kt,
    stride_kh,
    stride_kd,
    stride_vt,
    stride_vh,
    stride_vd,
    stride_kcb,
    stride_kcs,
    stride_kch,
    stride_kcd,
    stride_vcb,
    stride_vcs,
    stride_vch,
    stride_vcd,
    HEAD_DIM: tl.constexpr,
    HEAD_PAD: tl.constexpr,
    HEADS_PER_PROG: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    QUANTIZE: tl.constexpr,
    SCALE_FROM_PTR: tl.constexpr,
    FP8_MAX: tl.constexpr,
):
    token = tl.program_id(0).to(tl.int64)
    slot = tl.load(slot_mapping_ptr + token).to(tl.int64)
    if slot < 0:
        return  # padding token
    block = slot // BLOCK_SIZE
    row = slot % BLOCK_SIZE

    heads = tl.program_id(1) * HEADS_PER_PROG + tl.arange(0, HEADS_PER_PROG)
    offs_d = tl.arange(0, HEAD_PAD)
    mask = (heads[:, None] < num_kv_heads) & (offs_d[None, :] < HEAD_DIM)

    k = tl.load(
        key_ptr + token * stride_kt + heads[:, None] * stride_kh + offs_d[None, :] * stride_kd,
        mask=mask,
    )
    v = tl.load(
        value_ptr + token * stride_vt + heads[:, None] * stride_vh + offs_d[None, :] * stride_vd,
        mask=mask,
    )
    if QUANTIZE:
        if SCALE_FROM_PTR:
            ks = tl.load(k_scale_ptr)
            vs = tl.load(v_scale_ptr)
        else:
            ks = k_scale_val
            vs = v_scale_val
        # e4m3fn has no infinity: clamp so that overflow saturates instead of becoming NaN.
        # NaN stays NaN (e4m3fn's 0x7f), as in the numpy oracle.
        k = tl.clamp(k.to(tl.float32) / ks, -FP8_MAX, FP8_MAX, propagate_nan=tl.PropagateNan.ALL)
        v = tl.clamp(v.to(tl.float32) / vs, -FP8_MAX, FP8_MAX, propagate_nan=tl.PropagateNan.ALL)

    k_dst = k_cache_ptr + block * stride_kcb + row * stride_kcs
    v_dst = v_cache_ptr + block * stride_vcb + row * stride_vcs
    tl.store(
        k_dst + heads[:, None] * stride_kch + offs_d[None, :] * stride_kcd,
        k.to(k_cache_ptr.dtype.element_ty),
        mask=mask,
    )
    tl.store(
        v_dst + heads[:, None] * stride_vch + offs_d[None, :] * stride_vcd,
        v.to(v_cache_ptr.dtype.element_ty),
        mask=mask,
    )


def write_kv_cache_triton(
    key: torch.Tensor,
    value: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
    *,
    k_scale: float | torch.Tensor | None = None,
    v_scale: float | torch.Tensor | None = None,
) -> None:
    """Store ``key``/``value`` ``[num_tokens, num_kv_heads, head_dim]`` at ``slot_mapping``.

    fp8 caches (``torch.float8_e4m3fn``) store ``x / scale``; scales are floats or
    one-element fp32 device tensors (default 1.0). Other cache dtypes store a cast copy
    and ignore the scales, as vLLM does for ``kv_cache_dtype="auto"``.
    """
    num_tokens, num_kv_heads, head_dim = key.shape
    if num_tokens == 0:
        return
    block_size = key_cache.shape[1]
    head_pad = triton.next_power_of_2(head_dim)
    # ~2K elements per program: enough bytes per program, few programs per token.
    heads_per_prog = min(triton.next_power_of_2(num_kv_heads), max(1, 2048 // head_pad))
    quantize = key_cache.dtype in _FP8_DTYPES
    scale_from_ptr = isinstance(k_scale, torch.Tensor) or isinstance(v_scale, torch.Tensor)
    dev = key.device
    if scale_from_ptr:
        ks_ptr = _scale_tensor(k_scale, dev)
        vs_ptr = _scale_tensor(v_scale, dev)
        ks_val = vs_val = 1.0
    else:
        ks_ptr = vs_ptr = slot_mapping  # never read
        ks_val = 1.0 if k_scale is None else float(k_scale)
        vs_val = 1.0 if v_scale is None else float(v_scale)
    grid = (num_tokens, triton.cdiv(num_kv_heads, heads_per_prog))
    _write_kv_kernel[grid](
        key,
        value,
        key_cache,
        value_cache,
        slot_mapping,
        ks_ptr,
        vs_ptr,
        ks_val,
        vs_val,
        num_kv_heads,
        *key.stride(),
        *value.stride(),
        *key_cache.stride(),
        *value_cache.stride(),
        HEAD_DIM=head_dim,
        HEAD_PAD=head_pad,
        HEADS_PER_PROG=heads_per_prog,
        BLOCK_SIZE=block_size,
        QUANTIZE=quantize,
        SCALE_FROM_PTR=scale_from_ptr,
        FP8_MAX=_FP8_E4M3_MAX,
        num_warps=4,
    )


_FP8_DTYPES = (torch.float8_e4m3fn,)


def _scale_tensor(x: float | torch.Tensor | None, device: torch.device) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    return torch.full((1,), 1.0 if x is None else float(x), dtype=torch.float32, device=device)
