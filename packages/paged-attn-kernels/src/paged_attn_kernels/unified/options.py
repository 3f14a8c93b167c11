"""Score modifiers of variable-length paged attention, and the host view of one batch.

The score of query token ``i`` (absolute position ``p``) of a sequence against its key at
position ``k`` goes through, in this order (vLLM's ``triton_unified_attention.py`` order):

1. ``s = scale * q . k``;
2. logit soft-cap (gemma-2): ``s = soft_cap * tanh(s / soft_cap)``;
3. ALiBi (Press et al., "Train Short, Test Long", section 3): ``s += slope[head] * (k - p)``;
4. masks: causal ``k <= p``; sliding window ``p - k < sliding_window`` (the window holds the
   token itself and the ``sliding_window - 1`` before it, vLLM's convention; FlashAttention's
   ``window_size=(sliding_window - 1, 0)``);
5. softmax over the visible keys plus, with attention sinks (gpt-oss), one extra logit
   ``sinks[head]`` in the denominator only: ``out = sum_k e^{s_k} v_k / (e^{sink} +
   sum_k e^{s_k})``. The sink is in raw logit units (not multiplied by ``scale``).

``VarlenBatch`` is the batch's layout read on the host once (by a plan, or by a one-shot
call): per sequence its query rows ``query_start_loc[i]:query_start_loc[i+1]`` and its
context ``seq_lens[i]``, of which the first ``seq_lens[i] - query_len`` tokens are the
cached prefix and the last ``query_len`` are the new tokens themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from paged_attn_kernels._validate import KernelInputError

__all__ = ["ScoreMods", "VarlenBatch", "make_mods", "varlen_batch"]

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ScoreMods:
    """Checked score modifiers; per-head arrays are float64 host copies (or None)."""

    sliding_window: int | None = None
    soft_cap: float | None = None
    sinks: npt.NDArray[np.float64] | None = None  # [num_heads]
    alibi_slopes: npt.NDArray[np.float64] | None = None  # [num_heads]
    sinks_arg: Any = None  # the caller's object (a device tensor stays on the device)
    alibi_arg: Any = None

    @property
    def has_sinks(self) -> bool:
        return self.sinks_arg is not None

    @property
    def has_alibi(self) -> bool:
        return self.alibi_arg is not None


def _per_head(
    x: Any, name: str, num_heads: int, read_values: bool
) -> npt.NDArray[np.float64] | None:
    if x is None:
        return None
    if type(x).__module__.startswith("torch"):
        if x.dtype.is_complex or not x.dtype.is_floating_point:
            raise KernelInputError(f"{name} must hold floats, got dtype {x.dtype}")
        if tuple(x.shape) != (num_heads,):
            raise KernelInputError(
                f"{name} must have shape [num_heads={num_heads}], got {tuple(x.shape)}"
            )
        if not read_values:
            return None  # read by the kernel itself: no copy, no synchronisation
        host = x.detach().float().cpu().numpy()
    else:
        host = np.asarray(x)
    if host.dtype == np.bool_ or not np.issubdtype(host.dtype, np.number):
        raise KernelInputError(f"{name} must hold floats, got dtype {host.dtype}")
    if host.shape != (num_heads,):
        raise KernelInputError(f"{name} must have shape [num_heads={num_heads}], got {host.shape}")
    values = host.astype(np.float64)
    if not np.isfinite(values).all():
        raise KernelInputError(f"{name} must be finite, got {values[~np.isfinite(values)][0]}")
    return values


def make_mods(
    num_heads: int,
    *,
    sliding_window: int | None = None,
    soft_cap: float | None = None,
    sinks: Any = None,
    alibi_slopes: Any = None,
    read_values: bool = True,
) -> ScoreMods:
    """Check the modifiers against ``num_heads``; raise KernelInputError naming the bad one.

    ``read_values=False`` (the Triton path) leaves torch tensors unread: shape and dtype are
    checked, their host copies are None and only ``sinks_arg``/``alibi_arg`` carry them.
    """
    if sliding_window is not None and (
        isinstance(sliding_window, bool)
        or not isinstance(sliding_window, (int, np.integer))
        or sliding_window < 1
    ):
        raise KernelInputError(
            f"sliding_window must be an int >= 1 or None, got {sliding_window!r}"
        )
    if soft_cap is not None and (
        isinstance(soft_cap, bool)
        or not isinstance(soft_cap, (int, float, np.floating))
        or not math.isfinite(float(soft_cap))
        or float(soft_cap) <= 0
    ):
        raise KernelInputError(f"soft_cap must be a finite float > 0 or None, got {soft_cap!r}")
    return ScoreMods(
        None if sliding_window is None else int(sliding_window),
        None if soft_cap is None else float(soft_cap),
        _per_head(sinks, "sinks", num_heads, read_values),
        _per_head(alibi_slopes, "alibi_slopes", num_heads, read_values),
        sinks,
        alibi_slopes,
    )


@dataclass(frozen=True, slots=True)
class VarlenBatch:
    """Host view of a variable-length batch (int64 copies)."""

    query_start_loc: I64  # [num_seqs + 1]
    seq_lens: I64  # [num_seqs]

    @property
    def num_seqs(self) -> int:
        return int(self.seq_lens.shape[0])

    @property
    def query_lens(self) -> I64:
        return np.diff(self.query_start_loc)

    @property
    def context_lens(self) -> I64:
        """Cached-prefix tokens of each sequence (``seq_lens - query_lens``)."""
        return self.seq_lens - self.query_lens

    @property
    def num_query_tokens(self) -> int:
        return int(self.query_start_loc[-1])


def varlen_batch(
    query_start_loc: npt.NDArray[Any], seq_lens: npt.NDArray[Any], num_tokens: int
) -> VarlenBatch:
    """Check the layout values: ``query_start_loc`` starts at 0, never decreases, ends at most
    at ``num_tokens`` (rows past it are padding); ``query_len <= seq_len``."""
    qsl = np.asarray(query_start_loc).astype(np.int64)
    sl = np.asarray(seq_lens).astype(np.int64)
    if qsl.ndim != 1 or sl.ndim != 1 or qsl.shape[0] != sl.shape[0] + 1:
        raise KernelInputError(
            f"query_start_loc must be [num_seqs + 1] and seq_lens [num_seqs], got "
            f"{qsl.shape} and {sl.shape}"
        )
    if qsl[0] != 0:
        raise KernelInputError(f"query_start_loc[0] must be 0, got {int(qsl[0])}")
    steps = np.diff(qsl)
    if (steps < 0).any():
        i = int(np.flatnonzero(steps < 0)[0])
        raise KernelInputError(
            f"query_start_loc must not decrease: query_start_loc[{i + 1}]={int(qsl[i + 1])} < "
            f"query_start_loc[{i}]={int(qsl[i])}"
        )
    if qsl[-1] > num_tokens:
        raise KernelInputError(
            f"query_start_loc[-1]={int(qsl[-1])} is past the query's num_tokens={num_tokens}"
        )
    short = np.flatnonzero(sl < steps)
    if short.size:
        i = int(short[0])
        raise KernelInputError(
            f"seq_lens[{i}]={int(sl[i])} is shorter than the sequence's {int(steps[i])} query "
            "tokens; seq_lens counts the cached prefix and the new tokens"
        )
    return VarlenBatch(qsl, sl)
