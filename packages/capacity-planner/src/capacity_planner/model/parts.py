"""The pieces of a model that change its memory: MLA, MoE, Mamba state, quantisation.

Small frozen dataclasses that `ModelSpec` is made of, plus `--quantization` names as
vLLM spells them (`vllm/model_executor/layers/quantization/__init__.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from capacity_planner.errors import ConfigFieldError, ParallelConfigError

__all__ = [
    "LayerKind",
    "MLAConfig",
    "MambaState",
    "MoEConfig",
    "QuantConfig",
    "VisionEncoder",
    "quant_from_config",
    "quant_from_name",
]

LayerKind = Literal["full", "sliding", "mla", "mamba"]


@dataclass(frozen=True)
class MLAConfig:
    """Multi-head latent attention sizes (DeepSeek-V2/V3, Kimi-K2)."""

    kv_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int
    q_lora_rank: int | None = None


@dataclass(frozen=True)
class MambaState:
    """Per-layer recurrent state: full (unsharded) tensor shapes and the axis TP splits.

    `kind` names the mixer ("mamba1", "mamba2", "gated_delta_net"); `tensors` holds
    `(shape, tp_axis)` pairs, e.g. a conv state `((8192, 3), 0)`.
    """

    kind: str
    tensors: tuple[tuple[tuple[int, ...], int], ...]
    params_per_layer: int = 0

    def shapes(self, tensor_parallel_size: int) -> tuple[tuple[int, ...], ...]:
        out = []
        for shape, axis in self.tensors:
            dims = list(shape)
            if dims[axis] % tensor_parallel_size:
                raise ParallelConfigError(
                    f"tensor_parallel_size={tensor_parallel_size} does not divide the "
                    f"{self.kind} state dimension {dims[axis]}"
                )
            dims[axis] //= tensor_parallel_size
            out.append(tuple(dims))
        return tuple(out)


@dataclass(frozen=True)
class VisionEncoder:
    """A multimodal model's vision tower (`vision_config`): ViT-style layer sizes.

    `spatial_merge_size` m: the tower runs on patches and merges each m x m block into one
    language-model token (Qwen2-VL family: m = 2, so one image token is 4 patches).
    `pixels_per_patch`: input values per patch (channels x temporal patch x patch^2), 0
    where the config does not give them. `max_tokens_per_item`: the prompt tokens the
    largest image's placeholder spans, what vLLM divides the encoder budget by (None: not
    known from the config). `patches_per_item`: the patches that image sends through the
    tower, and `embeds_per_item` the embeddings the projector returns for it, where they are
    not `max_tokens_per_item` x m^2 and `max_tokens_per_item` (Gemma-3: 4,096 patches
    pooled to 256 embeddings inside a 260-token placeholder). `unsized_reason`: why the
    largest item cannot be read from this config (the encoder pass is then left out);
    `caveat`: what may make vLLM profile another item than the one sized.
    """

    depth: int
    hidden_size: int
    intermediate_size: int
    gated_mlp: bool = False  # SwiGLU: gate and up projections (3 h i weights, not 2)
    spatial_merge_size: int = 1
    out_hidden_size: int | None = None
    pixels_per_patch: int = 0
    max_tokens_per_item: int | None = None
    patches_per_item: int | None = None
    embeds_per_item: int | None = None
    unsized_reason: str | None = None
    caveat: str | None = None

    @property
    def item_patches(self) -> int | None:
        """Patches of the largest item through the tower (None: the item is not known)."""
        if self.patches_per_item is not None:
            return self.patches_per_item
        if self.max_tokens_per_item is None:
            return None
        return self.max_tokens_per_item * self.spatial_merge_size**2

    @property
    def item_embeds(self) -> int | None:
        """Embeddings the encoder returns for the largest item (None: not known)."""
        if self.embeds_per_item is not None:
            return self.embeds_per_item
        return self.max_tokens_per_item

    @property
    def num_params(self) -> int:
        """Attention (4 h^2) and MLP (2 or 3 h i) per layer, plus the projector into the LM.

        The projector of a merging tower is the Qwen2-VL merger (an MLP from m^2 h to m^2 h
        to the LM's hidden size); otherwise 2 h^2.
        """
        h = self.hidden_size
        mlp = (3 if self.gated_mlp else 2) * h * self.intermediate_size
        merged = h * self.spatial_merge_size**2
        if self.spatial_merge_size > 1 and self.out_hidden_size:
            projector = merged * merged + merged * self.out_hidden_size
        else:
            projector = 2 * h * h
        return self.depth * (4 * h * h + mlp) + projector


@dataclass(frozen=True)
class MoEConfig:
    """Mixture-of-experts sizes; `moe_layers` lists which decoder layers are sparse."""

    num_experts: int
    num_experts_per_tok: int
    moe_intermediate_size: int
    shared_intermediate_size: int = 0
    moe_layers: tuple[int, ...] = ()


@dataclass(frozen=True)
class QuantConfig:
    """Weight quantisation: bits per weight of the quantised linear layers.

    `experts_only` (gpt-oss MXFP4) leaves attention and embeddings in the model dtype.
    `group_size` adds one 16-bit scale (plus a packed zero point for 'awq'/'gptq') per
    group of weights, which is how AWQ/GPTQ checkpoints are stored.
    """

    method: str
    bits: float
    group_size: int | None = None
    experts_only: bool = False

    @property
    def bytes_per_weight(self) -> float:
        bits = self.bits
        if self.group_size:
            zero_bits = self.bits if self.method in ("awq", "gptq") else 0.0
            bits += (16.0 + zero_bits) / self.group_size
        return bits / 8.0


_QUANT_BITS: dict[str, float] = {
    "fp8": 8,
    "fbgemm_fp8": 8,
    "modelopt": 8,
    "int8": 8,
    "w8a8": 8,
    "experts_int8": 8,
    "awq": 4,
    "awq_marlin": 4,
    "gptq": 4,
    "gptq_marlin": 4,
    "bitsandbytes": 4,
    "mxfp4": 4.25,
    "nvfp4": 4.5,
    "modelopt_fp4": 4.5,
    "gguf": 4.5,
}


def quant_from_name(
    method: str, bits: float | None = None, group_size: int | None = None
) -> QuantConfig:
    """A `--quantization` value (vLLM's names) as a QuantConfig."""
    key = method.lower()
    if key not in _QUANT_BITS and bits is None:
        raise ConfigFieldError(
            "quantization",
            f"unknown quantization {method!r}; known: {', '.join(sorted(_QUANT_BITS))}",
        )
    return QuantConfig(
        method=key,
        bits=float(bits if bits is not None else _QUANT_BITS[key]),
        group_size=group_size,
        experts_only=key == "mxfp4",
    )


def quant_from_config(qc: Mapping[str, Any]) -> QuantConfig | None:
    method = str(qc.get("quant_method", "")).lower()
    if not method:
        return None
    if method == "compressed-tensors":
        bits: float = 8
        for group in dict(qc.get("config_groups", {})).values():
            weights = dict(group).get("weights") or {}
            bits = float(dict(weights).get("num_bits", bits))
        fmt = str(qc.get("format", ""))
        return QuantConfig("compressed-tensors", 4.5 if "nvfp4" in fmt else bits)
    if method in ("awq", "gptq"):
        return QuantConfig(
            method,
            float(qc.get("bits", qc.get("w_bit", 4))),
            qc.get("group_size", qc.get("q_group_size", 128)),
        )
    if method == "bitsandbytes":
        return QuantConfig(method, 4.0 if qc.get("load_in_4bit", True) else 8.0)
    if method in _QUANT_BITS:
        return quant_from_name(method)
    return QuantConfig(method, 8.0)
