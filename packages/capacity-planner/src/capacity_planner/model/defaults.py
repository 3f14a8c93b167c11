"""Config fields vLLM derives or defaults rather than reads verbatim.

Each rule mirrors vLLM 0.34 (`vllm/config/model.py` `_get_and_verify_max_len`,
`transformers_utils/model_arch_config_convertor.py`) or transformers' config classes:

- the model length is the *smallest* of the length keys present; none present means
  2048 (vLLM warns "Assuming the model's maximum length is 2048"); a RoPE scaling factor
  multiplies it except for the types that already scale it (llama3, yarn, longrope, ...)
  and Gemma-3; `model_max_length` wins outright (Command-R);
- the weights dtype is `dtype` (transformers >= 4.56) or `torch_dtype`, with or without
  `torch.`; a single unknown name (int4) is refused, free text is read for the one dtype
  it names, else it counts as unset;
- `sliding_window` of 0 or `use_sliding_window: false` turns sliding windows off;
- the last `num_kv_shared_layers` layers (Gemma-3n, Gemma-4) read an earlier layer's cache;
- MTP draft layers come from `num_nextn_predict_layers` / `mtp_num_hidden_layers`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from capacity_planner.errors import ConfigFieldError
from capacity_planner.model.parts import VisionEncoder
from capacity_planner.model.vision_items import Item, internvl_item, pixtral_hf_item

__all__ = [
    "DEFAULT_MAX_LEN",
    "MODEL_DTYPES",
    "canonical_dtype",
    "config_dtype",
    "kv_shared_layers",
    "max_model_len_of",
    "mtp_layers",
    "vision_encoder",
]

DEFAULT_MAX_LEN = 2048
_LENGTH_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_target_positions",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
_SCALED_ALREADY = {
    "su",
    "longrope",
    "llama3",
    "yarn",
    "deepseek_yarn",
    "deepseek_llama_scaling",
    "default",
}
# The one table of weight-dtype spellings (vLLM `--dtype`, torch and config names); byte
# sizes come from `block_allocator.kv_cache_spec.dtype_size`.
MODEL_DTYPES = {
    "float32": "float32",
    "float": "float32",
    "fp32": "float32",
    "float16": "float16",
    "half": "float16",
    "fp16": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}
_DTYPE_WORD = re.compile(r"\b(bfloat16|bf16|float16|fp16|half|float32|fp32)\b", re.I)


def canonical_dtype(name: str) -> str | None:
    """'bf16' -> 'bfloat16', 'torch.half' -> 'float16'; None for names outside the table."""
    return MODEL_DTYPES.get(name.strip().lower().removeprefix("torch."))


def max_model_len_of(cfg: Mapping[str, Any], model_type: str) -> tuple[int, list[str]]:
    """The length vLLM derives when `--max-model-len` is not given, and notes on how."""
    notes: list[str] = []
    found = {}
    for key in _LENGTH_KEYS:
        value = cfg.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
            raise ConfigFieldError(key, f"config field {key!r} must be a positive number")
        found[key] = int(value)
    if "model_max_length" in found:
        length = found["model_max_length"]
    elif found:
        length = min(found.values())
    else:
        notes.append(
            "config.json has no length field (max_position_embeddings, ...): vLLM assumes "
            f"{DEFAULT_MAX_LEN} tokens"
        )
        return DEFAULT_MAX_LEN, notes
    rope = cfg.get("rope_scaling") or cfg.get("rope_parameters")
    if isinstance(rope, Mapping) and "gemma3" not in model_type:
        kind = str(rope.get("rope_type") or rope.get("type") or "default")
        if kind == "longrope" and cfg.get("original_max_position_embeddings"):
            return int(cfg["original_max_position_embeddings"]), notes
        factor = rope.get("factor")
        if kind not in _SCALED_ALREADY and isinstance(factor, (int, float)) and factor > 0:
            notes.append(f"RoPE {kind} scaling x{factor:g} stretches the length as vLLM does")
            length = int(length * factor)
    return length, notes


def config_dtype(cfg: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The checkpoint dtype; vLLM's `--dtype auto` starts from it."""
    raw = cfg.get("dtype", cfg.get("torch_dtype"))
    if raw is None:
        return "bfloat16", []
    text = str(raw).strip().removeprefix("torch.")
    if text.lower() in MODEL_DTYPES:
        return MODEL_DTYPES[text.lower()], []
    if re.fullmatch(r"[\w.]+", text):
        raise ConfigFieldError(
            "torch_dtype",
            f"unsupported torch_dtype {text!r}: vLLM serves float16, bfloat16 or float32 weights "
            "(quantised checkpoints say so in quantization_config)",
        )
    named = {MODEL_DTYPES[m.lower()] for m in _DTYPE_WORD.findall(text)}
    if len(named) == 1:
        (dtype,) = named
        return dtype, [f"torch_dtype {text[:40]!r} read as {dtype}"]
    return "bfloat16", [f"torch_dtype {text[:40]!r} names no single dtype; vLLM's auto: bfloat16"]


