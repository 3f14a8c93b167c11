"""vLLM-v1-style KV-cache block allocator: block pool, free queue, prefix caching, block tables.

Pure Python, no runtime dependencies. Start with :class:`KVCacheManager` (requests in,
block tables and slot mappings out) or :class:`BlockPool` (blocks in, blocks out); the
package README maps every module to the vLLM file it mirrors.
"""

from __future__ import annotations

from .block import NUM_RETENTION_PRIORITIES, BlockHash, KVCacheBlock, RetentionPriority
from .block_pool import FREE_ORDERS, BlockPool
from .block_table import BlockTable, pad_block_tables, slot_mapping
from .errors import (
    BlockAllocatorError,
    DoubleFreeError,
    ForeignBlockError,
    InvalidBlockError,
    OutOfBlocksError,
    UnknownRequestError,
)
from .events import AllBlocksCleared, BlockRemoved, BlockStored, KVCacheEvent, PrefixCacheStats
from .free_queue import FreeKVCacheBlockQueue
from .hashing import NONE_HASH, block_extra_keys, hash_block_tokens, hash_request_tokens
from .kv_cache_manager import KVCacheManager
from .kv_cache_spec import (
    FullAttentionSpec,
    KVCacheSpec,
    MambaSpec,
    MLAAttentionSpec,
    SlidingWindowSpec,
    blocks_needed,
    cdiv,
    dtype_size,
    kv_heads_per_rank,
)
from .request import Request

__version__ = "0.1.0"

__all__ = [
    "FREE_ORDERS",
    "NONE_HASH",
    "NUM_RETENTION_PRIORITIES",
    "AllBlocksCleared",
    "BlockAllocatorError",
    "BlockHash",
    "BlockPool",
    "BlockRemoved",
    "BlockStored",
    "BlockTable",
    "DoubleFreeError",
    "ForeignBlockError",
    "FreeKVCacheBlockQueue",
    "FullAttentionSpec",
    "InvalidBlockError",
    "KVCacheBlock",
    "KVCacheEvent",
    "KVCacheManager",
    "KVCacheSpec",
    "MLAAttentionSpec",
    "MambaSpec",
    "OutOfBlocksError",
    "PrefixCacheStats",
    "Request",
    "RetentionPriority",
    "SlidingWindowSpec",
    "UnknownRequestError",
    "__version__",
    "block_extra_keys",
    "blocks_needed",
    "cdiv",
    "dtype_size",
    "hash_block_tokens",
    "hash_request_tokens",
    "kv_heads_per_rank",
    "pad_block_tables",
    "slot_mapping",
]
