"""The vision encoder: its weights and its profile pass (`terms.encoder_tokens`)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capacity_planner import EngineSettings, GiB, ModelSpec, plan, resolve_gpu
from capacity_planner.accounting.terms import (
    encoder_activation_bytes,
    encoder_held_bytes,
    encoder_items,
    encoder_tokens,
    profile_shape,
)
from capacity_planner.records import ISSUE_RECORDS, IssueRecord

QWEN25_VL_7B = ModelSpec.from_name("Qwen/Qwen2.5-VL-7B-Instruct")
GEMMA3_27B = ModelSpec.from_name("google/gemma-3-27b-it")


def test_qwen25_vl_tower_is_read_as_vllm_builds_it() -> None:
    v = QWEN25_VL_7B.vision
    assert v is not None
    assert (v.depth, v.hidden_size, v.intermediate_size) == (32, 1280, 3420)
    assert v.gated_mlp and v.spatial_merge_size == 2
    assert v.pixels_per_patch == 3 * 2 * 14 * 14
    assert v.max_tokens_per_item == 16384
    # the model card's 8,292,166,656 parameters (tower, merger and language model)
    assert abs(sum(QWEN25_VL_7B.param_breakdown().values()) / 8_292_166_656 - 1) < 0.005


def test_qwen2_vl_width_is_embed_dim_not_the_lms_hidden_size() -> None:
    cfg = {
        "model_type": "qwen2_vl",
        "num_hidden_layers": 28,
        "hidden_size": 3584,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "intermediate_size": 18944,
        "vocab_size": 152064,
        "max_position_embeddings": 32768,
        "vision_config": {
            "depth": 32,
            "embed_dim": 1280,
            "hidden_size": 3584,
            "mlp_ratio": 4,
            "hidden_act": "quick_gelu",
            "spatial_merge_size": 2,
        },
    }
    v = ModelSpec.from_hf_config(cfg).vision
    assert v is not None
    assert (v.hidden_size, v.intermediate_size, v.gated_mlp) == (1280, 5120, False)


def test_profile_pass_is_the_largest_images_that_fit_the_budget() -> None:
    s = EngineSettings(max_model_len=2048, vllm_version="v1")
    # budget max(2048, 16384): one 16,384-token image, 4 patches a token
    assert encoder_tokens(QWEN25_VL_7B, s, 2048) == (16384, 65536)
    # a 40,000-token budget fits two whole images
    assert encoder_tokens(QWEN25_VL_7B, s, 40000) == (32768, 131072)
    # V0 profiles inside the language model's dummy sequences: the old token count
    v0 = EngineSettings(max_model_len=2048, vllm_version="v0")
    assert encoder_tokens(QWEN25_VL_7B, v0, 2048) == (2048, 2048)


def test_encoder_pass_decides_the_single_l4_start() -> None:
    # 65,536 patches x (4 x 1280 + 3 x 3420) x 2 B plus float32 pixels: ~2.16 GiB, above
    # the 1.34 GiB sampler pass; the record in docs/ACCURACY.md logged 1.81 GiB of KV
    s = EngineSettings(max_model_len=2048, max_num_batched_tokens=2048, vllm_version="v1")
    enc = encoder_activation_bytes(QWEN25_VL_7B, s, 2048)
    assert 2.1 * GiB < enc < 2.2 * GiB
    p = plan(QWEN25_VL_7B, resolve_gpu("L4"), s)
    assert any("encoder peak" in step.detail for step in p.memory.steps)


@settings(max_examples=60, deadline=None)
@given(tokens=st.integers(min_value=1, max_value=200_000), tp=st.sampled_from([1, 2, 4]))
def test_budget_is_whole_items_and_shards_with_tp(tokens: int, tp: int) -> None:
    s = EngineSettings(tensor_parallel_size=tp, vllm_version="v1")
    image_tokens, patches = encoder_tokens(QWEN25_VL_7B, s, tokens)
    assert image_tokens % 16384 == 0 and 16384 <= image_tokens <= max(tokens, 16384)
    assert patches == 4 * image_tokens
    one = encoder_activation_bytes(QWEN25_VL_7B, EngineSettings(vllm_version="v1"), tokens)
    assert encoder_activation_bytes(QWEN25_VL_7B, s, tokens) <= one


def test_text_only_models_have_no_encoder_pass() -> None:
    m = ModelSpec.from_name("Qwen/Qwen3-8B")
    s = EngineSettings(vllm_version="v1")
    assert encoder_tokens(m, s, 8192) == (0, 0)
    assert encoder_activation_bytes(m, s, 8192) == 0


def test_gemma3_tower_is_siglip_on_whole_896_crops() -> None:
    v = GEMMA3_27B.vision
    assert v is not None
    assert (v.depth, v.hidden_size, v.intermediate_size, v.gated_mlp) == (27, 1152, 4304, False)
    # placeholder: "\n\n", <start_of_image>, 256 soft tokens, <end_of_image>, "\n\n"
    assert (v.max_tokens_per_item, v.patches_per_item, v.embeds_per_item) == (260, 4096, 256)
    assert v.pixels_per_patch == 3 * 14 * 14


# Records whose log prints the encoder budget and its dummy item count
_ITEMS = re.compile(r"budget of ([\d,]+) tokens, (?:and )?profiled with (\d+) image items")
LOGGED_ITEMS = [
    (r, int(m.group(1).replace(",", "")), int(m.group(2)))
    for r in ISSUE_RECORDS
    for m in [_ITEMS.search("\n".join(r.quote))]
    if m is not None
]


@pytest.mark.parametrize(
    ("record", "budget", "items"), LOGGED_ITEMS, ids=[r.key for r, _, _ in LOGGED_ITEMS]
)
def test_encoder_items_are_what_the_log_prints(
    record: IssueRecord, budget: int, items: int
) -> None:
    # Gemma-3: 7 images at a 2,048-token budget, 31 at 8,192; Qwen2.5-VL: one at 16,384
    model, s = record.model_spec(), record.engine_settings()
    tokens, _, _ = profile_shape(model, resolve_gpu(record.gpu or "80GiB"), s)
    assert encoder_items(model, s, tokens) == (items, budget)


def test_logged_item_counts_cover_gemma3_llava_next_and_qwen() -> None:
    per_item = set()
    for r, _, _ in LOGGED_ITEMS:
        vision = r.model_spec().vision
        assert vision is not None
        per_item.add(vision.max_tokens_per_item)
    assert {260, 2928, 16384} <= per_item


def test_gemma3_pass_counts_every_dummy_image() -> None:
    s = EngineSettings(max_model_len=4096, vllm_version="v1")
    # 31 images of 4,096 patches at an 8,192-token budget, not 8,192 patches
    assert encoder_tokens(GEMMA3_27B, s, 8192) == (31 * 260, 31 * 4096)
    enc = encoder_activation_bytes(GEMMA3_27B, s, 8192)
    per_patch = (4 * 1152 + 2 * 4304) * 2 + 4 * 588
    assert enc == 31 * 4096 * per_patch


@pytest.mark.parametrize(
    ("version", "held"), [("0.10.0", 0), ("0.11.0", 31), ("0.12.0", 31), ("0.13.0", 0), ("v1", 0)]
)
def test_widened_encoder_outputs_only_in_0_11_and_0_12(version: str, held: int) -> None:
    # 0.11/0.12 widen each 256-embedding output to the 8,192-token budget and keep it
    s = EngineSettings(max_model_len=4096, vllm_version=version)
    assert encoder_held_bytes(GEMMA3_27B, s, 8192) == held * 8192 * 5376 * 2
    # Qwen2.5-VL's one image fills its own 16,384-token budget: nothing is widened
    assert encoder_held_bytes(QWEN25_VL_7B, s, 2048) == 0


def test_held_outputs_sit_under_the_forward_pass() -> None:
    base = EngineSettings(max_model_len=4096, vllm_version="0.10.0", activation_bytes=None)
    held = EngineSettings(max_model_len=4096, vllm_version="0.11.0")
    gpu = resolve_gpu("191.98GiB")
    a, b = plan(GEMMA3_27B, gpu, base), plan(GEMMA3_27B, gpu, held)
    assert a.memory.activation_bytes < b.memory.activation_bytes
    assert b.memory.activation_bytes - a.memory.activation_bytes <= 31 * 8192 * 5376 * 2


def test_llava_next_largest_image_is_the_2x2_grid() -> None:
    import json
    from importlib import resources

    data = resources.files("capacity_planner").joinpath("records", "data")
    cfg = json.loads(data.joinpath("llava-v1.6-mistral-7b.json").read_text("utf-8"))
    v = ModelSpec.from_hf_config(cfg).vision
    assert v is not None
    # 672 x 672: base 24^2 + 48 x 48 unpadded features + 48 newlines; 1 + 4 crops of 577
    assert (v.max_tokens_per_item, v.patches_per_item) == (576 + 2304 + 48, 5 * 577)
    s = EngineSettings(max_model_len=4096, vllm_version="v1")
    assert encoder_items(ModelSpec.from_hf_config(cfg), s, 16384) == (5, 16384)
    # a config without pinpoints keeps the budget-as-patches fallback
    del cfg["image_grid_pinpoints"]
    plain = ModelSpec.from_hf_config(cfg)
    assert plain.vision is not None and plain.vision.max_tokens_per_item is None
    assert encoder_tokens(plain, s, 16384) == (16384, 16384)


def test_llava_15_item_is_one_crop() -> None:
    import json
    from pathlib import Path

    cfg = json.loads((Path(__file__).parent / "data" / "llava-1.5-7b.json").read_text())
    v = ModelSpec.from_hf_config(cfg).vision
    assert v is not None
    # 24 x 24 features (the class token dropped), 577 positions through CLIP
    assert (v.max_tokens_per_item, v.patches_per_item) == (576, 577)
    s = EngineSettings(max_model_len=4096, vllm_version="v1")
    assert encoder_items(ModelSpec.from_hf_config(cfg), s, 8192) == (8192 // 576, 8192)


@pytest.mark.parametrize(
    ("version", "items"),
    [("0.10.0", 8), ("0.11.0", 7), ("0.12.0", 7), ("0.13.0", 8), ("0.34.0", 8), ("v1", 7)],
)
def test_releases_divide_the_budget_by_placeholder_or_embeddings(version: str, items: int) -> None:
    # 0.11-0.12: Gemma-3's whole 260-token placeholder, 2048 // 260 = 7 (the records print
    # 7); 0.10 and 0.13 on: its 256 embeddings, 2048 // 256 = 8
    s = EngineSettings(max_model_len=4096, vllm_version=version)
    assert encoder_items(GEMMA3_27B, s, 2048) == (items, 2048)
