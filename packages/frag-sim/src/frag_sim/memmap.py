"""Memory maps: where every request's KV sits in the address space, step by step.

Time runs across, addresses run up, one colour per request. The same request stream is
replayed through three allocators: contiguous reservation with first-fit and with a buddy
allocator (the Orca baselines of PagedAttention §6.1, reserving each request's slots up
front), and paged allocation through block_allocator's ``BlockPool`` (vLLM). A reserved
slot that holds no KV yet is drawn pale; white is free memory. Contiguous maps show the
holes between chunks (external fragmentation, §3.1 Fig. 3) and the pale reserved tails
(internal); the paged map shows scattered blocks and at most one partial block per request.

The replay is a small fixed-step scheduler (FCFS admission with head-of-line blocking; a
paged request that cannot grow preempts the newest running one, which recomputes later,
and no request is admitted in a step that preempted, as in vLLM's scheduler)
so that each step has one picture. The fragmentation *numbers* come from the simulator
(``frag_sim.simulate``); this module draws pictures of the same mechanism.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from block_allocator import BlockPool

from .engine.contiguous import BuddySpace, FirstFitSpace
from .errors import ConfigError
from .workload import LengthDist, SyntheticWorkload, Workload

__all__ = [
    "FREE",
    "MAP_POLICIES",
    "NULL",
    "MemoryMap",
    "animate_memory_maps",
    "default_workload",
    "memory_maps",
    "plot_memory_maps",
]

MAP_POLICIES = ("first_fit", "buddy", "paged")
FREE = -1  # owner of a free slot
NULL = -2  # owner of the paged pool's null block (block 0, never handed out)
Reservation = Literal["max", "pow2", "exact"]


@dataclass(frozen=True)
class MemoryMap:
    """One allocator's address space over time."""

    policy: str  # "first_fit", "buddy" or "paged"
    owner: npt.NDArray[np.int32]  # [num_steps, capacity] request index, FREE or NULL
    filled: npt.NDArray[np.bool_]  # [num_steps, capacity] the slot holds KV (not just reserved)
    block_size: int  # paged only; 1 for the contiguous maps
    admitted: int  # requests admitted at least once
    preemptions: int  # paged only: requests evicted to make room (recomputed later)

    @property
    def capacity(self) -> int:
        return int(self.owner.shape[1])

    @property
    def used_fraction(self) -> float:
        """Mean share of the (non-null) slots that hold KV."""
        return int(self.filled.sum()) / self._usable_cells

    @property
    def reserved_fraction(self) -> float:
        """Mean share of the (non-null) slots taken by a request, KV or not."""
        return int((self.owner >= 0).sum()) / self._usable_cells

    @property
    def _usable_cells(self) -> int:
        usable = self.capacity - (self.block_size if self.policy == "paged" else 0)
        return int(self.owner.shape[0]) * usable


def default_workload(num_requests: int = 60, seed: int = 0) -> Workload:
    """A stream that keeps a 2048-slot memory busy: prompts U[20, 200], outputs U[20, 300]."""
    return SyntheticWorkload(
        num_requests=num_requests,
        rate=8.0,
        prompt=LengthDist.uniform(20, 200),
        output=LengthDist.uniform(20, 300),
        seed=seed,
        name="memory-map",
    ).generate()


