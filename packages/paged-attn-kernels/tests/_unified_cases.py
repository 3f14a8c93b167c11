"""Builders shared by the variable-length attention tests (no tests here).

A case is a ragged batch written into a paged cache through a shuffled block table. Every
slot a correct kernel must not read holds NaN: blocks no sequence owns, slots past a
sequence's length, block-table padding (it points at a NaN block) and, with
``poison_window``, every position that no query token's sliding window reaches. The dense
reference gets the clean per-sequence K/V.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from paged_attn_kernels import _dtypes as dt
from paged_attn_kernels.unified import ScoreMods, dense_varlen_reference, make_mods


@dataclass
class VarlenCase:
    query: np.ndarray  # [num_tokens, num_heads, head_dim] float32/float64 values
    key_cache: np.ndarray  # [num_blocks, block_size, num_kv_heads, head_dim] storage
    value_cache: np.ndarray
    block_table: np.ndarray  # [num_seqs, max_blocks] int32
    query_start_loc: np.ndarray  # [num_seqs + 1] int32
    seq_lens: np.ndarray  # [num_seqs] int32
    keys: list[np.ndarray]  # clean per-sequence K/V values (float64), for the dense reference
    values: list[np.ndarray]
    kind: str = dt.FLOAT32
    k_scale: float = 1.0
    v_scale: float = 1.0
    mod_args: dict[str, Any] = field(default_factory=dict)

    @property
    def layout(self) -> tuple[np.ndarray, ...]:
        return (self.block_table, self.query_start_loc, self.seq_lens)

    def mods(self) -> ScoreMods:
        return make_mods(self.query.shape[1], **self.mod_args)

    def dense(self, scale: float | None = None) -> np.ndarray:
        if scale is None:
            scale = 1.0 / np.sqrt(self.query.shape[2])
        return dense_varlen_reference(
            self.query.astype(np.float64), self.query_start_loc, self.keys, self.values,
            scale, self.mods(),
        )  # fmt: skip


def make_varlen_case(
    seqs: list[tuple[int, int]],  # (cached prefix, new tokens) per sequence
    *,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    head_dim: int = 16,
    block_size: int = 4,
    kind: str = dt.FLOAT32,
    pad_tokens: int = 0,
    poison_window: int | None = None,
    spare_blocks: int = 2,
    k_scale: float = 1.0,
    v_scale: float = 1.0,
    seed: int = 0,
    **mod_args: Any,
) -> VarlenCase:
    rng = np.random.default_rng(seed)
    seq_lens = [c + q for c, q in seqs]
    blocks_per = [-(-n // block_size) for n in seq_lens]
    max_blocks = max(1, max(blocks_per, default=1) + 1)  # one padding entry per row at least
    num_blocks = sum(blocks_per) + spare_blocks + 1
    perm = rng.permutation(num_blocks)
    trap = int(perm[-1])  # block-table padding points here; NaN throughout
    store_dtype = {
        dt.FLOAT32: np.float32, dt.FLOAT64: np.float64, dt.FLOAT16: np.float16,
        dt.BFLOAT16: np.uint16, dt.FP8_E4M3: np.uint8,
    }[kind]  # fmt: skip
    shape = (num_blocks, block_size, num_kv_heads, head_dim)
    nan_bits = {dt.BFLOAT16: 0x7FC0, dt.FP8_E4M3: 0x7F}
    fill = nan_bits.get(kind, np.nan)
    key_cache = np.full(shape, fill, dtype=store_dtype)
    value_cache = np.full(shape, fill, dtype=store_dtype)
    block_table = np.full((len(seqs), max_blocks), trap, dtype=np.int32)
    keys, values = [], []
    nxt = 0
    for i, ((ctx, q_len), n) in enumerate(zip(seqs, seq_lens, strict=True)):
        ids = perm[nxt : nxt + blocks_per[i]]
        nxt += blocks_per[i]
        block_table[i, : len(ids)] = ids
        k = rng.standard_normal((n, num_kv_heads, head_dim))
        v = rng.standard_normal((n, num_kv_heads, head_dim))
        ks, vs = dt.encode(k, kind, k_scale), dt.encode(v, kind, v_scale)
        k_val = np.asarray(dt.decode(ks, kind, k_scale), np.float64)
        v_val = np.asarray(dt.decode(vs, kind, v_scale), np.float64)
        pos = np.arange(n)
        key_cache[ids[pos // block_size], pos % block_size] = ks
        value_cache[ids[pos // block_size], pos % block_size] = vs
        if poison_window is not None and q_len:
            dead = pos[pos < ctx - poison_window + 1]  # before the first token's window
            key_cache[ids[dead // block_size], dead % block_size] = fill
            value_cache[ids[dead // block_size], dead % block_size] = fill
        keys.append(k_val)
        values.append(v_val)
    q_lens = [q for _, q in seqs]
    qsl = np.concatenate([[0], np.cumsum(q_lens)]).astype(np.int32)
    q_dtype = np.float64 if kind == dt.FLOAT64 else np.float32
    query = rng.standard_normal((int(qsl[-1]) + pad_tokens, num_heads, head_dim)).astype(q_dtype)
    if kind == dt.FLOAT16:
        query = query.astype(np.float16).astype(np.float32)  # values an fp16 query can hold
    return VarlenCase(
        query, key_cache, value_cache, block_table, qsl, np.array(seq_lens, np.int32),
        keys, values, kind, k_scale, v_scale, mod_args,
    )  # fmt: skip


def rel_err(out: Any, ref: np.ndarray) -> float:
    o = np.asarray(out, np.float64)
    return float(np.linalg.norm(o - ref) / max(np.linalg.norm(ref), 1e-30))


# (cached prefix, new tokens): the four query shapes, mixed in one batch
MIXED = [(0, 13), (9, 7), (22, 1), (5, 1), (17, 4), (0, 1), (30, 8)]
