"""ModelSpec: the architecture numbers of a model that decide its KV-cache and weight memory.

Read from a Hugging Face `config.json` (`ModelSpec.from_hf_config` / `from_config_file`)
or from the built-in catalog (`ModelSpec.from_name`, see `catalog.py`). The layer mix is
what vLLM's `get_kv_cache_spec()` would build per layer (`vllm/v1/kv_cache_interface.py`):
full attention, sliding window, MLA latent, or Mamba / linear-attention state. Parameter
counting mirrors the shapes of vLLM's model files (`vllm/model_executor/models/*.py`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from capacity_planner.errors import ConfigFieldError, ParallelConfigError

__all__ = [
    "LayerKind",
    "MLAConfig",
    "MambaState",
    "MoEConfig",
    "ModelSpec",
    "QuantConfig",
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


def _quant_from_config(qc: Mapping[str, Any]) -> QuantConfig | None:
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


def _get(cfg: Mapping[str, Any], *names: str, default: Any = None) -> Any:
    for name in names:
        value = cfg.get(name)
        if value is not None:
            return value
    return default


def _require_int(cfg: Mapping[str, Any], *names: str, minimum: int = 1) -> int:
    value = _get(cfg, *names)
    if value is None:
        raise ConfigFieldError(
            names[0], f"config.json is missing {names[0]!r} (needed to size the KV cache)"
        )
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigFieldError(
            names[0], f"config field {names[0]!r} must be an integer >= {minimum}, got {value!r}"
        )
    return value


@dataclass(frozen=True)
class ModelSpec:
    """Architecture numbers of one decoder model (text part of a multimodal one)."""

    name: str
    model_type: str
    num_hidden_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    intermediate_size: int
    layer_kinds: tuple[LayerKind, ...]
    dtype: str = "bfloat16"
    sliding_window: int | None = None
    mla: MLAConfig | None = None
    mamba: MambaState | None = None
    moe: MoEConfig | None = None
    quantization: QuantConfig | None = None
    tie_word_embeddings: bool = False
    max_position_embeddings: int = 4096
    num_params: int | None = None
    extra_params: int = 0
    source: str = ""
    notes: tuple[str, ...] = field(default=())

    # -- derived fields -------------------------------------------------------------
    @property
    def num_kv_layers(self) -> int:
        """Layers that own a KV cache or a state page."""
        return len(self.layer_kinds)

    def count(self, kind: LayerKind) -> int:
        return sum(1 for k in self.layer_kinds if k == kind)

    @property
    def is_hybrid(self) -> bool:
        return len(set(self.layer_kinds)) > 1

    @property
    def attention_kinds(self) -> tuple[LayerKind, ...]:
        return tuple(sorted({k for k in self.layer_kinds if k != "mamba"}))

    def param_count(self) -> int:
        """Total parameters: the catalog's published count, else counted from shapes."""
        if self.num_params is not None:
            return self.num_params
        return sum(self.param_breakdown().values())

    def param_breakdown(self) -> dict[str, int]:
        """Parameters by part (embeddings, attention, dense MLP, experts, state mixers)."""
        h = self.hidden_size
        parts = {
            "embeddings": self.vocab_size * h,
            "lm_head": 0,
            "attention": 0,
            "mlp": 0,
            "experts": 0,
            "mixers": 0,
            "norms": 0,
            "other": self.extra_params,
        }
        if not self.tie_word_embeddings:
            parts["lm_head"] = self.vocab_size * h
        moe_layers = set(self.moe.moe_layers) if self.moe else set()
        for i, kind in enumerate(self.layer_kinds):
            parts["norms"] += 2 * h
            if kind == "mamba":
                parts["mixers"] += self.mamba.params_per_layer if self.mamba else 0
            elif kind == "mla" and self.mla is not None:
                m = self.mla
                qk = m.qk_nope_head_dim + m.qk_rope_head_dim
                q = (
                    h * m.q_lora_rank + m.q_lora_rank * self.num_attention_heads * qk
                    if m.q_lora_rank
                    else h * self.num_attention_heads * qk
                )
                kv = h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank * (
                    self.num_attention_heads * (m.qk_nope_head_dim + m.v_head_dim)
                )
                parts["attention"] += q + kv + self.num_attention_heads * m.v_head_dim * h
            else:
                q_out = self.num_attention_heads * self.head_dim
                kv_out = 2 * self.num_kv_heads * self.head_dim
                parts["attention"] += h * (q_out + kv_out) + q_out * h
            if i in moe_layers and self.moe is not None:
                e = self.moe
                parts["experts"] += e.num_experts * 3 * h * e.moe_intermediate_size
                parts["mlp"] += 3 * h * e.shared_intermediate_size + h * e.num_experts
            else:
                parts["mlp"] += 3 * h * self.intermediate_size
        return parts

    # -- constructors ---------------------------------------------------------------
    @classmethod
    def from_name(cls, name: str) -> ModelSpec:
        """A model of the built-in catalog (architecture numbers only, with source)."""
        from capacity_planner.catalog import model_from_name

        return model_from_name(name)

    @classmethod
    def from_config_file(cls, path: str | Path, name: str | None = None) -> ModelSpec:
        """Read a local Hugging Face config.json (or a directory holding one)."""
        p = Path(path)
        if p.is_dir():
            p = p / "config.json"
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigFieldError("config", f"no config.json at {str(p)!r}") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigFieldError("config", f"cannot read {str(p)!r} as JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigFieldError("config", f"{str(p)!r} does not hold a JSON object")
        return cls.from_hf_config(data, name=name or p.parent.name or p.stem, source=str(p))

    @classmethod
    def from_hf_config(
        cls, config: Mapping[str, Any], *, name: str = "model", source: str = ""
    ) -> ModelSpec:
        """Build from a config.json dict (multimodal configs: the nested `text_config`)."""
        from capacity_planner._hf_config import parse_hf_config

        return parse_hf_config(cls, config, name=name, source=source)
