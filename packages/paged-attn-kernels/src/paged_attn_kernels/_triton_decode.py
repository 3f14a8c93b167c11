# mypy: disable-error-code="no-untyped-def,untyped-decorator"
# (Triton kernels: only tl.constexpr parameters carry annotations; the launchers are typed.)
"""Triton paged decode attention: one query token per sequence over a paged K/V cache.

The algorithm is vLLM's ``csrc/attention/paged_attention_v1.cu`` / ``paged_attention_v2.cu``
(walk the block table, online softmax, split long contexts into partitions and merge them
by log-sum-exp), written in the style of the Triton fused-attention tutorial
(``python/tutorials/06-fused-attention.py``: base-2 exponentials, fp32 accumulator,
``tl.dot`` on tiles). What differs from vLLM's CUDA kernels, and why, is in docs/DESIGN.md:

- one program per (sequence, KV head, split): the ``G`` query heads of a group are the rows
  of one ``tl.dot`` tile, so each K/V tile is read once for the group (vLLM issue #1880);
- the split is a fixed number of tokens (``chunk``) chosen on the host, from shapes alone
  (a 3-D grid, splits past a sequence's end return at once) or from the batch's lengths
  (a 1-D grid over a work list, ``_plan.py``);
- up to ``fused_merge_max_splits`` (32) splits are merged by the last split program of a
  (sequence, KV head) to finish, found with an arrival counter; more go to a reduce kernel.

The launcher reads in three steps: **policy** (:func:`launch_config`: tile, warps, stages,
dot dtype, from dtypes and head layout), **grid** (:class:`Grid`: the chunk, the splits and
the work list), **launch** (:func:`launch`). Layout: caches ``[num_blocks, block_size,
num_kv_heads, head_dim]`` with the last three dims contiguous (any block stride), query and
output ``[num_seqs, num_heads, head_dim]`` with the last two dims contiguous, ``block_table``
int32 ``[num_seqs, max_blocks]`` with unit column stride, ``seq_lens`` int32. No validation
here: ``api.py`` and ``decode_plan.py`` check inputs before calling in.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
import triton
import triton.language as tl

from ._plan import WorkList, choose_chunk
from ._triton_tiles import attend_range, load_query, merge_rows, store_rows

__all__ = [
    "Grid",
    "LaunchConfig",
    "grid_from_shapes",
    "grid_from_work_list",
    "launch",
    "launch_config",
    "paged_attention_triton",
]

_LOG2E = 1.4426950408889634


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _pow2(n: int) -> int:
    """Smallest power of two >= n (``triton.next_power_of_2`` without its per-call cost)."""
    return 1 << max(0, int(n) - 1).bit_length()


_TL_DTYPE = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}


@triton.jit
def _paged_decode_kernel(
    q_ptr,  # [num_seqs, num_heads, head_dim]
    k_cache_ptr,  # [num_blocks, block_size, num_kv_heads, head_dim]
    v_cache_ptr,
    block_table_ptr,  # [num_seqs, max_blocks] int32
    seq_lens_ptr,  # [num_seqs] int32
    out_ptr,  # [num_seqs, num_heads, head_dim]
    part_out_ptr,  # [num_seqs, num_heads, num_splits, HEAD_PAD] fp32 (MERGE > 0)
    part_lse_ptr,  # [num_seqs, num_heads, num_splits] fp32, log2 domain
    sem_ptr,  # [num_seqs * num_kv_heads] int32 arrival counters, zero between launches
    work_ptr,  # [programs, 4] int32 (seq, kv_head, split, tokens) when WORK_LIST
    k_scale_ptr,  # one-element fp32 scales when SCALES_FROM_PTR
    v_scale_ptr,
    qk_scale,  # softmax scale * log2(e) (* k_scale when it is a float)
    v_scale,
    chunk,  # tokens per split, a multiple of TILE_N
    num_splits,
    stride_qs,
    stride_kb,
    stride_vb,
    stride_bts,
    stride_os,
    NUM_KV_HEADS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    HEAD_PAD: tl.constexpr,
    GROUP: tl.constexpr,
    GROUP_P2: tl.constexpr,
    GROUP_PAD: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    TILE_N: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
    PRESCALE_Q: tl.constexpr,
    EARLY_CVT_V: tl.constexpr,  # fp8: convert V before the dot's operand load (LaunchConfig)
    MERGE: tl.constexpr,  # 0: one split per sequence; 1: partials for the reduce; 2: fused
    SPLITS_PAD: tl.constexpr,
    MERGE_STEP: tl.constexpr,  # partials the fused merge reads per step (LaunchConfig)
    PEEK_MERGE: tl.constexpr,
    WORK_LIST: tl.constexpr,
    SCALES_FROM_PTR: tl.constexpr,
):
    # 1. which (sequence, KV head, split) this program owns
    if WORK_LIST:
        pid = tl.program_id(0)
        seq = tl.load(work_ptr + pid * 4)
        kv_head = tl.load(work_ptr + pid * 4 + 1)
        split = tl.load(work_ptr + pid * 4 + 2)
    else:
        seq = tl.program_id(0)
        kv_head = tl.program_id(1)
        split = tl.program_id(2)
    seq_len = tl.load(seq_lens_ptr + seq)
    start = split * chunk
    end = tl.minimum(seq_len, start + chunk)
    if MERGE == 0:
        end = seq_len
    # Splits past the end of a short sequence (and a work list's padding) do nothing; the
    # merge skips them. Split 0 of an empty sequence writes its zero row.
    if start >= end and split > 0:
        return

    # 2. attend over the split's tokens
    offs_g = tl.arange(0, GROUP_PAD)
    offs_d = tl.arange(0, HEAD_PAD)
    mask_g = offs_g < GROUP
    heads = kv_head * GROUP + offs_g
    qk = qk_scale
    if SCALES_FROM_PTR:
        qk = qk * tl.load(k_scale_ptr)
    q, scale2 = load_query(
        q_ptr + seq * stride_qs, heads, mask_g, qk, HEAD_DIM, HEAD_PAD, PRESCALE_Q, COMPUTE_DTYPE
    )  # [GROUP_PAD, HEAD_PAD]
    m_i, l_i, acc = attend_range(
        q,
        scale2,
        block_table_ptr + seq.to(tl.int64) * stride_bts,
        k_cache_ptr + kv_head * HEAD_DIM + offs_d[None, :],
        v_cache_ptr + kv_head * HEAD_DIM + offs_d[None, :],
        start,
        end,
        stride_kb,
        stride_vb,
        NUM_KV_HEADS * HEAD_DIM,
        GROUP_PAD,
        HEAD_DIM,
        HEAD_PAD,
        BLOCK_SIZE,
        TILE_N,
        COMPUTE_DTYPE,
        EARLY_CVT_V,
    )

    # 3. store the output rows, or this split's partial when the sequence has several
    vs = v_scale
    if SCALES_FROM_PTR:
        vs = tl.load(v_scale_ptr)
    out = out_ptr + seq * stride_os + heads[:, None] * HEAD_DIM + offs_d[None, :]
    out_mask = mask_g[:, None] & (offs_d < HEAD_DIM)[None, :]
    n_active = tl.cdiv(seq_len, chunk)
    as_partial = n_active > 1
    if MERGE == 0:
        as_partial = n_active < 0  # never: a single split writes the output itself
    part_row = (seq * (GROUP * NUM_KV_HEADS) + heads) * num_splits + split
    store_rows(
        m_i, l_i, acc, vs, out, out_mask, part_row, part_out_ptr, part_lse_ptr, mask_g,
        as_partial, HEAD_PAD,
    )  # fmt: skip

    # 4. fused merge: the last split of this (sequence, KV head) to arrive merges them all
    if MERGE == 2:  # noqa: SIM102 (constexpr test kept apart from the runtime one)
        if as_partial:
            # The barrier orders every thread's partial stores before the release.
            tl.debug_barrier()
            sem = sem_ptr + seq * NUM_KV_HEADS + kv_head
            if PEEK_MERGE:
                # Peek before publishing: a split that finds every other one published is
                # last and merges without a release of its own. It does not count itself,
                # so no other program can also see n_active - 1.
                seen = tl.atomic_add(sem, 0, sem="acquire", scope="gpu")
                last = seen == n_active - 1
                if not last:
                    arrived = tl.atomic_add(sem, 1, sem="acq_rel", scope="gpu")
                    last = arrived == n_active - 1
            else:
                arrived = tl.atomic_add(sem, 1, sem="acq_rel", scope="gpu")
                last = arrived == n_active - 1
            if last:
                tl.atomic_xchg(sem, 0, sem="relaxed", scope="gpu")  # zero for the next launch
                merge_rows(
                    part_out_ptr,
                    part_lse_ptr,
                    (seq * (GROUP * NUM_KV_HEADS) + kv_head * GROUP) * num_splits,
                    num_splits,
                    n_active,
                    out_ptr + seq * stride_os + kv_head * GROUP * HEAD_DIM,
                    GROUP,
                    GROUP_P2,
                    HEAD_DIM,
                    HEAD_PAD,
                    SPLITS_PAD,
                    MERGE_STEP,
                )


@triton.jit
def _paged_decode_reduce_kernel(
    part_out_ptr,  # [num_seqs, num_heads, num_splits, HEAD_PAD] fp32
    part_lse_ptr,  # [num_seqs, num_heads, num_splits] fp32, log2 domain
    seq_lens_ptr,
    out_ptr,  # [num_seqs, num_heads, head_dim]
    chunk,
    num_splits,
    stride_os,
    HEAD_DIM: tl.constexpr,
    HEAD_PAD: tl.constexpr,
    SPLIT_TILE: tl.constexpr,
):
    seq = tl.program_id(0)
    head = tl.program_id(1)
    seq_len = tl.load(seq_lens_ptr + seq)
    # Only the splits that held tokens wrote anything; the rest are stale memory.
    n_active = tl.cdiv(seq_len, chunk)
    if n_active <= 1:
        return  # the split kernel wrote this row itself
    base = (seq * tl.num_programs(1) + head) * num_splits
    offs_d = tl.arange(0, HEAD_PAD)
    offs_t = tl.arange(0, SPLIT_TILE)
    # running max over tiles of splits, so any number of splits fits in registers
    top = tl.full([SPLIT_TILE], float("-inf"), dtype=tl.float32)
    for s0 in range(0, n_active, SPLIT_TILE):
        sp = s0 + offs_t
        top = tl.maximum(top, tl.load(part_lse_ptr + base + sp, mask=sp < n_active, other=-1e30))
    lse_max = tl.max(top, axis=0)
    acc = tl.zeros([HEAD_PAD], dtype=tl.float32)
    wsum = tl.zeros([SPLIT_TILE], dtype=tl.float32)
    for s0 in range(0, n_active, SPLIT_TILE):
        sp = s0 + offs_t
        live = sp < n_active
        w = tl.exp2(tl.load(part_lse_ptr + base + sp, mask=live, other=float("-inf")) - lse_max)
        o = tl.load(
            part_out_ptr + (base + sp)[:, None] * HEAD_PAD + offs_d[None, :],
            mask=live[:, None],
            other=0.0,
        )
        acc += tl.sum(w[:, None] * o, axis=0)
        wsum += w
    total = tl.sum(wsum, axis=0)
    res = tl.where(total > 0.0, acc / tl.where(total > 0.0, total, 1.0), 0.0)
    out = out_ptr + seq * stride_os + head * HEAD_DIM + offs_d
    tl.store(out, res.to(out_ptr.dtype.element_ty), mask=offs_d < HEAD_DIM)


# ---------------------------------------------------------------- policy


@dataclass(frozen=True)
class LaunchConfig:
    """How the decode kernel is compiled and launched for one dtype and head layout."""

    tile_n: int  # tokens per loop step
    num_warps: int
    num_stages: int
    compute_dtype: torch.dtype  # dtype of the dot operands
    prescale_q: bool  # fold the softmax scale into q (fp16 dots on fp8 caches)
    maxnreg: int = 0  # register cap of work-list launches (0: the compiler's choice)
    fused_merge_max_splits: int = 32
    peek_min_chunk: int = 1024
    early_value_cvt: bool = False  # fp8: V converted as loaded (_triton_tiles.value_operand)
    merge_step: int = 0  # fused merge: partials read per step (0: all at once; merge_rows)


# Registers per thread for launches over a work list: the loaded (sequence, head, split)
# cost the kernel 124 -> 160 registers (ptxas, sm_90), i.e. 3 programs per SM instead of 4;
# capped at 128 it spills 12 bytes and keeps 4 (docs/DESIGN.md, "Work list").
_WORK_LIST_MAXNREG = 128


@functools.lru_cache(maxsize=256)
def launch_config(
    query_dtype: torch.dtype, cache_dtype: torch.dtype, head_dim: int, group: int, listed: bool
) -> LaunchConfig:
    """The launch policy (measurements behind each choice: docs/DESIGN.md).

    - Tiles of ~16 KB of K (bf16 at head_dim 128: 64 tokens) with 4 warps and 3 stages; big
      query groups (>= 64 rows) keep 32-token tiles so scores and accumulator stay in
      registers.
    - fp8 caches: fp16 dots (e4m3 -> fp16 is one conversion; bf16 dots ran at 68% of copy),
      8 KB tiles (64 tokens), 2 warps and 5 stages, so each program has two tiles in flight
      and twice the programs share an SM.
    """
    head_pad = _pow2(head_dim)
    group_pad = max(16, _pow2(group))
    fp8 = cache_dtype == torch.float8_e4m3fn
    elem_bytes = cache_dtype.itemsize
    budget = 8192 if fp8 else 16384
    tile_n = max(16, min(128, budget // (head_pad * elem_bytes)))
    if group_pad >= 64:
        tile_n = min(tile_n, 32)
    big = group_pad * head_pad > 4096
    if fp8:
        warps, stages = (4 if big else 2), 5
    else:
        warps, stages = (8 if big else 4), 3
    compute = torch.float16 if fp8 and query_dtype != torch.float32 else query_dtype
    nreg = _WORK_LIST_MAXNREG if listed and warps == 4 and not fp8 else 0
    return LaunchConfig(tile_n, warps, stages, compute, fp8 and compute == torch.float16, nreg)


# ---------------------------------------------------------------- grid


@dataclass(frozen=True)
class Grid:
    """Which programs a launch runs: the split size and either a 3-D grid or a work list."""

    chunk: int
    num_splits: int
    programs: tuple[int, ...]  # the launch grid
    work_list: torch.Tensor | None  # [programs, 4] int32 on the device, or None (3-D grid)


@functools.lru_cache(maxsize=16)
def _sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).multi_processor_count)
    return 132  # interpreter: any value gives the same answer; pick the H100's


def grid_from_shapes(
    num_seqs: int,
    num_kv_heads: int,
    max_tokens: int,
    tile_n: int,
    device: torch.device,
    num_splits: int | None = None,
) -> Grid:
    """The 3-D grid ``(seq, kv_head, split)`` from shapes alone (no host synchronisation);
    ``num_splits`` forces the split count, ``None`` lets :func:`._plan.choose_chunk` pick."""
    total_tiles = max(1, _cdiv(max_tokens, tile_n))
    if num_splits is None:
        chunk = choose_chunk(num_seqs, num_kv_heads, max_tokens, tile_n, _sm_count(device))
    else:
        chunk = _cdiv(total_tiles, max(1, num_splits)) * tile_n
    splits = max(1, _cdiv(max_tokens, chunk))
    return Grid(chunk, splits, (num_seqs, num_kv_heads, splits), None)


def grid_from_work_list(work: WorkList, device: torch.device) -> Grid:
    """A planned launch; a list that fills the 3-D grid launches as that grid (the same
    programs without the list load and the register cap: H100 B=8 x 8192 GQA 99.6 -> 98.2 us)."""
    if work.fills_grid:
        return Grid(
            work.chunk, work.num_splits, (work.num_seqs, work.num_kv_heads, work.num_splits), None
        )
    items = torch.from_numpy(work.padded_items()).to(device)
    return Grid(work.chunk, work.num_splits, (work.capacity,), items)


# ---------------------------------------------------------------- launch


def counters(device: torch.device, n: int) -> torch.Tensor:
    """Zeroed int32 arrival counters for this device and stream, grown on demand, never freed.

    Kernels that use them leave them zero when they finish (the last user resets), so one
    allocation serves every later launch on the stream. An outgrown buffer is kept alive: a
    captured CUDA graph may still hold its address.
    """
    stream = torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else 0
    key = (str(device), stream)
    buf = _COUNTERS.get(key)
    if buf is None or buf.numel() < n:
        if buf is not None:
            _OUTGROWN.append(buf)
        buf = torch.zeros(max(n, 256), dtype=torch.int32, device=device)
        _COUNTERS[key] = buf
    return buf


_COUNTERS: dict[tuple[str, int], torch.Tensor] = {}
_OUTGROWN: list[torch.Tensor] = []


def partial_buffers(
    num_seqs: int, num_heads: int, head_dim: int, num_splits: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 partial outputs ``[S, H, splits, HEAD_PAD]`` and log-sum-exps ``[S, H, splits]``."""
    head_pad = _pow2(head_dim)
    shape = (num_seqs, num_heads, num_splits)
    return (
        torch.empty((*shape, head_pad), dtype=torch.float32, device=device),
        torch.empty(shape, dtype=torch.float32, device=device),
    )


