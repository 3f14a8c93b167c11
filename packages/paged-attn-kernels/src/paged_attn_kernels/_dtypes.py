"""Storage dtypes of the KV cache and how every backend reads them.

numpy has no bfloat16 or float8, so they travel as their raw bits: bfloat16 as ``uint16``
(the top half of a float32) and fp8 e4m3fn as ``uint8`` (1 sign, 4 exponent bits with bias
7, 3 mantissa bits, no infinities, NaN = 0x7f/0xff, largest finite value 448). torch
tensors and ml_dtypes arrays of those dtypes are viewed as their bits without a copy.

fp8 follows vLLM's ``kv_cache_dtype="fp8"`` (csrc/quantization/fp8, ``scaled_fp8_conversion``):
``stored = e4m3(clamp(x / scale, -448, 448))`` with the division in float32, rounding to
nearest even, and
``read = float(stored) * scale`` with one per-tensor scale for K and one for V.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

# The storage kinds every backend understands.
FLOAT16: Final = "float16"
FLOAT32: Final = "float32"
FLOAT64: Final = "float64"
BFLOAT16: Final = "bfloat16"
FP8_E4M3: Final = "fp8_e4m3"
FLOAT_KINDS: Final = (FLOAT16, FLOAT32, FLOAT64)
BITS_KINDS: Final = (BFLOAT16, FP8_E4M3)

FP8_E4M3_MAX: Final = 448.0


def _build_e4m3_table() -> npt.NDArray[np.float32]:
    codes = np.arange(256, dtype=np.int64)
    sign = np.where(codes >> 7, -1.0, 1.0)
    exponent = (codes >> 3) & 0xF
    mantissa = codes & 0x7
    normal = (1.0 + mantissa / 8.0) * np.exp2(exponent - 7.0)
    subnormal = (mantissa / 8.0) * np.exp2(-6.0)
    table = sign * np.where(exponent == 0, subnormal, normal)
    table[(codes & 0x7F) == 0x7F] = np.nan
    return table.astype(np.float32)


# [256] value of every e4m3fn bit pattern
E4M3_TABLE: Final = _build_e4m3_table()
# [127] the non-negative finite values, increasing with their code 0x00..0x7e
_E4M3_POSITIVE: Final = E4M3_TABLE[:0x7F].astype(np.float64)


def decode_fp8_e4m3(bits: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Value of each e4m3fn byte (scale not applied)."""
    return E4M3_TABLE[bits]


def encode_fp8_e4m3(x: npt.ArrayLike, scale: float = 1.0) -> npt.NDArray[np.uint8]:
    """e4m3fn bytes of ``x / scale``: saturate to +-448, round to nearest even, NaN -> 0x7f.

    The division happens in float32, as in vLLM's and our Triton write kernels, so that all
    backends store the same byte.
    """
    with np.errstate(over="ignore"):
        y = (np.asarray(x, dtype=np.float32) / np.float32(scale)).astype(np.float64)
    mag = np.minimum(np.abs(y), FP8_E4M3_MAX)
    hi = np.searchsorted(_E4M3_POSITIVE, mag, side="left").clip(0, 0x7E)
    lo = np.maximum(hi - 1, 0)
    d_hi = _E4M3_POSITIVE[hi] - mag
    d_lo = mag - _E4M3_POSITIVE[lo]
    # nearest code; on an exact tie the even code (mantissa lsb 0) wins
    take_lo = (d_lo < d_hi) | ((d_lo == d_hi) & (lo % 2 == 0))
    code = np.where(take_lo, lo, hi).astype(np.uint8)
    code |= np.where(np.signbit(y), 0x80, 0).astype(np.uint8)
    code[np.isnan(y)] = 0x7F
    return code


def decode_bf16(bits: npt.NDArray[np.uint16]) -> npt.NDArray[np.float32]:
    """float32 value of each bfloat16 bit pattern (exact)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def encode_bf16(x: npt.ArrayLike) -> npt.NDArray[np.uint16]:
    """bfloat16 bits of ``x`` rounded to nearest even (NaN stays NaN)."""
    f = np.ascontiguousarray(x, dtype=np.float32)
    b = f.view(np.uint32).astype(np.uint64)
    rounded = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(f), np.uint16(0x7FC0), rounded)


_BF16_TABLE: list[npt.NDArray[np.float32]] = []


def bf16_table() -> npt.NDArray[np.float32]:
    """[65536] value of every bfloat16 bit pattern (built once, 256 KiB)."""
    if not _BF16_TABLE:
        _BF16_TABLE.append(decode_bf16(np.arange(65536, dtype=np.uint16)))
    return _BF16_TABLE[0]


def decode(raw: npt.NDArray[Any], kind: str, scale: float = 1.0) -> npt.NDArray[np.floating[Any]]:
    """Float values of ``raw`` stored as ``kind`` (fp8 multiplied by ``scale``)."""
    if kind == FP8_E4M3:
        values = decode_fp8_e4m3(raw)
        return values if scale == 1.0 else values * np.float32(scale)
    if kind == BFLOAT16:
        return decode_bf16(raw)
    return raw


def encode(x: npt.NDArray[Any], kind: str, scale: float = 1.0) -> npt.NDArray[Any]:
    """Storage form of float ``x`` for a cache of ``kind`` (bits for bf16/fp8)."""
    if kind == FP8_E4M3:
        return encode_fp8_e4m3(x, scale)
    if kind == BFLOAT16:
        return encode_bf16(x)
    return x.astype(np.dtype(kind), copy=False)
