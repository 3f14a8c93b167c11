# mypy: disable-error-code="no-untyped-def,untyped-decorator"
# (Triton kernels: only tl.constexpr parameters carry annotations.)
"""Token-balanced ("stream") paged decode: equal shares of the batch's tokens per program.

The grid kernel of :mod:`._triton_decode` gives every (sequence, KV head, split) a program,
so a ragged batch (one 32k sequence among short ones, a Zipf mix) leaves most programs
empty and the rest unequal. Here the sequences of a KV head are laid end to end in one
token stream (``ends = cumsum(seq_lens)``, computed on the device by every program from
``seq_lens``) and program ``p`` of ``P`` takes tokens ``[p * per, (p + 1) * per)`` with
``per = ceil(total / P)``, whatever sequences they belong to: every program does the same
work and ``P`` is fixed from shapes and the SM count, so the launch still needs no host
synchronisation and can be captured in a CUDA graph. The idea is that of FlashInfer's
load-balanced split-KV scheduling, which plans the split on the host instead.

Opt-in (``_triton_decode._LAUNCH_OVERRIDES["stream"] = programs per SM``): on the H100 it ran
0-10% slower than the grid kernel at every shape measured, ragged batches included
(docs/GPU_NOTES.md section 10), so :func:`plan_splits` never picks it by default.

A program walks the sequences its range touches (a "segment" each). A segment that is a
whole sequence writes the output; otherwise it writes a partial (output, log-sum-exp) at
row ``p + seq``, which is unique because segment boundaries are the merge of program and
sequence boundaries. The reduce kernel recomputes the same boundaries and merges the
partials of programs ``start // per .. (end - 1) // per``. The tile loop is the grid
kernel's (online softmax in base 2, fp32 accumulator, the query group as ``tl.dot`` rows).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _paged_decode_stream_kernel(
    q_ptr,  # [num_seqs, num_heads, head_dim]
    k_cache_ptr,  # [num_blocks, block_size, num_kv_heads, head_dim]
    v_cache_ptr,  # [num_blocks, block_size, num_kv_heads, head_dim]
    block_table_ptr,  # [num_seqs, max_blocks] int32
    seq_lens_ptr,  # [num_seqs] int32
    out_ptr,  # [num_seqs, num_heads, head_dim]
    part_out_ptr,  # [num_programs + num_seqs, num_heads, HEAD_PAD] fp32
    part_lse_ptr,  # [num_programs + num_seqs, num_heads] fp32, log2 domain
    k_scale_ptr,
    v_scale_ptr,
    qk_scale,
    v_scale_val,
    num_seqs,
    stride_qs,
    stride_qh,
    stride_qd,
    stride_kb,
    stride_ks,
    stride_kh,
    stride_kd,
    stride_vb,
    stride_vs,
    stride_vh,
    stride_vd,
    stride_bts,
    stride_os,
    stride_oh,
    stride_od,
    HEAD_DIM: tl.constexpr,
    HEAD_PAD: tl.constexpr,
    GROUP: tl.constexpr,
    GROUP_PAD: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    TILE_N: tl.constexpr,
    SEQS_PAD: tl.constexpr,
    SCALE_FROM_PTR: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
    IEEE_DOT: tl.constexpr,
    PRESCALE_Q: tl.constexpr,
):
    prog = tl.program_id(0)
    kv_head = tl.program_id(1)
    num_progs = tl.num_programs(0)
    num_heads = GROUP * tl.num_programs(1)

    offs_s = tl.arange(0, SEQS_PAD)
    lens = tl.load(seq_lens_ptr + offs_s, mask=offs_s < num_seqs, other=0)
    ends = tl.cumsum(lens, axis=0)  # inclusive: sequence i is [ends[i] - lens[i], ends[i])
    total = tl.sum(lens, axis=0)
    per = tl.cdiv(total, num_progs)
    lo = prog * per
    hi = tl.minimum(lo + per, total)
    if lo >= hi:
        return
    seq = tl.sum((ends <= lo).to(tl.int32), axis=0)  # first sequence ending after lo
    seq_start = tl.sum(tl.where(offs_s < seq, lens, 0), axis=0)

    offs_g = tl.arange(0, GROUP_PAD)
    offs_d = tl.arange(0, HEAD_PAD)
    offs_n = tl.arange(0, TILE_N)
    mask_g = offs_g < GROUP
    mask_d = offs_d < HEAD_DIM
    heads = kv_head * GROUP + offs_g
    out_mask = mask_g[:, None] & mask_d[None, :]
    k_head = k_cache_ptr + kv_head * stride_kh + offs_d[None, :] * stride_kd
    v_head = v_cache_ptr + kv_head * stride_vh + offs_d[None, :] * stride_vd
    scale2 = qk_scale
    if SCALE_FROM_PTR:
        scale2 = scale2 * tl.load(k_scale_ptr)
        vs = tl.load(v_scale_ptr)
    else:
        vs = v_scale_val

    while seq_start < hi:
        seq_len = tl.load(seq_lens_ptr + seq)
        start = tl.maximum(lo - seq_start, 0)
        end = tl.minimum(hi - seq_start, seq_len)
        if end > start:  # empty sequences own no tokens; the reduce kernel zeroes them
            q = tl.load(
                q_ptr + seq * stride_qs + heads[:, None] * stride_qh + offs_d[None, :] * stride_qd,
                mask=out_mask,
                other=0.0,
            )  # [GROUP_PAD, HEAD_PAD]
            s_scale = scale2
            if PRESCALE_Q:  # fp8 caches: fp16 scores, see the grid kernel
                q = tl.clamp(q.to(tl.float32) * scale2, -65504.0, 65504.0).to(COMPUTE_DTYPE)
                s_scale = 1.0
            else:
                q = q.to(COMPUTE_DTYPE)
            m_i = tl.full([GROUP_PAD], float("-inf"), dtype=tl.float32)
            l_i = tl.zeros([GROUP_PAD], dtype=tl.float32)
            acc = tl.zeros([GROUP_PAD, HEAD_PAD], dtype=tl.float32)
            bt_row = block_table_ptr + seq.to(tl.int64) * stride_bts
            for tok0 in range(start, end, TILE_N):
                tok = tok0 + offs_n
                valid = tok < end
                block = tl.load(bt_row + tok // BLOCK_SIZE, mask=valid, other=0).to(tl.int64)
                row = (tok % BLOCK_SIZE)[:, None]
                if HEAD_DIM == HEAD_PAD:
                    kv_mask = valid[:, None]
                else:
                    kv_mask = valid[:, None] & mask_d[None, :]
                k = tl.load(
                    k_head + block[:, None] * stride_kb + row * stride_ks, mask=kv_mask, other=0.0
                )
                v = tl.load(
                    v_head + block[:, None] * stride_vb + row * stride_vs, mask=kv_mask, other=0.0
                )
                if IEEE_DOT:
                    s = tl.dot(q, tl.trans(k.to(COMPUTE_DTYPE)), input_precision="ieee")
                else:
                    s = tl.dot(q, tl.trans(k.to(COMPUTE_DTYPE)))
                s = tl.where(valid[None, :], s * s_scale, float("-inf"))
                m_new = tl.maximum(m_i, tl.max(s, axis=1))
                alpha = tl.exp2(m_i - m_new)
                p = tl.exp2(s - m_new[:, None])
                l_i = l_i * alpha + tl.sum(p, axis=1)
                if IEEE_DOT:
                    pv = tl.dot(p.to(COMPUTE_DTYPE), v.to(COMPUTE_DTYPE), input_precision="ieee")
                else:
                    pv = tl.dot(p.to(COMPUTE_DTYPE), v.to(COMPUTE_DTYPE))
                acc = acc * alpha[:, None] + pv
                m_i = m_new
            if start == 0 and end == seq_len:  # the whole sequence: final output
                o = acc * (vs / l_i)[:, None]
                out = (
                    out_ptr
                    + seq * stride_os
                    + heads[:, None] * stride_oh
                    + offs_d[None, :] * stride_od
                )
                tl.store(out, o.to(out_ptr.dtype.element_ty), mask=out_mask)
            else:
                row_id = (prog + seq) * num_heads + heads
                tl.store(
                    part_out_ptr + row_id[:, None] * HEAD_PAD + offs_d[None, :],
                    acc * (vs / l_i)[:, None],
                    mask=mask_g[:, None],
                )
                tl.store(part_lse_ptr + row_id, m_i + tl.log2(l_i), mask=mask_g)
        seq_start += seq_len
        seq += 1


@triton.jit
def _paged_decode_stream_reduce_kernel(
    part_out_ptr,  # [num_programs + num_seqs, num_heads, HEAD_PAD] fp32
    part_lse_ptr,  # [num_programs + num_seqs, num_heads] fp32, log2 domain
    seq_lens_ptr,
    out_ptr,  # [num_seqs, num_heads, head_dim]
    num_seqs,
    num_progs,
    stride_os,
    stride_oh,
    stride_od,
    HEAD_DIM: tl.constexpr,
    HEAD_PAD: tl.constexpr,
    SEQS_PAD: tl.constexpr,
    SPLIT_TILE: tl.constexpr,
):
    seq = tl.program_id(0)
    head = tl.program_id(1)
    num_heads = tl.num_programs(1)
    offs_s = tl.arange(0, SEQS_PAD)
    lens = tl.load(seq_lens_ptr + offs_s, mask=offs_s < num_seqs, other=0)
    total = tl.sum(lens, axis=0)
    per = tl.cdiv(total, num_progs)
    seq_len = tl.load(seq_lens_ptr + seq)
    seq_start = tl.sum(tl.where(offs_s < seq, lens, 0), axis=0)
    offs_d = tl.arange(0, HEAD_PAD)
    out = out_ptr + seq * stride_os + head * stride_oh + offs_d * stride_od
    if seq_len == 0:
        tl.store(out, tl.zeros([HEAD_PAD], dtype=out_ptr.dtype.element_ty), mask=offs_d < HEAD_DIM)
        return
    first = seq_start // per
    last = (seq_start + seq_len - 1) // per
    if first == last:
        return  # one program held the whole sequence and wrote it
    n = last - first + 1
    base = first + seq  # partial row of program `first` for this sequence
    offs_t = tl.arange(0, SPLIT_TILE)
    lse_max = tl.full([SPLIT_TILE], float("-inf"), dtype=tl.float32)
    for t0 in range(0, n, SPLIT_TILE):
        sp = t0 + offs_t
        lse = tl.load(
            part_lse_ptr + (base + sp) * num_heads + head, mask=sp < n, other=float("-inf")
        )
        lse_max = tl.maximum(lse_max, lse)
    mx = tl.max(lse_max, axis=0)
    acc = tl.zeros([HEAD_PAD], dtype=tl.float32)
    wsum = tl.zeros([SPLIT_TILE], dtype=tl.float32)
    for t0 in range(0, n, SPLIT_TILE):
        sp = t0 + offs_t
        live = sp < n
        rows = (base + sp) * num_heads + head
        w = tl.exp2(tl.load(part_lse_ptr + rows, mask=live, other=float("-inf")) - mx)
        o = tl.load(part_out_ptr + rows[:, None] * HEAD_PAD + offs_d[None, :], mask=live[:, None])
        acc += tl.sum(w[:, None] * tl.where(live[:, None], o, 0.0), axis=0)
        wsum += w
    res = acc / tl.sum(wsum, axis=0)
    tl.store(out, res.to(out_ptr.dtype.element_ty), mask=offs_d < HEAD_DIM)