def split_buffers(
    meta: dict[str, Any], grid: Grid, query: torch.Tensor, num_kv_heads: int
) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, torch.Tensor | None]:
    """A shape launch's per-call partials and, for the fused merge, its arrival counters
    (``None`` where the launch does not split)."""
    if grid.num_splits == 1:
        return None, None
    num_seqs, num_heads, head_dim = query.shape
    partials = partial_buffers(num_seqs, num_heads, head_dim, grid.num_splits, query.device)
    sems = counters(query.device, num_seqs * num_kv_heads) if meta["MERGE"] == 2 else None
    return partials, sems


def constexprs(
    cfg: LaunchConfig,
    grid: Grid,
    cache_tail: tuple[int, int, int],
    num_heads: int,
    device: torch.device,
) -> dict[str, Any]:
    """Compile-time arguments and launch options of the decode kernel (made once per plan).

    ``cache_tail``: the caches' ``(block_size, num_kv_heads, head_dim)``.
    """
    block_size, num_kv_heads, head_dim = cache_tail
    group = num_heads // num_kv_heads
    splits = grid.num_splits
    merge = 0 if splits == 1 else (2 if splits <= cfg.fused_merge_max_splits else 1)
    meta: dict[str, Any] = {
        "NUM_KV_HEADS": num_kv_heads,
        "HEAD_DIM": head_dim,
        "HEAD_PAD": _pow2(head_dim),
        "GROUP": group,
        "GROUP_P2": _pow2(group),
        "GROUP_PAD": max(16, _pow2(group)),
        "BLOCK_SIZE": block_size,
        "TILE_N": cfg.tile_n,
        "COMPUTE_DTYPE": _TL_DTYPE[cfg.compute_dtype],
        "PRESCALE_Q": cfg.prescale_q,
        "EARLY_CVT_V": cfg.early_value_cvt,
        "MERGE": merge,
        "SPLITS_PAD": _pow2(splits),
        "MERGE_STEP": min(_pow2(cfg.merge_step or splits), _pow2(splits)),
        "PEEK_MERGE": grid.chunk >= cfg.peek_min_chunk,
        "WORK_LIST": grid.work_list is not None,
        "num_warps": cfg.num_warps,
        "num_stages": cfg.num_stages,
    }
    if cfg.maxnreg and grid.work_list is not None and device.type == "cuda":
        meta["maxnreg"] = cfg.maxnreg
    return meta


