"""Phase 02 lab-06 (paged attention in numpy): the data path a learner writes, graded.

The lab builds ``slot_mapping``, scatters K/V into a shuffled physical cache, gathers it
back through the block table and proves paged attention equals dense attention to 1e-12,
with a poisoned tail that makes masking bugs show. A learner's module (numpy, or numba
functions that take numpy arrays) defines::

    slot_mapping(block_table, positions, block_size) -> int array [num_tokens]
    write_kv_cache(key, value, key_cache, value_cache, slot_mapping) -> None
    gather_kv(key_cache, value_cache, block_table, seq_lens) -> (keys, values)
    paged_attention(query, key_cache, value_cache, block_table, seq_lens) -> out

Shapes (vLLM V1's flash layout): caches ``[num_blocks, block_size, num_kv_heads,
head_dim]``; ``key``/``value`` ``[num_tokens, num_kv_heads, head_dim]``; ``block_table``
``[num_seqs, max_blocks_per_seq]`` (``slot_mapping`` takes one sequence's row);
``query``/``out`` ``[num_seqs, num_heads, head_dim]``; ``keys``/``values`` ``[num_seqs,
>= max(seq_lens), num_kv_heads, head_dim]`` (positions past a sequence's length are not
graded). ``write_kv_cache`` writes in place and skips negative slots (vLLM's padding
tokens). ``paged_attention`` uses ``scale = 1 / sqrt(head_dim)`` and grouped-query heads:
query head ``h`` reads KV head ``h // (num_heads // num_kv_heads)``. Everything is float64.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from block_allocator.grading import Check, CheckFailed
from paged_attn_kernels.kit.cases import Case, make_case, reference_slots

__all__ = ["ATOL", "CHECKS", "CONTRACT"]

CONTRACT = """\
  slot_mapping(block_table, positions, block_size) -> int array [num_tokens]
  write_kv_cache(key, value, key_cache, value_cache, slot_mapping) -> None   (in place)
  gather_kv(key_cache, value_cache, block_table, seq_lens) -> (keys, values)
  paged_attention(query, key_cache, value_cache, block_table, seq_lens) -> out
caches [num_blocks, block_size, num_kv_heads, head_dim]; block_table [num_seqs, max_blocks]
(slot_mapping: one row); query/out [num_seqs, num_heads, head_dim]; float64 numpy arrays;
negative slots are padding (not written); scale 1/sqrt(head_dim); query head h reads KV
head h // (num_heads // num_kv_heads)."""

ATOL = 1e-12  # the lab's bound, float64 throughout


def _copy(case: Case) -> tuple[Any, ...]:
    # fresh copies per call: a kernel that writes into its inputs cannot spoil the next check
    return (
        case.query.copy(),
        case.key_cache.copy(),
        case.value_cache.copy(),
        case.block_table.copy(),
        case.seq_lens.copy(),
    )


def _attention(m: ModuleType, case: Case, what: str, atol: float = ATOL) -> None:
    out = np.asarray(m.paged_attention(*_copy(case)), dtype=np.float64)
    if out.shape != case.expected.shape:
        raise CheckFailed(f"{what}: out has shape {out.shape}, expected {case.expected.shape}")
    bad = ~np.isfinite(out)
    if bad.any():
        seq, head = np.argwhere(bad)[0][:2]
        why = (
            "the kernel read a poisoned slot: a block-table entry past the last block, or a "
            "slot past seq_len in the last block that was not masked"
            if np.isnan(case.key_cache).any()
            else "exp() overflowed (subtract the running max before exp) or 0 was divided by 0"
        )
        raise CheckFailed(f"{what}: out[{seq}, {head}] is not finite ({case.describe()}); {why}")
    err = np.abs(out - case.expected)
    if err.max() > atol:
        seq, head = np.unravel_index(int(err.argmax()), err.shape)[:2]
        raise CheckFailed(
            f"{what}: max |paged - dense| = {err.max():.2e} > {atol:.0e} at sequence {seq}, "
            f"query head {head} ({case.describe()})"
        )


