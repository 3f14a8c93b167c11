"""numba backend: parallel CPU kernels for the paged data path.

``prange`` runs over (sequence, context split) pairs. Each work item walks its part of the
sequence's ``block_table`` row block by block: it scores every token of the block against
all query heads of every KV head, so each K/V row is read once for its whole query group (the
GQA grouping of vLLM's ``triton_unified_attention.py``, not the one-CTA-per-query-head grid
of ``paged_attention_v1.cu``), rescales its running softmax once per block, and prefetches
the next block of the row. Splits are merged with log-sum-exp weights, as the reduce kernel
of ``paged_attention_v2.cu`` does. bfloat16, float16 and fp8 caches are widened a block at a
time into float32 tiles (integer shifts and one multiply). ``_decode_per_token`` is the
straightforward loop kept as the benchmark baseline: one token at a time, rescaling the
accumulator at every token.

The block step is written so that LLVM vectorises every loop (8 float32 lanes, AVX2 FMA):
scores four query heads x two tokens per pass over ``head_dim``; the block's scores laid out
``[block_size, kv_heads * group]`` so that max, exp and sums run across query heads; a
polynomial ``exp`` instead of libm's scalar call; V rows folded in four tokens at a time.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit, parallel_chunksize, prange

from paged_attn_kernels import _dtypes as dt
from paged_attn_kernels._intrinsics import prefetch as _prefetch
from paged_attn_kernels._intrinsics import stream_copy as _stream_copy

# Reassociation lets LLVM vectorise the dot products. No nnan/ninf: the running max starts
# at -inf and exp(-inf) = 0 must stay exact.
_FASTMATH = {"reassoc", "contract", "arcp", "nsz"}


@njit(cache=True)
def _prefetch_row(cache, blk, t):
    # token t of block blk, all KV heads; 64-byte lines
    start = blk * cache.strides[0] + t * cache.strides[1]
    for offset in range(start, start + cache.strides[1], 64):
        _prefetch(cache, offset)


@njit(cache=True)
def _prefetch_head(cache, blk, t, h):
    # token t, KV head h of block blk
    start = blk * cache.strides[0] + t * cache.strides[1] + h * cache.strides[2]
    for offset in range(start, start + cache.strides[2], 64):
        _prefetch(cache, offset)


@njit(cache=True, fastmath=_FASTMATH)
def _scores(q, i, k, blk, t, two, s):
    # s[t + u, h * group + g] = q[i, h, g] . k[blk, t + u, h] for u < 1 + two.
    # Four query heads and two tokens per pass: each K row is loaded once for the group and
    # each q row once per token pair, 8 independent vector accumulators (6 loads per 8 FMAs
    # instead of 2 per FMA for one dot at a time).
    num_kv_heads, group, head_dim = q.shape[1], q.shape[2], q.shape[3]
    zero = q.dtype.type(0)
    u = t + 1 if two else t  # one token: the second half recomputes it, harmlessly
    for h in range(num_kv_heads):
        r = h * group
        g = 0
        while g + 4 <= group:
            a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = zero
            for d in range(head_dim):
                ka, kb = k[blk, t, h, d], k[blk, u, h, d]
                q0, q1 = q[i, h, g, d], q[i, h, g + 1, d]
                q2, q3 = q[i, h, g + 2, d], q[i, h, g + 3, d]
                a0 += q0 * ka
                a1 += q1 * ka
                a2 += q2 * ka
                a3 += q3 * ka
                b0 += q0 * kb
                b1 += q1 * kb
                b2 += q2 * kb
                b3 += q3 * kb
            s[u, r + g], s[u, r + g + 1], s[u, r + g + 2], s[u, r + g + 3] = b0, b1, b2, b3
            s[t, r + g], s[t, r + g + 1], s[t, r + g + 2], s[t, r + g + 3] = a0, a1, a2, a3
            g += 4
        for e in range(g, group):  # group not a multiple of 4
            a0 = b0 = zero
            for d in range(head_dim):
                a0 += q[i, h, e, d] * k[blk, t, h, d]
                b0 += q[i, h, e, d] * k[blk, u, h, d]
            s[u, r + e] = b0
            s[t, r + e] = a0


@njit(cache=True, fastmath=_FASTMATH)
def _exp(x, bits, poly):
    # x <- exp(x) for x <= 0, in place. poly (float32): Cephes' expf polynomial (within
    # 2 ulp) with the 2^k factor built in an int32 scratch, so the loops vectorise; numba's
    # np.exp is a scalar libm call per element. x below -87 (-inf included) gives e^-87,
    # about 1.6e-38, not 0: only the first block's alpha is that, and it scales a zero sum.
    if not poly:
        for j in range(x.shape[0]):
            x[j] = np.exp(x[j])
        return
    two_k = bits.view(np.float32)
    for j in range(x.shape[0]):
        v = max(x[j], np.float32(-87.0))
        k = np.floor(v * np.float32(1.44269504) + np.float32(0.5))
        r = v - k * np.float32(0.693359375) + k * np.float32(2.12194440e-4)
        y = np.float32(1.9875691500e-4) * r + np.float32(1.3981999507e-3)
        y = y * r + np.float32(8.3334519073e-3)
        y = y * r + np.float32(4.1665795894e-2)
        y = y * r + np.float32(1.6666665459e-1)
        y = y * r + np.float32(5.0000001201e-1)
        x[j] = y * r * r + r + np.float32(1)
        bits[j] = (np.int32(k) + np.int32(127)) << 23
    for j in range(x.shape[0]):
        x[j] *= two_k[j]


@njit(cache=True, fastmath=_FASTMATH)
def _softmax_block(s, n, bits, poly, m, l_sum, alpha):
    # Scores s[:n] [n, rows] -> probabilities, with rows = kv_heads * group laid out last so
    # every step is a vector loop over the 32 (say) query heads, not over 16 tokens. Updates
    # the running max m and sum l_sum [rows]; alpha [rows] is the factor the accumulators of
    # earlier blocks must be rescaled by (one rescale per block, not per token).
    rows = s.shape[1]
    for r in range(rows):
        alpha[r] = m[r]
    for t in range(n):
        for r in range(rows):
            m[r] = max(m[r], s[t, r])
    for r in range(rows):
        alpha[r] -= m[r]
    for t in range(n):
        for r in range(rows):
            s[t, r] -= m[r]
    p = s[:n].reshape(n * rows)
    _exp(p, bits, poly)
    _exp(alpha, bits, poly)
    for r in range(rows):
        l_sum[r] *= alpha[r]
    for t in range(n):
        for r in range(rows):
            l_sum[r] += s[t, r]


@njit(cache=True, fastmath=_FASTMATH)
def _attend_block(
    q, i, key_cache, value_cache, blk, n, next_blk, spread, s, bits, poly, m, l_sum, alpha, acc
):
    # Folds tokens [0, n) of block blk, all KV heads at once, into the running softmax of
    # sequence i. The block [block_size, kv_heads, d] is read front to back, so the hardware
    # prefetcher streams it; walking one KV head at a time jumps kv_heads * d apart per token.
    # Blocks are scattered, so the hardware cannot guess where the stream continues: the next
    # block (next_blk >= 0) is prefetched, spread row by row over this block's work (its K
    # while scoring, its V while folding V) when spread, else one line per KB of it here at
    # the start, which starts the hardware streams (docs/DESIGN.md, "CPU decode").
    # q [num_seqs, kv_heads, group, d]; s [block_size, rows]; bits [block_size * rows];
    # m, l_sum, alpha [rows]; acc [kv_heads, group, d]; rows = kv_heads * group
    num_kv_heads, group, head_dim = q.shape[1], q.shape[2], q.shape[3]
    block_size = key_cache.shape[1]
    if next_blk >= 0 and not spread:
        start = next_blk * key_cache.strides[0]
        for offset in range(start, start + key_cache.strides[0], 1024):
            _prefetch(key_cache, offset)
            _prefetch(value_cache, offset)
    spread_next = next_blk if spread else -1
    for t in range(0, n, 2):
        if spread_next >= 0:
            for u in range(t, min(t + 2, block_size)):
                _prefetch_row(key_cache, spread_next, u)
        _scores(q, i, key_cache, blk, t, t + 1 < n, s)
    _softmax_block(s, n, bits, poly, m, l_sum, alpha)
    for h in range(num_kv_heads):
        for g in range(group):
            a = alpha[h * group + g]
            for d in range(head_dim):
                acc[h, g, d] *= a
    # V rows four tokens at a time: one load and store of the accumulator row per four
    # multiply-adds (each V row is read once per query head, from L1)
    t = 0
    while t + 4 <= n:
        for h in range(num_kv_heads):
            if spread_next >= 0:
                for u in range(t, t + 4):
                    _prefetch_head(value_cache, spread_next, u, h)
            for g in range(group):
                r = h * group + g
                p0, p1, p2, p3 = s[t, r], s[t + 1, r], s[t + 2, r], s[t + 3, r]
                for d in range(head_dim):
                    acc[h, g, d] += (
                        p0 * value_cache[blk, t, h, d] + p1 * value_cache[blk, t + 1, h, d]
                        + p2 * value_cache[blk, t + 2, h, d] + p3 * value_cache[blk, t + 3, h, d]
                    )  # fmt: skip
        t += 4
    if spread_next >= 0:
        for u in range(t, block_size):
            _prefetch_row(value_cache, spread_next, u)
    for u in range(t, n):
        for h in range(num_kv_heads):
            for g in range(group):
                p = s[u, h * group + g]
                for d in range(head_dim):
                    acc[h, g, d] += p * value_cache[blk, u, h, d]


@njit(cache=True)
def _split_range(seq_len, block_size, num_splits, split):
    num_blocks = (seq_len + block_size - 1) // block_size
    per_split = (num_blocks + num_splits - 1) // num_splits
    first = min(num_blocks, split * per_split)
    return first, min(num_blocks, first + per_split)


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _decode_float(q, key_cache, value_cache, block_table, seq_lens, poly, spread, acc, m, l_sum):
    # q [num_seqs, kv_heads, group, d]; caches [num_blocks, block_size, kv_heads, d];
    # partial results per split: acc [num_seqs, num_splits, kv_heads, group, d], m/l_sum
    # [num_seqs, num_splits, rows] (combined afterwards, as paged_attention_v2)
    num_seqs, num_splits = acc.shape[0], acc.shape[1]
    rows, block_size = m.shape[2], key_cache.shape[1]
    for w in prange(num_seqs * num_splits):
        i = w // num_splits
        split = w - i * num_splits
        s = np.empty((block_size, rows), q.dtype)
        bits = np.empty(block_size * rows, np.int32)
        alpha = np.empty(rows, q.dtype)
        m[i, split] = -np.inf
        l_sum[i, split] = 0
        acc[i, split] = 0
        seq_len = seq_lens[i]
        first, last = _split_range(seq_len, block_size, num_splits, split)
        for j in range(first, last):
            n = min(block_size, seq_len - j * block_size)
            next_blk = block_table[i, j + 1] if j + 1 < last else -1
            _attend_block(
                q, i, key_cache, value_cache, block_table[i, j], n, next_blk, spread, s, bits, poly,
                m[i, split], l_sum[i, split], alpha, acc[i, split],
            )  # fmt: skip


# Blocks of up to this many bytes (one cache) have their successor prefetched line by line,
# spread over the block's work; larger ones only get one line per KB, and the hardware
# stream prefetchers, which ramp up within a long contiguous block, fetch the rest
# (measurements in docs/DESIGN.md, "CPU decode").
_SPREAD_MAX_BLOCK_BYTES = 32 * 1024

_BF16, _FP16, _FP8 = 0, 1, 2
_U = np.uint32


@njit(cache=True)
def _widen(src, blk, count, mode, scale, dst_bits, dst):
    # The first count elements of block blk of a bit-pattern cache seen flat (src
    # [num_blocks, block_size * kv_heads * d]: uint16 bf16/fp16, uint8 fp8 e4m3fn) -> float32
    # dst (dst_bits: the same memory as uint32). Integer shifts put sign, exponent and
    # mantissa in float32 position; one multiply by 2^(127 - bias) then fixes the exponent,
    # subnormals included (fp8: times its scale too). inf/NaN patterns get an all-ones
    # exponent (0xFF << 23; fp8 NaN also the quiet bit) first, so they stay inf/NaN.
    # Branch-free, one long loop per block, so it vectorises; a 64K-entry float16 table
    # (256 KB) was slower and crowded L2.
    # No fastmath: the multiplies must stay in this order (2^120 * scale may overflow).
    if mode == _BF16:
        for x in range(count):
            dst_bits[x] = _U(src[blk, x]) << _U(16)
    elif mode == _FP16:
        for x in range(count):
            c = _U(src[blk, x])
            top = (((c >> _U(10)) & _U(0x1F)) + _U(1)) >> _U(5)  # 1 for inf/NaN
            dst_bits[x] = (
                ((c & _U(0x7FFF)) << _U(13)) | ((c & _U(0x8000)) << _U(16))
                | (((top << _U(8)) - top) << _U(23))
            )  # fmt: skip
        for x in range(count):
            dst[x] *= np.float32(2.0**112)
    else:
        for x in range(count):
            c = _U(src[blk, x])
            nan = ((c & _U(0x7F)) + _U(1)) >> _U(7)  # 1 for 0x7F / 0xFF
            dst_bits[x] = (
                ((c & _U(0x7F)) << _U(20)) | ((c & _U(0x80)) << _U(24))
                | (((nan << _U(9)) - nan) << _U(22))
            )  # fmt: skip
        for x in range(count):
            dst[x] = dst[x] * np.float32(2.0**120) * scale


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _decode_bits(
    q, key_flat, value_flat, block_table, seq_lens, mode, k_scale, v_scale, poly, acc, m, l_sum
):
    # as _decode_float, but the caches hold bit patterns (uint8 fp8, uint16 fp16/bf16), seen
    # flat [num_blocks, block_size * kv_heads * d]; the owned tokens of each block are
    # widened into float32 tiles [1, block_size, kv_heads, d] first (_widen)
    num_seqs, num_splits = acc.shape[0], acc.shape[1]
    num_kv_heads, head_dim = q.shape[1], q.shape[3]
    rows, row = m.shape[2], num_kv_heads * head_dim
    block_size = key_flat.shape[1] // row
    for w in prange(num_seqs * num_splits):
        i = w // num_splits
        split = w - i * num_splits
        s = np.empty((block_size, rows), q.dtype)
        bits = np.empty(block_size * rows, np.int32)
        alpha = np.empty(rows, q.dtype)
        k_bits = np.empty(block_size * row, np.uint32)
        v_bits = np.empty(block_size * row, np.uint32)
        k_flat, v_flat = k_bits.view(np.float32), v_bits.view(np.float32)
        k = k_flat.reshape((1, block_size, num_kv_heads, head_dim))
        v = v_flat.reshape((1, block_size, num_kv_heads, head_dim))
        m[i, split] = -np.inf
        l_sum[i, split] = 0
        acc[i, split] = 0
        seq_len = seq_lens[i]
        first, last = _split_range(seq_len, block_size, num_splits, split)
        for j in range(first, last):
            blk = block_table[i, j]
            n = min(block_size, seq_len - j * block_size)
            if j + 1 < last:
                start = block_table[i, j + 1] * key_flat.strides[0]
                for offset in range(start, start + key_flat.strides[0], 64):
                    _prefetch(key_flat, offset)
                    _prefetch(value_flat, offset)
            _widen(key_flat, blk, n * row, mode, k_scale, k_bits, k_flat)
            _widen(value_flat, blk, n * row, mode, v_scale, v_bits, v_flat)
            _attend_block(
                q, i, k, v, 0, n, -1, False, s, bits, poly, m[i, split], l_sum[i, split], alpha,
                acc[i, split],
            )  # fmt: skip


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _decode_per_token(q, key_cache, value_cache, block_table, seq_lens, out):
    num_seqs, num_kv_heads, group, head_dim = q.shape
    block_size = key_cache.shape[1]
    for w in prange(num_seqs * num_kv_heads):
        i = w // num_kv_heads
        h = w - i * num_kv_heads
        zero = q.dtype.type(0)
        m = np.full(group, -np.inf, q.dtype)
        l_sum = np.zeros(group, q.dtype)
        acc = np.zeros((group, head_dim), q.dtype)
        for pos in range(seq_lens[i]):
            blk = block_table[i, pos // block_size]
            off = pos % block_size
            for g in range(group):
                dot = zero
                for d in range(head_dim):
                    dot += q[i, h, g, d] * key_cache[blk, off, h, d]
                m_new = max(m[g], dot)
                alpha = np.exp(m[g] - m_new)
                p = np.exp(dot - m_new)
                l_sum[g] = l_sum[g] * alpha + p
                for d in range(head_dim):
                    acc[g, d] = acc[g, d] * alpha + p * value_cache[blk, off, h, d]
                m[g] = m_new
        for g in range(group):
            inv = 1 / l_sum[g] if l_sum[g] > 0 else 0  # seq_len 0 -> zeros
            for d in range(head_dim):
                out[i, h, g, d] = acc[g, d] * inv


@njit(parallel=True, cache=True)
def _write(key, value, key_cache, value_cache, slot_mapping):
    block_size = key_cache.shape[1]
    for t in prange(slot_mapping.shape[0]):
        slot = slot_mapping[t]
        if slot < 0:
            continue  # padding token
        blk = slot // block_size
        off = slot - blk * block_size
        key_cache[blk, off] = key[t]
        value_cache[blk, off] = value[t]


@njit(parallel=True, cache=True)
def _gather(key_cache, value_cache, block_table, seq_lens, block_size, stream, key_out, value_out):
    # caches [num_blocks, block_size * row] and outputs [num_seqs, max_seq_len * row] seen
    # flat (row = kv_heads * d): the first n tokens of a block are one contiguous run.
    # stream: copy with non-temporal stores (outputs 16-byte aligned, rows multiples of 16
    # bytes). Positions >= seq_len are zero-filled.
    num_seqs = key_out.shape[0]
    row = key_cache.shape[1] // block_size
    max_len = key_out.shape[1] // row
    blocks_out = (max_len + block_size - 1) // block_size
    itemsize = key_cache.itemsize
    for w in prange(num_seqs * blocks_out):
        i = w // blocks_out
        j = w - i * blocks_out
        start = j * block_size
        n_out = min(block_size, max_len - start)
        n = max(0, min(n_out, seq_lens[i] - start))
        base = start * row
        if n > 0:
            blk = block_table[i, j]
            if j + 1 < blocks_out and (j + 1) * block_size < seq_lens[i]:
                start_byte = block_table[i, j + 1] * key_cache.strides[0]
                for offset in range(start_byte, start_byte + key_cache.strides[0], 64):
                    _prefetch(key_cache, offset)
                    _prefetch(value_cache, offset)
            if stream:
                dst = i * key_out.strides[0] + base * itemsize
                src = blk * key_cache.strides[0]
                _stream_copy(key_out, dst, key_cache, src, n * row * itemsize)
                _stream_copy(value_out, dst, value_cache, src, n * row * itemsize)
            else:
                for x in range(n * row):
                    key_out[i, base + x] = key_cache[blk, x]
                    value_out[i, base + x] = value_cache[blk, x]
        for x in range(n * row, n_out * row):
            key_out[i, base + x] = 0
            value_out[i, base + x] = 0


@njit(parallel=True, cache=True)
def _lookup(bits, table, out):
    for x in prange(bits.shape[0]):
        out[x] = table[bits[x]]


def lookup(bits: npt.NDArray[Any], table: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``table[bits]`` in parallel (fp8 dequantisation of gathered blocks)."""
    out = np.empty(bits.shape, table.dtype)
    _lookup(bits.reshape(-1), table, out.reshape(-1))
    return out