def launch(
    meta: dict[str, Any],
    grid: Grid,
    query: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    block_table: torch.Tensor,
    seq_lens: torch.Tensor,
    out: torch.Tensor,
    partials: tuple[torch.Tensor, torch.Tensor] | None,
    sems: torch.Tensor | None,
    scale: float,
    k_scale: float | torch.Tensor | None,
    v_scale: float | torch.Tensor | None,
    runners: dict[Any, Any] | None = None,
) -> torch.Tensor:
    """One decode launch (plus the reduce kernel past ``fused_merge_max_splits`` splits).

    ``runners``: a plan's cache of compiled launchers. Triton's ``kernel[grid](...)``
    recomputes the arguments' specialisation on every call; a plan launches the same
    specialisation for every layer, so after the first launch it calls the compiled
    kernel's launcher directly (``CompiledKernel[grid]``), keyed by what Triton
    specialises on here (pointer alignment, strides, the scale mode).
    """
    if isinstance(k_scale, torch.Tensor) or isinstance(v_scale, torch.Tensor):
        dev = query.device
        ks = (
            k_scale
            if isinstance(k_scale, torch.Tensor)
            else torch.full((1,), float(k_scale or 1.0), device=dev)
        )
        vs = (
            v_scale
            if isinstance(v_scale, torch.Tensor)
            else torch.full((1,), float(v_scale or 1.0), device=dev)
        )
        qk_scale, vs_val, from_ptr = scale * _LOG2E, 1.0, True
    else:
        ks = vs = seq_lens  # never read
        qk_scale = scale * _LOG2E * (1.0 if k_scale is None else k_scale)
        vs_val, from_ptr = 1.0 if v_scale is None else v_scale, False
    part_out, part_lse = partials if partials is not None else (out, out)  # unread unless split
    work = grid.work_list if grid.work_list is not None else seq_lens
    args = (
        query, key_cache, value_cache, block_table, seq_lens, out, part_out, part_lse,
        sems if sems is not None else seq_lens, work, ks, vs,
        qk_scale, vs_val, grid.chunk, grid.num_splits,
        query.stride(0), key_cache.stride(0), value_cache.stride(0), block_table.stride(0),
        out.stride(0),
    )  # fmt: skip
    runner = None
    if runners is not None:
        # Triton specialises pointers on 16-byte alignment and ints on == 1 / % 16
        key = (from_ptr, *(t.data_ptr() % 16 for t in args[:12]), *args[14:])
        runner = runners.get(key)
    if runner is not None and runners is not None:
        runner(*args, *runners[from_ptr])
    else:
        compiled = _paged_decode_kernel[grid.programs](*args, SCALES_FROM_PTR=from_ptr, **meta)
        if runners is not None and hasattr(
            compiled, "packed_metadata"
        ):  # compiled, not interpreted
            names = _paged_decode_kernel.arg_names[len(args) :]
            runners[from_ptr] = tuple(
                from_ptr if n == "SCALES_FROM_PTR" else meta[n] for n in names
            )
            runners[key] = compiled[(*grid.programs, 1, 1)[:3]]
    if meta["MERGE"] == 1:
        _reduce(meta, grid, part_out, part_lse, seq_lens, out, runners)
    return out


