# mypy: disable-error-code="no-untyped-def,untyped-decorator"
# (Triton kernels: only tl.constexpr parameters carry annotations; triton_run.py launches them.)
"""Triton variable-length paged attention: FlashAttention-2 tiles through the block table.

One program per (work item, KV head), KV head fastest; a work item is ``BLOCK_Q``
consecutive query tokens of one sequence (``plan.py`` lists them, longest first). The
program's ``BLOCK_M = BLOCK_Q x GROUP`` rows are the item's tokens times the query heads
that share the KV head (row ``r`` is token ``r // GROUP``, head ``r % GROUP``: vLLM's
``triton_unified_attention.py`` packing), so each K/V tile is loaded once for the whole
group and both products are ``tl.dot`` on tensor cores: ``S = Q K^T`` ``[BLOCK_M, TILE_N]``,
``acc += P V`` ``[BLOCK_M, HEAD_PAD]``, with the online softmax of FlashAttention-2 (Dao
2023, algorithm 1; base-2 exponentials as in the Triton fused-attention tutorial). Each
token of a K/V tile finds its block through ``block_table[seq, tok // BLOCK_SIZE]``.

The key loop visits only ``[lo, hi)``: from the first token's window start (0 without a
window) to the last token's own position. It runs in three phases so that only edge tiles
pay for masks: tiles at the window's left edge (masked), tiles every row sees (no mask, no
bounds check), tiles on the causal diagonal (masked). A sliding-window decode therefore
reads the window's blocks and no other.

Score modifiers (``options.py``) are constexpr switches, as in vLLM's kernel: soft-cap
(``tanh`` written with one ``exp2`` so the interpreter runs it too), ALiBi
(``slope * (k - p)``), attention sinks (the running max starts at the sink, the running sum
at 1). fp8 caches are dequantised per tile: ``k_scale`` folds into the softmax scale and
``v_scale`` into the final division; with a 16-bit query their dots run in fp16 with the
scale folded into the query (the decode kernel's choice).
"""

from __future__ import annotations

import triton
import triton.language as tl

__all__: list[str] = []  # the kernels are launched by triton_run.py


@triton.jit
def _tanh(x):
    # tanh(x) = 1 - 2 / (e^{2x} + 1): finite for every x (e^{2x} = inf gives 1)
    return 1.0 - 2.0 / (tl.exp2(x * (2.0 * 1.4426950408889634)) + 1.0)


