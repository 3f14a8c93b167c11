"""Plan once per batch, run once per layer: the call pattern an engine should use.

A decode step runs the same attention shape in every layer; only the query and that
layer's caches change. Everything that depends on the batch alone is done once, on the
host, by :func:`plan_decode`: the checks that need host values, the split choice, the work
list of (sequence, KV head, split) programs, the launch's compile-time arguments and its
fp32 partial buffers. :meth:`DecodePlan.run` then does per layer only what cannot be done
earlier: compare the tensors' metadata with the plan's and launch. It never reads device
memory on the host (no synchronisation), loops over nothing, and allocates nothing when
``out`` is given. This mirrors FlashInfer's ``BatchDecodeWithPagedKVCacheWrapper.plan`` /
``run`` (``flashinfer/decode.py``) and vLLM's attention-metadata builders
(``vllm/v1/attention/backends/utils.py``), which also build per-step metadata once for all
layers::

    plan = plan_decode(query, key_cache, block_table, seq_lens_host)  # once per step
    for layer in layers:                                               # per layer
        plan.run(q[layer], key_caches[layer], value_caches[layer], out=o[layer])

CUDA graphs: capture ``plan.run`` for a plan made with a pinned ``chunk`` and ``capacity``;
before each replay, :meth:`DecodePlan.update` writes the next step's lengths and work list
into the same device buffers (no allocation), so the captured launch follows them.

Other plans (a variable-length prefill plan, say) follow the same protocol,
:class:`AttentionPlan`: built once per batch from host lengths, then
``run(query, key_cache, value_cache, out=None, *, k_scale=None, v_scale=None)`` per layer.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from paged_attn_kernels._plan import WorkList, build_work_list
from paged_attn_kernels._validate import KernelDtypeError, KernelInputError

__all__ = ["AttentionPlan", "DecodePlan", "plan_decode", "validate_mode"]


@runtime_checkable
class AttentionPlan(Protocol):
    """What every plan offers: one ``run`` per layer over that layer's caches."""

    def run(
        self,
        query: Any,
        key_cache: Any,
        value_cache: Any,
        out: Any = None,
        *,
        k_scale: Any = None,
        v_scale: Any = None,
    ) -> Any: ...


