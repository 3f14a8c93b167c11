"""Block arithmetic and KV-cache layer specs: how many bytes one block of one layer costs.

Mirrors vLLM's `vllm/v1/kv_cache_interface.py` (`FullAttentionSpec`, `SlidingWindowSpec`,
`MLAAttentionSpec`, `MambaSpec`) and `cdiv` from `vllm/utils`. One *page* is one block of
`block_size` tokens for one layer on one tensor-parallel rank; the capacity planner carves
GPU memory into pages and frag-sim turns a byte budget into blocks with the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "FullAttentionSpec",
    "KVCacheSpec",
    "MLAAttentionSpec",
    "MambaSpec",
    "SlidingWindowSpec",
    "blocks_needed",
    "cdiv",
    "dtype_size",
    "kv_heads_per_rank",
]

_DTYPE_BYTES: dict[str, int] = {
    "float64": 8, "fp64": 8, "double": 8,
    "float32": 4, "fp32": 4, "float": 4,
    "float16": 2, "fp16": 2, "half": 2,
    "bfloat16": 2, "bf16": 2,
    "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "float8_e4m3fn": 1, "float8_e5m2": 1,
    "int8": 1, "uint8": 1,
}  # fmt: skip

MambaCacheMode = Literal["none", "align", "all"]


def _check_int(name: str, value: object, minimum: int) -> int:
    # bool is an int subclass; True as a block size is a bug, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def cdiv(a: int, b: int) -> int:
    """Ceiling division for integers: the number of size-`b` pieces that cover `a`."""
    _check_int("b", b, 1)
    return -(a // -b)


def blocks_needed(num_tokens: int, block_size: int) -> int:
    """Blocks of `block_size` tokens needed to hold `num_tokens` tokens."""
    _check_int("num_tokens", num_tokens, 0)
    _check_int("block_size", block_size, 1)
    return -(num_tokens // -block_size)


def dtype_size(dtype: str) -> int:
    """Bytes per element of a KV-cache or model dtype name (vLLM and torch spellings)."""
    if not isinstance(dtype, str):
        raise TypeError(f"dtype must be a str, got {type(dtype).__name__}")
    key = dtype.lower().removeprefix("torch.")
    try:
        return _DTYPE_BYTES[key]
    except KeyError:
        raise ValueError(
            f"unknown dtype {dtype!r}; accepted: {', '.join(sorted(_DTYPE_BYTES))}"
        ) from None


def kv_heads_per_rank(num_kv_heads: int, tensor_parallel_size: int) -> int:
    """KV heads held by one tensor-parallel rank (vLLM `ModelConfig.get_num_kv_heads`).

    Heads are split evenly while there are at least as many as ranks; beyond that each
    head is replicated, so per-rank KV memory stops shrinking.
    """
    _check_int("num_kv_heads", num_kv_heads, 1)
    _check_int("tensor_parallel_size", tensor_parallel_size, 1)
    if num_kv_heads % tensor_parallel_size and tensor_parallel_size % num_kv_heads:
        raise ValueError(
            f"tensor_parallel_size={tensor_parallel_size} must divide num_kv_heads="
            f"{num_kv_heads} or be a multiple of it"
        )
    return max(1, num_kv_heads // tensor_parallel_size)


@dataclass(frozen=True, slots=True)
class _SpecBase:
    block_size: int

    def __post_init__(self) -> None:
        _check_int("block_size", self.block_size, 1)

    @property
    def real_page_size_bytes(self) -> int:
        raise NotImplementedError

    @property
    def page_size_bytes(self) -> int:
        """Bytes of one block of one layer on one rank (padded size when set)."""
        padded: int | None = getattr(self, "page_size_padded", None)
        return self.real_page_size_bytes if padded is None else padded

    def _check_padding(self) -> None:
        padded: int | None = getattr(self, "page_size_padded", None)
        if padded is not None:
            _check_int("page_size_padded", padded, self.real_page_size_bytes)

    def max_memory_usage_bytes(
        self, max_model_len: int, max_num_batched_tokens: int | None = None
    ) -> int:
        """Bytes one request of `max_model_len` tokens can hold in this layer."""
        _check_int("max_model_len", max_model_len, 1)
        return blocks_needed(max_model_len, self.block_size) * self.page_size_bytes


@dataclass(frozen=True, slots=True)
class FullAttentionSpec(_SpecBase):
    """Full attention: every token's K and V for `num_kv_heads` heads (per rank)."""

    num_kv_heads: int
    head_size: int
    dtype: str = "bfloat16"
    head_size_v: int | None = None
    page_size_padded: int | None = None

    def __post_init__(self) -> None:
        _check_int("block_size", self.block_size, 1)
        _check_int("num_kv_heads", self.num_kv_heads, 1)
        _check_int("head_size", self.head_size, 1)
        if self.head_size_v is not None:
            _check_int("head_size_v", self.head_size_v, 1)
        dtype_size(self.dtype)
        self._check_padding()

    @property
    def real_page_size_bytes(self) -> int:
        head_v = self.head_size if self.head_size_v is None else self.head_size_v
        # K and V side by side: block_size x heads x (head_size + head_size_v) elements.
        return (
            self.block_size * self.num_kv_heads * (self.head_size + head_v) * dtype_size(self.dtype)
        )


