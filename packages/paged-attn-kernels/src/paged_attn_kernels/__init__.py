"""Paged-attention data path: numpy reference, numba CPU and Triton GPU kernels.

Write K/V into a paged cache through ``slot_mapping``, read it back through
``block_table``, and run decode attention over it (vLLM's ``reshape_and_cache_flash`` and
``paged_attention_v1/v2``), with one API over the ``numpy``, ``numba`` and ``triton``
backends. Importing this package pulls in numpy only; numba, torch and triton load on use.

Engines decode with a plan made once per step and run per layer (``decode_plan.py``)::

    plan = plan_decode(query, key_cache, block_table, seq_lens_host)
    for layer in range(num_layers):
        plan.run(query[layer], key_caches[layer], value_caches[layer], out=out[layer])

Batches that mix prefill, chunked prefill, decode and speculative verification take
``plan_unified(query, key_cache, block_table, query_start_loc, seq_lens)`` the same way
(``unified/``, docs/UNIFIED.md).
"""

from importlib.metadata import PackageNotFoundError, version

from paged_attn_kernels._dtypes import (
    FP8_E4M3_MAX,
    decode_bf16,
    decode_fp8_e4m3,
    encode_bf16,
    encode_fp8_e4m3,
)
from paged_attn_kernels._validate import BACKENDS, KernelDtypeError, KernelInputError
from paged_attn_kernels.api import (
    available_backends,
    copy_blocks,
    dense_attention_reference,
    gather_kv,
    paged_attention,
    plan_decode,
    slot_mapping,
    write_kv_cache,
)
from paged_attn_kernels.decode_plan import AttentionPlan, DecodePlan
from paged_attn_kernels.unified import UnifiedPlan, plan_unified, unified_attention

try:
    __version__ = version("paged-attn-kernels")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "BACKENDS",
    "FP8_E4M3_MAX",
    "AttentionPlan",
    "DecodePlan",
    "KernelDtypeError",
    "KernelInputError",
    "UnifiedPlan",
    "__version__",
    "available_backends",
    "copy_blocks",
    "decode_bf16",
    "decode_fp8_e4m3",
    "dense_attention_reference",
    "encode_bf16",
    "encode_fp8_e4m3",
    "gather_kv",
    "paged_attention",
    "plan_decode",
    "plan_unified",
    "slot_mapping",
    "unified_attention",
    "write_kv_cache",
]