class DecodePlan:
    """A decode launch made from one batch's lengths; reused by every layer of the step.

    Made by :func:`paged_attn_kernels.plan_decode`, not directly. Holds the device
    ``block_table`` (the caller's tensor when it is int32 with unit column stride, so
    in-place updates of that buffer are seen) and ``seq_lens`` (int32, owned by the plan
    unless the caller passed an int32 device tensor), the work list, the compile-time launch
    arguments and the split buffers. Launches of one plan must be ordered (one stream): its
    split buffers and merge counters are shared by its runs.
    """

    def __init__(
        self,
        *,
        query: Any,
        key_cache: Any,
        block_table: Any,
        seq_lens: Any,
        lens_host: np.ndarray[Any, Any],
        scale: float,
        chunk: int | None,
        capacity: int | None,
        order: str,
    ) -> None:
        import torch

        from paged_attn_kernels import _triton_decode as td

        self.num_seqs, self.num_heads, self.head_dim = (int(x) for x in query.shape)
        _, self.block_size, self.num_kv_heads, _ = (int(x) for x in key_cache.shape)
        self.scale = float(scale)
        self.device = query.device
        self.query_dtype = query.dtype
        self.cache_dtype = key_cache.dtype
        self.max_tokens = int(block_table.shape[1]) * self.block_size
        group = self.num_heads // self.num_kv_heads
        cfg = td.launch_config(query.dtype, key_cache.dtype, self.head_dim, group, True)
        self.work: WorkList = build_work_list(
            lens_host, self.num_kv_heads, cfg.tile_n, td._sm_count(self.device), self.max_tokens,
            chunk=chunk, capacity=capacity, order=order,
        )  # fmt: skip
        self._pinned = chunk is not None and capacity is not None
        self.grid = td.grid_from_work_list(self.work, self.device)
        self.config = cfg
        self._meta = td.constexprs(
            cfg, self.grid, tuple(key_cache.shape[1:]), self.num_heads, self.device
        )
        if block_table.dtype != torch.int32 or block_table.stride(1) != 1:
            block_table = block_table.to(torch.int32).contiguous()
        self.block_table = block_table
        if isinstance(seq_lens, torch.Tensor) and seq_lens.device == self.device:
            self.seq_lens = seq_lens if seq_lens.dtype == torch.int32 else seq_lens.to(torch.int32)
        else:
            self.seq_lens = torch.from_numpy(lens_host.astype(np.int32)).to(self.device)
        self._partials = None
        self._sems = None
        if self.grid.num_splits > 1:
            self._partials = td.partial_buffers(
                self.num_seqs, self.num_heads, self.head_dim, self.grid.num_splits, self.device
            )
            if self._meta["MERGE"] == 2:
                self._sems = torch.zeros(
                    self.num_seqs * self.num_kv_heads, dtype=torch.int32, device=self.device
                )
        self._q_shape = tuple(query.shape)
        self._cache_tail = tuple(key_cache.shape[1:])
        self._slot_strides = (self.num_kv_heads * self.head_dim, self.head_dim, 1)
        self._launch = td.launch
        self._runners: dict[Any, Any] = {}  # compiled launchers of this plan's launch

    # ------------------------------------------------------------ per layer

    def run(
        self,
        query: Any,
        key_cache: Any,
        value_cache: Any,
        out: Any = None,
        *,
        k_scale: Any = None,
        v_scale: Any = None,
    ) -> Any:
        """Decode attention of this layer's ``query`` ``[num_seqs, num_heads, head_dim]``
        over its caches; returns ``out`` (written in full) or a new tensor like ``query``.

        Checks metadata only (shapes, dtypes, device, strides): it never reads device
        memory, so it can be captured in a CUDA graph. ``k_scale``/``v_scale``: fp8 caches'
        per-tensor scales, floats or one-element fp32 device tensors.
        """
        if tuple(query.shape) != self._q_shape or query.dtype != self.query_dtype:
            raise KernelInputError(
                f"query is {tuple(query.shape)} {query.dtype}; the plan was made for "
                f"{self._q_shape} {self.query_dtype}"
            )
        for name, c in (("key_cache", key_cache), ("value_cache", value_cache)):
            if tuple(c.shape[1:]) != self._cache_tail or c.dtype != self.cache_dtype:
                raise KernelInputError(
                    f"{name} is {tuple(c.shape)} {c.dtype}; the plan was made for "
                    f"[num_blocks, {', '.join(map(str, self._cache_tail))}] {self.cache_dtype}"
                )
            if c.stride()[1:] != self._slot_strides:
                raise KernelInputError(
                    f"{name} must be contiguous in its last three dims (any block stride), "
                    f"got strides {c.stride()}"
                )
        if query.device != self.device or key_cache.device != self.device:
            raise KernelDtypeError(f"tensors must be on {self.device}, the plan's device")
        if query.stride()[1:] != (self.head_dim, 1):
            raise KernelInputError(
                f"query must be contiguous in its last two dims, got {query.stride()}"
            )
        if out is None:
            out = query.new_empty(self._q_shape)
        elif (
            tuple(out.shape) != self._q_shape
            or out.dtype != self.query_dtype
            or out.stride()[1:] != (self.head_dim, 1)
        ):
            raise KernelInputError(
                f"out must be {self._q_shape} {self.query_dtype}, contiguous in its last two "
                f"dims; got {tuple(out.shape)} {out.dtype} strides {out.stride()}"
            )
        return self._launch(
            self._meta, self.grid, query, key_cache, value_cache, self.block_table,
            self.seq_lens, out, self._partials, self._sems, self.scale, k_scale, v_scale,
            self._runners,
        )  # fmt: skip

    # ------------------------------------------------------------ per step

    def update(self, seq_lens: Any) -> None:
        """Write the next step's lengths and work list into this plan's device buffers.

        For a plan made with a pinned ``chunk`` and ``capacity`` (so that every later batch
        of the same size fits its launch): a CUDA graph captured around :meth:`run` then
        replays the new step. ``seq_lens`` are host values; nothing is allocated on the
        device. The block table is the caller's buffer: update it in place. On error the
        plan is unchanged.
        """
        if not self._pinned:
            raise KernelInputError("update() needs a plan made with chunk= and capacity= pinned")
        lens = _host_lengths(seq_lens, self.num_seqs, self.max_tokens)
        try:
            work = build_work_list(
                lens, self.num_kv_heads, self.work.tile_n, 1, self.max_tokens,
                chunk=self.work.chunk, capacity=self.work.capacity, order="lpt",
            )  # fmt: skip
        except ValueError as err:  # more programs than the pinned capacity
            raise KernelInputError(str(err)) from None
        import torch

        if self.grid.work_list is not None:
            self.grid.work_list.copy_(torch.from_numpy(work.padded_items()))
        self.seq_lens.copy_(torch.from_numpy(lens.astype(np.int32)))
        self.work = work

    # ------------------------------------------------------------ facts

    @property
    def chunk(self) -> int:
        return self.work.chunk

    @property
    def num_splits(self) -> int:
        return self.work.num_splits

    @property
    def num_programs(self) -> int:
        """Programs the launch runs (the work list's capacity, or the 3-D grid's size)."""
        return int(np.prod(self.grid.programs))

    def covered_tokens(self) -> np.ndarray[Any, Any]:
        """Per sequence, the tokens the plan's programs can hold."""
        return self.work.covered_tokens()

    def __repr__(self) -> str:
        return (
            f"DecodePlan(num_seqs={self.num_seqs}, heads={self.num_heads}/{self.num_kv_heads}, "
            f"head_dim={self.head_dim}, chunk={self.chunk}, num_splits={self.num_splits}, "
            f"programs={self.num_programs}, work_list={self.grid.work_list is not None})"
        )


