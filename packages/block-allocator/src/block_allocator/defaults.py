"""vLLM's defaults that change what the allocator sees, per release: pick one by version.

Read from the vLLM wheels' ``vllm/config/cache.py`` (``CacheConfig.DEFAULT_BLOCK_SIZE``,
``gpu_memory_utilization``) and ``vllm/v1/core/block_pool.py`` (``free_blocks``):

- 0.33.0 (commit 4ba787ec9): block size 16, ``gpu_memory_utilization`` 0.92, unhashed
  blocks freed to the head of the free queue (``free_order="fresh_first"``).
- 0.34.0 (commit 62d4bc3c7): block size 64 (FLASH_ATTN takes multiples of 16, so an H100
  runs dense models at 64; hybrid models derive their own), ``gpu_memory_utilization``
  ``None``, which resolves to 1.0 with the new extensible KV cache (on by default on
  CUDA and ROCm) and to 0.92 without it; the same free order.

Other packages (the capacity planner, frag-sim) import this table so a "which vLLM"
switch means the same numbers everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._checks import type_name
from .errors import ArgumentTypeError, ArgumentValueError

__all__ = ["LATEST_VLLM", "VLLM_DEFAULTS", "VllmDefaults", "defaults_for"]


@dataclass(frozen=True, slots=True)
class VllmDefaults:
    """The defaults of one vLLM release (minor version) that matter for KV-cache blocks."""

    version: str
    commit: str
    block_size: int
    """``CacheConfig.DEFAULT_BLOCK_SIZE``: tokens per block for dense (one-group) models."""
    free_order: str
    """The :class:`~block_allocator.BlockPool` ``free_order`` that matches its BlockPool."""
    gpu_memory_utilization: float
    """The resolved default fraction of GPU memory vLLM may use (extensible cache on)."""
    gpu_memory_utilization_fallback: float
    """The same without the extensible KV cache (non-CUDA, or ``kv_cache_memory_bytes``)."""
    extensible_kv_cache: bool
    """Whether the KV cache is sized after warm-up (``enable_extensible_kv_cache``)."""


VLLM_DEFAULTS: dict[str, VllmDefaults] = {
    "0.33": VllmDefaults("0.33", "4ba787ec9", 16, "fresh_first", 0.92, 0.92, False),
    "0.34": VllmDefaults("0.34", "62d4bc3c7", 64, "fresh_first", 1.0, 0.92, True),
}
LATEST_VLLM = "0.34"

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?(?:[.+-].*)?$")


def defaults_for(version: str = LATEST_VLLM) -> VllmDefaults:
    """The defaults of vLLM ``version`` ("0.34", "0.34.0" or "v0.33.1"; patch ignored)."""
    if not isinstance(version, str):
        raise ArgumentTypeError(f"version must be a str such as '0.34', got {type_name(version)}")
    match = _VERSION.match(version.strip())
    key = f"{match.group(1)}.{match.group(2)}" if match else None
    if key not in VLLM_DEFAULTS:
        raise ArgumentValueError(
            f"version must be one of {sorted(VLLM_DEFAULTS)} (with any patch level), "
            f"got {version!r}"
        )
    return VLLM_DEFAULTS[key]
