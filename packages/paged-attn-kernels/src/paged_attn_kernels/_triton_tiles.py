# mypy: disable-error-code="no-untyped-def,untyped-decorator"
"""Device functions of the split decode kernel in :mod:`._triton_decode`.

Kept apart so that the kernel body reads as its four steps (load the query, attend over
the split's tokens, store, merge) and so that an experimental kernel (a benchmark variant)
reuses the tile loop instead of copying it.

- :func:`load_query`: the group's query rows in the dot's dtype.
- :func:`value_operand`: the V tile in the dot's dtype (fp8: optionally converted as loaded).
- :func:`attend_range`: the online-softmax loop of vLLM's ``paged_attention_v1.cu`` over one
  token range of one (sequence, KV head), written as the Triton fused-attention tutorial
  writes it (base-2 exponentials, fp32 accumulator, ``tl.dot`` on tiles). The ``G`` query
  heads of the group are the rows of the dot, so each K/V tile is read once per group.
- :func:`store_rows`: the epilogue, either the output rows or a partial (output, log-sum-exp)
  per split for a merge.
- :func:`merge_rows`: the log-sum-exp merge of up to ``SPLITS_PAD`` partials of one
  (sequence, KV head), used by the last split to finish.
"""

from __future__ import annotations

import os

import triton
import triton.language as tl

__all__ = ["attend_range", "load_query", "merge_rows", "store_rows", "value_operand"]

# The interpreter runs no PTX: there the fp8 value tile converts with ``.to`` (same values).
_PTX_E4M3: tl.constexpr = tl.constexpr(os.environ.get("TRITON_INTERPRET", "0") != "1")


@triton.jit
def _e4m3_to_f16(x):
    """e4m3 -> fp16 with the instruction Triton itself emits (``cvt.rn.f16x2.e4m3x2``, so
    the values are identical), but as inline assembly that the compiler cannot move."""
    return tl.inline_asm_elementwise(
        asm="{.reg .b16 lo, hi; mov.b32 {lo, hi}, $2; "
        "cvt.rn.f16x2.e4m3x2 $0, lo; cvt.rn.f16x2.e4m3x2 $1, hi;}",
        constraints="=r,=r,r",
        args=[x.to(tl.int8, bitcast=True)],
        dtype=tl.float16,
        is_pure=False,  # pure, but a pure op would be moved into the operand's load
        pack=4,
    )


@triton.jit
def value_operand(v, COMPUTE_DTYPE: tl.constexpr, EARLY_CVT_V: tl.constexpr):
    """The V tile as the second operand of ``P @ V``.

    An fp8 V converted with ``.to`` lets Triton fold the conversion into the operand's load:
    the dot reduces over tokens, which are not contiguous in the tile, and sm_90 has no
    transposing shared-memory load for bytes, so each thread reads its 128 bytes of a
    64-token tile with 128 ``ld.shared.b8``. ``EARLY_CVT_V`` converts the tile where it was
    loaded instead; the fp16 tile then goes back through shared memory and comes out with
    ``ldmatrix.trans`` (16 KB more shared memory per program). Decode kernel, fp8, 64-token
    tile, 2 warps, 5 stages, one split (``benchmarks/decode_ptx.py``, triton 3.6.0, sm_90a):
    2469 -> 1690 PTX instructions, 128 -> 0 byte loads, 233 -> 180 registers per thread.
    Off until it is timed on a GPU.
    """
    if EARLY_CVT_V and v.dtype == tl.float8e4nv and tl.float16 == COMPUTE_DTYPE and _PTX_E4M3:
        return _e4m3_to_f16(v)
    return v.to(COMPUTE_DTYPE)


