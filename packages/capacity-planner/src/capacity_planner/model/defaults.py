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

__all__ = [
    "DEFAULT_MAX_LEN",
    "MODEL_DTYPES",
    "canonical_dtype",
    "config_dtype",
    "kv_shared_layers",
    "max_model_len_of",
    "mtp_layers",
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