@triton.jit
def _tiles(
    q, m_i, l_i, acc, start, stop, hi, pos, slope, bt_row, k_head, v_head,
    qk_scale, soft_cap, window,
    stride_kb, stride_ks, stride_vb, stride_vs,
    MASK: tl.constexpr, BLOCK_SIZE: tl.constexpr, TILE_N: tl.constexpr,
    HEAD_DIM: tl.constexpr, HEAD_PAD: tl.constexpr, COMPUTE_DTYPE: tl.constexpr,
    IEEE_DOT: tl.constexpr, USE_WINDOW: tl.constexpr, USE_SOFTCAP: tl.constexpr,
    USE_ALIBI: tl.constexpr, PRESCALE_Q: tl.constexpr,
):  # fmt: skip
    """Online softmax over key tiles starting at ``start`` up to ``stop`` (log2 domain)."""
    offs_n = tl.arange(0, TILE_N)
    mask_d = tl.arange(0, HEAD_PAD) < HEAD_DIM
    for tok0 in range(start, stop, TILE_N):
        tok = tok0 + offs_n
        row = (tok % BLOCK_SIZE)[:, None]
        if MASK:
            valid = tok < hi
            block = tl.load(bt_row + tok // BLOCK_SIZE, mask=valid, other=0).to(tl.int64)
            kv_mask = valid[:, None] & mask_d[None, :]
            k = tl.load(
                k_head + block[:, None] * stride_kb + row * stride_ks, mask=kv_mask, other=0.0
            )
            v = tl.load(
                v_head + block[:, None] * stride_vb + row * stride_vs, mask=kv_mask, other=0.0
            )
        else:  # every token of the tile is owned and seen: no bounds check
            block = tl.load(bt_row + tok // BLOCK_SIZE).to(tl.int64)
            if HEAD_DIM == HEAD_PAD:
                k = tl.load(k_head + block[:, None] * stride_kb + row * stride_ks)
                v = tl.load(v_head + block[:, None] * stride_vb + row * stride_vs)
            else:
                k = tl.load(
                    k_head + block[:, None] * stride_kb + row * stride_ks,
                    mask=mask_d[None, :],
                    other=0.0,
                )
                v = tl.load(
                    v_head + block[:, None] * stride_vb + row * stride_vs,
                    mask=mask_d[None, :],
                    other=0.0,
                )
        if IEEE_DOT:
            s = tl.dot(q, tl.trans(k.to(COMPUTE_DTYPE)), input_precision="ieee")
        else:
            s = tl.dot(q, tl.trans(k.to(COMPUTE_DTYPE)))
        if not PRESCALE_Q:
            s = s * qk_scale  # natural units when a modifier follows, else already log2
        if USE_SOFTCAP:
            s = soft_cap * _tanh(s / soft_cap)
        if USE_ALIBI:
            s += slope[:, None] * (tok[None, :] - pos[:, None]).to(tl.float32)
        if USE_SOFTCAP or USE_ALIBI:
            s = s * 1.4426950408889634
        if MASK:
            seen = valid[None, :] & (tok[None, :] <= pos[:, None])
            if USE_WINDOW:
                seen = seen & (pos[:, None] - tok[None, :] < window)
            s = tl.where(seen, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # a row with nothing seen yet
        alpha = tl.exp2(m_i - m_safe)
        p = tl.exp2(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        # rescale, then let the dot accumulate into acc (no [BLOCK_M, HEAD_PAD] temporary)
        acc = acc * alpha[:, None]
        if IEEE_DOT:
            acc = tl.dot(p.to(COMPUTE_DTYPE), v.to(COMPUTE_DTYPE), acc, input_precision="ieee")
        else:
            acc = tl.dot(p.to(COMPUTE_DTYPE), v.to(COMPUTE_DTYPE), acc)
        m_i = m_new
    return m_i, l_i, acc


@triton.jit
def _unified_kernel(
    q_ptr,  # [num_tokens, num_heads, head_dim]
    k_cache_ptr,  # [num_blocks, block_size, num_kv_heads, head_dim]
    v_cache_ptr,
    block_table_ptr,  # [num_seqs, max_blocks] int32
    seq_lens_ptr,  # [num_seqs] int32
    qsl_ptr,  # [num_seqs + 1] int32
    work_ptr,  # [num_items, 2] int32 (sequence, first query token); SPLIT: [num_items, 4]
    out_ptr,  # [num_tokens, num_heads, head_dim]
    part_o_ptr,  # SPLIT: [num_items, num_kv_heads, BLOCK_M, HEAD_PAD] fp32 partial outputs
    part_lse_ptr,  # SPLIT: [num_items, num_kv_heads, BLOCK_M] fp32 log2-sum-exp
    sinks_ptr,  # [num_heads] float32
    alibi_ptr,  # [num_heads] float32
    num_kv_heads, qk_scale, v_scale, soft_cap, window,
    stride_qt, stride_qh, stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh,
    stride_bts, stride_ot, stride_oh,
    GROUP: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_Q: tl.constexpr,
    HEAD_DIM: tl.constexpr, HEAD_PAD: tl.constexpr, BLOCK_SIZE: tl.constexpr,
    TILE_N: tl.constexpr, COMPUTE_DTYPE: tl.constexpr, IEEE_DOT: tl.constexpr,
    USE_WINDOW: tl.constexpr, USE_SOFTCAP: tl.constexpr, USE_SINKS: tl.constexpr,
    USE_ALIBI: tl.constexpr, SPLIT: tl.constexpr, PRESCALE_Q: tl.constexpr,
):  # fmt: skip
    # KV head fastest: programs start in the plan's longest-first order across all heads
    item = tl.program_id(0) // num_kv_heads
    kv_head = tl.program_id(0) % num_kv_heads
    width = 4 if SPLIT else 2
    seq = tl.load(work_ptr + item * width)
    q0 = tl.load(work_ptr + item * width + 1)
    q_start = tl.load(qsl_ptr + seq)
    q_len = tl.load(qsl_ptr + seq + 1) - q_start
    seq_len = tl.load(seq_lens_ptr + seq)
    ctx = seq_len - q_len

    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_PAD)
    r_q = offs_m // GROUP
    heads = kv_head * GROUP + offs_m % GROUP
    row_ok = (r_q < BLOCK_Q) & (q0 + r_q < q_len)
    pos = ctx + q0 + r_q  # [BLOCK_M] absolute position of each row's token
    tok_row = (q_start + q0 + r_q).to(tl.int64)
    io_mask = row_ok[:, None] & (offs_d < HEAD_DIM)[None, :]
    q = tl.load(
        q_ptr + tok_row[:, None] * stride_qt + heads[:, None] * stride_qh + offs_d[None, :],
        mask=io_mask,
        other=0.0,
    )
    if PRESCALE_Q:
        # fp8 caches: fp16 dots (e4m3 -> fp16 is exact); the score scale is folded into q
        # first, which also keeps a bf16 query inside fp16's range
        q = tl.clamp(q.to(tl.float32) * qk_scale, -65504.0, 65504.0)
    q = q.to(COMPUTE_DTYPE)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    if USE_SINKS:  # the sink is one more logit with no value row, in one denominator only
        sink = tl.load(sinks_ptr + heads, mask=row_ok, other=0.0).to(tl.float32)
        if SPLIT:
            first_split = tl.load(work_ptr + item * 4 + 2) == 0
            m_i = tl.where(first_split, sink * 1.4426950408889634, m_i)
            l_i = tl.where(first_split, 1.0, l_i)
        else:
            m_i = sink * 1.4426950408889634
            l_i = tl.full([BLOCK_M], 1.0, dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_PAD], dtype=tl.float32)
    if USE_ALIBI:
        slope = tl.load(alibi_ptr + heads, mask=row_ok, other=0.0).to(tl.float32)
    else:
        slope = tl.zeros([BLOCK_M], dtype=tl.float32)

    rows = tl.minimum(BLOCK_Q, q_len - q0)
    p_first = ctx + q0
    p_last = p_first + rows - 1
    hi = p_last + 1
    lo = 0
    full_lo = 0
    if USE_WINDOW:
        lo = tl.maximum(p_first - window + 1, 0)
        full_lo = tl.maximum(p_last - window + 1, 0)  # every row's window starts by here
    full_hi = p_first + 1  # every row sees the keys before this (causal)
    if SPLIT:  # this program's share of [lo, hi): tile-aligned, worked out here from the
        # run's window, so one plan balances window and global layers alike
        split = tl.load(work_ptr + item * 4 + 2)
        num_splits = tl.load(work_ptr + item * 4 + 3)
        per = tl.cdiv(tl.cdiv(hi - lo, num_splits), TILE_N) * TILE_N
        lo = lo + split * per
        hi = tl.minimum(hi, lo + per)
    # phase 1: the window's ragged left edge; phase 2: keys every row sees; phase 3: diagonal
    span = tl.maximum(hi - lo, 0)
    n_edge = tl.minimum(tl.cdiv(tl.maximum(full_lo - lo, 0), TILE_N), tl.cdiv(span, TILE_N))
    mid = lo + n_edge * TILE_N
    n_full = tl.maximum(tl.minimum(full_hi, hi) - mid, 0) // TILE_N
    tail = mid + n_full * TILE_N

    bt_row = block_table_ptr + seq.to(tl.int64) * stride_bts
    k_head = k_cache_ptr + kv_head * stride_kh + offs_d[None, :]
    v_head = v_cache_ptr + kv_head * stride_vh + offs_d[None, :]
    m_i, l_i, acc = _tiles(
        q, m_i, l_i, acc, lo, mid, hi, pos, slope, bt_row, k_head, v_head,
        qk_scale, soft_cap, window, stride_kb, stride_ks, stride_vb, stride_vs,
        True, BLOCK_SIZE, TILE_N, HEAD_DIM, HEAD_PAD, COMPUTE_DTYPE, IEEE_DOT,
        USE_WINDOW, USE_SOFTCAP, USE_ALIBI, PRESCALE_Q,
    )  # fmt: skip
    m_i, l_i, acc = _tiles(
        q, m_i, l_i, acc, mid, tail, hi, pos, slope, bt_row, k_head, v_head,
        qk_scale, soft_cap, window, stride_kb, stride_ks, stride_vb, stride_vs,
        False, BLOCK_SIZE, TILE_N, HEAD_DIM, HEAD_PAD, COMPUTE_DTYPE, IEEE_DOT,
        USE_WINDOW, USE_SOFTCAP, USE_ALIBI, PRESCALE_Q,
    )  # fmt: skip
    m_i, l_i, acc = _tiles(
        q, m_i, l_i, acc, tail, hi, hi, pos, slope, bt_row, k_head, v_head,
        qk_scale, soft_cap, window, stride_kb, stride_ks, stride_vb, stride_vs,
        True, BLOCK_SIZE, TILE_N, HEAD_DIM, HEAD_PAD, COMPUTE_DTYPE, IEEE_DOT,
        USE_WINDOW, USE_SOFTCAP, USE_ALIBI, PRESCALE_Q,
    )  # fmt: skip

    inv = tl.where(l_i > 0.0, v_scale / tl.where(l_i > 0.0, l_i, 1.0), 0.0)
    o = acc * inv[:, None]
    if SPLIT:  # a partial for _merge_kernel: normalised output and its log2-sum-exp
        part = (item * num_kv_heads + kv_head) * BLOCK_M + offs_m
        lse = tl.where(l_i > 0.0, m_i + tl.log2(tl.where(l_i > 0.0, l_i, 1.0)), float("-inf"))
        tl.store(part_lse_ptr + part, lse)
        tl.store(part_o_ptr + part[:, None] * HEAD_PAD + offs_d[None, :], o)
    else:
        dst = out_ptr + tok_row[:, None] * stride_ot + heads[:, None] * stride_oh + offs_d[None, :]
        tl.store(dst, o.to(out_ptr.dtype.element_ty), mask=io_mask)


@triton.jit
def _merge_kernel(
    part_o_ptr, part_lse_ptr, merge_ptr, work_ptr, qsl_ptr, out_ptr, num_kv_heads,
    stride_ot, stride_oh,
    GROUP: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_Q: tl.constexpr,
    HEAD_DIM: tl.constexpr, HEAD_PAD: tl.constexpr,
):  # fmt: skip
    """Log-sum-exp merge of the splits of one (work item, KV head): ``paged_attention_v2``'s
    reduce kernel, over ``BLOCK_M`` rows at once."""
    group_id = tl.program_id(0) // num_kv_heads
    kv_head = tl.program_id(0) % num_kv_heads
    first = tl.load(merge_ptr + group_id * 2)  # the group's splits are items first, first + 1..
    num_splits = tl.load(merge_ptr + group_id * 2 + 1)
    seq = tl.load(work_ptr + first * 4)
    q0 = tl.load(work_ptr + first * 4 + 1)
    q_start = tl.load(qsl_ptr + seq)
    q_len = tl.load(qsl_ptr + seq + 1) - q_start
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_PAD)
    r_q = offs_m // GROUP
    row_ok = (r_q < BLOCK_Q) & (q0 + r_q < q_len)
    top = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    for sp in range(0, num_splits):
        part = ((first + sp) * num_kv_heads + kv_head) * BLOCK_M + offs_m
        top = tl.maximum(top, tl.load(part_lse_ptr + part))
    top = tl.where(top == float("-inf"), 0.0, top)
    total = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_PAD], dtype=tl.float32)
    for sp in range(0, num_splits):
        part = ((first + sp) * num_kv_heads + kv_head) * BLOCK_M + offs_m
        w = tl.exp2(tl.load(part_lse_ptr + part) - top)  # an empty split weighs 0
        acc += w[:, None] * tl.load(part_o_ptr + part[:, None] * HEAD_PAD + offs_d[None, :])
        total += w
    res = acc / tl.where(total > 0.0, total, 1.0)[:, None]
    tok_row = (q_start + q0 + r_q).to(tl.int64)
    heads = kv_head * GROUP + offs_m % GROUP
    dst = out_ptr + tok_row[:, None] * stride_ot + heads[:, None] * stride_oh + offs_d[None, :]
    tl.store(
        dst, res.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & (offs_d < HEAD_DIM)[None, :]
    )
