"""Per-layer KV-cache specs on one rank, hybrid page-size unification, and grouping.

Mirrors, for one worker, what vLLM does between `get_kv_cache_spec()` and
`get_kv_cache_groups()` (`vllm/v1/core/kv_cache_utils.py`, `kv_cache_interface.py`):

1. one spec per layer, from `block_allocator` (full, sliding window, MLA latent, Mamba
   state), with KV heads split over tensor-parallel ranks (replicated past their count)
   and MLA latents / Mamba states as vLLM shards them;
2. attention + Mamba: the attention block grows until one attention page holds at least
   one Mamba state, and the Mamba page is padded to the attention page
   (`HybridAttentionMambaModelConfig.verify_and_update_config`);
3. full + sliding window of different page sizes: smaller pages get a larger block size
   (`unify_kv_cache_spec_page_size`);
4. layers of one spec form a type; types are cut into groups of `group_size` layers
   (the smallest type's layer count, or the largest if max < 1.5 x min), padding the last.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from block_allocator.kv_cache_spec import (
    FullAttentionSpec,
    KVCacheSpec,
    MambaSpec,
    MLAAttentionSpec,
    SlidingWindowSpec,
    cdiv,
    kv_heads_per_rank,
)
from capacity_planner.accounting.kv_dtypes import KVDtype
from capacity_planner.errors import ParallelConfigError, UnsupportedModelError
from capacity_planner.model.spec import LayerKind, ModelSpec

__all__ = [
    "KVCacheGroup",
    "LayerLayout",
    "build_layout",
    "kind_of",
    "pp_layer_ranges",
]


def kind_of(spec: KVCacheSpec) -> str:
    """vLLM's name for the spec type."""
    if isinstance(spec, SlidingWindowSpec):
        return "sliding_window"
    if isinstance(spec, FullAttentionSpec):
        return "full_attention"
    if isinstance(spec, MLAAttentionSpec):
        return "mla_attention"
    return "mamba"


@dataclass(frozen=True)
class KVCacheGroup:
    """Layers that share one block table; `spec` is their common (unified) page spec."""

    kind: str
    spec: KVCacheSpec
    layer_indices: tuple[int, ...]
    padding_layers: int = 0

    @property
    def num_layers(self) -> int:
        return len(self.layer_indices)

    @property
    def page_size_bytes(self) -> int:
        return self.spec.page_size_bytes

    @property
    def block_size(self) -> int:
        return self.spec.block_size


@dataclass(frozen=True)
class LayerLayout:
    """The specs and groups of the layers one worker (one pipeline stage) holds."""

    layer_specs: tuple[KVCacheSpec, ...]
    groups: tuple[KVCacheGroup, ...]
    group_size: int
    attention_block_size: int
    notes: tuple[str, ...] = ()

    @property
    def page_size_bytes(self) -> int:
        return self.groups[0].page_size_bytes if self.groups else 0


