"""Carving: page sizes per layer kind, TP/PP, hybrid grouping, the logged numbers, the check."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capacity_planner import (
    GiB,
    ModelSpec,
    ParallelConfigError,
    SettingError,
)
from capacity_planner import compute_kv_cache_config as _compute

# These tests pin the 0.9-0.19 regime (block 16, whole available memory checked);
# test_versions.py covers what later releases change.
compute_kv_cache_config = functools.partial(_compute, vllm_version="v1")

LLAMA = ModelSpec.from_name("meta-llama/Llama-3.1-8B-Instruct")
MiB = 1 << 20


def test_dense_page_and_blocks() -> None:
    cfg = compute_kv_cache_config(LLAMA, 17_576 * MiB, max_model_len=2048)
    # 16 tokens x 8 heads x (128 + 128) x 2 B = 64 KiB per layer; 32 layers -> 2 MiB a block.
    assert cfg.page_size_bytes == 64 * 1024 and cfg.group_size == 32
    assert cfg.bytes_per_block == 2 * MiB and cfg.num_blocks == 8788
    assert cfg.num_tokens == 8788 * 16 and cfg.blocks_per_request == 128
    assert cfg.log_lines()[-1] == "Maximum concurrency for 2,048 tokens per request: 68.66x"


def test_fp8_kv_halves_the_page() -> None:
    bf16 = compute_kv_cache_config(LLAMA, 10 * GiB)
    fp8 = compute_kv_cache_config(LLAMA, 10 * GiB, kv_cache_dtype="fp8")
    assert fp8.page_size_bytes * 2 == bf16.page_size_bytes
    assert fp8.num_blocks == 2 * bf16.num_blocks


def test_tensor_parallel_shards_then_replicates_kv_heads() -> None:
    pages = [
        compute_kv_cache_config(LLAMA, GiB, tensor_parallel_size=tp).page_size_bytes
        for tp in (1, 2, 4, 8, 16, 32)
    ]
    assert pages == [65536, 32768, 16384, 8192, 8192, 8192]  # 8 KV heads: replicated past 8


def test_parallel_sizes_must_divide_the_model() -> None:
    with pytest.raises(ParallelConfigError, match="num_attention_heads"):
        compute_kv_cache_config(LLAMA, GiB, tensor_parallel_size=3)
    qwen = ModelSpec.from_name("Qwen/Qwen2.5-7B-Instruct")  # 28 heads, 4 KV heads
    with pytest.raises(ParallelConfigError, match="num_kv_heads"):
        compute_kv_cache_config(qwen, GiB, tensor_parallel_size=7)
    with pytest.raises(ParallelConfigError, match="pipeline_parallel_size"):
        compute_kv_cache_config(LLAMA, GiB, pipeline_parallel_size=33)


def test_mla_latent_not_doubled_not_sharded() -> None:
    ds = ModelSpec.from_name("deepseek-ai/DeepSeek-V2-Lite-Chat")
    for tp in (1, 2, 4, 16):
        cfg = compute_kv_cache_config(ds, GiB, tensor_parallel_size=tp)
        assert cfg.page_size_bytes == 16 * 576 * 2  # one latent (512 + 64), no K/V pair
    # Issue #15871: 27 layers x 2048 blocks x 16 x 576 x 2 B = 0.95 GiB at 32,768 tokens.
    cfg = compute_kv_cache_config(ds, int(0.93 * GiB), max_model_len=32768)
    assert round(cfg.required_bytes / GiB, 2) == 0.95 and not cfg.fits
    sparse = compute_kv_cache_config(ds, GiB, kv_cache_dtype="fp8_ds_mla")
    assert sparse.page_size_bytes == 16 * 656


def test_pipeline_parallel_min_over_stages() -> None:
    # 32 layers over 3 stages: [11, 11, 10] (spare layers before the last stage).
    cfg = compute_kv_cache_config(LLAMA, 11 * 64 * 1024 * 1000, pipeline_parallel_size=3)
    assert cfg.stage_num_blocks == (1000, 1000, 1100)
    assert cfg.num_blocks == 1000


def test_sliding_window_hybrid_groups_gpt_oss() -> None:
    oss = ModelSpec.from_name("openai/gpt-oss-120b")
    cfg = compute_kv_cache_config(
        oss, int(1.71 * GiB), max_model_len=131072, max_num_batched_tokens=1024
    )
    assert [(g.kind, g.num_layers) for g in cfg.groups] == [
        ("sliding_window", 18),
        ("full_attention", 18),
    ]
    # Issue #27508: 18 x 32 KiB x (8192 full + 73 sliding) blocks = 4.54 GiB needed.
    assert cfg.required_bytes == 18 * 32768 * (8192 + 73)
    assert cfg.error is not None and "4.54 GiB KV cache is needed" in cfg.error
    off = compute_kv_cache_config(
        oss,
        40 * GiB,
        max_model_len=131072,
        max_num_batched_tokens=1024,
        hybrid_kv_cache_manager=False,
    )
    assert len(off.groups) == 1 and off.groups[0].kind == "full_attention"


def test_gemma3_groups_with_padding_layers() -> None:
    gemma = ModelSpec.from_name("google/gemma-3-27b-it")
    cfg = compute_kv_cache_config(
        gemma, 40 * GiB, max_model_len=131072, max_num_batched_tokens=8192
    )
    assert cfg.group_size == 10 and len(cfg.groups) == 7
    assert sum(g.padding_layers for g in cfg.groups) == 8
    assert any("Add 8 padding layers" in n for n in cfg.notes)
    assert cfg.num_tokens == cfg.num_blocks // 7 * 16


def test_mamba_hybrid_raises_attention_block_and_pads_mamba_page() -> None:
    nxt = ModelSpec.from_name("Qwen/Qwen3-Next-80B-A3B-Instruct")
    cfg = compute_kv_cache_config(nxt, 40 * GiB, max_model_len=262144)
    # Mamba page 1,097,728 B; attention 2 x 2 x 256 x 2 = 2,048 B per token -> 34 x 16 tokens.
    assert cfg.block_size == 544
    assert {g.page_size_bytes for g in cfg.groups} == {544 * 2048}
    assert any("Setting attention block size to 544" in n for n in cfg.notes)
    assert any("Padding mamba page size by 1.49%" in n for n in cfg.notes)
    assert cfg.group_size == 12 and len(cfg.groups) == 4


def test_formulas_differ_for_hybrid_models() -> None:
    oss = ModelSpec.from_name("openai/gpt-oss-20b")
    v1 = compute_kv_cache_config(oss, 20 * GiB, max_model_len=131072, max_num_batched_tokens=8192)
    v08 = compute_kv_cache_config(oss, 20 * GiB, max_model_len=131072, vllm_version="v1-0.8")
    assert v1.num_tokens == v1.num_blocks // 2 * 16
    assert v08.num_tokens == v08.num_blocks * 16  # every layer as full attention
    # A request holds 8192 full-attention blocks but only cdiv(127 + 8192, 16) + 1 = 521
    # sliding-window blocks (window 128 plus one step of 8192 batched tokens).
    assert v1.blocks_per_request == 8192 + 521
    assert v1.max_concurrency == pytest.approx(v08.max_concurrency * 16384 / 8713, rel=1e-3)


def test_2026_token_count_is_derived_from_concurrency() -> None:
    oss = ModelSpec.from_name("openai/gpt-oss-20b")
    new = compute_kv_cache_config(
        oss, 20 * GiB, max_model_len=131072, max_num_batched_tokens=8192, vllm_version="v1-2026"
    )
    assert new.num_tokens == int(new.max_concurrency * 131072)
    assert new.num_tokens % 16 != 0  # not a whole number of blocks, as in 2026 logs


def test_v0_reading_and_error_text() -> None:
    cfg = compute_kv_cache_config(LLAMA, 1478 * 2 * MiB, max_model_len=29000, vllm_version="v0")
    assert cfg.log_lines()[:2] == (
        "# GPU blocks: 1478, # CPU blocks: 2048",
        "Maximum concurrency for 29000 tokens per request: 0.82x",
    )
    assert cfg.error is not None and "stored in KV cache (23648)" in cfg.error


def test_no_memory_error() -> None:
    cfg = compute_kv_cache_config(LLAMA, -int(2.14 * GiB))
    assert cfg.num_blocks == 0 and cfg.error is not None
    assert cfg.error.startswith("No available memory for the cache blocks")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"block_size": 0}, "block_size"),
        ({"max_model_len": -5}, "max_model_len"),
        ({"kv_cache_dtype": "int3"}, "kv-cache-dtype"),
        ({"vllm_version": "v2"}, "vllm_version"),
        ({"mamba_cache_mode": "some"}, "mamba_cache_mode"),
        ({"dtype": "int8"}, "dtype"),
    ],
)
def test_bad_settings(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(SettingError, match=match):
        compute_kv_cache_config(LLAMA, GiB, **kwargs)  # type: ignore[arg-type]


MODELS = [
    ModelSpec.from_name(n)
    for n in (
        "meta-llama/Llama-3.1-8B-Instruct",
        "openai/gpt-oss-20b",
        "google/gemma-3-27b-it",
        "ai21labs/Jamba-v0.1",
        "deepseek-ai/DeepSeek-V2-Lite-Chat",
    )
]


@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    mem=st.integers(min_value=0, max_value=200 * GiB),
    extra=st.integers(min_value=0, max_value=4 * GiB),
    length=st.integers(min_value=1, max_value=262144),
    version=st.sampled_from(["v0", "v1-0.8", "v1"]),
)
def test_properties(model: ModelSpec, mem: int, extra: int, length: int, version: str) -> None:
    a = compute_kv_cache_config(
        model, mem, max_model_len=length, max_num_batched_tokens=2048, vllm_version=version
    )
    b = compute_kv_cache_config(
        model, mem + extra, max_model_len=length, max_num_batched_tokens=2048, vllm_version=version
    )
    # Carving never exceeds the memory and never leaves a whole block unused.
    assert a.num_blocks * a.bytes_per_block <= mem < (a.num_blocks + 1) * a.bytes_per_block
    assert b.num_blocks >= a.num_blocks and b.max_concurrency >= a.max_concurrency
    # The estimated max length is the longest length that passes the check.
    est = a.estimated_max_model_len
    assert 0 <= est <= length
    assert a.fits == (est == length and a.num_blocks > 0)


@settings(max_examples=40, deadline=None)
@given(
    model=st.sampled_from([*MODELS, ModelSpec.from_name("Qwen/Qwen3-Next-80B-A3B-Instruct")]),
    tp=st.sampled_from([1, 2, 4, 8]),
    pp=st.sampled_from([1, 2, 3, 4]),
    block=st.sampled_from([1, 16, 32, 128]),
    kv_dtype=st.sampled_from(["auto", "fp8"]),
)
def test_every_cached_layer_is_in_exactly_one_group(
    model: ModelSpec, tp: int, pp: int, block: int, kv_dtype: str
) -> None:
    from capacity_planner.accounting.kv_dtypes import resolve_kv_dtype
    from capacity_planner.accounting.layout import build_layout, pp_layer_ranges

    stages = pp_layer_ranges(model.num_hidden_layers, pp)
    assert [i for r in stages for i in r] == list(range(model.num_hidden_layers))
    for layers in stages:
        if (
            not any(model.layer_kinds[i] != "mamba" for i in layers)
            and "mamba" in model.layer_kinds
        ):
            continue  # a stage of only Mamba layers: skip the attention-block rule
        lay = build_layout(
            model,
            layers,
            block_size=block,
            kv_dtype=resolve_kv_dtype(kv_dtype, "bfloat16", mla="mla" in model.layer_kinds),
            tensor_parallel_size=tp,
            state_dtype="bfloat16",
        )
        grouped = sorted(i for g in lay.groups for i in g.layer_indices)
        assert grouped == list(layers)
        assert len({g.page_size_bytes for g in lay.groups}) == 1  # one page size per pool
        for g in lay.groups:
            assert g.num_layers + g.padding_layers == lay.group_size or len(lay.groups) == 1
            assert g.block_size >= block
