"""The write-map (slot_mapping -> write_kv_cache) and the read-map (block_table -> gather_kv).

Also pins the storage formats every backend shares: bfloat16 and fp8 e4m3 bits (checked
against torch's own conversions when torch is installed).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from _cases import allocator_case
from hypothesis import given, settings
from hypothesis import strategies as st

from block_allocator import BlockTable
from paged_attn_kernels import (
    FP8_E4M3_MAX,
    KernelInputError,
    decode_bf16,
    decode_fp8_e4m3,
    encode_bf16,
    encode_fp8_e4m3,
    gather_kv,
    slot_mapping,
    write_kv_cache,
)


def _backends() -> list[Any]:
    names: list[Any] = ["numpy"]
    try:
        import numba  # noqa: F401

        names.append("numba")
    except ImportError:
        pass
    try:
        import torch
        import triton  # noqa: F401

        if torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1":
            names.append(pytest.param("triton", marks=pytest.mark.triton))
    except ImportError:
        pass
    return names


BACKENDS = _backends()


# ------------------------------------------------------------------ slot_mapping


def test_slot_formula_matches_block_allocator() -> None:
    table = BlockTable(16, [7, 2, 9])
    positions = list(range(table.capacity))
    slots = slot_mapping(table.block_ids, positions, 16)
    assert slots.tolist() == [table.slot(p) for p in positions]
    assert slots[17] == 2 * 16 + 1  # block_id * block_size + offset


def test_slot_mapping_batched_rows_and_padding() -> None:
    block_table = np.array([[3, 1], [2, 5]], np.int32)
    slots = slot_mapping(block_table, [0, 9, 4, -1], 8, seq_indices=[0, 0, 1, 1])
    assert slots.tolist() == [24, 9, 20, -1]  # negative position -> padding slot -1
    assert slots.dtype == np.int64


def test_slot_mapping_errors_name_the_range() -> None:
    with pytest.raises(KernelInputError, match=r"positions\[1\]=16 is outside \[0, 15\]"):
        slot_mapping([1, 2], [0, 16], 8)
    with pytest.raises(KernelInputError, match="seq_indices is required"):
        slot_mapping(np.zeros((2, 2), np.int32), [0], 8)
    with pytest.raises(KernelInputError, match=r"seq_indices\[0\]=2"):
        slot_mapping(np.zeros((2, 2), np.int32), [0], 8, seq_indices=[2])
    with pytest.raises(KernelInputError, match="block_size"):
        slot_mapping([1], [0], 0)
    with pytest.raises(KernelInputError, match="null block"):
        slot_mapping([[3, 0]], [9], 8, seq_indices=[0])


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(1, 500), min_size=1, max_size=6), min_size=1, max_size=4),
    block_size=st.sampled_from([1, 2, 8, 16]),
    data=st.data(),
)
def test_slot_mapping_equals_the_allocators_definition(rows, block_size, data) -> None:
    # block_allocator.slot_mapping is the definition of record: same name, same signature,
    # same slots, padding and refusals; 0 in a row is the null block, refused by both
    import block_allocator

    table = block_allocator.pad_block_tables(rows)
    n = data.draw(st.integers(0, 12))
    seqs = data.draw(st.lists(st.integers(0, len(rows) - 1), min_size=n, max_size=n))
    pos = [data.draw(st.integers(-2, len(rows[s]) * block_size - 1)) for s in seqs]
    want = block_allocator.slot_mapping(table, pos, block_size, seq_indices=seqs)
    got = slot_mapping(np.array(table, np.int32), pos, block_size, seq_indices=seqs)
    assert got.tolist() == want
    if len(rows) == 1:  # one request's ids, 1-D, seq_indices omitted
        assert slot_mapping(rows[0], pos, block_size).tolist() == block_allocator.slot_mapping(
            rows[0], pos, block_size
        )
    if n and max(pos) >= 0:  # a position in padding: both refuse it
        s = seqs[pos.index(max(pos))]
        if len(rows[s]) < len(table[0]):
            far = len(rows[s]) * block_size
            with pytest.raises(block_allocator.NullBlockAccessError):
                block_allocator.slot_mapping(table, [far], block_size, seq_indices=[s])
            with pytest.raises(KernelInputError, match="null block"):
                slot_mapping(np.array(table, np.int32), [far], block_size, seq_indices=[s])


def test_slot_mapping_torch_matches_numpy() -> None:
    torch = pytest.importorskip(
        "torch", reason="needs torch; for a CPU-only build see the README (Installing)"
    )
    bt = np.array([[3, 1], [2, 5]], np.int32)
    pos, rows = [0, 9, 4, -1], [0, 0, 1, 1]
    expected = slot_mapping(bt, pos, 8, seq_indices=rows)
    got = slot_mapping(torch.from_numpy(bt), torch.tensor(pos), 8, seq_indices=torch.tensor(rows))
    assert got.tolist() == expected.tolist()


# ------------------------------------------------------------------ write


def _fresh(shape: tuple[int, ...], dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    return np.full(shape, np.nan, dtype), np.full(shape, np.nan, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_write_scatters_and_skips_padding(backend: str) -> None:
    rng = np.random.default_rng(0)
    kc, vc = _fresh((6, 4, 2, 16))
    key = rng.standard_normal((5, 2, 16)).astype(np.float32)
    value = rng.standard_normal((5, 2, 16)).astype(np.float32)
    slots = np.array([9, -1, 0, 23, -7])
    write_kv_cache(key, value, kc, vc, slots, backend=backend)
    for t, s in enumerate(slots):
        if s >= 0:
            np.testing.assert_array_equal(kc[s // 4, s % 4], key[t])
            np.testing.assert_array_equal(vc[s // 4, s % 4], value[t])
    written = np.zeros((6, 4), bool)
    written[[2, 0, 5], [1, 0, 3]] = True
    assert np.isnan(kc[~written]).all() and np.isnan(vc[~written]).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_write_other_float_dtypes(backend: str, dtype: Any) -> None:
    rng = np.random.default_rng(1)
    kc, vc = _fresh((3, 8, 1, 64), dtype)
    key = rng.standard_normal((4, 1, 64)).astype(dtype)
    write_kv_cache(key, -key, kc, vc, np.array([0, 8, 23, 5]), backend=backend)
    np.testing.assert_array_equal(kc[2, 7], key[2])
    np.testing.assert_array_equal(vc[1, 0], -key[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_write_fp8_quantises_with_scale(backend: str) -> None:
    if backend == "triton" and os.environ.get("TRITON_INTERPRET") == "1":
        # measured (triton 3.6.0 and 3.7.1): the interpreter's fp32 -> float8e4nv cast truncates
        # subnormals (-0.008956 -> 0x84, torch and RNE give 0x85) and rounds ties up
        # (1.0625 -> 0x39, RNE gives 0x38); CUDA's cvt.rn.satfinite is round-to-nearest-even
        pytest.xfail("Triton interpreter's fp8 cast is not round-to-nearest-even")
    rng = np.random.default_rng(2)
    kc = np.zeros((2, 4, 2, 16), np.uint8)
    vc = np.zeros_like(kc)
    key = (rng.standard_normal((3, 2, 16)) * 2).astype(np.float32)
    key[0, 0, 0] = 1e6  # saturates to +448 * scale, never NaN
    write_kv_cache(key, key, kc, vc, np.array([1, 4, 7]), backend=backend, k_scale=0.5, v_scale=2)
    np.testing.assert_array_equal(kc[0, 1], encode_fp8_e4m3(key[0], 0.5))
    np.testing.assert_array_equal(vc[1, 3], encode_fp8_e4m3(key[2], 2.0))
    assert decode_fp8_e4m3(kc[0, 1, 0, :1])[0] * 0.5 == FP8_E4M3_MAX * 0.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_failed_write_leaves_cache_untouched(backend: str) -> None:
    kc, vc = _fresh((2, 4, 1, 8))
    kc[:] = 1.0
    before = kc.copy()
    key = np.zeros((3, 1, 8), np.float32)
    with pytest.raises(KernelInputError, match=r"slot_mapping\[2\]=8 is outside \[-1, 7\]"):
        write_kv_cache(key, key, kc, vc, np.array([0, 1, 8]), backend=backend)
    with pytest.raises(KernelInputError, match="slot 1 more than once"):
        write_kv_cache(key, key, kc, vc, np.array([1, 3, 1]), backend=backend)
    np.testing.assert_array_equal(kc, before)


def test_write_torch_cpu_tensors_in_place() -> None:
    torch = pytest.importorskip(
        "torch", reason="needs torch; for a CPU-only build see the README (Installing)"
    )
    kc = torch.zeros((2, 4, 1, 8), dtype=torch.bfloat16)
    vc = torch.zeros_like(kc)
    key = torch.randn((2, 1, 8)).to(torch.bfloat16)
    write_kv_cache(key, key * 2, kc, vc, torch.tensor([5, 2]), backend="numba")
    assert torch.equal(kc[1, 1], key[0]) and torch.equal(vc[0, 2], key[1] * 2)


# ------------------------------------------------------------------ gather


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("storage", ["float32", "float16", "fp8"])
def test_gather_reads_back_what_was_written(backend: str, storage: str) -> None:
    case = allocator_case(3, [33, 1, 0, 64], 4, 2, 16, 16, storage)
    k, v = gather_kv(
        case.key_cache, case.value_cache, case.block_table, case.seq_lens,
        backend=backend, k_scale=case.k_scale, v_scale=case.v_scale,
    )  # fmt: skip
    k, v = _np(k), _np(v)
    assert k.shape == (4, case.block_table.shape[1] * 16, 2, 16)
    rtol = 1e-7 if storage == "fp8" else 0  # fp8 comes back as float32 value * scale
    for i, n in enumerate(case.seq_lens):
        np.testing.assert_allclose(k[i, :n], case.key[i, :n], rtol=rtol, atol=0)
        np.testing.assert_allclose(v[i, :n], case.value[i, :n], rtol=rtol, atol=0)
        assert not k[i, n:].any() and not v[i, n:].any()  # zeros, never the poison


def _np(x: Any) -> np.ndarray:
    return x if isinstance(x, np.ndarray) else x.cpu().numpy()


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_gather_into_out(backend: str) -> None:
    case = allocator_case(5, [9, 30], 4, 2, 16, 8, "float32")
    shape = (2, 24, 2, 16)
    out = (np.full(shape, np.nan, np.float32), np.full(shape, np.nan, np.float32))
    got = gather_kv(case.key_cache, case.value_cache, case.block_table, case.seq_lens,
                    max_seq_len=30, out=None, backend=backend)  # fmt: skip
    assert got[0].shape == (2, 30, 2, 16)
    with pytest.raises(KernelInputError, match="max_seq_len=24 is shorter"):
        gather_kv(case.key_cache, case.value_cache, case.block_table, case.seq_lens,
                  max_seq_len=24, out=out, backend=backend)  # fmt: skip
    out = (np.full((2, 30, 2, 16), np.nan, np.float32), np.full((2, 30, 2, 16), np.nan, np.float32))
    res = gather_kv(case.key_cache, case.value_cache, case.block_table, case.seq_lens,
                    max_seq_len=30, out=out, backend=backend)  # fmt: skip
    assert res[0] is out[0] and res[1] is out[1]
    np.testing.assert_array_equal(out[0], got[0])
    np.testing.assert_array_equal(out[1], got[1])
    with pytest.raises(TypeError, match="out arrays must be numpy"):
        gather_kv(case.key_cache, case.value_cache, case.block_table, case.seq_lens,
                  max_seq_len=30, out=(out[0][:1], out[1]), backend=backend)  # fmt: skip


def test_gather_bf16_torch_and_max_seq_len() -> None:
    pytest.importorskip(
        "torch", reason="needs torch; for a CPU-only build see the README (Installing)"
    )
    case = allocator_case(4, [20, 5], 4, 2, 16, 8, "bfloat16")
    k, _ = gather_kv(case.key_cache, case.value_cache, case.block_table, case.seq_lens,
                     max_seq_len=20)  # fmt: skip
    assert k.shape == (2, 20, 2, 16) and str(k.dtype) == "torch.bfloat16"
    np.testing.assert_array_equal(k.double().numpy()[0], case.key[0, :20])
    with pytest.raises(KernelInputError, match="max_seq_len=19 is shorter"):
        gather_kv(case.key_cache, case.value_cache, case.block_table, case.seq_lens, max_seq_len=19)


# ------------------------------------------------------------------ storage formats


def test_fp8_table_and_rounding() -> None:
    table = decode_fp8_e4m3(np.arange(256, dtype=np.uint8))
    assert table[0x7E] == 448 and table[0x01] == 2.0**-9 and table[0x38] == 1.0
    assert np.isnan(table[0x7F]) and np.isnan(table[0xFF])
    assert encode_fp8_e4m3([np.nan])[0] == 0x7F
    assert encode_fp8_e4m3([1e9, -1e9]).tolist() == [0x7E, 0xFE]  # saturate, no NaN
    # 1.0625 lies halfway between 1.0 (0x38, even) and 1.125 (0x39): ties go to even
    assert encode_fp8_e4m3([1.0625, 1.1875]).tolist() == [0x38, 0x3A]


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(-500, 500, allow_nan=False, width=32), min_size=1, max_size=64))
def test_fp8_encode_matches_torch(values: list[float]) -> None:
    torch = pytest.importorskip(
        "torch", reason="needs torch; for a CPU-only build see the README (Installing)"
    )
    x = np.array(values, np.float32)
    ours = encode_fp8_e4m3(x)
    theirs = torch.from_numpy(np.clip(x, -448, 448)).to(torch.float8_e4m3fn).view(torch.uint8)
    # +0 and -0 are both zero; compare values, then bits for non-zeros
    np.testing.assert_array_equal(decode_fp8_e4m3(ours), decode_fp8_e4m3(theirs.numpy()))


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(allow_nan=False, width=32), min_size=1, max_size=64))
def test_bf16_encode_matches_torch(values: list[float]) -> None:
    torch = pytest.importorskip(
        "torch", reason="needs torch; for a CPU-only build see the README (Installing)"
    )
    x = np.array(values, np.float32)
    theirs = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(encode_bf16(x), theirs)
    np.testing.assert_array_equal(decode_bf16(theirs), torch.from_numpy(x).to(torch.bfloat16)
                                  .float().numpy())  # fmt: skip
