"""Parallel sampling and beam search through fork + copy-on-write (PagedAttention §4.4, §6.3).

Each request of a workload becomes a sequence group on the real
``block_allocator.KVCacheManager``: the prompt is prefilled once, ``fork`` gives every
other sample (or beam) the same block table, and the first write into a shared partial
block copies it (the manager queues the copy). Groups are stepped token by token, one
at a time on their own pool, so the result isolates sharing from scheduling:

    saved = 1 - physical blocks / blocks the sequences would hold without sharing,

averaged over the group's steps, as the paper's Fig. 15 defines it. Parallel samples
draw their own output lengths (other requests' lengths, in a fixed shuffle). Beam search
keeps ``width`` beams for the request's output length; every step each new beam picks a
parent beam uniformly at random (a Wright-Fisher resampling model of candidate
selection: the paper's traces are not public, so the selection model is ours).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import ConfigError
from ..workload.requests import Workload
from .kv import Request, SimRequest, make_manager

__all__ = ["SharingResult", "simulate_sharing"]


@dataclass(frozen=True)
class SharingResult:
    mode: str
    width: int
    block_size: int
    num_groups: int
    logical_block_steps: int  # blocks the sequences would hold unshared, summed over steps
    physical_block_steps: int  # blocks actually held in the pool, summed over steps
    cow_copies: int  # block copies queued by copy-on-write

    @property
    def saved(self) -> float:
        lg = self.logical_block_steps
        return 1.0 - self.physical_block_steps / lg if lg else 0.0


def simulate_sharing(
    workload: Workload,
    mode: Literal["parallel", "beam"] = "parallel",
    width: int = 2,
    *,
    block_size: int = 16,
    num_requests: int | None = 200,
    seed: int = 0,
) -> SharingResult:
    """Memory saved by block sharing for ``width`` samples or beams per request."""
    if mode not in ("parallel", "beam"):
        raise ConfigError(f"mode must be 'parallel' or 'beam', got {mode!r}")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ConfigError(f"width must be an integer >= 1, got {width!r}")
    if block_size < 1:
        raise ConfigError(f"block_size must be >= 1, got {block_size}")
    n = len(workload) if num_requests is None else min(num_requests, len(workload))
    if n < 1:
        raise ConfigError(f"num_requests must be >= 1, got {num_requests}")
    rng = np.random.default_rng(seed)
    outs = workload.output_len.tolist()
    shuffled = rng.permutation(len(outs)).tolist()
    logical = physical = copies = 0
    for i in range(n):
        p, o = int(workload.prompt_len[i]), int(outs[i])
        if mode == "parallel":
            lengths = [o] + [outs[shuffled[(i * width + k) % len(outs)]] for k in range(1, width)]
        else:
            lengths = [o] * width
        blocks = sum(-(-(p + L) // block_size) for L in lengths) + 1
        kvm = make_manager(blocks, block_size, False)
        pool = kvm.block_pool
        usable = blocks
        parent = SimRequest(f"{i}", [1] * p)
        kvm.allocate_slots(parent, p)
        parent.num_computed_tokens = p
        beams: list[Request] = [parent]
        beams += [kvm.fork(parent, f"{i}/{k}") for k in range(1, width)]
        remaining = list(lengths)
        fresh = width
        step = 0
        while beams:
            if mode == "beam" and step:
                picks = rng.integers(0, len(beams), size=len(beams)).tolist()
                new: list[Request] = []
                used: set[int] = set()
                for k in picks:
                    if k in used:
                        new.append(kvm.fork(beams[k], f"{i}/{fresh}"))
                        fresh += 1
                    else:
                        used.add(k)
                        new.append(beams[k])
                for k, b in enumerate(beams):
                    if k not in used:
                        kvm.free(b)
                beams = new
            for b in beams:
                b.append_output_token_ids([2])
                if kvm.allocate_slots(b, 1) is None:
                    raise RuntimeError("internal: sharing pool too small")
                b.num_computed_tokens += 1
            copies += len(kvm.take_blocks_to_copy())
            logical += sum(-(-b.num_tokens // block_size) for b in beams)
            physical += usable - pool.get_num_free_blocks()
            step += 1
            keep = []
            for b, left in zip(beams, remaining, strict=False):
                if left - 1 <= 0:
                    kvm.free(b)
                else:
                    keep.append(b)
            remaining = [r - 1 for r in remaining if r - 1 > 0]
            beams = keep
    return SharingResult(mode, width, block_size, n, logical, physical, copies)