def _slot_formula(m: ModuleType) -> None:
    case = make_case(1, [37, 5, 64], block_size=16)
    for i, n in enumerate(case.seq_lens.tolist()):
        for positions in (np.arange(n), np.random.default_rng(i).permutation(n)):
            want = reference_slots(case.block_table[i], positions, 16)
            got = np.asarray(m.slot_mapping(case.block_table[i].copy(), positions.copy(), 16))
            if got.shape != want.shape or not np.array_equal(got, want):
                raise CheckFailed(
                    f"slot_mapping(block_table={case.block_table[i].tolist()}, positions="
                    f"{positions[:6].tolist()}..., 16) gave {got[:6].tolist()}..., expected "
                    f"{want[:6].tolist()}... (block_table[pos // 16] * 16 + pos % 16)"
                )


def _write(m: ModuleType, case: Case, slots_by_seq: list[Any]) -> tuple[Any, Any]:
    kc = np.full_like(case.key_cache, np.nan)
    vc = np.full_like(case.value_cache, np.nan)
    for k, v, slots in zip(case.keys, case.values, slots_by_seq, strict=True):
        m.write_kv_cache(k.copy(), v.copy(), kc, vc, np.asarray(slots, np.int64))
    return kc, vc


def _write_scatter(m: ModuleType) -> None:
    case = make_case(2, [37, 5, 61], block_size=8, num_kv_heads=2)
    slots = [
        reference_slots(case.block_table[i], np.arange(n), 8) for i, n in enumerate([37, 5, 61])
    ]
    kc, vc = _write(m, case, slots)
    written = np.zeros(kc.shape[:2], bool)
    for i, s in enumerate(slots):
        blk, off = s // 8, s % 8
        written[blk, off] = True
        if not (
            np.array_equal(kc[blk, off], case.keys[i])
            and np.array_equal(vc[blk, off], case.values[i])
        ):
            raise CheckFailed(
                f"after write_kv_cache, sequence {i}'s K/V rows are not at their slots "
                "(block = slot // block_size, offset = slot % block_size; the caches are written "
                "in place)"
            )
    if not (np.isnan(kc[~written]).all() and np.isnan(vc[~written]).all()):
        raise CheckFailed("write_kv_cache changed slots outside slot_mapping")


def _write_padding(m: ModuleType) -> None:
    case = make_case(3, [20], block_size=8, num_kv_heads=1, spare_blocks=2)
    slots = reference_slots(case.block_table[0], np.arange(20), 8)
    slots[[3, 11, 19]] = -1  # padding tokens of a batch: vLLM skips slot -1
    kc, vc = _write(m, case, [slots])
    keep = slots >= 0
    blk, off = slots[keep] // 8, slots[keep] % 8
    if not (
        np.array_equal(kc[blk, off], case.keys[0][keep])
        and np.array_equal(vc[blk, off], case.values[0][keep])
    ):
        raise CheckFailed("write_kv_cache with -1 slots wrote the real tokens to wrong slots")
    written = np.zeros(kc.shape[:2], bool)
    written[blk, off] = True
    if not (np.isnan(kc[~written]).all() and np.isnan(vc[~written]).all()):
        raise CheckFailed(
            "write_kv_cache wrote a padding token (slot -1): with numpy indexing, -1 is the "
            "cache's last slot; skip negative slots"
        )


def _gather(m: ModuleType, case: Case, what: str) -> None:
    keys, values = m.gather_kv(
        case.key_cache.copy(),
        case.value_cache.copy(),
        case.block_table.copy(),
        case.seq_lens.copy(),
    )
    keys, values = np.asarray(keys), np.asarray(values)
    n_max = int(case.seq_lens.max())
    if keys.ndim != 4 or keys.shape[0] != len(case.seq_lens) or keys.shape[1] < n_max:
        raise CheckFailed(
            f"{what}: keys shape {keys.shape}, expected [{len(case.seq_lens)}, >= {n_max}, ...]"
        )
    for i, n in enumerate(case.seq_lens.tolist()):
        if not (
            np.array_equal(keys[i, :n], case.keys[i])
            and np.array_equal(values[i, :n], case.values[i])
        ):
            bad = int(np.argmax(np.any(keys[i, :n] != case.keys[i], axis=(1, 2))))
            raise CheckFailed(
                f"{what}: sequence {i} position {bad} gathered the wrong row ({case.describe()})"
            )


