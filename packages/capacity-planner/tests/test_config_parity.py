"""config.json as vLLM and transformers read it: windows, defaults, dtypes, Gemma-3/4."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from capacity_planner import (
    ConfigFieldError,
    EngineSettings,
    ModelSpec,
    compute_kv_cache_config,
    gpu_from_name,
    plan,
)

DATA = Path(__file__).parent / "data"


def load(name: str, **patch: Any) -> ModelSpec:
    cfg = json.loads((DATA / name).read_text())
    for key, value in patch.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    return ModelSpec.from_hf_config(cfg)


def test_qwen25_use_sliding_window_false_is_all_full_attention() -> None:
    m = load("qwen2.5-7b.json")
    assert set(m.layer_kinds) == {"full"} and m.sliding_window is None
    on = load("qwen2.5-7b.json", use_sliding_window=True, max_window_layers=14)
    assert on.layer_kinds[:14] == ("full",) * 14 and set(on.layer_kinds[14:]) == {"sliding"}


def test_explicit_false_or_zero_window_turns_sliding_off_for_any_family() -> None:
    mistral = load("mistral-7b-v0.1.json")
    assert set(mistral.layer_kinds) == {"sliding"}
    assert set(load("mistral-7b-v0.1.json", use_sliding_window=False).layer_kinds) == {"full"}
    assert set(load("mistral-7b-v0.1.json", sliding_window=0).layer_kinds) == {"full"}


def test_gemma2_alternates_starting_with_a_sliding_layer() -> None:
    m = load("gemma-2-9b.json")
    assert m.layer_kinds[:4] == ("sliding", "full", "sliding", "full")
    assert m.count("sliding") == m.count("full") == 21


def test_missing_length_is_vllms_2048_not_a_silent_guess() -> None:
    m = load("llama-3.1-8b.json", max_position_embeddings=None, rope_scaling=None)
    assert m.max_position_embeddings == 2048
    assert any("2048" in n for n in m.notes)


def test_smallest_length_key_and_rope_scaling() -> None:
    both = load("mistral-7b-v0.1.json", max_position_embeddings=32768, max_sequence_length=4096)
    assert both.max_position_embeddings == 4096
    linear = load("mistral-7b-v0.1.json", rope_scaling={"type": "linear", "factor": 4.0})
    assert linear.max_position_embeddings == 4 * 32768
    llama3 = load("llama-3.1-8b.json")  # rope_type llama3: the config length is already scaled
    assert llama3.max_position_embeddings == 131072


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        ("torch.float16", "float16"),
        ("bfloat16", "bfloat16"),
        ("The MoE weights are MXFP4; everything else is bfloat16.", "bfloat16"),
        ("see the model card", "bfloat16"),
    ],
)
def test_torch_dtype_variants(value: str, dtype: str) -> None:
    assert load("llama-3.1-8b.json", torch_dtype=value).dtype == dtype


def test_dtype_key_of_newer_transformers_wins() -> None:
    m = load("llama-3.1-8b.json", torch_dtype=None, dtype="float16")
    assert m.dtype == "float16"
    with pytest.raises(ConfigFieldError, match="int4"):
        load("llama-3.1-8b.json", torch_dtype="int4")


GEMMA3_27B: dict[str, Any] = {
    "architectures": ["Gemma3ForConditionalGeneration"],
    "model_type": "gemma3",
    "text_config": {
        "model_type": "gemma3_text",
        "head_dim": 128,
        "hidden_size": 5376,
        "intermediate_size": 21504,
        "num_attention_heads": 32,
        "num_hidden_layers": 62,
        "num_key_value_heads": 16,
        "sliding_window": 1024,
        "sliding_window_pattern": 6,
        "max_position_embeddings": 131072,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
        "vocab_size": 262208,
    },
    "vision_config": {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27},
    "torch_dtype": "bfloat16",
}


def test_gemma3_five_local_one_global_and_its_vision_tower() -> None:
    m = ModelSpec.from_hf_config(GEMMA3_27B)
    assert m.layer_kinds[:6] == ("sliding",) * 5 + ("full",)
    assert m.max_position_embeddings == 131072  # Gemma-3's length is already scaled
    assert m.vision is not None and m.vision.depth == 27
    p = plan(m, gpu_from_name("H100"), EngineSettings(max_model_len=32768))
    assert {g.kind for g in p.kv.groups} == {"sliding_window", "full_attention"}


def test_gemma4_style_shared_kv_layers_and_global_head_size() -> None:
    cfg = {
        "model_type": "gemma4_text",
        "num_hidden_layers": 12,
        "hidden_size": 2048,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "global_head_dim": 512,
        "num_global_key_value_heads": 2,
        "num_kv_shared_layers": 4,
        "layer_types": (["sliding_attention"] * 3 + ["full_attention"]) * 3,
        "sliding_window": 512,
        "max_position_embeddings": 32768,
        "vocab_size": 262144,
        "intermediate_size": 8192,
        "torch_dtype": "bfloat16",
    }
    m = ModelSpec.from_hf_config(cfg)
    assert m.kv_shared_layers == frozenset(range(8, 12))
    assert m.attention_shape("full") == (512, 2) and m.attention_shape("sliding") == (256, 4)
    cfg_kv = compute_kv_cache_config(m, 1 << 30, max_model_len=4096)
    owned = sorted(i for g in cfg_kv.groups for i in g.layer_indices)
    assert owned == list(range(8))  # the 4 sharing layers own no cache
    # Full pages (2 x 512) and sliding pages (4 x 256) are equal here, so one pool.
    assert len({g.page_size_bytes for g in cfg_kv.groups}) == 1


def test_mtp_draft_layers_join_the_mla_pool() -> None:
    cfg = json.loads((DATA / "deepseek-v2-lite.json").read_text())
    cfg["num_nextn_predict_layers"] = 1
    m = ModelSpec.from_hf_config(cfg)
    base = plan(m, gpu_from_name("H100"), EngineSettings(max_model_len=8192))
    mtp = plan(
        m,
        gpu_from_name("H100"),
        EngineSettings(max_model_len=8192, speculative_method="mtp", num_speculative_tokens=1),
    )
    assert mtp.kv.groups[0].num_layers == base.kv.groups[0].num_layers + 1
    assert mtp.memory.draft_weights_bytes > 0


@pytest.mark.parametrize("bad", [-1, 99, "2"])
def test_bad_shared_layer_count_is_named(bad: object) -> None:
    with pytest.raises(ConfigFieldError, match="num_kv_shared_layers"):
        load("llama-3.1-8b.json", num_kv_shared_layers=bad)


def test_llama4_chunked_and_global_layers_and_interleaved_experts() -> None:
    cfg = {
        "model_type": "llama4",
        "text_config": {
            "model_type": "llama4_text",
            "num_hidden_layers": 8,
            "hidden_size": 5120,
            "num_attention_heads": 40,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "intermediate_size": 8192,
            "intermediate_size_mlp": 16384,
            "num_local_experts": 128,
            "num_experts_per_tok": 1,
            "interleave_moe_layer_step": 2,
            "attention_chunk_size": 8192,
            "no_rope_layers": [1, 1, 1, 0, 1, 1, 1, 0],
            "max_position_embeddings": 1048576,
            "vocab_size": 202048,
        },
        "torch_dtype": "bfloat16",
    }
    m = ModelSpec.from_hf_config(cfg)
    assert m.layer_kinds == ("sliding",) * 3 + ("full",) + ("sliding",) * 3 + ("full",)
    assert m.sliding_window == 8192
    assert m.moe is not None and m.moe.moe_layers == (1, 3, 5, 7)
