"""Checked entry points of the cache kernels (``triton_kernels.py``).

``gather_kv_kernel`` takes the arguments of the package's ``gather_kv`` and checks them with
the same rules; ``copy_blocks_kernel`` those of ``copy_blocks``, plus the kernel's one extra
rule (no block both a source and a destination). Torch tensors on CUDA, or on the CPU under
``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from paged_attn_kernels import _torch_path as tp
from paged_attn_kernels._arrays import describe
from paged_attn_kernels._validate import (
    KernelDtypeError,
    KernelInputError,
    _to_host,
    check_caches,
    check_gather,
)

__all__ = ["copy_blocks_kernel", "gather_kv_kernel"]


def _torch_on_triton(x: Any, name: str) -> None:
    if not tp.is_torch_tensor(x):
        raise KernelDtypeError(
            f"{name} must be a torch tensor for the Triton kernels, got {type(x)}"
        )
    if x.device.type == "cpu" and not tp.interpreting():
        raise KernelDtypeError(
            f"{name} is on the CPU: the Triton kernels need CUDA tensors (or TRITON_INTERPRET=1)"
        )


def gather_kv_kernel(
    key_cache: Any,
    value_cache: Any,
    block_table: Any,
    seq_lens: Any,
    *,
    max_seq_len: int | None = None,
    k_scale: Any = None,
    v_scale: Any = None,
    out: tuple[Any, Any] | None = None,
    validate: bool = True,
) -> tuple[Any, Any]:
    """Dense ``[num_seqs, max_seq_len, num_kv_heads, head_dim]`` K and V through the block
    table, zeros past each length (``gather_kv``'s contract; fp8: float32 x scale), in one
    Triton launch. ``max_seq_len`` defaults to the block table's capacity."""
    from paged_attn_kernels.cache_ops.triton_kernels import gather_kv_triton

    _torch_on_triton(key_cache, "key_cache")
    call = check_gather(
        key_cache, value_cache, block_table, seq_lens,
        k_scale=k_scale, v_scale=v_scale, max_seq_len=max_seq_len, validate=validate,
    )  # fmt: skip
    for name, t in (("k_scale", call.cache.k_scale), ("v_scale", call.cache.v_scale)):
        if not isinstance(t, float):
            raise KernelInputError(f"{name} must be a float here (device scales: validate=True)")
    bt = (
        block_table
        if block_table.dtype.is_signed and block_table.element_size() == 4
        else block_table.int()
    )
    sl = seq_lens if seq_lens.element_size() == 4 else seq_lens.int()
    try:
        return gather_kv_triton(
            key_cache, value_cache, bt, sl, call.max_seq_len,
            k_scale=call.cache.k_scale, v_scale=call.cache.v_scale, out=out,
        )  # fmt: skip
    except ValueError as err:
        raise KernelInputError(str(err)) from None


def copy_blocks_kernel(
    key_cache: Any, value_cache: Any, block_mapping: Any, *, validate: bool = True
) -> None:
    """Copy whole blocks ``(src, dst)`` in both caches in one Triton launch.

    ``block_mapping``: ``[n, 2]`` integer pairs (a list, a host array or a device tensor).
    Ids must lie in ``[0, num_blocks)``, destinations must be distinct and no destination may
    be a source (checked on the host: always for host mappings, for device tensors only with
    ``validate=True``, which synchronises). Nothing is copied when a check fails."""
    import torch

    from paged_attn_kernels.cache_ops.triton_kernels import copy_blocks_triton

    _torch_on_triton(key_cache, "key_cache")
    cache = check_caches(key_cache, value_cache, None, None, validate=True)
    if isinstance(block_mapping, (list, tuple)):
        block_mapping = np.asarray(block_mapping, dtype=np.int64).reshape(-1, 2)
    pairs = describe(block_mapping, "block_mapping")
    if len(pairs.shape) != 2 or pairs.shape[1] != 2 or not pairs.is_int:
        raise KernelInputError(
            f"block_mapping must be [n, 2] integer pairs, got {pairs.shape} {pairs.kind}"
        )
    if validate or pairs.host is not None:
        host = _to_host(pairs).astype(np.int64)
        bad = (host < 0) | (host >= cache.num_blocks)
        if bad.any():
            i, j = (int(v) for v in np.argwhere(bad)[0])
            raise KernelInputError(
                f"block_mapping[{i}, {j}]={int(host[i, j])} is outside [0, {cache.num_blocks - 1}]"
            )
        dst = host[:, 1]
        if np.unique(dst).size != dst.size:
            raise KernelInputError("block_mapping has a destination block more than once")
        both = np.intersect1d(host[:, 0], dst)
        if both.size:
            raise KernelInputError(
                f"block {int(both[0])} is both a source and a destination; the kernel copies "
                "pairs concurrently (copy-on-write destinations are fresh blocks)"
            )
    mapping = torch.as_tensor(block_mapping, device=key_cache.device)
    try:
        copy_blocks_triton(key_cache, value_cache, mapping)
    except ValueError as err:
        raise KernelInputError(str(err)) from None