def kv_shared_layers(cfg: Mapping[str, Any], n: int) -> frozenset[int]:
    """Layers that reuse an earlier layer's KV cache (the last `num_kv_shared_layers`)."""
    shared = cfg.get("num_kv_shared_layers") or 0
    if isinstance(shared, bool) or not isinstance(shared, int) or not 0 <= shared < n:
        raise ConfigFieldError(
            "num_kv_shared_layers",
            f"config field 'num_kv_shared_layers' must be an integer in [0, {n}), got {shared!r}",
        )
    return frozenset(range(n - shared, n))


def mtp_layers(cfg: Mapping[str, Any]) -> int:
    value = cfg.get("num_nextn_predict_layers", cfg.get("mtp_num_hidden_layers", 0)) or 0
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


# The image tokens of the largest image the Qwen2-VL family's processors accept: their
# default `max_pixels` over the pixels one token covers (patch x merge)^2. Qwen2-VL and
# Qwen2.5-VL: 12,845,056 / 28^2; Qwen3-VL: 16,777,216 / 32^2. vLLM logs both as "Encoder
# cache will be initialized with a budget of 16384 tokens".
_MAX_IMAGE_TOKENS = {
    "qwen2_vl": 16384,
    "qwen2_5_vl": 16384,
    "qwen3_vl": 16384,
    "qwen3_vl_moe": 16384,
}

# Gemma-3's image placeholder (transformers' `Gemma3Processor.full_image_sequence`, which
# vLLM's `gemma3_mm.get_image_repl` inserts): "\n\n", <start_of_image>, the
# `mm_tokens_per_image` soft tokens, <end_of_image>, "\n\n". vLLM divides the encoder
# budget by the whole placeholder (`profiling.get_mm_max_contiguous_tokens`), so 256 soft
# tokens make a 260-token item: 7 dummy images for a 2,048-token budget, 31 for 8,192, as
# the start-up logs of the Gemma-3 records print. Each image is one `image_size`^2 crop
# (pan-and-scan is off by default), `(image_size / patch_size)^2` patches through SigLIP.
_GEMMA3_PLACEHOLDER_EXTRA = 4