@triton.jit
def load_query(
    q_row,  # pointer to query[seq, 0, 0]; rows of HEAD_DIM contiguous elements
    heads,  # [GROUP_PAD] query-head ids of this KV head's group
    mask_g,
    qk_scale,  # softmax scale * log2(e) (* k_scale)
    HEAD_DIM: tl.constexpr,
    HEAD_PAD: tl.constexpr,
    PRESCALE_Q: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
):
    """The group's query rows in the dot's dtype, and the factor the scores still need."""
    offs_d = tl.arange(0, HEAD_PAD)
    q = tl.load(
        q_row + heads[:, None] * HEAD_DIM + offs_d[None, :],
        mask=mask_g[:, None] & (offs_d < HEAD_DIM)[None, :],
        other=0.0,
    )
    scale2 = qk_scale
    if PRESCALE_Q:
        # fp8 caches: scores in fp16 (e4m3 -> fp16 is one cvt, exact); folding the softmax
        # scale into q first keeps even bf16 queries far inside fp16's range.
        q = tl.clamp(q.to(tl.float32) * scale2, -65504.0, 65504.0).to(COMPUTE_DTYPE)
        scale2 = 1.0
    else:
        q = q.to(COMPUTE_DTYPE)
    return q, scale2


@triton.jit
def attend_range(
    q,  # [GROUP_PAD, HEAD_PAD] in COMPUTE_DTYPE, already scaled when PRESCALE_Q
    scale2,  # multiplier of the scores (1.0 when folded into q)
    bt_row,  # pointer to block_table[seq, 0]
    k_head,  # [1, HEAD_PAD] pointers: k_cache[0, 0, kv_head, :]
    v_head,
    start,
    end,
    stride_kb,
    stride_vb,
    stride_slot,  # elements between two tokens of a block (num_kv_heads * head_dim)
    GROUP_PAD: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    HEAD_PAD: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    TILE_N: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
    EARLY_CVT_V: tl.constexpr,
):
    """Online softmax over tokens ``[start, end)``: returns ``(m, l, acc)`` (log2 domain)."""
    offs_n = tl.arange(0, TILE_N)
    mask_d = tl.arange(0, HEAD_PAD) < HEAD_DIM
    m_i = tl.full([GROUP_PAD], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([GROUP_PAD], dtype=tl.float32)
    acc = tl.zeros([GROUP_PAD, HEAD_PAD], dtype=tl.float32)
    for tok0 in range(start, end, TILE_N):
        tok = tok0 + offs_n
        valid = tok < end
        # The block-table row may be padding past the last owned block: never load it.
        block = tl.load(bt_row + tok // BLOCK_SIZE, mask=valid, other=0).to(tl.int64)
        row = (tok % BLOCK_SIZE)[:, None] * stride_slot
        if HEAD_DIM == HEAD_PAD:
            kv_mask = valid[:, None]
        else:
            kv_mask = valid[:, None] & mask_d[None, :]
        k = tl.load(k_head + block[:, None] * stride_kb + row, mask=kv_mask, other=0.0)
        v = tl.load(v_head + block[:, None] * stride_vb + row, mask=kv_mask, other=0.0)
        if tl.float32 == COMPUTE_DTYPE:  # fp32 caches keep fp32 products (no tf32)
            s = tl.dot(q, tl.trans(k.to(COMPUTE_DTYPE)), input_precision="ieee")
        else:
            s = tl.dot(q, tl.trans(k.to(COMPUTE_DTYPE)))
        s = tl.where(valid[None, :], s * scale2, float("-inf"))  # [GROUP_PAD, TILE_N]
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        if tl.float32 == COMPUTE_DTYPE:
            pv = tl.dot(p.to(COMPUTE_DTYPE), v.to(COMPUTE_DTYPE), input_precision="ieee")
        else:
            pv = tl.dot(p.to(COMPUTE_DTYPE), value_operand(v, COMPUTE_DTYPE, EARLY_CVT_V))
        acc = acc * alpha[:, None] + pv
        m_i = m_new
    return m_i, l_i, acc


@triton.jit
def store_rows(
    m_i,
    l_i,
    acc,
    vs,  # V scale (1.0 unless fp8)
    out,  # [GROUP_PAD, HEAD_PAD] pointers into the output
    out_mask,
    part_row,  # [GROUP_PAD] partial-row ids (seq * num_heads + head) * num_splits + split
    part_out_ptr,
    part_lse_ptr,
    mask_g,
    as_partial,
    HEAD_PAD: tl.constexpr,
):
    """Normalise and write the output rows, or write this split's partial for a merge."""
    # seq_len == 0 leaves l_i == 0: write zeros rather than 0/0.
    has = l_i > 0.0
    inv_l = tl.where(has, vs / tl.where(has, l_i, 1.0), 0.0)
    o = acc * inv_l[:, None]
    if as_partial:
        offs_d = tl.arange(0, HEAD_PAD)
        tl.store(
            part_out_ptr + part_row[:, None] * HEAD_PAD + offs_d[None, :], o, mask=mask_g[:, None]
        )
        tl.store(part_lse_ptr + part_row, m_i + tl.log2(l_i), mask=mask_g)
    else:
        tl.store(out, o.to(out.dtype.element_ty), mask=out_mask)


@triton.jit
def merge_rows(
    part_out_ptr,
    part_lse_ptr,
    first_row,  # partial row of (seq, first head of the group, split 0)
    num_splits,
    n_active,
    out,  # pointer to out[seq, first head, 0]; rows of HEAD_DIM contiguous elements
    GROUP: tl.constexpr,
    GROUP_P2: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    HEAD_PAD: tl.constexpr,
    SPLITS_PAD: tl.constexpr,
    MERGE_STEP: tl.constexpr,  # partials read per step, a power of two <= SPLITS_PAD
):
    """Log-sum-exp merge of the ``n_active <= SPLITS_PAD`` partials of one query group.

    Reads through L2 (``.cg``): other programs wrote the partials moments ago, and this SM's
    L1 may hold stale lines of the same addresses from an earlier launch. The partials'
    outputs are read ``MERGE_STEP`` splits at a time (``LaunchConfig.merge_step``): all 32
    at once hold a [4, 32, 128] fp32 tile in registers, and the whole kernel is allocated
    for it (bf16: 126 registers per thread without a merge, 166 with it, 128 reading 8 per
    step; ``benchmarks/decode_ptx.py``, triton 3.6.0).
    """
    offs_g = tl.arange(0, GROUP_P2)
    offs_s = tl.arange(0, SPLITS_PAD)
    offs_d = tl.arange(0, HEAD_PAD)
    group_rows = first_row + offs_g * num_splits
    live_g = offs_g < GROUP
    rows = group_rows[:, None] + offs_s[None, :]  # [G, S]
    live = live_g[:, None] & (offs_s < n_active)[None, :]
    lse = tl.load(part_lse_ptr + rows, mask=live, other=float("-inf"), cache_modifier=".cg")
    top = tl.max(lse, axis=1)
    top = tl.where(top == float("-inf"), 0.0, top)
    w = tl.exp2(lse - top[:, None])  # [G, S]; dead splits weigh 0
    total = tl.sum(w, axis=1)
    if MERGE_STEP == SPLITS_PAD:
        part = tl.load(
            part_out_ptr + rows[:, :, None] * HEAD_PAD + offs_d[None, None, :],
            mask=live[:, :, None],
            other=0.0,
            cache_modifier=".cg",
        )  # [G, S, HEAD_PAD]
        res = tl.sum(w[:, :, None] * part, axis=1)
    else:
        offs_c = tl.arange(0, MERGE_STEP)
        res = tl.zeros([GROUP_P2, HEAD_PAD], dtype=tl.float32)
        for c in tl.static_range(0, SPLITS_PAD, MERGE_STEP):
            rows_c = group_rows[:, None] + (c + offs_c)[None, :]  # [G, MERGE_STEP]
            live_c = live_g[:, None] & ((c + offs_c) < n_active)[None, :]
            lse_c = tl.load(
                part_lse_ptr + rows_c, mask=live_c, other=float("-inf"), cache_modifier=".cg"
            )
            part = tl.load(
                part_out_ptr + rows_c[:, :, None] * HEAD_PAD + offs_d[None, None, :],
                mask=live_c[:, :, None],
                other=0.0,
                cache_modifier=".cg",
            )
            res += tl.sum(tl.exp2(lse_c - top[:, None])[:, :, None] * part, axis=1)
    res = tl.where(total[:, None] > 0.0, res / tl.where(total > 0.0, total, 1.0)[:, None], 0.0)
    dst = out + offs_g[:, None] * HEAD_DIM + offs_d[None, :]
    mask = live_g[:, None] & (offs_d < HEAD_DIM)[None, :]
    tl.store(dst, res.to(out.dtype.element_ty), mask=mask)
