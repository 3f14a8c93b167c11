"""numba backend of variable-length paged attention (CPU, parallel).

``prange`` runs over work items ``(sequence, KV head, first query row, rows)`` of at most
``Q_TILE`` query tokens. Each item walks the blocks its tokens can see (from the first
token's window start to the last token's position), decodes the KV head's slice of a block
once into a float tile, scores it against all ``rows x group`` query heads of the item, and
rescales its running softmax once per block: the block-wise online softmax of the decode
kernel in ``_numba.py``, with the causal, window, soft-cap and ALiBi terms of
``options.py`` applied per score, and the sink as the running max's starting value.
float32/float64 caches are read directly; float16, bfloat16 and fp8 through a table of
every bit pattern (fp8 with its scale folded in).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit, parallel_chunksize, prange

from paged_attn_kernels import _dtypes as dt
from paged_attn_kernels.unified.options import ScoreMods, VarlenBatch

__all__ = ["Q_TILE", "unified_numba", "work_items"]

Q_TILE = 16  # query tokens per work item: enough rows to reuse a decoded block
_FASTMATH = {"reassoc", "contract", "arcp", "nsz"}  # no nnan/ninf: masks are -inf


@njit(cache=True, fastmath=_FASTMATH)
def _fold_tile(q, out_rows, kt, vt, t0, t1, k_base, p0, window, soft_cap, slopes, s, m, l_sum, acc):
    # q [rows, group, d] (pre-scaled); kt/vt [block_size, d] decoded K/V of tokens t0..t1
    # at positions k_base + t; row r sits at position p0 + r. s [rows, group, block_size]
    rows, group, head_dim = q.shape
    for r in range(rows):
        p = p0 + r
        for g in range(group):
            for t in range(t0, t1):
                k_pos = k_base + t
                if k_pos > p or (window > 0 and p - k_pos >= window):
                    s[r, g, t] = -np.inf
                    continue
                dot = q.dtype.type(0)
                for d in range(head_dim):
                    dot += q[r, g, d] * kt[t, d]
                if soft_cap > 0:
                    dot = soft_cap * np.tanh(dot / soft_cap)
                dot += slopes[g] * (k_pos - p)
                s[r, g, t] = dot
            m_old = m[r, g]
            m_new = m_old
            for t in range(t0, t1):
                m_new = max(m_new, s[r, g, t])
            if m_new == -np.inf:
                continue  # nothing visible to this row in the block
            alpha = np.exp(m_old - m_new)
            total = q.dtype.type(0)
            for d in range(head_dim):
                acc[r, g, d] *= alpha
            for t in range(t0, t1):
                pr = np.exp(s[r, g, t] - m_new)
                total += pr
                if pr != 0:
                    for d in range(head_dim):
                        acc[r, g, d] += pr * vt[t, d]
            l_sum[r, g] = l_sum[r, g] * alpha + total
            m[r, g] = m_new


@njit(cache=True)
def _item_setup(items, w, qsl, seq_lens, window, block_size):
    i, h, q0, rows = items[w, 0], items[w, 1], items[w, 2], items[w, 3]
    seq_len = seq_lens[i]
    ctx = seq_len - (qsl[i + 1] - qsl[i])
    p0 = ctx + q0
    lo = 0 if window <= 0 else max(0, p0 - window + 1)
    hi = p0 + rows  # the last row sees up to its own position
    return i, h, q0, rows, p0, lo, hi, lo // block_size, (hi + block_size - 1) // block_size


@njit(cache=True)
def _finish(out, qsl, i, h, q0, rows, m, l_sum, acc):
    group, head_dim = acc.shape[1], acc.shape[2]
    for r in range(rows):
        for g in range(group):
            inv = 1 / l_sum[r, g] if l_sum[r, g] > 0 else 0.0
            for d in range(head_dim):
                out[qsl[i] + q0 + r, h, g, d] = acc[r, g, d] * inv


@njit(cache=True)
def _state(q, qsl, i, h, q0, rows, sinks, use_sinks):
    group, head_dim = q.shape[2], q.shape[3]
    qi = np.empty((rows, group, head_dim), q.dtype)
    m = np.empty((rows, group), q.dtype)
    l_sum = np.empty((rows, group), q.dtype)
    for r in range(rows):
        for g in range(group):
            qi[r, g] = q[qsl[i] + q0 + r, h, g]
            m[r, g] = sinks[h * group + g] if use_sinks else -np.inf
            l_sum[r, g] = 1 if use_sinks else 0
    return qi, m, l_sum, np.zeros((rows, group, head_dim), q.dtype)


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _unified_float(
    q, key_cache, value_cache, block_table, qsl, seq_lens, items,
    window, soft_cap, sinks, use_sinks, alibi, out,
):  # fmt: skip
    # q/out [num_tokens, kv_heads, group, d]; caches float32/float64 [nb, bs, kv_heads, d]
    block_size, head_dim = key_cache.shape[1], key_cache.shape[3]
    group = q.shape[2]
    for w in prange(items.shape[0]):
        i, h, q0, rows, p0, lo, hi, j0, j1 = _item_setup(
            items, w, qsl, seq_lens, window, block_size
        )
        qi, m, l_sum, acc = _state(q, qsl, i, h, q0, rows, sinks, use_sinks)
        s = np.empty((rows, group, block_size), q.dtype)
        kt = np.empty((block_size, head_dim), q.dtype)
        vt = np.empty((block_size, head_dim), q.dtype)
        slopes = alibi[h * group : (h + 1) * group]
        for j in range(j0, j1):
            blk = block_table[i, j]
            t0 = max(lo, j * block_size) - j * block_size
            t1 = min(hi, (j + 1) * block_size) - j * block_size
            for t in range(t0, t1):  # only slots some row can see are read
                for d in range(head_dim):
                    kt[t, d] = key_cache[blk, t, h, d]
                    vt[t, d] = value_cache[blk, t, h, d]
            _fold_tile(
                qi, rows, kt, vt, t0, t1, j * block_size, p0, window, soft_cap, slopes,
                s, m, l_sum, acc,
            )  # fmt: skip
        _finish(out, qsl, i, h, q0, rows, m, l_sum, acc)


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _unified_table(
    q, key_cache, value_cache, block_table, qsl, seq_lens, items, k_lut, v_lut,
    window, soft_cap, sinks, use_sinks, alibi, out,
):  # fmt: skip
    # as _unified_float, caches hold bit patterns (uint8 fp8, uint16 fp16/bf16) read
    # through k_lut / v_lut
    block_size, head_dim = key_cache.shape[1], key_cache.shape[3]
    group = q.shape[2]
    for w in prange(items.shape[0]):
        i, h, q0, rows, p0, lo, hi, j0, j1 = _item_setup(
            items, w, qsl, seq_lens, window, block_size
        )
        qi, m, l_sum, acc = _state(q, qsl, i, h, q0, rows, sinks, use_sinks)
        s = np.empty((rows, group, block_size), q.dtype)
        kt = np.empty((block_size, head_dim), q.dtype)
        vt = np.empty((block_size, head_dim), q.dtype)
        slopes = alibi[h * group : (h + 1) * group]
        for j in range(j0, j1):
            blk = block_table[i, j]
            t0 = max(lo, j * block_size) - j * block_size
            t1 = min(hi, (j + 1) * block_size) - j * block_size
            for t in range(t0, t1):
                for d in range(head_dim):
                    kt[t, d] = k_lut[key_cache[blk, t, h, d]]
                    vt[t, d] = v_lut[value_cache[blk, t, h, d]]
            _fold_tile(
                qi, rows, kt, vt, t0, t1, j * block_size, p0, window, soft_cap, slopes,
                s, m, l_sum, acc,
            )  # fmt: skip
        _finish(out, qsl, i, h, q0, rows, m, l_sum, acc)


def work_items(
    batch: VarlenBatch, num_kv_heads: int, q_tile: int = Q_TILE
) -> npt.NDArray[np.int64]:
    """``[n, 4]`` (sequence, KV head, first query row in the sequence, rows), longest first."""
    items: list[tuple[int, int, int, int, int]] = []
    for i, q_len in enumerate(batch.query_lens.tolist()):
        for q0 in range(0, q_len, q_tile):
            rows = min(q_tile, q_len - q0)
            cost = (int(batch.context_lens[i]) + q0 + rows) * rows
            items.extend((cost, i, h, q0, rows) for h in range(num_kv_heads))
    items.sort(key=lambda x: -x[0])  # long items first, so the last ones to start are short
    arr = np.array([x[1:] for x in items], dtype=np.int64).reshape(-1, 4)
    return arr


def _tables(kind: str, k_scale: float, v_scale: float, dtype: Any) -> tuple[Any, Any]:
    if kind == dt.FP8_E4M3:
        base = dt.E4M3_TABLE.astype(dtype)
        return base * dtype.type(k_scale), base * dtype.type(v_scale)
    if kind == dt.FLOAT16:
        table = np.arange(65536, dtype=np.uint16).view(np.float16).astype(dtype)
    else:
        table = dt.bf16_table().astype(dtype)
    return table, table


def unified_numba(
    q: npt.NDArray[Any],  # [num_tokens, num_kv_heads, group, d], accumulation dtype, pre-scaled
    key_cache: npt.NDArray[Any],  # storage bits for float16/bfloat16/fp8
    value_cache: npt.NDArray[Any],
    block_table: npt.NDArray[np.int32],
    batch: VarlenBatch,
    kind: str,
    mods: ScoreMods,
    k_scale: float = 1.0,
    v_scale: float = 1.0,
    items: npt.NDArray[np.int64] | None = None,
) -> npt.NDArray[Any]:
    """Returns ``[num_tokens, num_kv_heads, group, d]`` in q's dtype (padding rows zero)."""
    num_heads = q.shape[1] * q.shape[2]
    if items is None:
        items = work_items(batch, q.shape[1])
    out = np.zeros_like(q)
    acc = q.dtype.type
    window = mods.sliding_window or 0
    cap = acc(mods.soft_cap or 0.0)
    use_sinks = mods.sinks is not None
    sinks = (mods.sinks if mods.sinks is not None else np.zeros(num_heads)).astype(q.dtype)
    alibi = (mods.alibi_slopes if mods.alibi_slopes is not None else np.zeros(num_heads)).astype(
        q.dtype
    )
    qsl = batch.query_start_loc
    sl = batch.seq_lens
    with parallel_chunksize(1):  # items differ in length: hand them out one at a time
        if kind in (dt.FLOAT32, dt.FLOAT64):
            kc = key_cache if key_cache.dtype == q.dtype else key_cache.astype(q.dtype)
            vc = value_cache if value_cache.dtype == q.dtype else value_cache.astype(q.dtype)
            _unified_float(
                q, kc, vc, block_table, qsl, sl, items, window, cap, sinks, use_sinks, alibi, out
            )
        else:
            k_lut, v_lut = _tables(kind, k_scale, v_scale, q.dtype)
            kc = key_cache.view(np.uint16) if key_cache.dtype == np.float16 else key_cache
            vc = value_cache.view(np.uint16) if value_cache.dtype == np.float16 else value_cache
            _unified_table(
                q, kc, vc, block_table, qsl, sl, items, k_lut, v_lut,
                window, cap, sinks, use_sinks, alibi, out,
            )  # fmt: skip
    return out
