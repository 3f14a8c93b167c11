"""The largest dummy image of the tiling vision towers, sized as vLLM's profile sizes it.

vLLM's profile run (`gpu_model_runner.profile_run`) encodes dummy images of the size its
`ProcessingInfo.get_image_size_with_most_features` returns and divides the encoder
budget by that image's embeddings, or, in 0.11-0.12, by its whole placeholder
(`multimodal/profiling.py` `get_mm_max_contiguous_tokens`, which counts the start/end and
break tokens too; `accounting.terms.encoder_items` picks by release). Each function here
returns an `Item` read from config.json or, where a field vLLM reads is
missing, the reason it cannot be sized (the planner then leaves the encoder pass out and
says so rather than guess).

- InternVL (`internvl_chat`): `vllm/model_executor/models/internvl.py` in 0.11.0; the
  same tiling moved to `vllm/transformers_utils/processors/internvl.py` by 0.34.0.
- Pixtral's tower in the HF layout (`llava` or `mistral3` with a `pixtral`
  `vision_config`): `vllm/model_executor/models/llava.py` (`PixtralHFProcessingInfo`),
  `mistral3.py` (`Mistral3ProcessingInfo`) and `pixtral.py` (`PixtralHFEncoderInfo`). A
  checkpoint served in Mistral's own format (`params.json`, `--tokenizer-mode mistral`)
  goes through `pixtral.py`'s `PixtralProcessingInfo` instead, which config.json does
  not describe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["INTERNVL_FIELDS", "Item", "internvl_item", "internvl_video_caveat", "pixtral_hf_item"]


@dataclass(frozen=True)
class Item:
    """One dummy image: its placeholder tokens, patches through the tower, embeddings."""

    tokens: int  # what vLLM divides the encoder budget by
    patches: int  # positions through the tower, class tokens included
    embeds: int  # embeddings the projector returns (the image-context tokens)


# Top-level InternVLChatConfig fields vLLM's `BaseInternVLProcessor` reads; their defaults
# live in the checkpoint's remote code, not in vLLM, so a config without one is refused.
INTERNVL_FIELDS = (
    "min_dynamic_patch",
    "max_dynamic_patch",
    "dynamic_image_size",
    "use_thumbnail",
    "downsample_ratio",
)


def _closest_ratio(
    width: int, height: int, ratios: list[tuple[int, int]], image: int
) -> tuple[int, int]:
    # vLLM's `find_closest_aspect_ratio`: ties go to the later ratio while the image's
    # area is above half the ratio's tiles
    best, best_diff = (1, 1), float("inf")
    aspect = width / height
    for ratio in ratios:
        diff = abs(aspect - ratio[0] / ratio[1])
        if diff < best_diff:
            best, best_diff = ratio, diff
        elif diff == best_diff and width * height > 0.5 * image * image * ratio[0] * ratio[1]:
            best = ratio
    return best


def _ratios(lo: int, hi: int) -> list[tuple[int, int]]:
    grid = {
        (i, j)
        for n in range(lo, hi + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if lo <= i * j <= hi
    }
    return sorted(grid, key=lambda r: r[0] * r[1])


def internvl_item(config: Mapping[str, Any], image: int, patch: int) -> Item | str:
    """InternVL's largest image: the most 448-pixel tiles (plus thumbnail) vLLM cuts.

    `get_image_size_with_most_features` tries every tile grid up to `max_dynamic_patch`
    (+1 with a thumbnail); each image is cut to the closest grid of at most
    `max_dynamic_patch` tiles, and a thumbnail tile is added when it has more than one.
    A tile is `(image / patch)^2` patches plus InternViT's class token through the tower
    and `(image / patch)^2 x downsample_ratio^2` context tokens after pixel shuffle; the
    placeholder wraps them in <img> ... </img>.
    """
    missing = [f for f in INTERNVL_FIELDS if f not in config]
    if missing:
        return f"InternVL config.json lacks {', '.join(missing)} (vLLM reads them to tile)"
    lo, hi = config["min_dynamic_patch"], config["max_dynamic_patch"]
    dynamic, thumb = config["dynamic_image_size"], config["use_thumbnail"]
    ratio = config["downsample_ratio"]
    ints = all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in (lo, hi))
    if not ints or lo > hi or not isinstance(dynamic, bool) or not isinstance(thumb, bool):
        return "InternVL min/max_dynamic_patch must be positive integers, min <= max"
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0 < ratio <= 1:
        return f"InternVL downsample_ratio {ratio!r} is not in (0, 1]"
    if not dynamic:
        lo = hi = 1
    probe_hi = hi + 1 if thumb and hi != 1 else hi
    cut = _ratios(lo, hi)
    tiles = 0
    for wr, hr in _ratios(lo, probe_hi):
        a, b = _closest_ratio(image * wr, image * hr, cut, image)
        blocks = a * b
        tiles = max(tiles, blocks + 1 if thumb and blocks != 1 else blocks)
    side = image // patch
    per_tile = int(side * side * ratio**2)  # vLLM's `num_image_token`
    return Item(tiles * per_tile + 2, tiles * (side * side + 1), tiles * per_tile)


# Language models whose video token vLLM's `InternVLProcessingInfo.get_video_token` knows
_INTERNVL_VIDEO_TOKEN = {
    "qwen2": "<|video_pad|>",
    "qwen3": "<|video_pad|>",
    "qwen3_moe": "<|video_pad|>",
    "gpt_oss": "<|reserved_200000|>",
}


def internvl_video_caveat(config: Mapping[str, Any], item: Item, tiles: int) -> str | None:
    """When vLLM may profile a dummy video instead of InternVL's largest image.

    With a language model in `get_video_token`'s map and that token in the tokenizer
    (which config.json does not show), the profile also builds one video of
    `(max_model_len - image context tokens) // num_image_token` one-tile frames, each
    wrapped as "Frame{i}: <img>...</img>", and encodes whichever modality's item is longer
    (`get_modality_with_max_tokens`): the video once `max_model_len` leaves more than
    about as many frames as the image has tiles.
    """
    llm = config.get("llm_config")
    lm_type = llm.get("model_type") if isinstance(llm, Mapping) else None
    token = _INTERNVL_VIDEO_TOKEN.get(str(lm_type))
    if token is None:
        return None
    per_tile = item.embeds // tiles
    return (
        f"InternVL with a {lm_type} language model: if its tokenizer has {token}, vLLM "
        f"also builds a dummy video of (max_model_len - {item.embeds}) // {per_tile} "
        "one-tile frames and profiles it when its placeholder is longer than the image's "
        f"{item.tokens} tokens; the planner sizes the image only"
    )


def pixtral_hf_item(config: Mapping[str, Any], image: int, patch: int) -> Item | str:
    """Pixtral's tower in the HF layout: one `image_size` square, a break token per row.

    `get_image_size_with_most_features` is the `image_size` square. `PixtralHFEncoderInfo`
    measures its grid in steps of `patch x spatial_merge_size` (the top-level field
    Mistral-3 adds; a `llava` config has none, so 1): `ceil(image / step)` each way. The
    placeholder is `(cols + 1) x rows` tokens, the last row's break replaced by the end
    token; the tower sees `merge^2` patches per grid cell and has no class token.
    """
    merge = config.get("spatial_merge_size", 1)
    if isinstance(merge, bool) or not isinstance(merge, int) or merge < 1:
        return f"Pixtral spatial_merge_size {merge!r} is not a positive integer"
    side = -(-image // (patch * merge))
    return Item((side + 1) * side, (side * merge) ** 2, side * side)