def _bits(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """float16 arrays as uint16 (numba cannot type float16; copies only move bits)."""
    return x.view(np.uint16) if x.dtype == np.float16 else x


def default_num_splits(num_seqs: int, max_seq_len: int, block_size: int) -> int:
    """Splits per sequence so that small batches still give every core work.

    Depends on shapes only (not on the thread count), so results are reproducible across
    machines: about 64 work items in total, at least 256 tokens (and one block) per split.
    """
    max_blocks = -(-max_seq_len // block_size)
    by_length = max(1, min(max_blocks, -(-max_seq_len // 256)))
    return max(1, min(by_length, -(-64 // max(1, num_seqs))))


def combine_splits(
    acc: npt.NDArray[Any], m: npt.NDArray[Any], l_sum: npt.NDArray[Any]
) -> npt.NDArray[Any]:
    """Merge per-split softmax partials (log-sum-exp weights); empty sequences give zeros."""
    if acc.shape[1] == 1:
        den = l_sum[:, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = acc[:, 0] / den[..., None]
        out[den == 0] = 0
        return out
    m_max = m.max(axis=1)  # [num_seqs, kv_heads, group]
    safe_max = np.where(np.isfinite(m_max), m_max, 0)
    weight = np.exp(m - safe_max[:, None])  # empty splits: exp(-inf) = 0
    den = (weight * l_sum).sum(axis=1)
    num = (weight[..., None] * acc).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den[..., None]
    out[den == 0] = 0
    return out


def decode(
    q: npt.NDArray[Any],  # [num_seqs, num_kv_heads, group, d], accumulation dtype, pre-scaled
    key_cache: npt.NDArray[Any],
    value_cache: npt.NDArray[Any],
    block_table: npt.NDArray[np.int32],
    seq_lens: npt.NDArray[np.int32],
    kind: str,
    k_scale: float = 1.0,
    v_scale: float = 1.0,
    num_splits: int | None = None,
    per_token: bool = False,
) -> npt.NDArray[Any]:
    """Paged decode attention; returns [num_seqs, num_kv_heads, group, d] in q's dtype."""
    num_seqs, num_kv_heads, group, head_dim = q.shape
    if per_token:
        if kind not in (dt.FLOAT32, dt.FLOAT64):
            raise ValueError("the per-token baseline reads float32/float64 caches only")
        out = np.empty_like(q)
        _decode_per_token(q, key_cache, value_cache, block_table, seq_lens, out)
        return out
    if num_splits is None:
        longest = int(seq_lens.max(initial=0))
        num_splits = default_num_splits(num_seqs, longest, key_cache.shape[1])
    acc = np.empty((num_seqs, num_splits, num_kv_heads, group, head_dim), q.dtype)
    m = np.empty((num_seqs, num_splits, num_kv_heads * group), q.dtype)
    l_sum = np.empty_like(m)
    poly = bool(q.dtype == np.float32)  # float64 keeps libm's exp (its tests ask for 1e-12)
    # work items are handed out one at a time: lengths vary, and on a shared machine a core
    # may be busy; static chunks would leave the other threads idle at the end
    with parallel_chunksize(1):
        if kind in (dt.FLOAT32, dt.FLOAT64):
            spread = key_cache.strides[0] <= _SPREAD_MAX_BLOCK_BYTES
            _decode_float(
                q, key_cache, value_cache, block_table, seq_lens, poly, spread, acc, m, l_sum
            )  # fmt: skip
        else:
            # flat views are free for contiguous caches; a strided cache is copied once here
            flat = (key_cache.shape[0], -1)
            kf = np.ascontiguousarray(_bits(key_cache)).reshape(flat)
            vf = np.ascontiguousarray(_bits(value_cache)).reshape(flat)
            mode = {dt.BFLOAT16: _BF16, dt.FLOAT16: _FP16, dt.FP8_E4M3: _FP8}[kind]
            ks, vs = np.float32(k_scale), np.float32(v_scale)
            _decode_bits(
                q, kf, vf, block_table, seq_lens, mode, ks, vs, poly, acc, m, l_sum
            )  # fmt: skip
    shape = (num_seqs, num_splits, num_kv_heads, group)
    out = combine_splits(acc, m.reshape(shape), l_sum.reshape(shape))
    return out.astype(q.dtype, copy=False)


def write(
    key: npt.NDArray[Any],
    value: npt.NDArray[Any],
    key_cache: npt.NDArray[Any],
    value_cache: npt.NDArray[Any],
    slot_mapping: npt.NDArray[np.int64],
) -> None:
    _write(_bits(key), _bits(value), _bits(key_cache), _bits(value_cache), slot_mapping)


def gather(
    key_cache: npt.NDArray[Any],
    value_cache: npt.NDArray[Any],
    block_table: npt.NDArray[np.int32],
    seq_lens: npt.NDArray[np.int32],
    max_seq_len: int,
    out: tuple[npt.NDArray[Any], npt.NDArray[Any]] | None = None,
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    num_blocks, block_size = key_cache.shape[:2]
    shape = (block_table.shape[0], max_seq_len, *key_cache.shape[2:])
    if out is None:
        out = (np.empty(shape, key_cache.dtype), np.empty(shape, value_cache.dtype))
    flat = (num_blocks, -1)
    # reshape is free for contiguous caches; a strided cache is copied once here
    key_flat = np.ascontiguousarray(_bits(key_cache)).reshape(flat)
    value_flat = np.ascontiguousarray(_bits(value_cache)).reshape(flat)
    key_out = _bits(out[0]).reshape(shape[0], -1)
    value_out = _bits(out[1]).reshape(shape[0], -1)
    row_bytes = math.prod(key_cache.shape[2:]) * key_flat.itemsize
    stream = row_bytes % 16 == 0 and all(
        a.ctypes.data % 16 == 0 and a.strides[0] % 16 == 0 for a in (key_out, value_out)
    )
    with parallel_chunksize(16):
        _gather(key_flat, value_flat, block_table, seq_lens, block_size, stream, key_out, value_out)
    return out


def warmup() -> None:
    """Compile (or load from numba's on-disk cache) the common specialisations once."""
    for dtype in (np.float32, np.float16):
        kc = np.zeros((2, 4, 1, 8), dtype)
        bt = np.zeros((1, 2), np.int32)
        sl = np.full(1, 5, np.int32)
        q = np.zeros((1, 1, 2, 8), np.float32)
        kind = dt.FLOAT32 if dtype == np.float32 else dt.FLOAT16
        decode(q, kc, kc, bt, sl, kind)
        write(kc[0], kc[0], kc, kc, np.zeros(4, np.int64))
        gather(kc, kc, bt, sl, 8)
    decode(q, kc.view(np.uint16), kc.view(np.uint16), bt, sl, dt.BFLOAT16)