def _reduce(
    meta: dict[str, Any],
    grid: Grid,
    part_out: torch.Tensor,
    part_lse: torch.Tensor,
    seq_lens: torch.Tensor,
    out: torch.Tensor,
    runners: dict[Any, Any] | None,
) -> None:
    """The reduce launch of a split past ``fused_merge_max_splits``, through the plan's cached
    launcher like the main launch (the JIT dispatch would double the host cost of a run)."""
    args = (part_out, part_lse, seq_lens, out, grid.chunk, grid.num_splits, out.stride(0))
    key = ("reduce", *(t.data_ptr() % 16 for t in args[:4]), *args[4:])
    runner = runners.get(key) if runners is not None else None
    if runner is not None and runners is not None:
        runner(*args, *runners["reduce"])
        return
    head_pad = meta["HEAD_PAD"]
    consts = {
        "HEAD_DIM": meta["HEAD_DIM"],
        "HEAD_PAD": head_pad,
        "SPLIT_TILE": min(_pow2(grid.num_splits), max(8, 8192 // head_pad)),
    }
    programs = (out.shape[0], out.shape[1])
    compiled = _paged_decode_reduce_kernel[programs](*args, **consts, num_warps=4)
    if runners is not None and hasattr(compiled, "packed_metadata"):  # compiled, not interpreted
        names = _paged_decode_reduce_kernel.arg_names[len(args) :]
        runners["reduce"] = tuple(consts[n] for n in names)
        runners[key] = compiled[(programs[0], programs[1], 1)]


@functools.lru_cache(maxsize=1024)
def _shape_launch(
    query_dtype: torch.dtype,
    cache_dtype: torch.dtype,
    num_seqs: int,
    num_heads: int,
    head_dim: int,
    max_tokens: int,
    cache_tail: tuple[int, int, int],
    device: torch.device,
    num_splits: int | None,
) -> tuple[Grid, dict[str, Any]]:
    """Policy, grid and compile-time arguments of a launch from shapes (cached per shape)."""
    num_kv_heads = cache_tail[1]
    cfg = launch_config(query_dtype, cache_dtype, head_dim, num_heads // num_kv_heads, False)
    grid = grid_from_shapes(num_seqs, num_kv_heads, max_tokens, cfg.tile_n, device, num_splits)
    meta = constexprs(cfg, grid, cache_tail, num_heads, device)
    return grid, meta


def paged_attention_triton(
    query: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    block_table: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float,
    out: torch.Tensor | None = None,
    *,
    num_splits: int | None = None,
    k_scale: float | torch.Tensor | None = None,
    v_scale: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Decode attention launched from shapes alone: policy -> 3-D grid -> launch.

    ``num_splits`` forces the number of context splits (1 = one program per sequence and KV
    head, no merge); ``None`` picks it from shapes and the SM count. fp8 caches take
    ``k_scale``/``v_scale`` as floats or one-element fp32 device tensors (the latter keep
    CUDA graphs valid when the scales change). Allocates ``out`` (unless given) and, for a
    split launch, the fp32 partials; nothing is copied to the host.
    """
    num_seqs, num_heads, head_dim = query.shape
    cache_tail = tuple(key_cache.shape[1:])
    grid, meta = _shape_launch(
        query.dtype, key_cache.dtype, num_seqs, num_heads, head_dim,
        block_table.shape[1] * cache_tail[0], cache_tail, query.device, num_splits,
    )  # fmt: skip
    if out is None:
        out = torch.empty_like(query)
    partials, sems = split_buffers(meta, grid, query, cache_tail[1])
    return launch(
        meta, grid, query, key_cache, value_cache, block_table, seq_lens, out, partials, sems,
        scale, k_scale, v_scale,
    )  # fmt: skip
