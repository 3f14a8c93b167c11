"""Built-in catalog of popular models: the config.json fields the planner reads, nothing else.

Each entry is the subset of the model's published Hugging Face `config.json` that sizes
its KV cache and weights, with the page it comes from (`source`). `num_params` is the
published parameter count where the model card or safetensors index gives one exactly;
otherwise the planner counts parameters from the shapes (`ModelSpec.param_breakdown`).
No weights, tokenizers or licensed files are included. `ModelSpec.from_name` looks names
up here (Hugging Face id, or its part after the '/', case-insensitive).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from capacity_planner.errors import UnknownModelError

__all__ = ["CATALOG", "catalog_names", "lookup", "source_of"]


def _hf(repo: str) -> str:
    return f"https://huggingface.co/{repo}/blob/main/config.json"


def _llama(
    layers: int,
    hidden: int,
    heads: int,
    kv: int,
    inter: int,
    vocab: int,
    max_pos: int,
    **extra: Any,
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "model_type": "llama",
        "num_hidden_layers": layers,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "intermediate_size": inter,
        "vocab_size": vocab,
        "max_position_embeddings": max_pos,
        "torch_dtype": "bfloat16",
        "tie_word_embeddings": False,
    }
    cfg.update(extra)
    return cfg


_GPT_OSS_TYPES = ["sliding_attention", "full_attention"]

# name -> (config fields, published parameter count or None, aliases)
CATALOG: dict[str, tuple[dict[str, Any], int | None, tuple[str, ...]]] = {
    "meta-llama/Llama-3.1-8B-Instruct": (
        _llama(32, 4096, 32, 8, 14336, 128256, 131072),
        8_030_261_248,
        ("llama-3.1-8b", "meta-llama/Llama-3.1-8B", "meta-llama/Meta-Llama-3.1-8B-Instruct"),
    ),
    "meta-llama/Meta-Llama-3-8B": (
        _llama(32, 4096, 32, 8, 14336, 128256, 8192),
        8_030_261_248,
        ("llama-3-8b", "meta-llama/Meta-Llama-3-8B-Instruct"),
    ),
    "meta-llama/Llama-3.1-70B-Instruct": (
        _llama(80, 8192, 64, 8, 28672, 128256, 131072),
        70_553_706_496,
        ("llama-3.1-70b", "meta-llama/Llama-3.3-70B-Instruct", "llama-3.3-70b"),
    ),
    "meta-llama/Llama-3.2-1B-Instruct": (
        _llama(16, 2048, 32, 8, 8192, 128256, 131072, head_dim=64, tie_word_embeddings=True),
        None,
        ("llama-3.2-1b",),
    ),
    "meta-llama/Llama-3.2-3B-Instruct": (
        _llama(28, 3072, 24, 8, 8192, 128256, 131072, head_dim=128, tie_word_embeddings=True),
        None,
        ("llama-3.2-3b",),
    ),
    "meta-llama/Llama-2-7b-hf": (
        _llama(32, 4096, 32, 32, 11008, 32000, 4096, torch_dtype="float16"),
        6_738_415_616,
        ("llama-2-7b", "meta-llama/Llama-2-7b-chat-hf"),
    ),
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0": (
        _llama(22, 2048, 32, 4, 5632, 32000, 2048),
        1_100_048_384,
        ("tinyllama",),
    ),
    "mistralai/Mistral-7B-v0.1": (
        _llama(32, 4096, 32, 8, 14336, 32000, 32768, model_type="mistral", sliding_window=4096),
        7_241_732_096,
        ("mistral-7b-v0.1",),
    ),
    "mistralai/Mistral-7B-Instruct-v0.3": (
        _llama(32, 4096, 32, 8, 14336, 32768, 32768, model_type="mistral"),
        7_248_023_552,
        ("mistral-7b",),
    ),
    "mistralai/Mixtral-8x7B-Instruct-v0.1": (
        _llama(
            32,
            4096,
            32,
            8,
            14336,
            32000,
            32768,
            model_type="mixtral",
            num_local_experts=8,
            num_experts_per_tok=2,
        ),
        46_702_792_704,
        ("mixtral-8x7b",),
    ),
    "Qwen/Qwen2.5-0.5B-Instruct": (
        _llama(24, 896, 14, 2, 4864, 151936, 32768, model_type="qwen2", tie_word_embeddings=True),
        None,
        ("qwen2.5-0.5b",),
    ),
    "Qwen/Qwen2.5-1.5B-Instruct": (
        _llama(28, 1536, 12, 2, 8960, 151936, 32768, model_type="qwen2", tie_word_embeddings=True),
        None,
        ("qwen2.5-1.5b",),
    ),
    "Qwen/Qwen2.5-7B-Instruct": (
        _llama(28, 3584, 28, 4, 18944, 152064, 32768, model_type="qwen2"),
        7_615_616_512,
        ("qwen2.5-7b",),
    ),
    "Qwen/Qwen2.5-14B-Instruct": (
        _llama(48, 5120, 40, 8, 13824, 152064, 32768, model_type="qwen2"),
        None,
        ("qwen2.5-14b",),
    ),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B": (
        _llama(48, 5120, 40, 8, 13824, 152064, 131072, model_type="qwen2"),
        None,
        ("r1-distill-qwen-14b",),
    ),
    "Qwen/Qwen2.5-32B-Instruct": (
        _llama(64, 5120, 40, 8, 27648, 152064, 32768, model_type="qwen2"),
        None,
        ("qwen2.5-32b",),
    ),
    "Qwen/Qwen2.5-72B-Instruct": (
        _llama(80, 8192, 64, 8, 29568, 152064, 32768, model_type="qwen2"),
        None,
        ("qwen2.5-72b",),
    ),
    "Qwen/Qwen2.5-VL-7B-Instruct": (
        _llama(
            28,
            3584,
            28,
            4,
            18944,
            152064,
            128000,
            model_type="qwen2_5_vl",
            vision_config={
                "depth": 32,
                "hidden_act": "silu",
                "hidden_size": 1280,
                "intermediate_size": 3420,
                "in_chans": 3,
                "out_hidden_size": 3584,
                "patch_size": 14,
                "spatial_merge_size": 2,
                "temporal_patch_size": 2,
            },
        ),
        None,
        ("qwen2.5-vl-7b",),
    ),
    "Qwen/Qwen2.5-VL-72B-Instruct": (
        _llama(80, 8192, 64, 8, 29568, 152064, 128000, model_type="qwen2_5_vl"),
        None,
        ("qwen2.5-vl-72b",),
    ),
    "Qwen/Qwen3-8B": (
        _llama(36, 4096, 32, 8, 12288, 151936, 40960, model_type="qwen3", head_dim=128),
        None,
        ("qwen3-8b",),
    ),
    "Qwen/Qwen3-14B": (
        _llama(40, 5120, 40, 8, 17408, 151936, 40960, model_type="qwen3", head_dim=128),
        None,
        ("qwen3-14b",),
    ),
    "Qwen/Qwen3-32B": (
        _llama(64, 5120, 64, 8, 25600, 151936, 40960, model_type="qwen3", head_dim=128),
        None,
        ("qwen3-32b",),
    ),
    "Qwen/Qwen3-30B-A3B": (
        _llama(
            48,
            2048,
            32,
            4,
            6144,
            151936,
            40960,
            model_type="qwen3_moe",
            head_dim=128,
            num_experts=128,
            num_experts_per_tok=8,
            moe_intermediate_size=768,
        ),
        None,
        ("qwen3-30b-a3b",),
    ),
    "Qwen/Qwen3-30B-A3B-FP8": (
        _llama(
            48,
            2048,
            32,
            4,
            6144,
            151936,
            40960,
            model_type="qwen3_moe",
            head_dim=128,
            num_experts=128,
            num_experts_per_tok=8,
            moe_intermediate_size=768,
            quantization_config={"quant_method": "fp8"},
        ),
        None,
        ("qwen3-30b-a3b-fp8", "Qwen/Qwen3-Coder-30B-A3B-Instruct-FP8"),
    ),
    "Qwen/Qwen3-235B-A22B-FP8": (
        _llama(
            94,
            4096,
            64,
            4,
            12288,
            151936,
            40960,
            model_type="qwen3_moe",
            head_dim=128,
            num_experts=128,
            num_experts_per_tok=8,
            moe_intermediate_size=1536,
            quantization_config={"quant_method": "fp8"},
        ),
        None,
        ("qwen3-235b-a22b-fp8",),
    ),
    "Qwen/Qwen3-Next-80B-A3B-Instruct": (
        _llama(
            48,
            2048,
            16,
            2,
            5120,
            151936,
            262144,
            model_type="qwen3_next",
            head_dim=256,
            num_experts=512,
            num_experts_per_tok=10,
            moe_intermediate_size=512,
            shared_expert_intermediate_size=512,
            full_attention_interval=4,
            linear_num_key_heads=16,
            linear_num_value_heads=32,
            linear_key_head_dim=128,
            linear_value_head_dim=128,
            linear_conv_kernel_dim=4,
        ),
        None,
        ("qwen3-next-80b-a3b", "qwen3-next"),
    ),
    "google/gemma-2-9b-it": (
        _llama(
            42,
            3584,
            16,
            8,
            14336,
            256000,
            8192,
            model_type="gemma2",
            head_dim=256,
            sliding_window=4096,
            tie_word_embeddings=True,
        ),
        None,
        ("gemma-2-9b",),
    ),
    "google/gemma-2-27b-it": (
        _llama(
            46,
            4608,
            32,
            16,
            36864,
            256000,
            8192,
            model_type="gemma2",
            head_dim=128,
            sliding_window=4096,
            tie_word_embeddings=True,
        ),
        None,
        ("gemma-2-27b",),
    ),
    "google/gemma-3-27b-it": (
        {
            "model_type": "gemma3",
            "torch_dtype": "bfloat16",
            "text_config": _llama(
                62,
                5376,
                32,
                16,
                21504,
                262208,
                131072,
                model_type="gemma3_text",
                head_dim=128,
                sliding_window=1024,
                sliding_window_pattern=6,
                tie_word_embeddings=True,
            ),
            # the SigLIP tower of the published config: one 896 x 896 crop = 4,096 patches,
            # pooled to `mm_tokens_per_image` embeddings
            "mm_tokens_per_image": 256,
            "vision_config": {
                "model_type": "siglip_vision_model",
                "hidden_size": 1152,
                "intermediate_size": 4304,
                "num_attention_heads": 16,
                "num_hidden_layers": 27,
                "image_size": 896,
                "patch_size": 14,
            },
        },
        None,
        ("gemma-3-27b",),
    ),
    "openai/gpt-oss-20b": (
        _llama(
            24,
            2880,
            64,
            8,
            2880,
            201088,
            131072,
            model_type="gpt_oss",
            head_dim=64,
            num_local_experts=32,
            experts_per_token=4,
            sliding_window=128,
            layer_types=_GPT_OSS_TYPES * 12,
            quantization_config={"quant_method": "mxfp4"},
        ),
        None,
        ("gpt-oss-20b",),
    ),
    "openai/gpt-oss-120b": (
        _llama(
            36,
            2880,
            64,
            8,
            2880,
            201088,
            131072,
            model_type="gpt_oss",
            head_dim=64,
            num_local_experts=128,
            experts_per_token=4,
            sliding_window=128,
            layer_types=_GPT_OSS_TYPES * 18,
            quantization_config={"quant_method": "mxfp4"},
        ),
        None,
        ("gpt-oss-120b",),
    ),
    "deepseek-ai/DeepSeek-V2-Lite-Chat": (
        _llama(
            27,
            2048,
            16,
            16,
            10944,
            102400,
            163840,
            model_type="deepseek_v2",
            kv_lora_rank=512,
            qk_rope_head_dim=64,
            qk_nope_head_dim=128,
            v_head_dim=128,
            q_lora_rank=None,
            n_routed_experts=64,
            num_experts_per_tok=6,
            n_shared_experts=2,
            moe_intermediate_size=1408,
            first_k_dense_replace=1,
        ),
        None,
        ("deepseek-v2-lite",),
    ),
    "deepseek-ai/DeepSeek-V3": (
        _llama(
            61,
            7168,
            128,
            128,
            18432,
            129280,
            163840,
            model_type="deepseek_v3",
            kv_lora_rank=512,
            qk_rope_head_dim=64,
            qk_nope_head_dim=128,
            v_head_dim=128,
            q_lora_rank=1536,
            n_routed_experts=256,
            num_experts_per_tok=8,
            n_shared_experts=1,
            moe_intermediate_size=2048,
            first_k_dense_replace=3,
            quantization_config={"quant_method": "fp8"},
        ),
        None,
        ("deepseek-v3", "deepseek-ai/DeepSeek-R1", "deepseek-r1"),
    ),
    "ai21labs/Jamba-v0.1": (
        _llama(
            32,
            4096,
            32,
            8,
            14336,
            65536,
            262144,
            model_type="jamba",
            attn_layer_period=8,
            attn_layer_offset=4,
            expert_layer_period=2,
            expert_layer_offset=1,
            num_experts=16,
            num_experts_per_tok=2,
            mamba_d_state=16,
            mamba_d_conv=4,
            mamba_expand=2,
            mamba_dt_rank=256,
        ),
        None,
        ("jamba-v0.1", "jamba"),
    ),
    "microsoft/Phi-3-mini-4k-instruct": (
        _llama(32, 3072, 32, 32, 8192, 32064, 4096, model_type="phi3", sliding_window=2047),
        None,
        ("phi-3-mini",),
    ),
    "llava-hf/llava-1.5-7b-hf": (
        {
            "model_type": "llava",
            "torch_dtype": "float16",
            "text_config": _llama(32, 4096, 32, 32, 11008, 32064, 4096, torch_dtype="float16"),
        },
        None,
        ("llava-1.5-7b",),
    ),
}


def _key(name: str) -> str:
    return name.strip().lower()


_INDEX: dict[str, str] = {}
for _name, (_cfg, _params, _aliases) in CATALOG.items():
    for _alias in (_name, _name.split("/", 1)[1], *_aliases):
        _INDEX[_key(_alias)] = _name
        if "/" in _alias:
            _INDEX[_key(_alias.split("/", 1)[1])] = _name


def catalog_names() -> tuple[str, ...]:
    """Hugging Face ids of every catalog model."""
    return tuple(CATALOG)


def source_of(canonical: str) -> str:
    """Where a catalog entry's numbers come from (its Hugging Face page)."""
    return _hf(canonical)


def lookup(name: str) -> tuple[str, Mapping[str, Any], int | None]:
    """(canonical id, config fields, published parameter count) of the catalog model `name`.

    `name` is an HF id, short id or alias (case-insensitive); an unknown name raises
    `UnknownModelError` with the closest catalog names.
    """
    canonical = _INDEX.get(_key(name))
    if canonical is None:
        close = difflib.get_close_matches(_key(name), list(_INDEX), n=8, cutoff=0.5)
        seen: list[str] = []
        for alias in close:
            if _INDEX[alias] not in seen:
                seen.append(_INDEX[alias])
        raise UnknownModelError(name, tuple(seen[:4]))
    cfg, params, _ = CATALOG[canonical]
    return canonical, cfg, params
