"""How the Triton decode kernel cuts a batch into programs: split sizes and a host work list.

Two ways to cut a batch (``_triton_decode.py`` launches either):

- **From shapes** (:func:`choose_chunk`): a 3-D grid ``(seq, kv_head, split)`` whose size
  depends on ``block_table.shape`` only, so no host synchronisation; splits past a
  sequence's end return at once. It cannot tell a uniform batch from one long sequence
  among short ones, hence the ragged rule below. The one-shot ``paged_attention`` uses it.
- **From lengths** (:func:`build_work_list`, FlashInfer's plan/run split,
  ``flashinfer/decode.py`` ``BatchDecodeWithPagedKVCacheWrapper.plan``): the caller knows
  the batch's lengths on the host (vLLM's scheduler does), so the list holds exactly the
  (sequence, KV head, split) items that have tokens, cut to at most one resident program's
  fair share of the batch, longest first. ``DecodePlan`` (``decode_plan.py``) builds it once
  per batch and reuses it for every layer.

Pure Python and numpy: everything here runs on the host before the launch (and before any
CUDA-graph capture). The shape model is cached, so a repeated shape costs a dict lookup.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["WorkList", "build_work_list", "choose_chunk", "fair_share_chunk"]

_MIN_TILES_PER_SPLIT = 2
_SPLIT_OVERHEAD_TILES = 2
_CTAS_TO_SATURATE = 4
_RAGGED_CAPACITY = 16384
_RAGGED_CHUNKS = 32
_RAGGED_MIN_CHUNK = 1024
# At most this many splits per sequence from the shape model: up to 32 are merged inside
# the split kernel (``LaunchConfig.fused_merge_max_splits``), with no second launch
# (H100, B=1 x 32768 GQA: 32 fused splits 62.4 µs, 80.1% of copy, against the model's
# former 64 splits and a reduce kernel, 65.9 µs; docs/DESIGN.md, "Split choice").
_MAX_SPLITS = 32
# A batch whose longest sequence is more than this many times its mean length gets the
# fair-share cap; others take the shape model's chunk (H100: the cap cut B=8 x 512 GQA into
# 8 splits, 3% slower than the model's 4; docs/DESIGN.md, "Split choice").
_SKEW = 2.0


@functools.lru_cache(maxsize=4096)
def _model_chunk(
    num_seqs: int, num_kv_heads: int, max_tokens: int, tile_n: int, num_sms: int
) -> int:
    """Tiles per split that minimise the busiest SM's time for a uniform batch.

    A loop over up to ``_MAX_SPLITS`` split counts: cached, because the one-shot call asks it
    for the same shape at every layer of every step.
    """
    total_tiles = max(1, math.ceil(max_tokens / tile_n))
    best: tuple[float, int] | None = None
    base = num_seqs * num_kv_heads
    # With a program per SM or more already, a split must carry >= 512 tokens to pay for the
    # merge (measured: B=8, 32 KV heads, ctx 512 ran 4% slower in 2 splits than in 1).
    min_tiles = _MIN_TILES_PER_SPLIT if base < num_sms else max(_MIN_TILES_PER_SPLIT, 512 // tile_n)
    min_tiles = max(min_tiles, -(-total_tiles // _MAX_SPLITS))
    for tiles in sorted({max(min_tiles, total_tiles // s) for s in range(1, _MAX_SPLITS + 1)}):
        splits = math.ceil(total_tiles / tiles)
        per_sm = math.ceil(base * splits / num_sms)
        cost = (tiles + _SPLIT_OVERHEAD_TILES * (splits > 1)) * max(per_sm, _CTAS_TO_SATURATE)
        if best is None or cost < best[0] * 0.995:
            best = (cost, tiles)
    return min(best[1] if best else total_tiles, total_tiles)


@functools.lru_cache(maxsize=4096)
def choose_chunk(
    num_seqs: int, num_kv_heads: int, max_tokens: int, tile_n: int, num_sms: int
) -> int:
    """Tokens per split, from shapes only (``max_tokens`` = block-table capacity).

    Models each program as ``tiles + 2`` tile-times of work and each SM as saturated once it
    holds ``_CTAS_TO_SATURATE`` programs, and picks the chunk that minimises the busiest SM's
    time. A long capacity (``>= _RAGGED_CAPACITY`` tokens) is then cut into at most
    ``_RAGGED_CHUNKS`` chunks of at least ``_RAGGED_MIN_CHUNK`` tokens whatever the batch: the
    grid cannot tell a uniform batch from one long sequence among short ones, and the second
    needs the long one spread over many programs (H100: 32 splits cost <= 2% on a uniform
    B=64 x 32k batch and run one 32k sequence among 63 short ones 1.7x faster than 8 splits,
    8.8x faster than 1).
    """
    total_tiles = max(1, math.ceil(max_tokens / tile_n))
    tiles = _model_chunk(num_seqs, num_kv_heads, max_tokens, tile_n, num_sms)
    if max_tokens >= _RAGGED_CAPACITY:
        ragged_tiles = max(_RAGGED_MIN_CHUNK // tile_n, -(-total_tiles // _RAGGED_CHUNKS), 1)
        tiles = min(tiles, ragged_tiles)
    return min(tiles, total_tiles) * tile_n


def fair_share_chunk(seq_lens: Sequence[int], num_kv_heads: int, tile_n: int, num_sms: int) -> int:
    """Tokens per split so that no item outlasts one resident program's share of the batch.

    With ``_CTAS_TO_SATURATE`` programs on every SM sharing the bandwidth, an item of ``c``
    tokens runs about as long as the whole batch would if
    ``c = total_tokens * kv_heads / (programs resident)``; larger items become the tail.
    Rounded to the nearest power-of-two number of tiles (a log-scale choice: H100 one-long
    batch best at 1024 for a share of 1047, Zipf batch at 2048 for 2350).
    """
    total = sum(seq_lens) * num_kv_heads
    share = total / (_CTAS_TO_SATURATE * num_sms) / tile_n
    tiles = 2 ** round(math.log2(share)) if share >= 1 else 1
    return max(1, tiles) * tile_n


@dataclass(frozen=True)
class WorkList:
    """The programs of one planned launch, made on the host from the batch's lengths.

    ``items`` int32 ``[n, 4]``: (sequence, KV head, split, tokens) of every program that
    holds tokens (a sequence of length 0 keeps its split 0, which writes its zero row), in
    launch order. ``capacity >= n`` is the launch grid: rows past ``n`` are empty programs
    (split ``num_splits``, past every sequence's end), so a captured CUDA graph can replay
    a later list of the same ``chunk``/``capacity``/``num_splits``.
    """

    num_seqs: int
    num_kv_heads: int
    tile_n: int
    chunk: int
    num_splits: int
    capacity: int
    items: npt.NDArray[np.int32]

    @property
    def num_items(self) -> int:
        return int(self.items.shape[0])

    @property
    def fills_grid(self) -> bool:
        """Every sequence has every split: the 3-D grid runs the same programs."""
        return (
            self.capacity == self.num_items == self.num_seqs * self.num_kv_heads * self.num_splits
        )

    def covered_tokens(self) -> npt.NDArray[np.int64]:
        """Per sequence, the tokens its items can hold (a longer ``seq_len`` would be cut)."""
        cover = np.zeros(self.num_seqs, dtype=np.int64)
        ends = (self.items[:, 2].astype(np.int64) + 1) * self.chunk
        np.maximum.at(cover, self.items[:, 0], ends)
        return cover

    def padded_items(self) -> npt.NDArray[np.int32]:
        """``items`` padded with empty programs to ``capacity`` rows."""
        pad = np.zeros((self.capacity - self.num_items, 4), dtype=np.int32)
        pad[:, 2] = self.num_splits
        return np.concatenate([self.items, pad])


def build_work_list(
    seq_lens: Sequence[int] | npt.NDArray[np.integer],
    num_kv_heads: int,
    tile_n: int,
    num_sms: int,
    max_tokens: int,
    *,
    chunk: int | None = None,
    capacity: int | None = None,
    order: str = "lpt",
) -> WorkList:
    """The work list for ``seq_lens`` (host ints, each ``<= max_tokens``).

    ``chunk`` (a multiple of ``tile_n``) pins the split size, and then ``num_splits`` covers
    ``max_tokens`` so that later lists of any lengths fit the same launch; by default the
    chunk is the smaller of the shape model's choice for the longest sequence and the fair
    share (:func:`fair_share_chunk`) when the batch is skewed (longest > twice the mean).
    ``order``: ``"lpt"`` (more tokens first; ties in the 3-D grid's order), ``"grid"`` (the
    3-D grid's split-major order without its empty programs) or ``"seq"`` (each sequence's
    items together). The public caller (``plan_decode``) checks its inputs; the one check
    here is a ``capacity`` too small for the items.
    """
    lens = np.asarray(seq_lens, dtype=np.int64).reshape(-1)
    num_seqs = int(lens.shape[0])
    longest = int(lens.max()) if num_seqs else 0
    if chunk is None:
        chunk = _model_chunk(num_seqs, num_kv_heads, max(longest, 1), tile_n, num_sms) * tile_n
        if longest > _SKEW * lens.mean():
            # skewed: the model (which assumes every sequence is the longest) would leave the
            # long ones as the tail; cap each item at the fair share
            chunk = min(chunk, fair_share_chunk(lens.tolist(), num_kv_heads, tile_n, num_sms))
        num_splits = max(1, math.ceil(longest / chunk))
    else:
        num_splits = max(1, math.ceil(max_tokens / chunk))
    pieces = np.maximum(1, -(-lens // chunk))  # splits per sequence
    per_seq = pieces * num_kv_heads
    seq = np.repeat(np.arange(num_seqs), per_seq)
    local = np.arange(int(per_seq.sum())) - np.repeat(np.cumsum(per_seq) - per_seq, per_seq)
    split, head = local // num_kv_heads, local % num_kv_heads
    tokens = np.clip(np.minimum(lens[seq], (split + 1) * chunk) - split * chunk, 0, None)
    if order == "lpt":
        perm = np.lexsort((seq, head, split, -tokens))
    elif order == "grid":
        perm = np.lexsort((seq, head, split))
    elif order == "seq":
        perm = np.arange(seq.shape[0])
    else:
        raise ValueError(f"order must be 'lpt', 'grid' or 'seq', got {order!r}")
    items = np.stack([seq, head, split, tokens], axis=1)[perm].astype(np.int32)
    n = int(items.shape[0])
    if capacity is not None and capacity < n:
        raise ValueError(f"capacity must be >= {n} (the plan's programs), got {capacity}")
    return WorkList(
        num_seqs=num_seqs,
        num_kv_heads=num_kv_heads,
        tile_n=tile_n,
        chunk=int(chunk),
        num_splits=int(num_splits),
        capacity=n if capacity is None else int(capacity),
        items=items,
    )