def _check(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def memory_maps(
    workload: Workload,
    *,
    capacity_tokens: int = 2048,
    max_model_len: int = 512,
    block_size: int = 16,
    reservation: Reservation = "pow2",
    num_steps: int = 400,
    step_time_s: float = 0.05,
) -> list[MemoryMap]:
    """Replay ``workload`` through first-fit, buddy and paged allocation; one map each.

    ``reservation`` is what the contiguous allocators reserve per request: ``max`` the
    whole ``max_model_len`` (Orca Max), ``pow2`` the final length rounded up to a power of
    two (Orca Pow2), ``exact`` the final length (Orca Oracle). Requests longer than
    ``max_model_len`` are skipped by every policy alike.
    """
    _check("capacity_tokens", capacity_tokens, 2)
    _check("max_model_len", max_model_len, 1)
    _check("block_size", block_size, 1)
    _check("num_steps", num_steps, 1)
    if reservation not in ("max", "pow2", "exact"):
        raise ConfigError(f"reservation must be 'max', 'pow2' or 'exact', got {reservation!r}")
    if not (step_time_s > 0 and math.isfinite(step_time_s)):
        raise ConfigError(f"step_time_s must be a finite number > 0, got {step_time_s!r}")
    if capacity_tokens // block_size < 2:
        raise ConfigError(
            f"capacity_tokens={capacity_tokens} must hold at least 2 blocks of {block_size}"
        )
    prompt = workload.prompt_len.astype(np.int64)
    output = workload.output_len.astype(np.int64)
    keep = (prompt + output) <= max_model_len
    arrival_step = np.floor(workload.arrival_s / step_time_s).astype(np.int64)
    stream = [(int(arrival_step[i]), int(prompt[i]), int(output[i])) for i in np.flatnonzero(keep)]

    def reserve(p: int, o: int) -> int:
        if reservation == "max":
            return max_model_len
        if reservation == "pow2":
            return min(p + (1 << (o - 1).bit_length()), max_model_len)
        return p + o

    maps = [
        _replay_contiguous("first_fit", FirstFitSpace(capacity_tokens), stream, reserve, num_steps),
        _replay_contiguous("buddy", BuddySpace(capacity_tokens), stream, reserve, num_steps),
        _replay_paged(stream, capacity_tokens // block_size, block_size, num_steps),
    ]
    return maps


def _replay_contiguous(
    policy: str, space: Any, stream: list[tuple[int, int, int]], reserve: Any, num_steps: int
) -> MemoryMap:
    capacity = space.capacity
    owner = np.full((num_steps, capacity), FREE, np.int32)
    filled = np.zeros((num_steps, capacity), np.bool_)
    queue: deque[int] = deque()
    running: dict[int, list[int]] = {}  # request -> [offset, rounded, tokens, remaining]
    nxt = admitted = 0
    for t in range(num_steps):
        while nxt < len(stream) and stream[nxt][0] <= t:
            queue.append(nxt)
            nxt += 1
        for i, state in list(running.items()):  # one decode step each
            state[2] += 1
            state[3] -= 1
            if state[3] == 0:
                space.free(state[0])
                del running[i]
        while queue:
            i = queue[0]
            _, p, o = stream[i]
            r = reserve(p, o)
            off = space.alloc(r)
            if off is None:
                break  # head-of-line blocking: FCFS waits for room
            queue.popleft()
            running[i] = [off, space.rounded(r), p, o]
            admitted += 1
        for i, (off, rounded, tokens, _) in running.items():
            owner[t, off : off + rounded] = i
            filled[t, off : off + tokens] = True
    return MemoryMap(policy, owner, filled, 1, admitted, 0)


def _replay_paged(
    stream: list[tuple[int, int, int]], num_blocks: int, block_size: int, num_steps: int
) -> MemoryMap:
    pool = BlockPool(num_blocks, enable_caching=False)
    capacity = num_blocks * block_size
    owner = np.full((num_steps, capacity), FREE, np.int32)
    filled = np.zeros((num_steps, capacity), np.bool_)
    owner[:, :block_size] = NULL
    queue: deque[int] = deque()
    running: dict[int, tuple[list[Any], list[int]]] = {}  # request -> (blocks, [tokens, left])
    order: list[int] = []  # admission order, for preempting the newest
    nxt = admitted = preemptions = 0
    seen: set[int] = set()
    for t in range(num_steps):
        while nxt < len(stream) and stream[nxt][0] <= t:
            queue.append(nxt)
            nxt += 1
        preempted_now = False
        for i in list(order):  # one decode step each, oldest first
            if i not in running:
                continue
            blocks, state = running[i]
            if state[1] == 1:  # this step writes the last token: done
                pool.free_blocks(blocks[::-1])
                del running[i]
                order.remove(i)
                continue
            if state[0] % block_size == 0:  # the next token starts a new block
                while pool.get_num_free_blocks() == 0:
                    victim = order[-1]
                    vblocks, _ = running.pop(victim)
                    pool.free_blocks(vblocks[::-1])
                    order.remove(victim)
                    queue.appendleft(victim)  # recompute from scratch when room returns
                    preemptions += 1
                    preempted_now = True
                    if victim == i:
                        break
                if i not in running:
                    continue
                blocks.extend(pool.get_new_blocks(1))
            state[0] += 1
            state[1] -= 1
        while queue and not preempted_now:  # as vLLM: no admission in a step that preempted
            i = queue[0]
            _, p, o = stream[i]
            need = -(-(p + 1) // block_size)  # the prompt and the first generated token
            if pool.get_num_free_blocks() < need:
                break
            queue.popleft()
            running[i] = (pool.get_new_blocks(need), [p + 1, o - 1 if o > 1 else 1])
            order.append(i)
            if i not in seen:
                seen.add(i)
                admitted += 1
        for i, (blocks, state) in running.items():
            tokens = state[0]
            for k, block in enumerate(blocks):
                start = block.block_id * block_size
                owner[t, start : start + block_size] = i
                n = min(block_size, tokens - k * block_size)
                if n > 0:
                    filled[t, start : start + n] = True
    return MemoryMap("paged", owner, filled, block_size, admitted, preemptions)


_TITLES = {"first_fit": "contiguous, first-fit", "buddy": "contiguous, buddy", "paged": "paged"}


def _rgb(mmap: MemoryMap, upto: int | None = None) -> npt.NDArray[np.float64]:
    """[capacity, num_steps, 3] colours: request colour, pale if only reserved, white free."""
    import matplotlib

    palette = np.asarray(matplotlib.colormaps["tab20"](np.arange(20)))[:, :3]
    owner = mmap.owner.T
    img = np.ones((*owner.shape, 3))
    held = owner >= 0
    colour = palette[np.where(held, owner, 0) % len(palette)]
    pale = 0.35 * colour + 0.65
    img[held] = np.where(mmap.filled.T[held][:, None], colour[held], pale[held])
    img[owner == NULL] = (0.35, 0.35, 0.35)
    if upto is not None:
        img[:, upto:] = 0.96
    return img


def plot_memory_maps(
    maps: list[MemoryMap], path: str | Path | None = None, *, title: str = ""
) -> Any:
    """Draw the maps side by side (one panel each, own scale); save to ``path`` if given."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(1, len(maps), figsize=(4.2 * len(maps), 4.6), squeeze=False)
    for ax, mmap in zip(axes[0], maps, strict=True):
        steps, cap = mmap.owner.shape
        ax.imshow(
            _rgb(mmap),
            origin="lower",
            aspect="auto",
            interpolation="nearest",
            extent=(0, steps, 0, cap),
        )
        extra = f", {mmap.preemptions} preempted" if mmap.preemptions else ""
        ax.set_title(
            f"{_TITLES[mmap.policy]}\nKV in {100 * mmap.used_fraction:.0f}% of memory, "
            f"{mmap.admitted} admitted{extra}",
            fontsize=9,
        )
        ax.set_xlabel("scheduler step")
    axes[0][0].set_ylabel("address (token slot)")
    fig.legend(
        handles=[
            Patch(facecolor="tab:blue", label="a request's KV"),
            Patch(
                facecolor=(0.35 * 0.12 + 0.65, 0.35 * 0.47 + 0.65, 0.35 * 0.71 + 0.65),
                label="reserved, no KV yet",
            ),
            Patch(facecolor="white", edgecolor="0.6", label="free (holes)"),
            Patch(facecolor=(0.35, 0.35, 0.35), label="null block"),
        ],
        loc="lower center",
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(title or "Where the KV cache sits: one colour per request", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def animate_memory_maps(
    maps: list[MemoryMap], path: str | Path, *, frames: int = 24, fps: int = 6
) -> Path:
    """The maps filling in over time, as a GIF (matplotlib's Pillow writer)."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    _check("frames", frames, 2)
    _check("fps", fps, 1)
    fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps), 3.0), squeeze=False)
    steps = maps[0].owner.shape[0]
    images = []
    for ax, mmap in zip(axes[0], maps, strict=True):
        images.append(
            ax.imshow(
                _rgb(mmap, 0),
                origin="lower",
                aspect="auto",
                interpolation="nearest",
                extent=(0, steps, 0, mmap.capacity),
            )
        )
        ax.set_title(_TITLES[mmap.policy], fontsize=9)
        ax.set_xlabel("scheduler step")
    axes[0][0].set_ylabel("address (token slot)")
    fig.tight_layout()

    def draw(k: int) -> list[Any]:
        upto = round(steps * (k + 1) / frames)
        for image, mmap in zip(images, maps, strict=True):
            image.set_data(_rgb(mmap, upto))
        return images

    target = Path(path)
    FuncAnimation(fig, draw, frames=frames, blit=False).save(target, writer=PillowWriter(fps=fps))
    plt.close(fig)
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m frag_sim.memmap --out DIR``: write memmap.png and memmap.gif."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m frag_sim.memmap",
        description=main.__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", default=".", help="folder for memmap.png and memmap.gif")
    parser.add_argument("--reservation", default="pow2", choices=["max", "pow2", "exact"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    if not out.is_dir():
        parser.error(f"--out {str(out)!r} is not a folder")
    maps = memory_maps(default_workload(seed=args.seed), reservation=args.reservation)
    plot_memory_maps(maps, out / "memmap.png")
    animate_memory_maps(maps, out / "memmap.gif")
    print(f"wrote {out / 'memmap.png'} and {out / 'memmap.gif'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
