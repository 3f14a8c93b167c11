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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from capacity_planner.errors import ConfigFieldError
from capacity_planner.model import catalog
from capacity_planner.model.hf_config import parse_hf_config
from capacity_planner.model.parts import (
    LayerKind,
    MambaState,
    MLAConfig,
    MoEConfig,
    QuantConfig,
    VisionEncoder,
    quant_from_name,
)

__all__ = [
    "LayerKind",
    "MLAConfig",
    "MambaState",
    "MoEConfig",
    "ModelSpec",
    "QuantConfig",
    "quant_from_name",
]


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
    kv_shared_layers: frozenset[int] = frozenset()
    full_head_dim: int | None = None
    full_num_kv_heads: int | None = None
    vision: VisionEncoder | None = None
    mtp_layers: int = 0
    num_params: int | None = None
    extra_params: int = 0
    source: str = ""
    notes: tuple[str, ...] = field(default=())

    # -- derived fields -------------------------------------------------------------
    @property
    def num_kv_layers(self) -> int:
        """Layers that own a KV cache or a state page."""
        return len(self.layer_kinds)

    def attention_shape(self, kind: LayerKind) -> tuple[int, int]:
        """(head_dim, total KV heads) of one attention layer of `kind`.

        Gemma-4 gives its full-attention layers their own head size and KV head count
        (`global_head_dim`, `num_global_key_value_heads`); every other model uses one shape.
        """
        if kind == "full":
            return (
                self.full_head_dim or self.head_dim,
                self.full_num_kv_heads or self.num_kv_heads,
            )
        return self.head_dim, self.num_kv_heads

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
            "encoder": self.vision.num_params if self.vision else 0,
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
        canonical, config, params = catalog.lookup(name)
        spec = cls.from_hf_config(config, name=canonical, source=catalog.source_of(canonical))
        return replace(spec, num_params=params) if params is not None else spec

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
        return cls(**parse_hf_config(config, name=name, source=source))
