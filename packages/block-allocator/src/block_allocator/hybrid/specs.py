"""KV-cache groups of a hybrid model: which spec each group has and the checks on them.

Mirrors ``KVCacheGroupSpec`` / ``ChunkedLocalAttentionSpec`` in vLLM 0.34.0's
``vllm/v1/kv_cache_interface.py`` and the page-size rule of ``kv_cache_utils.py``
(``unify_kv_cache_spec_page_size``): every group draws its blocks from ONE pool, so one
block must cost the same bytes in every group. vLLM makes the page sizes equal by
growing the attention block size or padding the Mamba page (``page_size_padded``); we
check the result and say which knob to turn.

Differences from vLLM: every group uses the same ``block_size`` (vLLM allows multiples of
a common hash block size and schedules in their LCM), and a group has no layer names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ArgumentTypeError, ArgumentValueError
from ..kv_cache_spec import (
    FullAttentionSpec,
    KVCacheSpec,
    MambaSpec,
    MLAAttentionSpec,
    SlidingWindowSpec,
    _check_int,
)

__all__ = ["ChunkedLocalAttentionSpec", "HybridSpec", "check_group_specs", "spec_kind"]


@dataclass(frozen=True, slots=True)
class ChunkedLocalAttentionSpec(FullAttentionSpec):
    """Chunked local attention (Llama 4): a token attends only within its own chunk.

    Same page as full attention; ``attention_chunk_size`` tokens per chunk, so the blocks
    of every earlier chunk can be freed once the request has moved past them.
    """

    attention_chunk_size: int = 0

    def __post_init__(self) -> None:
        FullAttentionSpec.__post_init__(self)
        _check_int("attention_chunk_size", self.attention_chunk_size, 1)
        if self.attention_chunk_size % self.block_size:
            raise ArgumentValueError(
                f"attention_chunk_size={self.attention_chunk_size} must be a multiple of "
                f"block_size={self.block_size}"
            )


HybridSpec = KVCacheSpec | ChunkedLocalAttentionSpec


def spec_kind(spec: object) -> str:
    """The manager kind a spec selects: full, sliding_window, chunked_local or mamba."""
    # Subclasses first: both windowed specs derive from FullAttentionSpec here.
    if isinstance(spec, SlidingWindowSpec):
        return "sliding_window"
    if isinstance(spec, ChunkedLocalAttentionSpec):
        return "chunked_local"
    if isinstance(spec, (FullAttentionSpec, MLAAttentionSpec)):
        return "full"
    if isinstance(spec, MambaSpec):
        return "mamba"
    raise ArgumentTypeError(
        "kv_cache_specs entries must be FullAttentionSpec, SlidingWindowSpec, "
        f"ChunkedLocalAttentionSpec, MLAAttentionSpec or MambaSpec, got {type(spec).__name__}"
    )


def check_group_specs(specs: Sequence[HybridSpec]) -> int:
    """Validate the groups of one pool and return their common ``block_size``."""
    if not isinstance(specs, (list, tuple)) or not specs:
        raise ArgumentValueError(
            "kv_cache_specs must be a non-empty list or tuple, one spec per group"
        )
    kinds = [spec_kind(spec) for spec in specs]
    block_sizes = {spec.block_size for spec in specs}
    if len(block_sizes) != 1:
        raise ArgumentValueError(
            f"every KV-cache group must use the same block_size, got {sorted(block_sizes)}"
        )
    pages = [spec.page_size_bytes for spec in specs]
    if len(set(pages)) != 1:
        listing = ", ".join(
            f"group {i} ({k}): {p} B" for i, (k, p) in enumerate(zip(kinds, pages, strict=True))
        )
        raise ArgumentValueError(
            "all KV-cache groups share one pool, so their page sizes must be equal "
            f"({listing}); set page_size_padded on the smaller specs to {max(pages)}"
        )
    block_size: int = specs[0].block_size
    return block_size
