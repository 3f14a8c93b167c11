"""Plan once per batch, run per layer: the host half of variable-length paged attention.

An engine's step has one batch layout (``query_start_loc``, ``seq_lens``, ``block_table``)
and many layers. :func:`~paged_attn_kernels.unified.api.plan_unified` reads the layout on the
host once (FlashInfer's ``plan``; vLLM's attention metadata builders), checks its values,
and cuts it into work items; :meth:`UnifiedPlan.run` then launches per layer with no host
synchronisation, no allocation but the output, and no Python loop over the batch.

Work items are ``BLOCK_Q`` consecutive query tokens of one sequence. Sequences are sorted
into launch classes by rows (``query_len x group``): decode and short verification rows fill
16-row tiles, up to 64 rows a 64-row tile, longer prefills 128-row tiles. One class per
launch keeps a decode from paying for a prefill's 128-row tile (8x the tensor-core work,
and a 4x larger accumulator) and a prefill from re-reading its keys 8 times in 16-row
tiles. Within a class, items with the most keys to visit come first, so that the last
programs to start are short (longest-processing-time order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from paged_attn_kernels.unified.options import VarlenBatch

__all__ = ["ROW_CLASSES", "UnifiedPlan", "split_work"]

ROW_CLASSES = (16, 64, 128)  # tile rows of the launch classes
SPLIT_MAX_ROWS = 64  # classes whose items may split their keys (decode, verification)
MIN_SPLIT_TOKENS = 512  # a split shorter than this costs more in its merge than it saves
MAX_SPLITS = 32


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@dataclass(frozen=True)
class LaunchWork:
    """One launch class: its tile rows, work list and, when its items split, merge groups."""

    block_m: int
    work: npt.NDArray[np.int32]  # [n, 2] (sequence, first token) or [n, 4] (+ split, splits)
    groups: npt.NDArray[np.int32] | None = None  # [g, 2] (first item, splits) to merge


def split_work(
    batch: VarlenBatch,
    group: int,
    num_kv_heads: int,
    block_m: int | None = None,
    num_sms: int = 132,
    split_tokens: int | None = None,
) -> list[LaunchWork]:
    """Work items per launch class, longest first (see the module docstring).

    When the whole batch has fewer than ``2 x num_sms`` programs (a few long decodes, say),
    items of the decode/verification classes also split their keys, FlashDecoding-style: a
    sequence of ``L`` keys gets ``min(32, L / chunk)`` splits with ``chunk`` sized so the
    batch makes about ``4 x num_sms`` programs (at least 512 keys each); each split is one
    program and a merge kernel combines them (``triton_kernel._merge_kernel``).
    ``split_tokens`` pins ``chunk`` and splits whatever the batch (0: never split).
    """
    classes: dict[int, list[tuple[int, int, int]]] = {}
    q_lens = batch.query_lens.tolist()
    ctx = batch.context_lens.tolist()
    for i, q_len in enumerate(q_lens):
        if q_len == 0:
            continue
        if block_m is None:
            rows = q_len * group
            bm = next((c for c in ROW_CLASSES if rows <= c), ROW_CLASSES[-1])
        else:
            bm = block_m
        bm = max(bm, _next_pow2(group))
        block_q = max(1, bm // group)
        items = classes.setdefault(bm, [])
        for q0 in range(0, q_len, block_q):
            items.append((ctx[i] + q0 + min(block_q, q_len - q0), i, q0))
    programs = sum(len(v) for v in classes.values()) * num_kv_heads
    keys = sum(x[0] for bm, v in classes.items() if bm <= SPLIT_MAX_ROWS for x in v)
    if split_tokens is None:
        chunk = max(MIN_SPLIT_TOKENS, -(-keys * num_kv_heads // (4 * num_sms)))
        may_split = programs < 2 * num_sms
    else:
        chunk, may_split = max(1, split_tokens), split_tokens > 0
    out = []
    for bm in sorted(classes):
        items = sorted(classes[bm], key=lambda x: -x[0])
        if not may_split or bm > SPLIT_MAX_ROWS:
            work = np.array([x[1:] for x in items], dtype=np.int32).reshape(-1, 2)
            out.append(LaunchWork(bm, work))
            continue
        rows, groups, whole = [], [], []
        for cost, i, q0 in items:
            n = min(MAX_SPLITS, cost // chunk)
            if n <= 1:
                whole.append((i, q0))
                continue
            groups.append((len(rows), n))
            rows.extend((i, q0, s, n) for s in range(n))
        if whole:
            out.append(LaunchWork(bm, np.array(whole, dtype=np.int32).reshape(-1, 2)))
        if rows:
            out.append(
                LaunchWork(
                    bm,
                    np.array(rows, dtype=np.int32).reshape(-1, 4),
                    np.array(groups, dtype=np.int32).reshape(-1, 2),
                )
            )
    return out


@dataclass(frozen=True, eq=False)
class UnifiedPlan:
    """A checked batch layout and its launches; make with ``plan_unified``, call ``run``.

    ``backend`` is the resolved backend; for ``triton``, ``launches`` holds one
    ``(LaunchShape, work tensor, merge)`` per launch (``merge``: ``None``, or the device
    merge groups and the partial buffers of a split launch, allocated here once), and
    device copies of ``query_start_loc`` and ``seq_lens``; for ``numba``, ``items`` is the
    CPU kernel's work list.
    """

    backend: str
    batch: VarlenBatch
    num_tokens: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    block_size: int
    num_blocks: int
    framework: str
    device: str
    block_table: Any  # the caller's block table (values checked when the plan was made)
    query_start_loc: Any = None  # device int32 copies (triton)
    seq_lens: Any = None
    launches: tuple[Any, ...] = ()
    items: Any = None  # numba work items
    tile_n: int | None = field(default=None)

    @property
    def num_seqs(self) -> int:
        return self.batch.num_seqs

    def run(
        self,
        query: Any,
        key_cache: Any,
        value_cache: Any,
        out: Any = None,
        *,
        scale: float | None = None,
        sliding_window: int | None = None,
        soft_cap: float | None = None,
        sinks: Any = None,
        alibi_slopes: Any = None,
        k_scale: Any = None,
        v_scale: Any = None,
    ) -> Any:
        """Attention of one layer over this batch (see ``unified_attention`` for arguments).

        The signature follows the package's plan protocol (``run(query, key_cache,
        value_cache, out=None, *, k_scale=None, v_scale=None)``), plus the per-layer
        ``scale`` and score modifiers: one plan serves window and global layers alike.

        Checks shapes, dtypes and devices against the plan from metadata only; per-head
        ``sinks``/``alibi_slopes`` on the device are read by the kernel, not the host.
        """
        from paged_attn_kernels.unified import api

        return api.run_plan(
            self, query, key_cache, value_cache, out=out, scale=scale,
            sliding_window=sliding_window, soft_cap=soft_cap, sinks=sinks,
            alibi_slopes=alibi_slopes, k_scale=k_scale, v_scale=v_scale,
        )  # fmt: skip
