"""The tiling towers' largest dummy image, checked against vLLM's own formulas by hand.

Each expected number is worked out in the comment from the vLLM code the planner cites
(`vllm/model_executor/models/internvl.py`, `llava.py`, `pixtral.py`), never by calling
the planner. Configs are the checkpoints' published config.json files, in tests/data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capacity_planner import EngineSettings, ModelSpec
from capacity_planner.accounting.terms import (
    encoder_activation_bytes,
    encoder_items,
    encoder_tokens,
)
from capacity_planner.cli import main

DATA = Path(__file__).parent / "data"
V1 = EngineSettings(max_model_len=4096, vllm_version="v1")


def config(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text("utf-8"))
    return data


# OpenGVLab/InternVL2-1B, https://huggingface.co/OpenGVLab/InternVL2-1B/blob/main/config.json
INTERNVL2_1B = config("internvl2-1b.json")


def test_internvl2_tower_and_language_model_are_read() -> None:
    m = ModelSpec.from_hf_config(INTERNVL2_1B)
    # the language model is Qwen2-0.5B under `llm_config`
    assert (m.num_hidden_layers, m.hidden_size, m.num_kv_heads) == (24, 896, 2)
    v = m.vision
    assert v is not None
    # InternViT-300M: 24 layers, 1024 wide, a 4096 GELU MLP (not gated), 14-pixel patches
    assert (v.depth, v.hidden_size, v.intermediate_size, v.gated_mlp) == (24, 1024, 4096, False)
    assert v.pixels_per_patch == 3 * 14 * 14


def test_internvl2_largest_image_is_twelve_tiles_and_a_thumbnail() -> None:
    v = ModelSpec.from_hf_config(INTERNVL2_1B).vision
    assert v is not None and v.unsized_reason is None
    # num_image_token = (448 // 14)^2 x 0.5^2 = 256 context tokens a tile.
    # get_image_size_with_most_features probes grids of up to 12 + 1 = 13 tiles (the
    # thumbnail widens the range); each probe is cut to the closest grid of at most 12
    # (a 3 x 4 probe to itself, 1 x 13 to 1 x 12), and a thumbnail joins: 13 tiles.
    # Placeholder: <img> + 13 x 256 <IMG_CONTEXT> + </img> = 3,330 tokens.
    # Tower: 13 tiles x (32 x 32 patches + InternViT's class token) = 13 x 1,025.
    assert (v.max_tokens_per_item, v.embeds_per_item, v.patches_per_item) == (
        3330,
        3328,
        13325,
    )
    m = ModelSpec.from_hf_config(INTERNVL2_1B)
    # budget max(8192, 3330) = 8192 -> 8192 // 3330 = 2 dummy images
    assert encoder_items(m, V1, 8192) == (2, 8192)
    assert encoder_tokens(m, V1, 8192) == (2 * 3330, 2 * 13325)
    # a 2,048-token step still encodes one whole image: budget max(2048, 3330) = 3330
    assert encoder_items(m, V1, 2048) == (1, 3330)


@pytest.mark.parametrize(
    ("changes", "tokens", "patches"),
    [
        # dynamic_image_size off: min = max = 1, no thumbnail: one tile, 256 + 2 tokens
        ({"dynamic_image_size": False}, 256 + 2, 1025),
        # max 6 with thumbnail: probes up to 7 tiles, cut to 6, + thumbnail = 7 tiles
        ({"max_dynamic_patch": 6}, 7 * 256 + 2, 7 * 1025),
        # max 12 without thumbnail: the 12-tile grids, no extra tile
        ({"use_thumbnail": False}, 12 * 256 + 2, 12 * 1025),
    ],
)
def test_internvl_tiling_settings_move_the_item(
    changes: dict[str, Any], tokens: int, patches: int
) -> None:
    v = ModelSpec.from_hf_config({**INTERNVL2_1B, **changes}).vision
    assert v is not None
    assert (v.max_tokens_per_item, v.patches_per_item) == (tokens, patches)


@settings(max_examples=40, deadline=None)
@given(
    lo=st.integers(1, 4),
    extra=st.integers(0, 12),
    thumb=st.booleans(),
    dynamic=st.booleans(),
)
def test_internvl_tiles_are_max_dynamic_patch_plus_thumbnail(
    lo: int, extra: int, thumb: bool, dynamic: bool
) -> None:
    # the 1 x max probe cuts to exactly `max` tiles and no grid holds more
    hi = lo + extra
    cfg = {
        **INTERNVL2_1B,
        "min_dynamic_patch": lo,
        "max_dynamic_patch": hi,
        "use_thumbnail": thumb,
        "dynamic_image_size": dynamic,
    }
    v = ModelSpec.from_hf_config(cfg).vision
    assert v is not None and v.patches_per_item is not None
    tiles = hi if dynamic else 1
    tiles += 1 if thumb and tiles != 1 else 0
    assert v.patches_per_item == tiles * 1025
    assert v.max_tokens_per_item == tiles * 256 + 2


@pytest.mark.parametrize(
    "field", ["max_dynamic_patch", "use_thumbnail", "downsample_ratio", "dynamic_image_size"]
)
def test_internvl_without_a_tiling_field_is_refused_not_guessed(field: str) -> None:
    cfg = dict(INTERNVL2_1B)
    del cfg[field]
    m = ModelSpec.from_hf_config(cfg)
    assert m.vision is not None and m.vision.unsized_reason is not None
    assert any("encoder profile pass not counted" in n and field in n for n in m.notes)
    assert encoder_tokens(m, V1, 8192) == (0, 0)
    assert encoder_activation_bytes(m, V1, 8192) == 0


def test_internvl_bad_tiling_values_are_refused() -> None:
    for changes in ({"max_dynamic_patch": 0}, {"downsample_ratio": 2.0}, {"use_thumbnail": 1}):
        v = ModelSpec.from_hf_config({**INTERNVL2_1B, **changes}).vision
        assert v is not None and v.unsized_reason is not None
        assert v.max_tokens_per_item is None


def test_cli_plan_of_internvl_shows_its_encoder_pass(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(DATA / "internvl2-1b.json")
    # 0.34 (the default) divides the budget by the 3,328 embeddings, 0.12 by the 3,330-token
    # placeholder: max(2048, per item) either way, one image of 13,325 patches
    for version, budget in (("0.34.0", 3328), ("0.12.0", 3330)):
        argv = [path, "--gpu", "L4", "--max-model-len", "4096", "--vllm-version", version]
        code = main(argv)
        out = capsys.readouterr().out
        assert code == 0
        assert f"encoder 1 image(s) of a {budget}-token budget, 13325 patches" in out


def test_cli_says_why_an_internvl_tower_is_not_counted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = dict(INTERNVL2_1B)
    del cfg["max_dynamic_patch"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    code = main([str(path), "--gpu", "L4", "--max-model-len", "4096"])
    out = capsys.readouterr().out
    assert code == 0 and "encoder not counted (see notes)" in out
    assert "lacks max_dynamic_patch" in out


# mistralai/Mistral-Small-3.1-24B-Instruct-2503,
# https://huggingface.co/mistralai/Mistral-Small-3.1-24B-Instruct-2503/blob/main/config.json
MISTRAL_SMALL_31 = config("mistral-small-3.1-24b-instruct-2503.json")


def test_mistral3_pixtral_tower_is_gated_and_sized_from_its_square() -> None:
    m = ModelSpec.from_hf_config(MISTRAL_SMALL_31)
    v = m.vision
    assert v is not None and v.unsized_reason is None
    # Pixtral's MLP is gate-and-up (`PixtralHFMLP`): 24 layers, 1024 wide, 4096 inner
    assert (v.depth, v.hidden_size, v.intermediate_size, v.gated_mlp) == (24, 1024, 4096, True)
    # get_image_size_with_most_features: the 1540 x 1540 square. PixtralHFEncoderInfo's
    # step is patch x spatial_merge_size = 14 x 2 = 28: ceil(1540 / 28) = 55 columns and
    # rows; placeholder ([IMG] x 55 + [IMG_BREAK]) x 55, the last break an [IMG_END]:
    # 56 x 55 = 3,080 tokens, 55^2 = 3,025 embeddings, (55 x 2)^2 = 12,100 patches.
    assert (v.max_tokens_per_item, v.embeds_per_item, v.patches_per_item) == (3080, 3025, 12100)
    # budget 8192 -> 8192 // 3080 = 2 images; a 2,048-token step: one, budget 3,080
    assert encoder_items(m, V1, 8192) == (2, 8192)
    assert encoder_items(m, V1, 2048) == (1, 3080)
    assert encoder_tokens(m, V1, 8192) == (2 * 3080, 2 * 12100)


def test_pixtral_under_a_llava_config_has_no_merge() -> None:
    # llava.py's PixtralHFProcessingInfo reads the same tower from a LlavaConfig, which has
    # no spatial_merge_size: step 14, ceil(1540 / 14) = 110, (110 + 1) x 110 = 12,210
    # tokens and 110^2 = 12,100 patches and embeddings
    cfg = {k: v for k, v in MISTRAL_SMALL_31.items() if k != "spatial_merge_size"}
    v = ModelSpec.from_hf_config({**cfg, "model_type": "llava"}).vision
    assert v is not None
    assert (v.max_tokens_per_item, v.embeds_per_item, v.patches_per_item) == (
        12210,
        12100,
        12100,
    )


def test_pixtral_bad_merge_is_refused() -> None:
    v = ModelSpec.from_hf_config({**MISTRAL_SMALL_31, "spatial_merge_size": 0}).vision
    assert v is not None and v.unsized_reason is not None
    assert "spatial_merge_size" in v.unsized_reason


def test_cli_plan_of_mistral3_shows_its_encoder_pass(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(DATA / "mistral-small-3.1-24b-instruct-2503.json")
    code = main([path, "--gpu", "H100", "--max-model-len", "8192", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    details = " ".join(step["detail"] for step in data["memory"]["steps"])
    assert "encoder 2 image(s) of a 8192-token budget, 24200 patches" in details


# microsoft/Phi-3-vision-128k-instruct,
# https://huggingface.co/microsoft/Phi-3-vision-128k-instruct/blob/main/config.json
PHI3_VISION = config("phi-3-vision-128k-instruct.json")


def test_phi3_vision_tower_is_vllms_fixed_clip_cut_at_layer_idx() -> None:
    v = ModelSpec.from_hf_config(PHI3_VISION).vision
    assert v is not None
    # phi3v.py builds CLIP ViT-L/14-336 (24 layers, 1024 wide, MLP 4096) whatever the
    # config holds, keeping 24 + (-2) + 1 = 23 layers for the default layer_idx -2
    assert (v.depth, v.hidden_size, v.intermediate_size, v.gated_mlp) == (23, 1024, 4096, False)
    cfg = {**PHI3_VISION, "img_processor": {**PHI3_VISION["img_processor"], "layer_idx": -1}}
    v24 = ModelSpec.from_hf_config(cfg).vision
    assert v24 is not None and v24.depth == 24


def test_phi3_vision_item_is_refused_for_want_of_num_crops() -> None:
    m = ModelSpec.from_hf_config(PHI3_VISION)
    assert m.vision is not None and m.vision.max_tokens_per_item is None
    # its tokens depend on the processor's num_crops (preprocessor_config.json)
    assert any("not counted" in n and "num_crops" in n for n in m.notes)
    assert encoder_tokens(m, V1, 8192) == (0, 0)
    assert encoder_activation_bytes(m, V1, 8192) == 0
    # the tower's weights still count: about 0.3 B parameters on the first stage
    assert 0.25e9 < m.param_breakdown()["encoder"] < 0.35e9


def test_cli_says_why_phi3_vision_has_no_encoder_pass(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(DATA / "phi-3-vision-128k-instruct.json")
    code = main([path, "--gpu", "L4", "--max-model-len", "4096"])
    out = capsys.readouterr().out
    assert code == 0 and "encoder not counted (see notes)" in out and "num_crops" in out


def test_minicpmv_is_refused_with_its_reason() -> None:
    # No MiniCPM-V config.json was found to store, so this reuses InternVL2-1B's config
    # under MiniCPM-V's model_type: only the routing is checked, no MiniCPM-V number
    m = ModelSpec.from_hf_config({**INTERNVL2_1B, "model_type": "minicpmv"})
    assert m.vision is not None and m.vision.max_tokens_per_item is None
    assert any("not counted" in n and "MiniCPM-V" in n for n in m.notes)
    assert encoder_tokens(m, V1, 8192) == (0, 0)


def test_mllama_is_refused_because_v1_does_not_serve_it() -> None:
    # routing only, as for MiniCPM-V: vLLM 0.11's registry lists
    # MllamaForConditionalGeneration as previously supported (last in 0.10.2)
    m = ModelSpec.from_hf_config({**INTERNVL2_1B, "model_type": "mllama"})
    assert m.vision is not None and m.vision.unsized_reason is not None
    assert any("not counted" in n and "Llama-3.2-Vision" in n for n in m.notes)
    assert encoder_tokens(m, V1, 8192) == (0, 0)


def test_internvl_notes_when_a_dummy_video_may_be_profiled_instead() -> None:
    # InternVLProcessingInfo.get_video_token maps qwen2 to <|video_pad|>: with that token
    # in the tokenizer, a video of (max_model_len - 13 x 256) // 256 frames competes
    m = ModelSpec.from_hf_config(INTERNVL2_1B)
    assert any("(max_model_len - 3328) // 256" in n for n in m.notes)
    # an InternLM2 language model has no video token in vLLM's map: no such note
    internlm = {**INTERNVL2_1B, "llm_config": {**INTERNVL2_1B["llm_config"]}}
    internlm["llm_config"]["model_type"] = "internlm2"
    assert not any("dummy video" in n for n in ModelSpec.from_hf_config(internlm).notes)
