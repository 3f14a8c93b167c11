# mypy: disable-error-code="no-untyped-def,untyped-decorator"
# (Triton kernels: only tl.constexpr parameters carry annotations; the launchers are typed.)
"""Triton kernels for whole-block cache traffic: ``gather_kv`` and ``copy_blocks``.

Both move blocks of the flash layout ``[num_blocks, block_size, num_kv_heads, head_dim]``,
whose block is one contiguous run of ``block_size x num_kv_heads x head_dim`` elements, so a
program copies a flat run in ``CHUNK``-element steps (16-byte vectors per thread) and the
only indirection is one block id per program.

- ``gather_kv``: program ``(sequence, logical block)`` copies the owned tokens of
  ``block_table[seq, j]`` into the dense ``[num_seqs, max_seq_len, num_kv_heads, head_dim]``
  output and zero-fills the rest of its rows (vLLM's ``gather_and_maybe_dequant_cache`` in
  ``csrc/cache_kernels.cu`` does this for chunked-prefill context); fp8 caches are read as
  float32 times their scale, as the package's ``gather_kv`` returns them.
- ``copy_blocks``: program ``(pair, cache)`` copies block ``src`` to block ``dst`` (vLLM's
  ``copy_blocks`` kernel, the copy list copy-on-write owes before a forked sequence writes).
  Pairs run concurrently, so no destination may also be a source (copy-on-write never asks
  for that: destinations are freshly allocated blocks); the launcher checks it on the host.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["copy_blocks_triton", "gather_kv_triton"]

_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


@triton.jit
def _gather_kernel(
    k_cache_ptr, v_cache_ptr, block_table_ptr, seq_lens_ptr, k_out_ptr, v_out_ptr,
    k_scale, v_scale, max_seq_len, stride_cb, stride_bts, stride_os,
    BLOCK_SIZE: tl.constexpr, ROW: tl.constexpr, CHUNK: tl.constexpr, DEQUANT: tl.constexpr,
):  # fmt: skip
    seq = tl.program_id(0)
    j = tl.program_id(1)
    seq_len = tl.load(seq_lens_ptr + seq)
    first = j * BLOCK_SIZE
    n_out = tl.minimum(BLOCK_SIZE, max_seq_len - first) * ROW  # elements this program writes
    n_in = tl.minimum(tl.maximum(seq_len - first, 0), BLOCK_SIZE) * ROW  # elements it reads
    # past the sequence (n_in == 0) the block-table entry is padding: never loaded
    row = block_table_ptr + seq.to(tl.int64) * stride_bts + j
    blk = tl.load(row, mask=n_in > 0, other=0).to(tl.int64)
    src_k = k_cache_ptr + blk * stride_cb
    src_v = v_cache_ptr + blk * stride_cb
    dst = seq.to(tl.int64) * stride_os + first.to(tl.int64) * ROW
    offs = tl.arange(0, CHUNK)
    for x0 in range(0, n_out, CHUNK):
        x = x0 + offs
        live = x < n_in
        k = tl.load(src_k + x, mask=live, other=0.0)
        v = tl.load(src_v + x, mask=live, other=0.0)
        if DEQUANT:
            k = k.to(tl.float32) * k_scale
            v = v.to(tl.float32) * v_scale
        tl.store(k_out_ptr + dst + x, k, mask=x < n_out)
        tl.store(v_out_ptr + dst + x, v, mask=x < n_out)


@triton.jit
def _copy_run(base, src, dst, stride_cb, BLOCK_ELEMS: tl.constexpr, CHUNK: tl.constexpr):
    offs = tl.arange(0, CHUNK)
    for x0 in range(0, BLOCK_ELEMS, CHUNK):
        x = x0 + offs
        if BLOCK_ELEMS % CHUNK == 0:
            tl.store(base + dst * stride_cb + x, tl.load(base + src * stride_cb + x))
        else:
            live = x < BLOCK_ELEMS
            data = tl.load(base + src * stride_cb + x, mask=live)
            tl.store(base + dst * stride_cb + x, data, mask=live)


@triton.jit
def _copy_kernel(
    k_cache_ptr, v_cache_ptr, mapping_ptr, stride_cb, stride_m,
    BLOCK_ELEMS: tl.constexpr, CHUNK: tl.constexpr,
):  # fmt: skip
    pair = tl.program_id(0)
    src = tl.load(mapping_ptr + pair * stride_m).to(tl.int64)
    dst = tl.load(mapping_ptr + pair * stride_m + 1).to(tl.int64)
    if tl.program_id(1) == 0:
        _copy_run(k_cache_ptr, src, dst, stride_cb, BLOCK_ELEMS, CHUNK)
    else:
        _copy_run(v_cache_ptr, src, dst, stride_cb, BLOCK_ELEMS, CHUNK)


def _chunk(elems: int, elem_bytes: int, num_warps: int) -> int:
    # four 16-byte vectors per thread per step, cut down for small blocks
    return min(triton.next_power_of_2(elems), num_warps * 32 * 4 * (16 // elem_bytes))


def _block_contiguous(cache: torch.Tensor, name: str) -> None:
    if not cache[0].is_contiguous():
        raise ValueError(f"{name}'s blocks must be contiguous [block_size, num_kv_heads, head_dim]")


def gather_kv_triton(
    key_cache: torch.Tensor,  # [num_blocks, block_size, num_kv_heads, head_dim]
    value_cache: torch.Tensor,
    block_table: torch.Tensor,  # [num_seqs, max_blocks] int32
    seq_lens: torch.Tensor,  # [num_seqs] int32
    max_seq_len: int,
    *,
    k_scale: float = 1.0,
    v_scale: float = 1.0,
    out: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense ``[num_seqs, max_seq_len, num_kv_heads, head_dim]`` K and V (zeros past each
    length); fp8 caches give float32 times their scale. Inputs are checked by the caller."""
    _block_contiguous(key_cache, "key_cache")
    _block_contiguous(value_cache, "value_cache")
    num_seqs = block_table.shape[0]
    _, block_size, num_kv_heads, head_dim = key_cache.shape
    fp8 = key_cache.dtype in (torch.float8_e4m3fn, torch.uint8)
    if key_cache.dtype == torch.uint8:
        key_cache, value_cache = (
            key_cache.view(torch.float8_e4m3fn),
            value_cache.view(torch.float8_e4m3fn),
        )
    shape = (num_seqs, max_seq_len, num_kv_heads, head_dim)
    out_dtype = torch.float32 if fp8 else key_cache.dtype
    if out is None:
        out = (
            torch.empty(shape, dtype=out_dtype, device=key_cache.device),
            torch.empty(shape, dtype=out_dtype, device=key_cache.device),
        )
    k_out, v_out = out
    for o in (k_out, v_out):
        if tuple(o.shape) != shape or o.dtype != out_dtype or not o.is_contiguous():
            raise ValueError(f"out tensors must be contiguous {shape} {out_dtype}")
    kc, vc = key_cache, value_cache
    if not fp8:  # move bits: the copy is dtype-blind
        bits = _BITS[kc.element_size()]
        kc, vc, k_out_b, v_out_b = kc.view(bits), vc.view(bits), k_out.view(bits), v_out.view(bits)
    else:
        k_out_b, v_out_b = k_out, v_out
    row = num_kv_heads * head_dim
    warps = 4
    chunk = _chunk(block_size * row, kc.element_size(), warps)
    grid = (num_seqs, triton.cdiv(max_seq_len, block_size))
    if num_seqs and grid[1]:
        _gather_kernel[grid](
            kc, vc, block_table, seq_lens, k_out_b, v_out_b, float(k_scale), float(v_scale),
            max_seq_len, kc.stride(0), block_table.stride(0), max_seq_len * row,
            BLOCK_SIZE=block_size, ROW=row, CHUNK=chunk, DEQUANT=fp8, num_warps=warps,
        )  # fmt: skip
    return k_out, v_out


def copy_blocks_triton(
    key_cache: torch.Tensor, value_cache: torch.Tensor, block_mapping: torch.Tensor
) -> None:
    """Copy block ``src -> dst`` for each row of ``block_mapping`` ``[n, 2]`` in both caches.

    No destination may also be a source (pairs run concurrently)."""
    _block_contiguous(key_cache, "key_cache")
    _block_contiguous(value_cache, "value_cache")
    if key_cache.stride(0) != value_cache.stride(0):
        raise ValueError("key_cache and value_cache must share their block stride")
    n = block_mapping.shape[0]
    if n == 0:
        return
    bits = _BITS[key_cache.element_size()]
    kc, vc = key_cache.view(bits), value_cache.view(bits)
    elems = key_cache[0].numel()
    warps = 4
    _copy_kernel[(n, 2)](
        kc, vc, block_mapping, kc.stride(0), block_mapping.stride(0),
        BLOCK_ELEMS=elems, CHUNK=_chunk(elems, kc.element_size(), warps), num_warps=warps,
    )  # fmt: skip
