"""config.json parsing: every architecture family gets vLLM's per-layer KV-cache kind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capacity_planner import ConfigFieldError, ModelSpec, UnknownModelError, catalog_names

DATA = Path(__file__).parent / "data"


def load(name: str) -> ModelSpec:
    return ModelSpec.from_config_file(DATA / name)


def test_dense_gqa_llama() -> None:
    m = load("llama-3.1-8b.json")
    assert (m.num_hidden_layers, m.num_kv_heads, m.head_dim) == (32, 8, 128)
    assert m.layer_kinds == ("full",) * 32
    assert m.max_position_embeddings == 131072
    # Counted from shapes: the published 8,030,261,248 minus the final norm (4,096).
    assert m.param_count() == 8_030_257_152


def test_moe_mixtral_counts_experts() -> None:
    m = load("mixtral-8x7b.json")
    assert m.moe is not None and m.moe.num_experts == 8 and len(m.moe.moe_layers) == 32
    assert abs(m.param_count() - 46_702_792_704) / 46_702_792_704 < 0.001


def test_gemma2_alternates_sliding_first_and_float32_config() -> None:
    m = load("gemma-2-9b.json")
    assert m.layer_kinds[:4] == ("sliding", "full", "sliding", "full")
    assert m.count("sliding") == 21 and m.sliding_window == 4096
    assert m.dtype == "float32" and m.tie_word_embeddings  # HF default when absent


def test_gpt_oss_layer_types_and_mxfp4() -> None:
    m = load("gpt-oss-120b.json")
    assert m.count("sliding") == 18 and m.count("full") == 18 and m.sliding_window == 128
    assert m.quantization is not None and m.quantization.method == "mxfp4"
    assert m.moe is not None and m.moe.num_experts_per_tok == 4


def test_mla_deepseek_v2_lite() -> None:
    m = load("deepseek-v2-lite.json")
    assert m.layer_kinds == ("mla",) * 27
    assert m.mla is not None and m.mla.kv_lora_rank + m.mla.qk_rope_head_dim == 576
    assert m.moe is not None and m.moe.moe_layers[0] == 1  # first_k_dense_replace=1
    assert abs(m.param_count() - 15.7e9) / 15.7e9 < 0.02


def test_jamba_attention_every_eighth_layer() -> None:
    m = load("jamba-v0.1.json")
    assert [i for i, k in enumerate(m.layer_kinds) if k == "full"] == [4, 12, 20, 28]
    assert m.mamba is not None and m.mamba.kind == "mamba1"
    assert m.mamba.shapes(1) == ((8192, 3), (8192, 16))
    assert m.mamba.shapes(2) == ((4096, 3), (4096, 16))


def test_qwen3_next_gated_delta_net_state() -> None:
    m = load("qwen3-next-80b-a3b.json")
    assert m.count("full") == 12 and m.count("mamba") == 36
    assert m.layer_kinds[3] == "full" and m.layer_kinds[0] == "mamba"
    assert m.mamba is not None and m.mamba.shapes(1) == ((8192, 3), (32, 128, 128))


def test_multimodal_nested_text_config() -> None:
    m = load("llava-1.5-7b.json")
    assert (m.num_hidden_layers, m.num_kv_heads, m.vocab_size) == (32, 32, 32064)
    assert m.dtype == "float16"
    assert any("text_config" in n for n in m.notes)


def test_all_layer_sliding_window_and_opt_in_families() -> None:
    assert load("mistral-7b-v0.1.json").layer_kinds == ("sliding",) * 32
    # Qwen2 carries sliding_window but uses it only with use_sliding_window=true.
    assert load("qwen2.5-7b.json").layer_kinds == ("full",) * 28


def test_missing_field_is_named() -> None:
    with pytest.raises(ConfigFieldError, match="num_attention_heads") as info:
        load("missing-heads.json")
    assert info.value.field == "num_attention_heads"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"num_hidden_layers": 0}, "num_hidden_layers"),
        ({"num_key_value_heads": "8"}, "num_key_value_heads"),
        ({"torch_dtype": "int4"}, "torch_dtype"),
        ({"layer_types": ["full_attention"] * 3}, "layer_types"),
        ({"layer_types": ["weird"] * 32}, "layer_types"),
        ({"hidden_size": 4097, "head_dim": None}, "head_dim"),
    ],
)
def test_bad_fields(patch: dict[str, object], field: str) -> None:
    cfg = json.loads((DATA / "llama-3.1-8b.json").read_text())
    cfg.update(patch)
    with pytest.raises(ConfigFieldError) as info:
        ModelSpec.from_hf_config(cfg)
    assert info.value.field == field


def test_unreadable_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigFieldError, match=r"no config\.json"):
        ModelSpec.from_config_file(tmp_path / "nope.json")
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigFieldError, match="JSON"):
        ModelSpec.from_config_file(tmp_path)  # a directory holding config.json


def test_catalog_entries_all_parse_and_cite_sources() -> None:
    for name in catalog_names():
        m = ModelSpec.from_name(name)
        assert m.source.startswith("https://huggingface.co/") and m.param_count() > 0


def test_catalog_aliases_and_suggestions() -> None:
    assert ModelSpec.from_name("LLAMA-3.1-8B").name == "meta-llama/Llama-3.1-8B-Instruct"
    assert ModelSpec.from_name("Llama-3.1-8B-Instruct").num_hidden_layers == 32
    with pytest.raises(UnknownModelError) as info:
        ModelSpec.from_name("llama-3.1-8")
    assert "meta-llama/Llama-3.1-8B-Instruct" in info.value.suggestions
