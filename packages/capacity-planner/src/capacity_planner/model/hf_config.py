"""Hugging Face config.json -> ModelSpec: field aliases and the per-layer attention mix.

Which layer gets which KV-cache spec follows vLLM's model files: `layer_types` when the
config has it (gpt-oss, Gemma-3, Qwen3-Next), else the family rules (Gemma-2 alternates
starting with a sliding layer, Gemma-3 `sliding_window_pattern`, Jamba
`attn_layer_period/offset`, Qwen3-Next `full_attention_interval`, NemotronH
`hybrid_override_pattern`), else one kind for every layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from capacity_planner.errors import ConfigFieldError
from capacity_planner.model.defaults import (
    config_dtype,
    kv_shared_layers,
    max_model_len_of,
    mtp_layers,
)
from capacity_planner.model.fields import get_field, positive_field, require_int
from capacity_planner.model.mixers import gated_delta_net_state, mamba1_state, mamba2_state
from capacity_planner.model.parts import (
    LayerKind,
    MambaState,
    MLAConfig,
    MoEConfig,
    quant_from_config,
)
from capacity_planner.model.vision import vision_encoder

_LAYER_TYPE_NAMES: dict[str, LayerKind] = {
    "full_attention": "full",
    "attention": "full",
    "global": "full",
    "global_attention": "full",
    "sliding_attention": "sliding",
    "sliding_window": "sliding",
    "local": "sliding",
    "local_attention": "sliding",
    "chunked_attention": "sliding",
    "linear_attention": "mamba",
    "mamba": "mamba",
    "mamba2": "mamba",
    "ssm": "mamba",
}

# Families whose config carries `sliding_window` but that only use it when
# `use_sliding_window` is true (Qwen2/Qwen3 keep the field for reference).
_OPT_IN_SLIDING = {"qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "qwen2_vl", "qwen2_5_vl"}


def _layer_kinds(
    cfg: Mapping[str, Any], model_type: str, n: int
) -> tuple[list[LayerKind], list[str]]:
    notes: list[str] = []
    if get_field(cfg, "kv_lora_rank") is not None:
        return ["mla"] * n, notes
    layer_types = cfg.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        kinds: list[LayerKind] = []
        for entry in layer_types:
            kind = _LAYER_TYPE_NAMES.get(str(entry).lower())
            if kind is None:
                raise ConfigFieldError(
                    "layer_types",
                    f"unknown layer type {entry!r} in layer_types; known: "
                    f"{', '.join(sorted(_LAYER_TYPE_NAMES))}",
                )
            kinds.append(kind)
        if len(kinds) != n:
            raise ConfigFieldError(
                "layer_types", f"layer_types has {len(kinds)} entries but num_hidden_layers is {n}"
            )
        if "chunked_attention" in {str(t).lower() for t in layer_types}:
            notes.append("chunked local attention sized as a sliding window (no +1 block in vLLM)")
        return kinds, notes
    no_rope = cfg.get("no_rope_layers")
    if cfg.get("attention_chunk_size") and isinstance(no_rope, list) and len(no_rope) == n:
        # Llama-4: RoPE layers attend within chunks, NoPE layers (0 here) globally.
        notes.append("chunked local attention sized as a sliding window (no +1 block in vLLM)")
        return [("sliding" if flag else "full") for flag in no_rope], notes
    pattern = cfg.get("hybrid_override_pattern")
    if isinstance(pattern, str) and pattern:
        # NemotronH: M = Mamba-2 mixer, * = attention; '-' (MLP) and 'E' (MoE) hold no cache.
        kinds = [("mamba" if c == "M" else "full") for c in pattern if c in "M*"]
        notes.append("hybrid_override_pattern: MLP-only layers hold no KV cache")
        return kinds, notes
    period = cfg.get("attn_layer_period")
    if period is not None:
        offset = int(cfg.get("attn_layer_offset", 0))
        return [("full" if i % int(period) == offset else "mamba") for i in range(n)], notes
    interval = cfg.get("full_attention_interval")
    if interval is not None:
        return [("full" if (i + 1) % int(interval) == 0 else "mamba") for i in range(n)], notes
    window = cfg.get("sliding_window")
    if window is not None and not (
        model_type in _OPT_IN_SLIDING and not cfg.get("use_sliding_window")
    ):
        swp = get_field(cfg, "sliding_window_pattern", "sliding_window_period")
        if swp is not None:
            # Gemma-3 / Cohere2: every swp-th layer is global, the others local.
            return [("full" if (i + 1) % int(swp) == 0 else "sliding") for i in range(n)], notes
        if model_type in ("gemma2",):
            return [("sliding" if i % 2 == 0 else "full") for i in range(n)], notes
        if model_type.startswith("gemma3"):
            return [("full" if (i + 1) % 6 == 0 else "sliding") for i in range(n)], notes
        if model_type in _OPT_IN_SLIDING:
            first = int(cfg.get("max_window_layers", 0))
            return [("sliding" if i >= first else "full") for i in range(n)], notes
        return ["sliding"] * n, notes
    return ["full"] * n, notes


def _mamba_state(cfg: Mapping[str, Any], model_type: str, hidden: int) -> MambaState:
    if cfg.get("linear_num_value_heads") is not None:
        return gated_delta_net_state(cfg, hidden)
    if model_type == "jamba" or (
        cfg.get("mamba_n_heads") is None
        and cfg.get("mamba_d_head") is None
        and cfg.get("mamba_expand") is not None
        and model_type in ("jamba", "falcon_mamba", "mamba")
    ):
        return mamba1_state(cfg, hidden)
    return mamba2_state(cfg, hidden)


def _moe(cfg: Mapping[str, Any], model_type: str, n: int, intermediate: int) -> MoEConfig | None:
    num_experts = get_field(
        cfg, "num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts"
    )
    if not isinstance(num_experts, int) or num_experts <= 1:
        return None
    top_k = int(
        get_field(cfg, "num_experts_per_tok", "experts_per_token", "moe_top_k", "top_k", default=2)
    )
    moe_inter = int(
        get_field(cfg, "moe_intermediate_size", "expert_intermediate_size", default=intermediate)
    )
    shared = int(cfg.get("shared_expert_intermediate_size") or 0)
    shared += int(cfg.get("n_shared_experts") or 0) * moe_inter
    if cfg.get("first_k_dense_replace") is not None:
        k = int(cfg["first_k_dense_replace"])
        freq = int(cfg.get("moe_layer_freq", 1))
        layers = [i for i in range(n) if i >= k and i % freq == 0]
    elif cfg.get("expert_layer_period") is not None:
        period, offset = int(cfg["expert_layer_period"]), int(cfg.get("expert_layer_offset", 0))
        layers = [i for i in range(n) if i % period == offset]
    else:
        step = int(cfg.get("decoder_sparse_step") or cfg.get("interleave_moe_layer_step") or 1)
        dense = set(cfg.get("mlp_only_layers") or [])
        layers = [i for i in range(n) if (i + 1) % step == 0 and i not in dense]
    return MoEConfig(num_experts, top_k, moe_inter, shared, tuple(layers))


def parse_hf_config(config: Mapping[str, Any], *, name: str, source: str) -> dict[str, Any]:
    """`ModelSpec` fields read from a config.json dict (multimodal: its `text_config`)."""
    notes: list[str] = []
    key = "text_config" if isinstance(config.get("text_config"), Mapping) else "llm_config"
    text = config.get(key)  # InternVL's remote-code config names it llm_config
    if isinstance(text, Mapping):
        cfg: dict[str, Any] = {**config, **text}
        cfg.pop(key, None)
        notes.append(f"multimodal config: language model from {key}")
    else:
        cfg = dict(config)
    model_type = str(cfg.get("model_type") or "unknown")
    n = require_int(cfg, "num_hidden_layers", "n_layer", "num_layers", "n_layers")
    hidden = require_int(cfg, "hidden_size", "n_embd", "d_model", "dim")
    heads = require_int(cfg, "num_attention_heads", "n_head", "n_heads", "num_heads")
    kv = get_field(
        cfg,
        "num_key_value_heads",
        "num_kv_heads",
        "n_head_kv",
        "n_kv_heads",
        "multi_query_group_num",
    )
    if kv is None:
        kv = 1 if cfg.get("multi_query") else heads
    kv = positive_field(kv, "num_key_value_heads")
    head_dim = get_field(cfg, "head_dim", "kv_channels")
    if head_dim is None:
        if hidden % heads:
            raise ConfigFieldError(
                "head_dim",
                f"config has no 'head_dim' and hidden_size={hidden} is not a "
                f"multiple of num_attention_heads={heads}",
            )
        head_dim = hidden // heads
    head_dim = positive_field(head_dim, "head_dim")
    vocab = require_int(cfg, "vocab_size", "padded_vocab_size")
    intermediate = positive_field(
        get_field(
            cfg, "intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size", default=4 * hidden
        ),
        "intermediate_size",
    )
    dtype, dtype_notes = config_dtype(cfg)
    notes += dtype_notes
    kinds, kind_notes = _layer_kinds(cfg, model_type, n)
    notes += kind_notes
    if "sliding" in kinds and (
        cfg.get("use_sliding_window") is False or cfg.get("sliding_window") == 0
    ):
        # transformers drops the window (Qwen2/Qwen3 configs); vLLM treats 0 as disabled.
        kinds = ["full" if k == "sliding" else k for k in kinds]
        notes.append("sliding window switched off by the config (use_sliding_window / 0)")
    window = cfg.get("sliding_window") if "sliding" in kinds else None
    if "sliding" in kinds:
        window = positive_field(
            window if window is not None else cfg.get("attention_chunk_size"), "sliding_window"
        )
    mla = None
    if "mla" in kinds:
        mla = MLAConfig(
            kv_lora_rank=require_int(cfg, "kv_lora_rank"),
            qk_rope_head_dim=require_int(cfg, "qk_rope_head_dim"),
            qk_nope_head_dim=require_int(cfg, "qk_nope_head_dim"),
            v_head_dim=require_int(cfg, "v_head_dim"),
            q_lora_rank=cfg.get("q_lora_rank"),
        )
    mamba = _mamba_state(cfg, model_type, hidden) if "mamba" in kinds else None
    quant_cfg = cfg.get("quantization_config")
    quant = quant_from_config(quant_cfg) if isinstance(quant_cfg, Mapping) else None
    max_pos, len_notes = max_model_len_of(cfg, model_type)
    notes += len_notes
    vision = vision_encoder(config)
    if vision is not None and vision.unsized_reason:
        notes.append(f"encoder profile pass not counted: {vision.unsized_reason}")
    if vision is not None and vision.caveat:
        notes.append(f"encoder profile pass: {vision.caveat}")
    full_head = cfg.get("global_head_dim")
    full_kv = cfg.get("num_global_key_value_heads")
    return dict(
        name=name,
        model_type=model_type,
        num_hidden_layers=n,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=kv,
        head_dim=head_dim,
        vocab_size=vocab,
        intermediate_size=intermediate,
        layer_kinds=tuple(kinds),
        dtype=dtype,
        sliding_window=window,
        mla=mla,
        mamba=mamba,
        moe=_moe(cfg, model_type, n, intermediate),
        quantization=quant,
        # transformers' PretrainedConfig defaults tie_word_embeddings to True.
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", True)),
        max_position_embeddings=positive_field(max_pos, "max_position_embeddings"),
        kv_shared_layers=kv_shared_layers(cfg, n),
        full_head_dim=None if full_head is None else positive_field(full_head, "global_head_dim"),
        full_num_kv_heads=(
            None if full_kv is None else positive_field(full_kv, "num_global_key_value_heads")
        ),
        vision=vision,
        mtp_layers=mtp_layers(cfg),
        source=source,
        notes=tuple(notes),
    )