def _gather_roundtrip(m: ModuleType) -> None:
    _gather(m, make_case(4, [37, 5, 61, 16], block_size=8), "gather_kv")


def _gather_poisoned(m: ModuleType) -> None:
    _gather(m, make_case(5, [3, 40, 17], block_size=16, poison=True), "gather_kv, poisoned pool")


def _mha(m: ModuleType) -> None:
    _attention(m, make_case(6, [32, 64, 16], block_size=16), "paged_attention (MHA, whole blocks)")


def _ragged(m: ModuleType) -> None:
    _attention(m, make_case(7, [37, 5, 61, 1], block_size=8), "paged_attention (ragged lengths)")


def _gqa(m: ModuleType) -> None:
    case = make_case(8, [32, 48], block_size=16, num_kv_heads=2, num_heads=8)
    _attention(m, case, "paged_attention (GQA: 8 query heads on 2 KV heads)")


def _mqa(m: ModuleType) -> None:
    case = make_case(9, [24, 40], block_size=8, num_kv_heads=1, num_heads=4)
    _attention(m, case, "paged_attention (MQA: 4 query heads on 1 KV head)")


def _poisoned(m: ModuleType) -> None:
    case = make_case(10, [37, 5, 61, 1], block_size=16, num_kv_heads=2, num_heads=4, poison=True)
    _attention(m, case, "paged_attention (poisoned unused slots and table padding)")


def _block_sizes(m: ModuleType) -> None:
    _attention(m, make_case(11, [7, 1, 30], block_size=1), "paged_attention (block_size 1)")
    _attention(
        m, make_case(12, [100, 3], block_size=64, poison=True), "paged_attention (block_size 64)"
    )


def _long(m: ModuleType) -> None:
    case = make_case(13, [1500, 700], block_size=16, num_kv_heads=2, num_heads=4, poison=True)
    _attention(m, case, "paged_attention (1,500 tokens over 94 scattered blocks)")


def _stable(m: ModuleType) -> None:
    case = make_case(14, [50, 9], block_size=16, query_scale=600.0)
    _attention(
        m,
        case,
        "paged_attention (scores above 700, where exp() overflows in float64)",
        atol=1e-9,
    )


def _check(
    name: str, summary: str, needs: tuple[str, ...], fn: Callable[[ModuleType], None]
) -> Check:
    return Check(name=name, lab="lab06", summary=summary, needs=needs, run=fn)


ATTN = ("paged_attention",)

CHECKS: dict[str, tuple[Check, ...]] = {
    "lab06": (
        _check(
            "slot_formula",
            "slot = block_table[pos // bs] * bs + pos % bs on a shuffled table",
            ("slot_mapping",),
            _slot_formula,
        ),
        _check(
            "write_scatter",
            "write_kv_cache puts each token at its slot and nothing else",
            ("write_kv_cache",),
            _write_scatter,
        ),
        _check(
            "write_skips_padding",
            "slot -1 (padding) is skipped, not written to the last slot",
            ("write_kv_cache",),
            _write_padding,
        ),
        _check(
            "gather_roundtrip",
            "gather_kv returns what was written, ragged and shuffled",
            ("gather_kv",),
            _gather_roundtrip,
        ),
        _check(
            "gather_poisoned",
            "gather_kv reads only owned slots of a NaN-poisoned pool",
            ("gather_kv",),
            _gather_poisoned,
        ),
        _check("attention_mha", "paged == dense to 1e-12, whole blocks, MHA", ATTN, _mha),
        _check(
            "attention_ragged", "ragged lengths: the last block is masked at seq_len", ATTN, _ragged
        ),
        _check("attention_gqa", "GQA: query head h reads KV head h // group", ATTN, _gqa),
        _check("attention_mqa", "MQA: every query head reads the one KV head", ATTN, _mqa),
        _check(
            "attention_poisoned",
            "NaN in unused slots and table padding never reaches out",
            ATTN,
            _poisoned,
        ),
        _check("attention_block_sizes", "block_size 1 and 64", ATTN, _block_sizes),
        _check("attention_long", "a 1,500-token sequence over scattered blocks", ATTN, _long),
        _check(
            "attention_stable", "large scores: softmax subtracts the running max", ATTN, _stable
        ),
    )
}