def pp_layer_ranges(num_layers: int, pipeline_parallel_size: int) -> tuple[range, ...]:
    """vLLM's default `get_pp_indices`: even split, spare layers to the stages before the last."""
    if pipeline_parallel_size > num_layers:
        raise ParallelConfigError(
            f"pipeline_parallel_size={pipeline_parallel_size} exceeds the model's "
            f"{num_layers} layers"
        )
    sizes = [num_layers // pipeline_parallel_size] * pipeline_parallel_size
    for i in range(2, num_layers % pipeline_parallel_size + 2):
        sizes[-i] += 1
    out, start = [], 0
    for size in sizes:
        out.append(range(start, start + size))
        start += size
    return tuple(out)


def _attention_spec(
    model: ModelSpec,
    kind: LayerKind,
    block_size: int,
    kv: KVDtype,
    tp: int,
    as_full: bool = False,
) -> KVCacheSpec:
    if kind == "mla":
        if model.mla is None:
            raise UnsupportedModelError(f"{model.name}: MLA layers without MLA sizes")
        if kv.mla_row_bytes is not None:
            # ds_mla formats pack NoPE, RoPE and scales into one opaque per-token row
            # (vLLM's `state_content_bytes`): a byte latent of that width.
            rope = model.mla.qk_rope_head_dim
            return MLAAttentionSpec(block_size, kv.mla_row_bytes - rope, rope, "uint8")
        return MLAAttentionSpec(
            block_size, model.mla.kv_lora_rank, model.mla.qk_rope_head_dim, kv.element
        )
    head_dim, kv_heads = model.attention_shape(kind)
    heads = kv_heads_per_rank(kv_heads, tp)
    slot = kv.slot_bytes(head_dim)
    head_k, head_v = (head_dim, None) if slot is None else slot
    if kind == "sliding" and not as_full:
        return SlidingWindowSpec(
            block_size,
            heads,
            head_k,
            kv.element,
            head_size_v=head_v,
            sliding_window=model.sliding_window or 1,
        )
    return FullAttentionSpec(block_size, heads, head_k, kv.element, head_size_v=head_v)


def build_layout(
    model: ModelSpec,
    layers: range,
    *,
    block_size: int,
    kv_dtype: KVDtype,
    tensor_parallel_size: int,
    state_dtype: str,
    grouping: bool = True,
    hybrid_kv_cache_manager: bool = True,
    mamba_cache_mode: str = "none",
    attention_block_alignment: int = 16,
    extra_kinds: tuple[LayerKind, ...] = (),
) -> LayerLayout:
    """Specs and groups of `layers` on one rank (see module docstring for the steps)."""
    tp = tensor_parallel_size
    if model.num_attention_heads % tp:
        raise ParallelConfigError(
            f"tensor_parallel_size={tp} must divide num_attention_heads={model.num_attention_heads}"
        )
    try:
        for heads in {model.attention_shape(k)[1] for k in model.attention_kinds}:
            kv_heads_per_rank(heads, tp)
    except ValueError as exc:
        raise ParallelConfigError(str(exc)) from None
    notes: list[str] = []
    # KV-sharing layers (Gemma-3n/Gemma-4 `num_kv_shared_layers`) read an earlier
    # layer's cache and own no spec (vLLM's `kv_sharing_target_layer_name`).
    own = [i for i in layers if i not in model.kv_shared_layers]
    if len(own) < len(layers):
        notes.append(
            f"{len(layers) - len(own)} layers share an earlier layer's KV cache and own none"
        )
    kinds = [model.layer_kinds[i] for i in own]
    # Draft layers (EAGLE head, MTP) get indices after the target's last layer.
    own += range(model.num_hidden_layers, model.num_hidden_layers + len(extra_kinds))
    kinds += extra_kinds
    as_full = "sliding" in kinds and not (grouping and hybrid_kv_cache_manager)
    if as_full:
        notes.append("sliding-window layers sized as full attention (no hybrid KV-cache manager)")
    if "mamba" in kinds and not grouping:
        notes.append("Mamba state kept outside the block pool in this vLLM version; not counted")
    attn_bs = block_size
    mamba_spec: MambaSpec | None = None
    if "mamba" in kinds and grouping:
        if model.mamba is None:
            raise UnsupportedModelError(f"{model.name}: Mamba layers without a state shape")
        shapes = model.mamba.shapes(tp)
        mamba_spec = MambaSpec(
            block_size,
            shapes,
            tuple(state_dtype for _ in shapes),
            mamba_cache_mode=mamba_cache_mode,  # type: ignore[arg-type]
        )
        attn_kinds = [k for k in kinds if k != "mamba"]
        if attn_kinds:
            per_token = max(
                _attention_spec(model, k, 1, kv_dtype, tp, as_full).page_size_bytes
                for k in set(attn_kinds)
            )
            align = attention_block_alignment
            needed = align * cdiv(mamba_spec.real_page_size_bytes, align * per_token)
            if needed > attn_bs:
                notes.append(
                    f"Setting attention block size to {needed} tokens to ensure that attention "
                    "page size is >= mamba page size."
                )
                attn_bs = needed
            attn_page = attn_bs * per_token
            if attn_page > mamba_spec.real_page_size_bytes:
                pct = (
                    100.0
                    * (attn_page - mamba_spec.real_page_size_bytes)
                    / (mamba_spec.real_page_size_bytes)
                )
                notes.append(
                    f"Padding mamba page size by {pct:.2f}% to ensure that mamba page size and "
                    "attention page size are exactly equal."
                )
            mamba_spec = dataclasses.replace(
                mamba_spec, block_size=attn_bs, page_size_padded=attn_page
            )
    specs: list[KVCacheSpec] = []
    indices: list[int] = []
    for i, kind in zip(own, kinds, strict=True):
        if kind == "mamba":
            if mamba_spec is None:
                continue
            specs.append(mamba_spec)
        else:
            specs.append(_attention_spec(model, kind, attn_bs, kv_dtype, tp, as_full))
        indices.append(i)
    if not specs:
        return LayerLayout((), (), 0, attn_bs, tuple(notes))
    groups, group_size = _group(specs, indices, grouping, notes)
    return LayerLayout(tuple(specs), groups, group_size, attn_bs, tuple(notes))


def _group(
    specs: list[KVCacheSpec], indices: list[int], grouping: bool, notes: list[str]
) -> tuple[tuple[KVCacheGroup, ...], int]:
    by_spec: dict[KVCacheSpec, list[int]] = {}
    for spec, idx in zip(specs, indices, strict=True):
        by_spec.setdefault(spec, []).append(idx)
    if len(by_spec) == 1 or not grouping:
        if len(by_spec) > 1:
            # One block spans every layer (V0 cache block / early V1 uniform specs).
            total = sum(s.page_size_bytes for s in specs)
            spec0 = specs[0]
            spec = dataclasses.replace(spec0, page_size_padded=total)
            return (KVCacheGroup("uniform_type", spec, tuple(indices)),), 1
        spec = specs[0]
        return (KVCacheGroup(kind_of(spec), spec, tuple(indices)),), len(indices)
    max_page = max(s.page_size_bytes for s in by_spec)
    unified: dict[KVCacheSpec, list[int]] = {}
    for spec, idxs in by_spec.items():
        page = spec.page_size_bytes
        if page != max_page:
            if isinstance(spec, MambaSpec) or max_page % page:
                pages = sorted({s.page_size_bytes for s in by_spec})
                raise UnsupportedModelError(
                    f"cannot unify KV-cache page sizes {pages} (vLLM raises "
                    "NotImplementedError for this layer mix)"
                )
            spec = dataclasses.replace(spec, block_size=spec.block_size * (max_page // page))
        unified.setdefault(spec, []).extend(idxs)
    counts = [len(v) for v in unified.values()]
    lo, hi = min(counts), max(counts)
    group_size = hi if hi < 1.5 * lo else lo
    groups: list[KVCacheGroup] = []
    padding = 0
    for spec, idxs in unified.items():
        for start in range(0, len(idxs), group_size):
            chunk = tuple(idxs[start : start + group_size])
            pad = group_size - len(chunk)
            padding += pad
            groups.append(KVCacheGroup(kind_of(spec), spec, chunk, pad))
    if padding:
        waste = 100.0 * padding / (len(groups) * group_size)
        notes.append(
            f"Add {padding} padding layers, may waste at most {waste:.2f}% KV cache memory"
        )
    return tuple(groups), group_size
