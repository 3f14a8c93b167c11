"""Slot mapping: where each new token's K/V row goes in the paged cache (the write-map).

``slot = block_table[seq, pos // block_size] * block_size + pos % block_size``, as
``compute_slot_mapping`` in vLLM's ``vllm/v1/worker/block_table.py``; negative positions
are padding tokens and get slot -1, which the write kernels skip.

The definition of record is ``block_allocator.slot_mapping`` (pure Python, one token at a
time); this is its vectorised twin for numpy arrays and torch tensors, with the same name,
signature, padding rule and null-block refusal (block 0 stores nothing), and the tests
check the two equal on random tables. block-allocator is not imported here, so the kernels
install without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from paged_attn_kernels._arrays import describe
from paged_attn_kernels._validate import KernelDtypeError, KernelInputError


def slot_mapping(
    block_table: Any,
    positions: Any,
    block_size: int,
    seq_indices: Any = None,
) -> Any:
    """Cache slot of each token: ``block_table[seq, pos // block_size] * block_size +
    pos % block_size`` (the write-map of vLLM's ``slot_mapping``).

    ``block_table`` is ``[num_seqs, max_blocks_per_seq]`` (or one request's block ids, 1-D),
    ``positions`` the tokens' positions in their sequences, ``seq_indices`` the row of each
    token (may be omitted with a single row). Negative positions are padding and map to
    slot -1, which ``write_kv_cache`` skips. Returns int64, numpy or torch like the input.
    Host inputs are checked as ``block_allocator.slot_mapping`` checks them (a position past
    its row, an unknown row, a position in the null block 0 raise); torch tensors are not
    read back (no synchronisation), so their out-of-range values raise in torch's indexing.
    """
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
        raise KernelDtypeError(f"block_size must be an int, got {type(block_size).__name__}")
    if block_size < 1:
        raise KernelInputError(f"block_size must be >= 1, got {block_size}")
    is_torch = any(_framework_of(x) == "torch" for x in (block_table, positions, seq_indices))
    if is_torch:
        return _slot_mapping_torch(block_table, positions, int(block_size), seq_indices)
    table = np.asarray(block_table)
    if table.ndim == 1:
        table = table[None, :]
    pos = np.asarray(positions)
    if table.ndim != 2 or (not np.issubdtype(table.dtype, np.integer) and table.size):
        raise KernelInputError(f"block_table must be a 2-D integer array, got {table.shape}")
    if pos.ndim != 1 or (not np.issubdtype(pos.dtype, np.integer) and pos.size):
        raise KernelInputError(f"positions must be a 1-D integer array, got {pos.shape}")
    pos = pos.astype(np.int64)
    if seq_indices is None:
        if table.shape[0] != 1:
            raise KernelInputError(
                f"seq_indices is required when block_table has {table.shape[0]} rows"
            )
        rows = np.zeros_like(pos)
    else:
        rows = np.asarray(seq_indices).astype(np.int64)
        if rows.shape != pos.shape:
            raise KernelInputError(
                f"seq_indices shape {rows.shape} must equal positions shape {pos.shape}"
            )
    real = pos >= 0
    bad_row = real & ((rows < 0) | (rows >= table.shape[0]))
    if bad_row.any():
        t = int(np.flatnonzero(bad_row)[0])
        raise KernelInputError(
            f"seq_indices[{t}]={int(rows[t])} is outside [0, {table.shape[0] - 1}]"
        )
    capacity = table.shape[1] * block_size
    too_far = real & (pos >= capacity)
    if too_far.any():
        t = int(np.flatnonzero(too_far)[0])
        raise KernelInputError(
            f"positions[{t}]={int(pos[t])} is outside [0, {capacity - 1}]: the block table "
            f"holds {table.shape[1]} blocks of {block_size} tokens"
        )
    safe_pos = np.where(real, pos, 0)
    safe_rows = np.where(real, rows, 0)
    blocks = table[safe_rows, safe_pos // block_size].astype(np.int64)
    if (real & (blocks <= 0)).any():
        t = int(np.flatnonzero(real & (blocks <= 0))[0])
        raise KernelInputError(
            f"positions[{t}]={int(pos[t])} falls in block_table entry {int(blocks[t])}: "
            "entry 0 is the null block (a placeholder that stores no K/V), negative ids are "
            "unallocated; allocate the token's block first"
        )
    return np.where(real, blocks * block_size + safe_pos % block_size, -1)


def _framework_of(x: object) -> str | None:
    if x is None or isinstance(x, (list, tuple, np.ndarray)):
        return None
    return describe(x, "argument").framework


def _slot_mapping_torch(block_table: Any, positions: Any, block_size: int, seq_indices: Any) -> Any:
    import torch

    table = torch.as_tensor(block_table)
    if table.dim() == 1:
        table = table[None, :]
    pos = torch.as_tensor(positions, device=table.device).long()
    if seq_indices is None:
        if table.shape[0] != 1:
            raise KernelInputError(
                f"seq_indices is required when block_table has {table.shape[0]} rows"
            )
        rows = torch.zeros_like(pos)
    else:
        rows = torch.as_tensor(seq_indices, device=table.device).long()
    # no value checks here: they would synchronise a CUDA stream; out-of-range entries raise
    # in torch's own indexing, negative positions map to -1
    real = pos >= 0
    safe_pos = torch.where(real, pos, 0)
    blocks = table[torch.where(real, rows, 0), safe_pos // block_size].long()
    return torch.where(real, blocks * block_size + safe_pos % block_size, -1)