@dataclass(frozen=True, slots=True)
class SlidingWindowSpec(FullAttentionSpec):
    """Sliding-window attention: same page as full attention, bounded usage per request."""

    sliding_window: int = 0

    def __post_init__(self) -> None:
        FullAttentionSpec.__post_init__(self)
        _check_int("sliding_window", self.sliding_window, 1)

    def max_memory_usage_bytes(
        self, max_model_len: int, max_num_batched_tokens: int | None = None
    ) -> int:
        _check_int("max_model_len", max_model_len, 1)
        batched = max_model_len if max_num_batched_tokens is None else max_num_batched_tokens
        _check_int("max_num_batched_tokens", batched, 1)
        # vLLM keeps window-1 old tokens plus one step's new tokens, and one extra block
        # because the window need not start on a block boundary.
        tokens = min(self.sliding_window - 1 + batched, max_model_len)
        return (blocks_needed(tokens, self.block_size) + 1) * self.page_size_bytes


@dataclass(frozen=True, slots=True)
class MLAAttentionSpec(_SpecBase):
    """Multi-head latent attention (DeepSeek-V2/V3): one compressed latent per token.

    The latent serves both K and V (no factor 2) and is replicated on every
    tensor-parallel rank rather than sharded.
    """

    kv_lora_rank: int
    qk_rope_head_dim: int
    dtype: str = "bfloat16"
    page_size_padded: int | None = None

    def __post_init__(self) -> None:
        _check_int("block_size", self.block_size, 1)
        _check_int("kv_lora_rank", self.kv_lora_rank, 1)
        _check_int("qk_rope_head_dim", self.qk_rope_head_dim, 0)
        dtype_size(self.dtype)
        self._check_padding()

    @property
    def head_size(self) -> int:
        return self.kv_lora_rank + self.qk_rope_head_dim

    @property
    def real_page_size_bytes(self) -> int:
        return self.block_size * self.head_size * dtype_size(self.dtype)


@dataclass(frozen=True, slots=True)
class MambaSpec(_SpecBase):
    """Mamba / linear-attention state: fixed-size conv + SSM state per request.

    `shapes` are the per-rank state tensor shapes (already tensor-parallel sharded), one
    dtype per shape. `mamba_cache_mode` is vLLM's: "none" keeps one state per request,
    "align" two, "all" one per block of tokens (prefix caching of states).
    """

    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]
    page_size_padded: int | None = None
    mamba_cache_mode: MambaCacheMode = "none"

    def __post_init__(self) -> None:
        _check_int("block_size", self.block_size, 1)
        if not self.shapes or len(self.shapes) != len(self.dtypes):
            raise ValueError(
                f"shapes and dtypes must be non-empty and of equal length, got "
                f"{len(self.shapes)} shapes and {len(self.dtypes)} dtypes"
            )
        for shape in self.shapes:
            for dim in shape:
                _check_int("shapes dimension", dim, 1)
        for dtype in self.dtypes:
            dtype_size(dtype)
        if self.mamba_cache_mode not in ("none", "align", "all"):
            raise ValueError(
                f"mamba_cache_mode must be 'none', 'align' or 'all', got {self.mamba_cache_mode!r}"
            )
        self._check_padding()

    @property
    def real_page_size_bytes(self) -> int:
        return sum(
            math.prod(shape) * dtype_size(dt)
            for shape, dt in zip(self.shapes, self.dtypes, strict=True)
        )

    def max_memory_usage_bytes(
        self, max_model_len: int, max_num_batched_tokens: int | None = None
    ) -> int:
        _check_int("max_model_len", max_model_len, 1)
        if self.mamba_cache_mode == "all":
            pages = blocks_needed(max_model_len, self.block_size)
        else:
            pages = 1 if self.mamba_cache_mode == "none" else 2
        return pages * self.page_size_bytes


KVCacheSpec = FullAttentionSpec | SlidingWindowSpec | MLAAttentionSpec | MambaSpec