def _host_lengths(seq_lens: Any, num_seqs: int, max_tokens: int) -> np.ndarray[Any, Any]:
    """``seq_lens`` as host int64, checked against the batch size and the table's capacity."""
    if type(seq_lens).__module__.startswith("torch"):
        raw = seq_lens.detach().cpu().numpy()  # a CUDA tensor synchronises here, once a step
    else:
        raw = np.asarray(seq_lens)
    if (
        raw.ndim != 1
        or raw.dtype == np.bool_
        or (raw.size and not np.issubdtype(raw.dtype, np.integer))
    ):
        raise KernelInputError(
            f"seq_lens must be a 1-D sequence of ints, got {raw.dtype} {raw.shape}"
        )
    if raw.shape[0] != num_seqs:
        raise KernelInputError(
            f"seq_lens has {raw.shape[0]} entries; the batch has {num_seqs} sequences"
        )
    lens = raw.astype(np.int64)
    bad = np.flatnonzero((lens < 0) | (lens > max_tokens))
    if bad.size:
        i = int(bad[0])
        raise KernelInputError(
            f"seq_lens[{i}]={int(lens[i])} is outside [0, {max_tokens}] (max_blocks x block_size)"
        )
    return lens


def plan_decode(
    query: Any,
    key_cache: Any,
    block_table: Any,
    seq_lens: Any,
    *,
    scale: float | None = None,
    chunk: int | None = None,
    capacity: int | None = None,
    order: str = "lpt",
    validate: bool | str = "metadata",
) -> DecodePlan:
    """Plan a decode step on the Triton backend from the batch's lengths (once per step).

    ``query`` and ``key_cache``: torch tensors of the layers' shapes and dtypes (their values
    are not read; every layer of the step must share them). ``block_table`` ``[num_seqs,
    max_blocks]`` on the query's device; ``seq_lens`` the lengths as host values (a list, a
    numpy array or a CPU tensor; a CUDA tensor is read back once, which synchronises).
    ``scale`` defaults to ``1/sqrt(head_dim)``. ``chunk`` (a multiple of the kernel's tile)
    pins the split size and ``capacity`` the launch grid, so that :meth:`DecodePlan.update`
    can feed a captured CUDA graph later steps. ``order``: ``"lpt"`` (longest programs first,
    the default), ``"grid"`` or ``"seq"``. ``validate="full"`` also reads ``block_table``
    back (a synchronisation) to check every block id a sequence reads; the default checks
    the lengths, which are on the host anyway, and the metadata.
    """
    import torch

    from paged_attn_kernels import _triton_decode as td

    full = validate_mode(validate)
    for name, t in (("query", query), ("key_cache", key_cache), ("block_table", block_table)):
        if not isinstance(t, torch.Tensor):
            raise KernelDtypeError(f"plan_decode needs torch tensors; {name} is {type(t).__name__}")
    if query.dim() != 3 or key_cache.dim() != 4 or block_table.dim() != 2:
        raise KernelInputError(
            "plan_decode needs query [num_seqs, num_heads, head_dim], key_cache [num_blocks, "
            "block_size, num_kv_heads, head_dim] and block_table [num_seqs, max_blocks]; got "
            f"{tuple(query.shape)}, {tuple(key_cache.shape)}, {tuple(block_table.shape)}"
        )
    if key_cache.device != query.device or block_table.device != query.device:
        raise KernelDtypeError(
            f"query ({query.device}), key_cache ({key_cache.device}) and block_table "
            f"({block_table.device}) must be on one device"
        )
    if query.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise KernelDtypeError(f"query dtype {query.dtype} must be float16, bfloat16 or float32")
    if key_cache.dtype not in (query.dtype, torch.float8_e4m3fn):
        raise KernelDtypeError(
            f"key_cache dtype {key_cache.dtype} must equal the query's ({query.dtype}) or be "
            "torch.float8_e4m3fn"
        )
    if block_table.dtype not in (torch.int32, torch.int64):
        raise KernelDtypeError(f"block_table must be int32 (or int64), got {block_table.dtype}")
    num_seqs, num_heads, head_dim = query.shape
    num_blocks, block_size, num_kv_heads, kv_dim = key_cache.shape
    if kv_dim != head_dim or num_kv_heads < 1 or num_heads % num_kv_heads:
        raise KernelInputError(
            f"query [{num_seqs}, {num_heads}, {head_dim}] and key_cache [.., {block_size}, "
            f"{num_kv_heads}, {kv_dim}]: head_dim must match and num_heads must be a multiple "
            "of num_kv_heads"
        )
    if block_table.shape[0] != num_seqs:
        raise KernelInputError(
            f"block_table has {block_table.shape[0]} rows; query has {num_seqs} sequences"
        )
    if key_cache.stride()[1:] != (num_kv_heads * head_dim, head_dim, 1):
        raise KernelInputError(
            f"key_cache must be contiguous in its last three dims, got strides {key_cache.stride()}"
        )
    max_tokens = int(block_table.shape[1]) * int(block_size)
    lens = _host_lengths(seq_lens, int(num_seqs), max_tokens)
    if order not in ("lpt", "grid", "seq"):
        raise KernelInputError(f"order must be 'lpt', 'grid' or 'seq', got {order!r}")
    tile = td.launch_config(
        query.dtype, key_cache.dtype, head_dim, num_heads // num_kv_heads, True
    ).tile_n
    if chunk is not None and (
        isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < tile or chunk % tile
    ):
        raise KernelInputError(f"chunk must be a positive multiple of {tile} tokens, got {chunk}")
    if capacity is not None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise KernelInputError(f"capacity must be an int >= 1, got {capacity}")
        if chunk is None:
            raise KernelInputError("capacity needs a pinned chunk: pass chunk= too")
    if scale is None:
        scale = 1.0 / float(np.sqrt(head_dim))
    elif not np.isfinite(float(scale)) or float(scale) == 0.0:
        raise KernelInputError(f"scale must be a finite non-zero float, got {scale}")
    if full:
        table = block_table.detach().cpu().numpy()
        used = np.arange(table.shape[1])[None, :] < (-(-lens // block_size))[:, None]
        bad = used & ((table < 0) | (table >= num_blocks))
        if bad.any():
            i, j = (int(v) for v in np.argwhere(bad)[0])
            raise KernelInputError(
                f"block_table[{i}, {j}]={int(table[i, j])} is outside [0, {num_blocks - 1}]"
            )
    try:
        return DecodePlan(
            query=query, key_cache=key_cache, block_table=block_table, seq_lens=seq_lens,
            lens_host=lens, scale=float(scale), chunk=chunk, capacity=capacity, order=order,
        )  # fmt: skip
    except ValueError as err:  # build_work_list's own check: too small a capacity
        raise KernelInputError(str(err)) from None


def validate_mode(validate: bool | str) -> bool:
    """``"full"`` (or True): read index values back to check them; ``"metadata"`` (or False):
    shapes, dtypes and devices only, so nothing is copied from the device."""
    if validate in ("full", True):
        return True
    if validate in ("metadata", False):
        return False
    raise KernelInputError(f"validate must be 'metadata' or 'full', got {validate!r}")
