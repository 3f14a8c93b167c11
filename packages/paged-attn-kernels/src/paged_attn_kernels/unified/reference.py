"""numpy backend of variable-length paged attention: the float64 oracle, and the dense target.

``unified_reference`` walks each sequence's ``block_table`` row in 512-token partitions
(``paged_attention_v2.cu``'s ``PARTITION_SIZE``) with online softmax, all query tokens of
the sequence at once, reading only the blocks some query token can see: with a sliding
window, partitions wholly before the first token's window are never touched.
``dense_varlen_reference`` is the plain masked softmax over contiguous K/V that every paged
result must equal; it builds the whole score matrix, so it is the independent check of the
masks and modifiers (``options.py`` defines them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from paged_attn_kernels import _dtypes as dt
from paged_attn_kernels.unified.options import ScoreMods, VarlenBatch

__all__ = ["dense_varlen_reference", "key_range", "unified_reference"]

PARTITION_TOKENS = 512
F64 = npt.NDArray[np.float64]


def key_range(context_len: int, seq_len: int, window: int | None) -> tuple[int, int]:
    """Keys ``[lo, hi)`` that at least one of the sequence's query tokens can see."""
    lo = 0 if window is None else max(0, context_len - window + 1)
    return lo, seq_len


def _modified_scores(
    s: F64,  # [q, heads, keys] already scaled
    q_pos: npt.NDArray[np.int64],  # [q]
    k_pos: npt.NDArray[np.int64],  # [keys]
    mods: ScoreMods,
) -> F64:
    if mods.soft_cap is not None:
        s = mods.soft_cap * np.tanh(s / mods.soft_cap)
    if mods.alibi_slopes is not None:
        s = s + mods.alibi_slopes[None, :, None] * (k_pos[None, None, :] - q_pos[:, None, None])
    visible = k_pos[None, :] <= q_pos[:, None]  # [q, keys]
    if mods.sliding_window is not None:
        visible &= q_pos[:, None] - k_pos[None, :] < mods.sliding_window
    return np.where(visible[:, None, :], s, -np.inf)


def unified_reference(
    query: F64,  # [num_tokens, num_heads, head_dim]
    key_cache: npt.NDArray[Any],  # [num_blocks, block_size, num_kv_heads, head_dim]
    value_cache: npt.NDArray[Any],
    block_table: npt.NDArray[np.integer[Any]],  # [num_seqs, max_blocks_per_seq]
    batch: VarlenBatch,
    scale: float,
    kind: str,
    mods: ScoreMods,
    k_scale: float = 1.0,
    v_scale: float = 1.0,
) -> F64:
    num_tokens, num_heads, head_dim = query.shape
    block_size, num_kv_heads = key_cache.shape[1], key_cache.shape[2]
    group = num_heads // num_kv_heads
    out = np.zeros((num_tokens, num_heads, head_dim))  # padding rows stay zero
    qsl = batch.query_start_loc
    for i in range(batch.num_seqs):
        q_len = int(qsl[i + 1] - qsl[i])
        if q_len == 0:
            continue
        seq_len = int(batch.seq_lens[i])
        ctx = seq_len - q_len
        q_pos = np.arange(ctx, seq_len)
        q = query[qsl[i] : qsl[i + 1]] * scale  # [q, heads, d]
        m = np.full((q_len, num_heads), -np.inf)
        l_sum = np.zeros((q_len, num_heads))
        if mods.sinks is not None:
            m[:] = mods.sinks[None, :]  # the sink is one more logit, with no value row
            l_sum[:] = 1.0
        acc = np.zeros((q_len, num_heads, head_dim))
        lo, hi = key_range(ctx, seq_len, mods.sliding_window)
        for start in range(lo - lo % PARTITION_TOKENS, hi, PARTITION_TOKENS):
            first, last = max(start, lo), min(start + PARTITION_TOKENS, hi)
            blocks = block_table[i, first // block_size : -(-last // block_size)]
            base = (first // block_size) * block_size
            k = dt.decode(key_cache[blocks], kind, k_scale).reshape(-1, num_kv_heads, head_dim)
            v = dt.decode(value_cache[blocks], kind, v_scale).reshape(-1, num_kv_heads, head_dim)
            # slots outside [first, last) are cut before any arithmetic (they may hold NaN)
            k = np.repeat(k[first - base : last - base].astype(np.float64), group, axis=1)
            v = np.repeat(v[first - base : last - base].astype(np.float64), group, axis=1)
            s = np.einsum("qhd,khd->qhk", q, k)
            s = _modified_scores(s, q_pos, np.arange(first, last), mods)
            m_new = np.maximum(m, s.max(axis=-1))
            safe = np.where(np.isfinite(m_new), m_new, 0.0)  # rows that see nothing yet
            alpha = np.exp(m - safe)
            p = np.exp(s - safe[..., None])
            l_sum = l_sum * alpha + p.sum(axis=-1)
            acc = acc * alpha[..., None] + np.einsum("qhk,khd->qhd", p, v)
            m = m_new
        out[qsl[i] : qsl[i + 1]] = acc / l_sum[..., None]
    return out


def dense_varlen_reference(
    query: F64,  # [num_tokens, num_heads, head_dim]
    query_start_loc: npt.NDArray[np.integer[Any]],  # [num_seqs + 1]
    keys: list[F64],  # per sequence [seq_len, num_kv_heads, head_dim]
    values: list[F64],
    scale: float,
    mods: ScoreMods,
) -> F64:
    """Masked softmax over each sequence's contiguous K/V, the whole score matrix at once."""
    num_tokens, num_heads, head_dim = query.shape
    out = np.zeros((num_tokens, num_heads, head_dim))
    for i, (k, v) in enumerate(zip(keys, values, strict=True)):
        a, b = int(query_start_loc[i]), int(query_start_loc[i + 1])
        if b == a:
            continue
        seq_len = k.shape[0]
        group = num_heads // k.shape[1]
        kk = np.repeat(np.asarray(k, np.float64), group, axis=1)
        vv = np.repeat(np.asarray(v, np.float64), group, axis=1)
        s = np.einsum("qhd,khd->qhk", np.asarray(query[a:b], np.float64), kk) * scale
        s = _modified_scores(s, np.arange(seq_len - (b - a), seq_len), np.arange(seq_len), mods)
        if mods.sinks is not None:  # one more column holding the sink, with a zero value row
            sink = np.broadcast_to(mods.sinks[None, :, None], (b - a, num_heads, 1))
            s = np.concatenate([s, sink], axis=-1)
            vv = np.concatenate([vv, np.zeros((1, num_heads, head_dim))], axis=0)
        w = np.exp(s - s.max(axis=-1, keepdims=True))
        w /= w.sum(axis=-1, keepdims=True)
        out[a:b] = np.einsum("qhk,khd->qhd", w, vv)
    return out
