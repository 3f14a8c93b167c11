"""Every `--kv-cache-dtype` of vLLM 0.34: bytes one token of one KV head stores.

vLLM's `CacheDType` (`vllm/config/cache.py`) has 22 choices. The plain ones store K and
V in an element dtype (`block_allocator.kv_cache_spec.dtype_size`); the quantised ones
pack data and scales into a per-(token, head) slot whose size the attention backend
publishes as `state_content_bytes` (`customize_spec`). Read from the 0.34.0 wheel:

- auto, float16, bfloat16: 2h x the element size (`AttentionSpec`);
- fp8, fp8_e4m3, fp8_e5m2, fp8_inc: 2h;
- int8/fp8_per_token_head: 2h + two fp32 scales (`TritonAttentionBackend.customize_spec`);
- int4_per_token_head: h (two int4 per byte) + two fp32 scales (same);
- nvfp4, nvfp4_4over6: 2 x (h/2 + h/16), fp4 data + fp8 block scales
  (`FlashInferBackend.customize_spec`, `nvfp4_kv_cache_full_dim`);
- turboquant_*: key (fp8: h, else ceil(h x bits / 8) + 2) + value (ceil(h x bits / 8)
  + 4), rounded up to even (`TurboQuantConfig.slot_size_aligned`);
- ultraquant_4bit: 2 x (h/2 + h/32) (`ultraquant/format.py` `slot_size`);
- fp8_ds_mla / nvfp4_ds_mla: 656 / 352 bytes per token, MLA models only
  (`MLAAttention.get_kv_cache_spec`);
- octave_*: refused, a ROCm-only packing published by the ROCm backend.

Releases before 0.21 know only the first eight names (0.19.0 wheel); 0.21 added
turboquant, per-token-head int8/fp8 and nvfp4; 0.33 has all 22.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from capacity_planner.errors import SettingError
from capacity_planner.model.defaults import canonical_dtype

__all__ = ["KV_CACHE_DTYPES", "KVDtype", "resolve_kv_dtype"]

CLASSIC = ("auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "fp8_ds_mla")
KV_CACHE_DTYPES: tuple[str, ...] = (
    *CLASSIC,
    "nvfp4_ds_mla",
    "turboquant_k8v4",
    "turboquant_4bit_nc",
    "turboquant_k3v4_nc",
    "turboquant_3bit_nc",
    "octave_k3v4",
    "octave_k3v3",
    "octave_k3v3_compact",
    "ultraquant_4bit",
    "int4_per_token_head",
    "int8_per_token_head",
    "fp8_per_token_head",
    "nvfp4",
    "nvfp4_4over6",
)
_TURBOQUANT_BITS = {  # (key bits, value bits); 8 = fp8 keys
    "turboquant_k8v4": (8, 4),
    "turboquant_4bit_nc": (4, 4),
    "turboquant_k3v4_nc": (3, 4),
    "turboquant_3bit_nc": (3, 3),
}
_MLA_ROW_BYTES = {"fp8_ds_mla": 656, "nvfp4_ds_mla": 352}
_SCALE = 4  # one fp32 scale per token-head for K and one for V


@dataclass(frozen=True)
class KVDtype:
    """A resolved `--kv-cache-dtype`: the element dtype and, when packed, the slot size."""

    name: str
    element: str  # block_allocator dtype name used for the spec
    mla_row_bytes: int | None = None  # per-token row of an MLA latent (ds_mla formats)

    def slot_bytes(self, head_size: int, head_size_v: int | None = None) -> tuple[int, int] | None:
        """Bytes of the K and the V part of one (token, head) slot; None = plain elements.

        vLLM sizes a packed page as `block_size x heads x slot`; the planner gives the
        allocator's `FullAttentionSpec` these two parts as head sizes of a byte dtype,
        as vLLM's TurboQuant backend does with `slot_size_aligned // 2`.
        """
        hv = head_size if head_size_v is None else head_size_v
        n = self.name
        if n in ("int8_per_token_head", "fp8_per_token_head"):
            return head_size + _SCALE, hv + _SCALE
        if n == "int4_per_token_head":
            return head_size // 2 + _SCALE, hv // 2 + _SCALE
        if n.startswith("nvfp4") and self.mla_row_bytes is None:
            return head_size // 2 + head_size // 16, hv // 2 + hv // 16
        if n in _TURBOQUANT_BITS:
            kb, vb = _TURBOQUANT_BITS[n]
            key = head_size if kb == 8 else math.ceil(head_size * kb / 8) + 2
            slot = key + math.ceil(hv * vb / 8) + 4
            slot += slot % 2
            return slot // 2, slot - slot // 2
        if n == "ultraquant_4bit":
            return head_size // 2 + head_size // 32, hv // 2 + hv // 32
        return None

    @property
    def quantised(self) -> bool:
        return self.element == "fp8" or self.name not in ("auto", "float16", "bfloat16")


def resolve_kv_dtype(
    kv_cache_dtype: str, model_dtype: str, *, mla: bool, all_choices: bool = True
) -> KVDtype:
    """Check `--kv-cache-dtype` as vLLM does and say how it is stored.

    `all_choices=False` limits the choice to the eight names releases before 0.21 know.
    """
    if not isinstance(kv_cache_dtype, str):
        raise SettingError(f"--kv-cache-dtype must be a string, got {kv_cache_dtype!r}")
    key = kv_cache_dtype.lower()
    if canonical_dtype(key) in ("float16", "bfloat16"):
        key = canonical_dtype(key) or key  # bf16, fp16, half: the same two choices
    known = KV_CACHE_DTYPES if all_choices else CLASSIC
    if key not in known:
        raise SettingError(
            f"--kv-cache-dtype {kv_cache_dtype!r} is not one this vLLM version accepts; "
            f"valid: {', '.join(known)}"
        )
    if key.startswith("octave_"):
        raise SettingError(
            f"--kv-cache-dtype {key}: a ROCm-only packing whose slot size the ROCm Octave "
            "backend publishes; not modelled (use turboquant_* or fp8 to compare)"
        )
    if key in _MLA_ROW_BYTES:
        if not mla:
            raise SettingError(
                f"--kv-cache-dtype {key} is the FlashMLA sparse layout and needs an MLA model "
                "(DeepSeek-V3.2 style); this model has no MLA layers"
            )
        return KVDtype(key, "fp8", _MLA_ROW_BYTES[key])
    if key == "auto":
        return KVDtype(key, model_dtype)
    if key in ("float16", "bfloat16"):
        return KVDtype(key, key)
    if key.startswith("fp8") and not key.endswith("per_token_head"):
        return KVDtype(key, "fp8")
    return KVDtype(key, "uint8")  # packed: a byte array, sized by `slot_bytes`
