"""Variable-length paged attention: prefill, chunked prefill, decode and speculative
verification in one batch, with sliding window, soft-cap, attention sinks and ALiBi.

``plan_unified`` reads a batch layout once (``query_start_loc``, ``seq_lens``,
``block_table``, vLLM's names); ``UnifiedPlan.run`` serves each layer. Backends: numpy
(float64 oracle), numba (CPU), triton (GPU, FlashAttention-2 tiles through the block table).
Importing this subpackage pulls in numpy only.
"""

from paged_attn_kernels.unified.api import plan_unified, unified_attention
from paged_attn_kernels.unified.options import ScoreMods, VarlenBatch, make_mods, varlen_batch
from paged_attn_kernels.unified.plan import UnifiedPlan
from paged_attn_kernels.unified.reference import dense_varlen_reference

__all__ = [
    "ScoreMods",
    "UnifiedPlan",
    "VarlenBatch",
    "dense_varlen_reference",
    "make_mods",
    "plan_unified",
    "unified_attention",
    "varlen_batch",
]
