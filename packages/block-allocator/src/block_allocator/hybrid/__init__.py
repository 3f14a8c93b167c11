"""Hybrid models: several KV-cache groups (full, sliding window, chunked local, Mamba) in one pool.

Mirrors vLLM 0.34.0's ``vllm/v1/core/kv_cache_coordinator.py`` and
``single_type_kv_cache_manager.py``. Start with :class:`HybridKVCacheManager`; the package
README's "Hybrid models" section walks through an example.
"""

from __future__ import annotations

from .coordinator import HybridKVCacheCoordinator, group_block_hash
from .mamba import MambaManager
from .manager import HybridKVCacheManager
from .single_type import (
    ChunkedLocalAttentionManager,
    FullAttentionManager,
    SingleTypeKVCacheManager,
    SlidingWindowManager,
)
from .specs import ChunkedLocalAttentionSpec, check_group_specs, spec_kind

__all__ = [
    "ChunkedLocalAttentionManager",
    "ChunkedLocalAttentionSpec",
    "FullAttentionManager",
    "HybridKVCacheCoordinator",
    "HybridKVCacheManager",
    "MambaManager",
    "SingleTypeKVCacheManager",
    "SlidingWindowManager",
    "check_group_specs",
    "group_block_hash",
    "spec_kind",
]
