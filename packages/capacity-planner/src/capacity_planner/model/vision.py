"""A multimodal config's vision tower and the largest dummy image vLLM profiles it with.

`vision_encoder` reads the tower's layer sizes and, per family, the item vLLM's profile
run encodes (`gpu_model_runner.profile_run`): its placeholder tokens (what the encoder
budget is divided by, `multimodal/profiling.py` `get_mm_max_contiguous_tokens`), the
patches it sends through the tower and the embeddings it returns. The Qwen2-VL family,
Gemma-3 and LLaVA are sized here; the tiling towers (InternVL, Pixtral) in
`vision_items`. docs/MEMORY_MODEL.md section 3 cites the vLLM files for each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from capacity_planner.model.parts import VisionEncoder
from capacity_planner.model.vision_items import (
    Item,
    internvl_item,
    internvl_video_caveat,
    pixtral_hf_item,
)

__all__ = ["vision_encoder"]

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


# The CLIP ViT-L/14-336 vLLM builds for Phi-3(.5)-vision whatever the config says
# (`phi3v.py` `CLIP_VIT_LARGE_PATCH14_336_CONFIG`): 24 layers, 1,024 wide, MLP 4,096.
_PHI3V_CLIP = (24, 1024, 4096, 14)
_PHI3V_UNSIZED = (
    "Phi-3-vision's image tokens come from its processor's num_crops "
    "(preprocessor_config.json; vLLM's phi3v.py asks the checkpoint's processor for a "
    "50 x 8000 image), which config.json does not carry"
)

# MiniCPM-V (`minicpmv.py`, 0.11.0 and 0.34.0): the largest image is `image_size` x
# `image_size * max_slice_num`, but its slice grid, the embeddings per slice and the
# placeholder text come from the checkpoint's own image processor (`get_sliced_grid`,
# `image_feature_size`, `get_slice_image_placeholder`), and from 2.6 on a dummy video
# competes for the largest item.
_MINICPMV_UNSIZED = (
    "MiniCPM-V's slice grid and placeholder come from its own image processor "
    "(preprocessor_config.json and remote code; vLLM's minicpmv.py asks it), which "
    "config.json does not describe"
)

# Llama-3.2-Vision is V0-only in 0.10 (`mllama.py`'s `SupportsV0Only`) and gone from 0.11
# (the registry's `_PREVIOUSLY_SUPPORTED_MODELS` lists it "0.10.2"): no V1 profile exists.
_MLLAMA_UNSIZED = (
    "vLLM's V1 engine has no Llama-3.2-Vision (mllama.py is V0-only in 0.10 and removed "
    "after 0.10.2), so there is no V1 encoder profile to size"
)


def _phi3v_tower(config: Mapping[str, Any]) -> VisionEncoder | None:
    """Phi-3(.5)-vision: vLLM's fixed CLIP tower, cut at `img_processor.layer_idx`.

    `_init_img_processor` keeps `24 + layer_idx + 1` layers for a negative index (-2 by
    default: 23). The largest item is left unsized (`_PHI3V_UNSIZED`).
    """
    proc = config.get("img_processor")
    if not isinstance(proc, Mapping):
        return None
    depth, hidden, inter, patch = _PHI3V_CLIP
    idx = proc.get("layer_idx", -2)
    if isinstance(idx, bool) or not isinstance(idx, int) or not -depth <= idx < depth:
        return None
    layers = depth + idx + 1 if idx < 0 else idx + 1
    return VisionEncoder(
        layers, hidden, inter, pixels_per_patch=3 * patch * patch, unsized_reason=_PHI3V_UNSIZED
    )


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
    InternVL and Pixtral items come from `vision_items`; Phi-3-vision's tower is not in its
    config (`_phi3v_tower`).
    """
    vision = config.get("vision_config")
    if config.get("model_type") == "phi3_v":
        return _phi3v_tower(config)
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
    elif model_type == "minicpmv":
        item = _MINICPMV_UNSIZED
    elif model_type == "mllama":
        item = _MLLAMA_UNSIZED
    elif model_type in ("llava", "mistral3") and tower == "pixtral" and patch and image:
        item = pixtral_hf_item(config, image, patch)
    elif model_type == "llava" and patch and image:
        # LLaVA-1.5: one crop; the "default" feature strategy drops CLIP's class token
        side = image // patch
        full = config.get("vision_feature_select_strategy") == "full"
        per_item, patches = side * side + (1 if full else 0), side * side + 1
    caveat = None
    if isinstance(item, Item):
        per_item, patches, embeds = item.tokens, item.patches, item.embeds
        if model_type == "internvl_chat":
            caveat = internvl_video_caveat(
                config, item, item.patches // ((image // patch) ** 2 + 1)
            )
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
        caveat=caveat,
    )
