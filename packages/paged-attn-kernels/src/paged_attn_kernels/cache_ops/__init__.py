"""Whole-block cache traffic as Triton kernels: ``gather_kv`` and ``copy_blocks``.

The public entry points check their inputs like the package's ``gather_kv`` /
``copy_blocks`` (which run torch indexing on the GPU) and launch the kernels of
``triton_kernels.py``. Importing this subpackage pulls in numpy only; torch and triton load
on first call.
"""

from paged_attn_kernels.cache_ops.api import copy_blocks_kernel, gather_kv_kernel

__all__ = ["copy_blocks_kernel", "gather_kv_kernel"]
