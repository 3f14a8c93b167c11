# mypy: disable-error-code="no-untyped-def,untyped-decorator"
# (Triton kernels: only tl.constexpr parameters carry annotations; the launchers are typed.)
"""Triton paged decode attention: one query token per sequence over a paged K/V cache.

The algorithm is vLLM's ``csrc/attention/paged_attention_v1.cu`` / ``paged_attention_v2.cu``
(walk the block table, online softmax, split long contexts into partitions and merge them
with a log-sum-exp reduce kernel), written in the style of the Triton fused-attention
tutorial (``python/tutorials/06-fused-attention.py``: base-2 exponentials, fp32 accumulator,
``tl.dot`` on tiles). Two things differ from vLLM's CUDA kernels:

- One program per (sequence, KV head, split), not per query head: the ``G = num_heads /
  num_kv_heads`` query heads of a group are the rows of one ``tl.dot`` tile, so every K/V
  tile is read from memory once for the whole group (vLLM issue #1880 is the complaint
  about re-reading it per query head).
- The split is a fixed number of tokens (``chunk``, a multiple of the tile), like v2's
  ``PARTITION_SIZE = 512``, but chosen on the host from shapes and the SM count only.
  Splits past a sequence's end return at once, so the grid depends on
  ``block_table.shape[1]`` (the capacity), never on ``seq_lens`` values: no host
  synchronisation, and the launch can be captured in a CUDA graph. A caller that knows the
  lengths on the host passes a :class:`DecodePlan` (:func:`plan_decode`) instead: a 1-D
  grid over the programs that hold tokens, longest first (``_plan.py``).
- The merge: up to ``_FUSED_MERGE_MAX_SPLITS`` splits are merged by the last split program of
  a (sequence, KV head) to finish, found with an arrival counter (no second kernel; H100:
  B=8 x 8192 GQA 100.3 -> 98.4 us, docs/GPU_NOTES.md section 12). A long split first peeks
  at the counter: one that finds every other split published merges at once, without
  publishing its own partial first (one memory round trip less at the end of the launch,
  section 16); more splits go to the reduce kernel, which spreads the merge over one
  program per query head.

Layout (vLLM's flash layout): caches ``[num_blocks, block_size, num_kv_heads, head_dim]``,
query/output ``[num_seqs, num_heads, head_dim]``, ``block_table`` int32
``[num_seqs, max_blocks]``, ``seq_lens`` int32 ``[num_seqs]``. fp8 (e4m3) caches are
dequantised with per-tensor ``k_scale``/``v_scale`` (vLLM ``kv_cache_dtype="fp8"``): the
K scale folds into the softmax scale and the V scale into the final normalisation.

No validation here: :mod:`paged_attn_kernels.api` checks inputs before calling in.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, replace
from typing import Any

import torch
import triton
import triton.language as tl

from ._plan import DecodePlan, build_plan, choose_chunk
from ._triton_tiles import attend_range, merge_rows, store_rows

__all__ = [
    "DecodePlan",
    "SplitPlan",
    "choose_chunk",
    "paged_attention_triton",
    "plan_decode",
    "plan_splits",
]

_LOG2E = 1.4426950408889634


@triton.jit
def _paged_decode_kernel(
    q_ptr,  # [num_seqs, num_heads, head_dim]
    k_cache_ptr,  # [num_blocks, block_size, num_kv_heads, head_dim]
    v_cache_ptr,  # [num_blocks, block_size, num_kv_heads, head_dim]
    block_table_ptr,  # [num_seqs, max_blocks] int32
    seq_lens_ptr,  # [num_seqs] int32
    out_ptr,  # [num_seqs, num_heads, head_dim]
    part_out_ptr,  # [num_seqs, num_heads, num_splits, HEAD_PAD] fp32 (IS_SPLIT)
    part_lse_ptr,  # [num_seqs, num_heads, num_splits] fp32, log2 domain
    k_scale_ptr,
    v_scale_ptr,
    sem_ptr,  # [num_seqs * num_kv_heads] int32 arrival counters, zero between launches
    work_ptr,  # [num_programs, 4] int32 (seq, kv_head, split, tokens) when WORK_LIST
    trace_ptr,  # [num_programs, 4] int64 (SM id, start, end, loop end; ns) when TRACE
    num_kv_heads,
    qk_scale,  # softmax scale * log2(e) (* k_scale when it is a float)
    v_scale_val,
    chunk,  # tokens per split, a multiple of TILE_N
    num_splits,
    stride_qs,
    stride_qh,
    stride_qd,
    stride_kb,
    stride_ks,
    stride_kh,
    stride_kd,
    stride_vb,
    stride_vs,
    stride_vh,
    stride_vd,
    stride_bts,
    stride_os,
    stride_oh,
    stride_od,
    HEAD_DIM: tl.constexpr,
    HEAD_PAD: tl.constexpr,
    GROUP: tl.constexpr,
    GROUP_PAD: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    TILE_N: tl.constexpr,
    IS_SPLIT: tl.constexpr,
    SCALE_FROM_PTR: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
    IEEE_DOT: tl.constexpr,
    PREFETCH: tl.constexpr,
    PRESCALE_Q: tl.constexpr,
    FUSED_MERGE: tl.constexpr = False,
    PEEK_MERGE: tl.constexpr = True,
    SPLITS_PAD: tl.constexpr = 1,
    GROUP_P2: tl.constexpr = 1,
    PDL: tl.constexpr = False,
    WORK_LIST: tl.constexpr = False,
    TRACE: tl.constexpr = False,
):
    if WORK_LIST:
        # a 1-D grid over the (sequence, KV head, split) items that hold tokens, in the
        # order the host's plan chose (_plan.py, docs/GPU_NOTES.md section 14)
        pid = tl.program_id(0)
        seq = tl.load(work_ptr + pid * 4)
        kv_head = tl.load(work_ptr + pid * 4 + 1)
        split = tl.load(work_ptr + pid * 4 + 2)
    else:
        pid = tl.program_id(0) + tl.num_programs(0) * (
            tl.program_id(1) + num_kv_heads * tl.program_id(2)
        )
        seq = tl.program_id(0)
        kv_head = tl.program_id(1)
        split = tl.program_id(2)
    if TRACE:
        tl.store(trace_ptr + pid * 4, _smid().to(tl.int64))
        tl.store(trace_ptr + pid * 4 + 1, _globaltimer())
    if PDL:
        # Programmatic dependent launch: once every program has started, the reduce kernel
        # may be scheduled into the SM slots this grid's last wave leaves idle (it waits
        # for our writes with griddepcontrol.wait before reading them).
        tl.extra.cuda.gdc_launch_dependents()

    seq_len = tl.load(seq_lens_ptr + seq)
    start = split * chunk
    if not (IS_SPLIT or WORK_LIST):
        end = seq_len
    else:
        end = tl.minimum(seq_len, start + chunk)
    # Splits past the end of a short sequence (and a work list's padding) do nothing; the
    # merge skips them.
    if IS_SPLIT or WORK_LIST:  # noqa: SIM102 (constexpr test kept apart from the runtime one)
        if start >= end and split > 0:  # split 0 of an empty sequence writes its zeros
            if TRACE:
                _trace_end(trace_ptr + pid * 4, True)
            return
    offs_g = tl.arange(0, GROUP_PAD)
    offs_d = tl.arange(0, HEAD_PAD)
    mask_g = offs_g < GROUP
    mask_d = offs_d < HEAD_DIM
    heads = kv_head * GROUP + offs_g
    q, scale2 = _load_query(
        q_ptr + seq * stride_qs,
        heads,
        stride_qh,
        stride_qd,
        mask_g,
        mask_d,
        qk_scale,
        k_scale_ptr,
        HEAD_PAD,
        SCALE_FROM_PTR,
        PRESCALE_Q,
        COMPUTE_DTYPE,
    )  # [GROUP_PAD, HEAD_PAD]

    bt_row = block_table_ptr + seq.to(tl.int64) * stride_bts
    k_head = k_cache_ptr + kv_head * stride_kh + offs_d[None, :] * stride_kd
    v_head = v_cache_ptr + kv_head * stride_vh + offs_d[None, :] * stride_vd
    m_i, l_i, acc = attend_range(
        q,
        scale2,
        bt_row,
        k_head,
        v_head,
        start,
        end,
        stride_kb,
        stride_ks,
        stride_vb,
        stride_vs,
        GROUP_PAD,
        HEAD_DIM,
        HEAD_PAD,
        BLOCK_SIZE,
        TILE_N,
        COMPUTE_DTYPE,
        IEEE_DOT,
        PREFETCH,
    )
    if TRACE:
        tl.store(trace_ptr + pid * 4 + 3, _globaltimer())  # the rest is store and merge

    if SCALE_FROM_PTR:
        vs = tl.load(v_scale_ptr)
    else:
        vs = v_scale_val
    out = out_ptr + seq * stride_os + heads[:, None] * stride_oh + offs_d[None, :] * stride_od
    out_mask = mask_g[:, None] & mask_d[None, :]
    n_active = tl.cdiv(seq_len, chunk)
    # a split holding the whole sequence writes the output itself: nothing to merge
    if IS_SPLIT:
        as_partial = n_active > 1
    else:
        as_partial = n_active < 0  # never
    part_row = (seq * (GROUP * num_kv_heads) + heads) * num_splits + split
    store_rows(
        m_i,
        l_i,
        acc,
        vs,
        out,
        out_mask,
        part_row,
        part_out_ptr,
        part_lse_ptr,
        mask_g,
        as_partial,
        HEAD_PAD,
    )
    if FUSED_MERGE:  # noqa: SIM102 (constexpr test kept apart from the runtime one)
        if as_partial:
            # Last split of this (sequence, KV head) to arrive merges all of them. The
            # barrier orders every thread's partial stores before the release.
            tl.debug_barrier()
            sem = sem_ptr + seq * num_kv_heads + kv_head
            if PEEK_MERGE:
                # Peek before publishing: if every other split has already published, this
                # one is last and merges without waiting for its own stores to be acknowledged
                # (an acquire needs no fence; the release below does). It does not count
                # itself, so no other program can also see n_active - 1.
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
                    (seq * (GROUP * num_kv_heads) + kv_head * GROUP) * num_splits,
                    num_splits,
                    n_active,
                    out_ptr + seq * stride_os + kv_head * GROUP * stride_oh,
                    stride_oh,
                    stride_od,
                    GROUP,
                    GROUP_P2,
                    HEAD_DIM,
                    HEAD_PAD,
                    SPLITS_PAD,
                )
    if TRACE:
        _trace_end(trace_ptr + pid * 4, False)


@triton.jit
def _globaltimer():
    return tl.inline_asm_elementwise(
        "mov.u64 $0, %globaltimer;", "=l", [], dtype=tl.int64, is_pure=False, pack=1
    )


@triton.jit
def _smid():
    return tl.inline_asm_elementwise(
        "mov.u32 $0, %smid;", "=r", [], dtype=tl.int32, is_pure=True, pack=1
    )


@triton.jit
def _trace_end(row_ptr, EARLY: tl.constexpr):
    """End stamp of a traced program (global ns); one that returned early ends its loop too."""
    now = _globaltimer()
    if EARLY:
        tl.store(row_ptr + 3, now)
    tl.store(row_ptr + 2, now)


@triton.jit
def _load_query(
    q_row,  # pointer to query[seq, 0, 0]
    heads,
    stride_qh,
    stride_qd,
    mask_g,
    mask_d,
    qk_scale,
    k_scale_ptr,
    HEAD_PAD: tl.constexpr,
    SCALE_FROM_PTR: tl.constexpr,
    PRESCALE_Q: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
):
    """The group's query rows in the dot's dtype, and the factor the scores still need."""
    offs_d = tl.arange(0, HEAD_PAD)
    q = tl.load(
        q_row + heads[:, None] * stride_qh + offs_d[None, :] * stride_qd,
        mask=mask_g[:, None] & mask_d[None, :],
        other=0.0,
    )
    scale2 = qk_scale
    if SCALE_FROM_PTR:
        scale2 = scale2 * tl.load(k_scale_ptr)
    if PRESCALE_Q:
        # fp8 caches: scores in fp16 (e4m3 -> fp16 is one cvt, exact); folding the softmax
        # scale into q first keeps even bf16 queries far inside fp16's range.
        q = tl.clamp(q.to(tl.float32) * scale2, -65504.0, 65504.0).to(COMPUTE_DTYPE)
        scale2 = 1.0
    else:
        q = q.to(COMPUTE_DTYPE)
    return q, scale2


@triton.jit
def _paged_decode_reduce_kernel(
    part_out_ptr,  # [num_seqs, num_heads, num_splits, HEAD_PAD] fp32
    part_lse_ptr,  # [num_seqs, num_heads, num_splits] fp32, log2 domain
    seq_lens_ptr,
    out_ptr,  # [num_seqs, num_heads, head_dim]
    chunk,
    num_splits,
    stride_os,
    stride_oh,
    stride_od,
    HEAD_DIM: tl.constexpr,
    HEAD_PAD: tl.constexpr,
    SPLITS_PAD: tl.constexpr,
    SPLIT_TILE: tl.constexpr,
    PDL: tl.constexpr = False,
):
    seq = tl.program_id(0)
    head = tl.program_id(1)
    if PDL:
        tl.extra.cuda.gdc_wait()  # the split kernel's partials are complete and visible
    seq_len = tl.load(seq_lens_ptr + seq)
    # Only the splits that held tokens wrote anything; the rest are stale memory.
    n_active = tl.cdiv(seq_len, chunk)
    if n_active <= 1:
        return  # the split kernel wrote this row itself
    base = (seq * tl.num_programs(1) + head) * num_splits

    offs_s = tl.arange(0, SPLITS_PAD)
    lse = tl.load(part_lse_ptr + base + offs_s, mask=offs_s < n_active, other=float("-inf"))
    lse_max = tl.max(lse, axis=0)
    lse_max = tl.where(n_active > 0, lse_max, 0.0)

    offs_d = tl.arange(0, HEAD_PAD)
    offs_t = tl.arange(0, SPLIT_TILE)
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
    out = out_ptr + seq * stride_os + head * stride_oh + offs_d * stride_od
    tl.store(out, res.to(out_ptr.dtype.element_ty), mask=offs_d < HEAD_DIM)


@functools.lru_cache(maxsize=16)
def _sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).multi_processor_count)
    return 132  # interpreter: any value gives the same answer; pick the H100's


@functools.lru_cache(maxsize=16)
def _pdl_ok(device: torch.device) -> bool:
    """Programmatic dependent launch: Hopper or newer, compiled code (not the interpreter)."""
    if device.type != "cuda" or os.environ.get("TRITON_INTERPRET", "0") == "1":
        return False
    return torch.cuda.get_device_capability(device)[0] >= 9


def _tile_n(block_size: int, head_pad: int, elem_bytes: int) -> int:
    # ~16 KB per K tile keeps K + V x 3 pipeline stages under ~100 KB of shared memory; fp8
    # tiles hold 8 KB (64 tokens at head_dim 128) for its 2-warp, 5-stage launch below.
    budget = 16384 if elem_bytes > 1 else 8192
    return max(16, min(128, budget // (head_pad * elem_bytes)))


# Programmatic dependent launch of the reduce kernel (1 = on). Off: on the H100 it saved
# 0.5 us at B=1 x 32k but cost 4.5 us at B=8 x 8192 (docs/GPU_NOTES.md section 10).
_PDL = 0
# Splits merged by the last split program to finish instead of a reduce kernel (0 = never).
_FUSED_MERGE_MAX_SPLITS = 8
# Splits of at least this many tokens peek at the fused merge's arrival counter before
# publishing their partial (shorter ones publish, then learn from the atomic whether they were
# last). Long splits end microseconds apart (the SMs stream at two rates), so the last one
# usually finds the others published and saves a round trip; short ones end together, so the
# peek usually fails and costs one. H100, interleaved A/B (docs/GPU_NOTES.md section 16):
# 1024-token splits 0.25-0.4 us faster, 256-token splits no faster, 128-token 0.2-0.3 slower.
_PEEK_MIN_CHUNK = 1024
# Benchmark hook (tile_n, num_warps, num_stages, maxnreg, prefetch, fp16_dot, pdl, fused_merge,
# peek): sweeps and tests only.
_LAUNCH_OVERRIDES: dict[str, int] = {}
# Profiling hook: "trace", an int64 [programs, 4] tensor made before the launch (and before
# any graph capture), gets every program's SM id and its %globaltimer ns at start, at exit
# and at the end of its token loop (GPU only; benchmarks/bench_gpu_trace.py).
_LAUNCH_TENSORS: dict[str, torch.Tensor] = {}
# Registers per thread for launches over a work list: the loaded (sequence, head, split)
# cost the kernel 124 -> 160 registers (ptxas, sm_90), i.e. 3 programs per SM instead of 4;
# capped at 128 it spills 12 bytes and keeps 4 (docs/GPU_NOTES.md section 14).
_WORK_LIST_MAXNREG = 128


def _warps_and_stages(fp8_cache: bool, rows_x_cols: int) -> tuple[int, int]:
    """``(num_warps, num_stages)`` of the decode launch for a ``[GROUP_PAD, HEAD_PAD]`` tile.

    fp8 caches: 2 warps over 64-token tiles with 5 stages (Triton then keeps two K/V tiles
    in flight per program, and twice the programs fit on an SM). H100, B=64 x 8192 GQA:
    420 us with 4 warps / 128-token tiles / 3 stages, 391-392 us like this; B=1 x 32k
    45.7 -> 36.8 us. On bf16/fp16 neither helps: 5 stages cost 1-9%, 2 warps up to 5% on
    ragged batches (docs/GPU_NOTES.md section 13).
    """
    if fp8_cache:
        return (2 if rows_x_cols <= 4096 else 4), 5
    return (4 if rows_x_cols <= 4096 else 8), 3


def _as_scale(x: float | torch.Tensor | None) -> tuple[float, torch.Tensor | None]:
    if x is None:
        return 1.0, None
    if isinstance(x, torch.Tensor):
        return 1.0, x
    return float(x), None


@dataclass(frozen=True)
class SplitPlan:
    """How a launch cuts the context: ``tile_n`` tokens per loop step, ``chunk`` per split."""

    tile_n: int
    chunk: int
    num_splits: int


def plan_splits(
    query: torch.Tensor,
    key_cache: torch.Tensor,
    block_table: torch.Tensor,
    num_splits: int | None = None,
) -> SplitPlan:
    """The split plan :func:`paged_attention_triton` uses, from shapes alone (no sync)."""
    num_seqs = query.shape[0]
    num_kv_heads = key_cache.shape[2]
    tile_n = _launch_tile(query, key_cache)
    max_tokens = block_table.shape[1] * key_cache.shape[1]
    total_tiles = max(1, triton.cdiv(max_tokens, tile_n))
    if num_splits is None:
        chunk = choose_chunk(num_seqs, num_kv_heads, max_tokens, tile_n, _sm_count(query.device))
    else:
        chunk = triton.cdiv(total_tiles, max(1, num_splits)) * tile_n
    splits = max(1, triton.cdiv(max_tokens, chunk))
    return SplitPlan(tile_n, chunk, splits)


def _launch_tile(query: torch.Tensor, key_cache: torch.Tensor) -> int:
    """Tokens per loop step of the decode kernel for these shapes and dtypes."""
    num_heads, head_dim = query.shape[1:]
    _, block_size, num_kv_heads, _ = key_cache.shape
    head_pad = triton.next_power_of_2(head_dim)
    tile_n = _LAUNCH_OVERRIDES.get("tile_n") or _tile_n(
        block_size, head_pad, key_cache.element_size()
    )
    if max(16, triton.next_power_of_2(num_heads // num_kv_heads)) >= 64:
        tile_n = min(tile_n, 32)  # acc + scores of a big group must stay in registers
    return int(tile_n)


def plan_decode(
    query: torch.Tensor,
    key_cache: torch.Tensor,
    block_table: torch.Tensor,
    seq_lens: list[int],
    *,
    chunk: int | None = None,
    capacity: int | None = None,
    order: str = "lpt",
) -> DecodePlan:
    """A work-list launch plan from the batch's lengths on the host (``_plan.build_plan``).

    The work list is copied to ``query``'s device here, outside any timed region or graph
    capture: pass the plan to :func:`paged_attention_triton` as ``plan``.
    """
    plan = build_plan(
        seq_lens,
        key_cache.shape[2],
        _launch_tile(query, key_cache),
        _sm_count(query.device),
        block_table.shape[1] * key_cache.shape[1],
        chunk=chunk,
        capacity=capacity,
        order=order,
    )
    work = torch.from_numpy(plan.padded_items()).to(query.device)
    return replace(plan, work_list=work)


def _counters(device: torch.device, n: int) -> torch.Tensor:
    """Zeroed int32 counters for this device and stream, grown on demand, never freed.

    Kernels that use them leave them zero when they finish (the last user resets), so one
    allocation serves every later launch on the stream. A buffer that is outgrown is kept
    alive: a captured CUDA graph may still hold its address.
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
    plan: DecodePlan | None = None,
) -> torch.Tensor:
    """Decode attention of ``query`` over the paged cache; returns ``out`` ``[S, H, D]``.

    ``num_splits`` forces the number of context splits (1 = single kernel, no reduce);
    ``None`` picks it from shapes and the SM count. ``plan`` (from :func:`plan_decode`, the
    batch's lengths known on the host) launches its work list instead, and then decides the
    splits. fp8 caches take ``k_scale``/``v_scale`` as floats or one-element fp32 device
    tensors (the latter keep CUDA graphs valid when the scales change).
    """
    num_seqs, num_heads, head_dim = query.shape
    num_kv_heads = key_cache.shape[2]
    group = num_heads // num_kv_heads
    head_pad = triton.next_power_of_2(head_dim)
    group_pad = max(16, triton.next_power_of_2(group))
    compute_dtype = query.dtype
    fp8_cache = key_cache.element_size() == 1
    if fp8_cache and compute_dtype != torch.float32 and _LAUNCH_OVERRIDES.get("fp16_dot", 1):
        compute_dtype = torch.float16  # measured: bf16 dots on fp8 K/V ran at 68% of copy
    if plan is None:
        shape_plan = plan_splits(query, key_cache, block_table, num_splits)
        tile_n, chunk, splits = shape_plan.tile_n, shape_plan.chunk, shape_plan.num_splits
    else:
        tile_n, chunk, splits = plan.tile_n, plan.chunk, plan.num_splits

    if out is None:
        out = torch.empty_like(query)
    ks_val, ks_ptr = _as_scale(k_scale)
    vs_val, vs_ptr = _as_scale(v_scale)
    scale_from_ptr = ks_ptr is not None or vs_ptr is not None
    if scale_from_ptr:
        dev = query.device
        if ks_ptr is None:
            ks_ptr = torch.full((1,), ks_val, dtype=torch.float32, device=dev)
        if vs_ptr is None:
            vs_ptr = torch.full((1,), vs_val, dtype=torch.float32, device=dev)
        qk_scale = scale * _LOG2E
    else:
        ks_ptr = vs_ptr = seq_lens  # never read
        qk_scale = scale * _LOG2E * ks_val

    warps, stages = _warps_and_stages(fp8_cache, group_pad * head_pad)
    tl_dtype = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}
    common: dict[str, Any] = {
        "HEAD_DIM": head_dim,
        "HEAD_PAD": head_pad,
        "GROUP": group,
        "GROUP_PAD": group_pad,
        "BLOCK_SIZE": key_cache.shape[1],
        "TILE_N": tile_n,
        "SCALE_FROM_PTR": scale_from_ptr,
        "COMPUTE_DTYPE": tl_dtype[compute_dtype],
        "IEEE_DOT": compute_dtype == torch.float32,
        "PRESCALE_Q": fp8_cache and compute_dtype == torch.float16,
        "PREFETCH": _LAUNCH_OVERRIDES.get("prefetch", 0) == 1,
        "num_warps": _LAUNCH_OVERRIDES.get("num_warps", warps),
        "num_stages": _LAUNCH_OVERRIDES.get("num_stages", stages),
    }
    # measured for the 4-warp bf16/fp16 launch only; fp8 and 8-warp launches keep their own
    # A plan whose items fill the whole 3-D grid (every sequence has every split: uniform
    # batches) launches as that grid: the same programs without the work-list load and the
    # register cap (H100 B=8 x 8192 GQA: 99.6 us over the list, 98.2 us as the grid).
    listed = plan is not None and not (
        plan.capacity == plan.num_items == num_seqs * num_kv_heads * splits
    )
    default_nreg = _WORK_LIST_MAXNREG if listed and warps == 4 and not fp8_cache else 0
    maxnreg = _LAUNCH_OVERRIDES.get("maxnreg", default_nreg)
    if maxnreg and query.device.type == "cuda":
        common["maxnreg"] = maxnreg
    fused = 1 < splits <= _LAUNCH_OVERRIDES.get("fused_merge", _FUSED_MERGE_MAX_SPLITS)
    dev = query.device
    if splits == 1:
        part_out = part_lse = out  # never read
    else:
        part_out = torch.empty(
            (num_seqs, num_heads, splits, head_pad), dtype=torch.float32, device=dev
        )
        part_lse = torch.empty((num_seqs, num_heads, splits), dtype=torch.float32, device=dev)
    scalars = (qk_scale, vs_val, chunk, splits)
    strides = (
        *query.stride(),
        *key_cache.stride(),
        *value_cache.stride(),
        block_table.stride(0),
        *out.stride(),
    )
    pdl = splits > 1 and not fused and _pdl_ok(dev) and _LAUNCH_OVERRIDES.get("pdl", _PDL) == 1
    # arrival counters of the fused merge, one per (sequence, KV head)
    sems = _counters(dev, num_seqs * num_kv_heads) if fused else seq_lens
    work = plan.work_list if listed and plan is not None else None
    trace = _LAUNCH_TENSORS.get("trace")
    grid = (work.shape[0],) if work is not None else (num_seqs, num_kv_heads, splits)
    _paged_decode_kernel[grid](
        query,
        key_cache,
        value_cache,
        block_table,
        seq_lens,
        out,
        part_out,
        part_lse,
        ks_ptr,
        vs_ptr,
        sems,
        work if work is not None else seq_lens,
        trace if trace is not None else seq_lens,
        num_kv_heads,
        *scalars,
        *strides,
        IS_SPLIT=splits > 1,
        WORK_LIST=work is not None,
        TRACE=trace is not None,
        FUSED_MERGE=fused,
        PEEK_MERGE=_LAUNCH_OVERRIDES.get("peek", int(chunk >= _PEEK_MIN_CHUNK)) == 1,
        SPLITS_PAD=triton.next_power_of_2(splits),
        GROUP_P2=triton.next_power_of_2(group),
        PDL=pdl,
        **common,
    )
    if fused or splits == 1:
        return out
    _paged_decode_reduce_kernel[(num_seqs, num_heads)](
        part_out,
        part_lse,
        seq_lens,
        out,
        chunk,
        splits,
        *out.stride(),
        HEAD_DIM=head_dim,
        HEAD_PAD=head_pad,
        SPLITS_PAD=triton.next_power_of_2(splits),
        SPLIT_TILE=min(triton.next_power_of_2(splits), max(8, 8192 // head_pad)),
        PDL=pdl,
        num_warps=4,
        launch_pdl=pdl,
    )
    return out
