"""The numba decode kernel's own pieces: the vectorised float32 exp, and the block-at-a-time
scoring (four query heads and two tokens per pass, remainders for any group size, odd and
partial blocks) against the dense float64 oracle over random shapes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("numba")

from paged_attn_kernels import _dtypes as dt
from paged_attn_kernels import _numba, paged_attention

try:  # tests/ may or may not be a package
    from ._cases import allocator_case, dense, rel_err
except ImportError:
    from _cases import allocator_case, dense, rel_err  # type: ignore[no-redef]


def _exp32(x: np.ndarray) -> np.ndarray:
    y = np.array(x, np.float32)
    _numba._exp(y, np.empty(y.size, np.int32), True)
    return y


def test_float32_exp_is_within_two_ulp_of_libm() -> None:
    x = np.concatenate([-np.geomspace(1e-8, 87.0, 20000), np.linspace(-87.0, 0.0, 20001)])
    x = x.astype(np.float32)
    ours = _exp32(x).astype(np.float64)
    ref = np.exp(x.astype(np.float64))
    ulp = np.spacing(ref.astype(np.float32)).astype(np.float64)
    assert (np.abs(ours - ref) <= 2 * ulp).all(), float((np.abs(ours - ref) / ulp).max())


def test_float32_exp_edges() -> None:
    out = _exp32(np.array([0.0, -0.0, -np.inf, -1e30, -87.0, -200.0], np.float32))
    assert out[0] == 1.0 and out[1] == 1.0
    # far below float32's normal range the result is a tiny positive normal, never NaN;
    # the kernel only meets such inputs as the first block's rescale of an empty sum
    assert np.isfinite(out).all() and (out[2:] >= 0).all() and (out[2:] < 1e-37).all()


def _widened(codes: np.ndarray, mode: int, scale: float = 1.0) -> np.ndarray:
    src = np.stack([codes, codes[::-1]])  # two blocks seen flat: block 0 is widened
    out_bits = np.full(codes.size + 3, 0xDEADBEEF, np.uint32)
    _numba._widen(src, 0, codes.size, mode, np.float32(scale), out_bits, out_bits.view(np.float32))
    assert (out_bits[codes.size :] == 0xDEADBEEF).all()  # nothing past count is written
    return out_bits[: codes.size].view(np.float32)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal values and signs (so +0 != -0), NaN where the other has NaN."""
    both_nan = np.isnan(a) & np.isnan(b)
    return bool(((a == b) & (np.signbit(a) == np.signbit(b)) | both_nan).all())


def test_widen_float16_is_exact_for_every_bit_pattern() -> None:
    codes = np.arange(65536, dtype=np.uint16)
    assert _same(_widened(codes, _numba._FP16), codes.view(np.float16).astype(np.float32))


def test_widen_bfloat16_is_exact_for_every_bit_pattern() -> None:
    codes = np.arange(65536, dtype=np.uint16)
    assert _same(_widened(codes, _numba._BF16), dt.decode_bf16(codes))


@pytest.mark.parametrize("scale", [1.0, 0.02, 3.5, 1e-30])
def test_widen_fp8_matches_the_scaled_e4m3_table(scale: float) -> None:
    codes = np.arange(256, dtype=np.uint8)
    ref = dt.E4M3_TABLE * np.float32(scale)  # the table the library documents, in float32
    assert _same(_widened(codes, _numba._FP8, scale), ref)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seq_lens=st.lists(st.integers(0, 70), min_size=1, max_size=4),
    group=st.integers(1, 9),
    kv_heads=st.sampled_from([1, 2, 3]),
    head_dim=st.sampled_from([4, 8, 12, 32]),
    block_size=st.sampled_from([1, 2, 3, 5, 16]),
    num_splits=st.none() | st.integers(1, 6),
    storage=st.sampled_from(["float32", "float64", "float16", "fp8"]),
    seed=st.integers(0, 2**16),
)
def test_decode_matches_dense_oracle(
    seq_lens: list[int],
    group: int,
    kv_heads: int,
    head_dim: int,
    block_size: int,
    num_splits: int | None,
    storage: str,
    seed: int,
) -> None:
    """Unowned slots hold NaN/inf poison (allocator_case): any read past a sequence's
    length, or of a stale token in a partial block, would show up as a non-finite output."""
    case = allocator_case(seed, seq_lens, group * kv_heads, kv_heads, head_dim, block_size,
                          storage)  # fmt: skip
    out = paged_attention(
        case.query, case.key_cache, case.value_cache, case.block_table, case.seq_lens,
        backend="numba", num_splits=num_splits, k_scale=case.k_scale, v_scale=case.v_scale,
    )  # fmt: skip
    assert np.isfinite(out).all()
    # the oracle reads the same stored values; float16 queries round to float16 on output
    assert rel_err(out, dense(case)) < {"float64": 1e-12, "float16": 2e-3}.get(storage, 1e-5)
