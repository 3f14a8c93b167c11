"""Page sizes and per-request maxima against hand-computed vLLM numbers."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from block_allocator.kv_cache_spec import (
    FullAttentionSpec,
    MambaSpec,
    MLAAttentionSpec,
    SlidingWindowSpec,
    blocks_needed,
    cdiv,
    dtype_size,
    kv_heads_per_rank,
)


@given(st.integers(0, 10**9), st.integers(1, 10**4))
def test_cdiv_is_the_smallest_cover(a: int, b: int) -> None:
    q = cdiv(a, b)
    assert q * b >= a
    assert (q - 1) * b < a or q == 0


def test_blocks_needed_edges() -> None:
    assert blocks_needed(0, 16) == 0
    assert blocks_needed(1, 16) == 1
    assert blocks_needed(16, 16) == 1
    assert blocks_needed(17, 16) == 2
    with pytest.raises(ValueError, match="num_tokens"):
        blocks_needed(-1, 16)
    with pytest.raises(ValueError, match="block_size"):
        blocks_needed(4, 0)
    with pytest.raises(TypeError, match="block_size"):
        blocks_needed(4, True)


def test_dtype_sizes_and_unknown() -> None:
    assert dtype_size("bfloat16") == dtype_size("torch.bfloat16") == 2
    assert dtype_size("fp8_e4m3") == 1
    assert dtype_size("float32") == 4
    with pytest.raises(ValueError, match="accepted"):
        dtype_size("fp7")


def test_llama3_8b_page() -> None:
    # Llama-3-8B: 8 KV heads x 128, bf16, block 16 -> 2*16*8*128*2 = 64 KiB per layer.
    spec = FullAttentionSpec(block_size=16, num_kv_heads=8, head_size=128, dtype="bfloat16")
    assert spec.page_size_bytes == 65536
    assert spec.max_memory_usage_bytes(8192) == 512 * 65536
    fp8 = dataclasses.replace(spec, dtype="fp8")
    assert fp8.page_size_bytes == spec.page_size_bytes // 2


def test_tensor_parallel_heads() -> None:
    assert kv_heads_per_rank(8, 2) == 4
    assert kv_heads_per_rank(8, 16) == 1  # replicated beyond the head count
    with pytest.raises(ValueError, match="tensor_parallel_size"):
        kv_heads_per_rank(8, 3)


def test_mla_deepseek_v2_lite_page() -> None:
    # vLLM issue #15871: 27 layers x 2048 blocks x 16 x 576 x 2 B = 0.95 GiB at 32768.
    spec = MLAAttentionSpec(block_size=16, kv_lora_rank=512, qk_rope_head_dim=64)
    assert spec.head_size == 576
    assert spec.page_size_bytes == 16 * 576 * 2
    total = 27 * spec.max_memory_usage_bytes(32768)
    assert round(total / 2**30, 2) == 0.95


def test_sliding_window_usage_is_bounded() -> None:
    spec = SlidingWindowSpec(
        block_size=16, num_kv_heads=8, head_size=64, dtype="bfloat16", sliding_window=128
    )
    page = spec.page_size_bytes
    # min(128 - 1 + 1024, 8192) = 1151 tokens -> 72 blocks, +1 for the unaligned window start.
    assert spec.max_memory_usage_bytes(8192, 1024) == 73 * page
    # A short max_model_len caps it.
    assert spec.max_memory_usage_bytes(100, 1024) == (cdiv(100, 16) + 1) * page
    with pytest.raises(ValueError, match="sliding_window"):
        SlidingWindowSpec(block_size=16, num_kv_heads=8, head_size=64)


def test_mamba_page_and_modes() -> None:
    spec = MambaSpec(block_size=16, shapes=((3, 4096), (64, 128, 16)), dtypes=("bf16", "fp32"))
    assert spec.page_size_bytes == 3 * 4096 * 2 + 64 * 128 * 16 * 4
    assert spec.max_memory_usage_bytes(10_000) == spec.page_size_bytes
    align = dataclasses.replace(spec, mamba_cache_mode="align")
    assert align.max_memory_usage_bytes(10_000) == 2 * spec.page_size_bytes
    every = dataclasses.replace(spec, mamba_cache_mode="all")
    assert every.max_memory_usage_bytes(10_000) == cdiv(10_000, 16) * spec.page_size_bytes
    with pytest.raises(ValueError, match="equal length"):
        MambaSpec(block_size=16, shapes=((1,),), dtypes=())


def test_padding_overrides_and_is_checked() -> None:
    spec = FullAttentionSpec(16, 8, 128, page_size_padded=70000)
    assert spec.real_page_size_bytes == 65536
    assert spec.page_size_bytes == 70000
    with pytest.raises(ValueError, match="page_size_padded"):
        FullAttentionSpec(16, 8, 128, page_size_padded=100)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"block_size": 0, "num_kv_heads": 8, "head_size": 128}, "block_size"),
        ({"block_size": 16, "num_kv_heads": 0, "head_size": 128}, "num_kv_heads"),
        ({"block_size": 16, "num_kv_heads": 8, "head_size": -1}, "head_size"),
        ({"block_size": 16, "num_kv_heads": 8, "head_size": 128, "dtype": "nope"}, "dtype"),
    ],
)
def test_bad_spec_fields_are_named(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises((ValueError, TypeError), match=name):
        FullAttentionSpec(**kwargs)  # type: ignore[arg-type]