def _llava_next_item(config: Mapping[str, Any], image: int, patch: int) -> tuple[int, int] | None:
    """(tokens, patches) of LLaVA-NeXT's largest image, as vLLM's `llava_next` sizes it.

    `get_image_size_with_most_features` tries every `image_grid_pinpoints` size; an image of
    exactly that size has `(h / patch) x (w / patch)` unpadded features, one newline per
    feature row and the base image's `(image / patch)^2` (`get_num_image_tokens`). The tower
    sees the base crop and the grid's crops, each with CLIP's class token.
    """
    pins = config.get("image_grid_pinpoints")
    if not isinstance(pins, list) or not pins:
        return None
    side = image // patch
    best: tuple[int, int] | None = None
    for pin in pins:
        if not (isinstance(pin, list) and len(pin) == 2 and all(isinstance(x, int) for x in pin)):
            return None
        h, w = pin
        tokens = side * side + (h // patch) * (w // patch) + h // patch
        crops = 1 + (h // image) * (w // image)
        if best is None or tokens > best[0]:
            best = (tokens, crops * (side * side + 1))
    return best


def _int(cfg: Mapping[str, Any], *names: str, default: int = 0) -> int:
    for name in names:
        value = cfg.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return default


def vision_encoder(config: Mapping[str, Any]) -> VisionEncoder | None:
    """A multimodal config's `vision_config` as layer sizes (None when absent).

    Qwen2-VL names the tower's width `embed_dim` (its `hidden_size` is the LM's), so
    `embed_dim` wins where both are given. A SiLU tower is SwiGLU-gated (Qwen2.5-VL), and
    so is Pixtral's whatever its `hidden_act` (vLLM's `PixtralHFMLP` is gate-and-up).
    InternVL and Pixtral items come from `vision_items`.
    """
    vision = config.get("vision_config")
    if not isinstance(vision, Mapping):
        return None
    depth = vision.get("depth", vision.get("num_hidden_layers"))
    hidden = vision.get("embed_dim", vision.get("hidden_size"))
    if not isinstance(depth, int) or not isinstance(hidden, int) or depth < 1 or hidden < 1:
        return None
    inter = vision.get("intermediate_size")
    if not isinstance(inter, int):
        ratio = vision.get("mlp_ratio", 4)
        inter = int(hidden * ratio) if isinstance(ratio, (int, float)) else 4 * hidden
    patch = _int(vision, "patch_size", "spatial_patch_size")
    channels = _int(vision, "in_chans", "in_channels", "num_channels", default=3)
    temporal = _int(vision, "temporal_patch_size", default=1)
    out_hidden = _int(vision, "out_hidden_size")
    model_type = str(config.get("model_type", ""))
    per_item = _MAX_IMAGE_TOKENS.get(model_type)
    patches = embeds = None
    unsized: str | None = None
    image = _int(vision, "image_size")
    tower = str(vision.get("model_type", ""))
    item: Item | str | None = None
    if model_type == "gemma3" and patch and image:
        embeds = _int(config, "mm_tokens_per_image", default=256)
        per_item = embeds + _GEMMA3_PLACEHOLDER_EXTRA
        patches = (image // patch) ** 2
    elif model_type == "llava_next" and patch and image:
        grid = _llava_next_item(config, image, patch)
        if grid is not None:
            per_item, patches = grid
    elif model_type == "internvl_chat":
        item = internvl_item(config, image, patch) if patch and image else None
        item = item or "InternVL vision_config lacks image_size or patch_size"
    elif model_type in ("llava", "mistral3") and tower == "pixtral" and patch and image:
        item = pixtral_hf_item(config, image, patch)
    elif model_type == "llava" and patch and image:
        # LLaVA-1.5: one crop; the "default" feature strategy drops CLIP's class token
        side = image // patch
        full = config.get("vision_feature_select_strategy") == "full"
        per_item, patches = side * side + (1 if full else 0), side * side + 1
    if isinstance(item, Item):
        per_item, patches, embeds = item.tokens, item.patches, item.embeds
    elif isinstance(item, str):
        unsized = item
    return VisionEncoder(
        depth,
        hidden,
        inter,
        gated_mlp=vision.get("hidden_act") == "silu" or tower == "pixtral",
        spatial_merge_size=_int(vision, "spatial_merge_size", default=1),
        out_hidden_size=out_hidden or None,
        pixels_per_patch=channels * temporal * patch * patch,
        max_tokens_per_item=per_item,
        patches_per_item=patches,
        embeds_per_item=embeds,
        unsized_reason=unsized,
    )
