"""Memory maps: the pictures must be faithful to the allocators they replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from frag_sim.errors import ConfigError
from frag_sim.memmap import (
    FREE,
    NULL,
    animate_memory_maps,
    default_workload,
    memory_maps,
    plot_memory_maps,
)

SMALL = {"capacity_tokens": 512, "max_model_len": 256, "block_size": 16, "num_steps": 120}


@pytest.fixture(scope="module")
def maps():
    return memory_maps(default_workload(num_requests=30, seed=3), **SMALL)


def runs(row: np.ndarray, owner: int) -> list[tuple[int, int]]:
    """Maximal [start, stop) runs of ``owner`` in one step's address space."""
    idx = np.flatnonzero(row == owner)
    breaks = np.flatnonzero(np.diff(idx) != 1)
    starts = np.r_[idx[0], idx[breaks + 1]]
    stops = np.r_[idx[breaks] + 1, idx[-1] + 1]
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def test_one_map_per_policy_on_the_same_stream(maps) -> None:
    assert [m.policy for m in maps] == ["first_fit", "buddy", "paged"]
    assert {m.owner.shape for m in maps} == {(120, 512)}
    assert all(m.admitted > 0 for m in maps)


@pytest.mark.parametrize("k", [0, 1])
def test_contiguous_chunks_are_contiguous_and_fill_from_their_start(maps, k: int) -> None:
    mmap = maps[k]
    for t in range(mmap.owner.shape[0]):
        row, fill = mmap.owner[t], mmap.filled[t]
        assert not fill[row == FREE].any()
        for i in set(row[row >= 0].tolist()):
            (start, stop), *more = runs(row, i)
            assert more == []  # one chunk per request
            n = int(fill[start:stop].sum())
            assert fill[start : start + n].all()  # KV fills the chunk from its start
            if mmap.policy == "buddy":
                size = stop - start
                assert size & (size - 1) == 0 and start % size == 0  # aligned power of two


def test_paged_blocks_hold_at_most_one_partial_block_per_request(maps) -> None:
    mmap = maps[2]
    bs = mmap.block_size
    assert (mmap.owner[:, :bs] == NULL).all()  # the null block is never handed out
    for t in range(mmap.owner.shape[0]):
        row, fill = mmap.owner[t], mmap.filled[t]
        for i in set(row[row >= 0].tolist()):
            held = int((row == i).sum())
            assert held % bs == 0
            for start, stop in runs(row, i):
                assert start % bs == 0 and stop % bs == 0  # whole blocks
            assert 0 <= held - int(fill[row == i].sum()) < bs  # internal waste < one block


def test_paged_holds_more_kv_than_contiguous_reservation(maps) -> None:
    first_fit, buddy, paged = maps
    assert paged.used_fraction > max(first_fit.used_fraction, buddy.used_fraction)
    assert paged.admitted >= max(first_fit.admitted, buddy.admitted)


def test_exact_reservation_has_no_reserved_tail() -> None:
    maps = memory_maps(default_workload(num_requests=10), reservation="exact", **SMALL)
    first_fit = maps[0]
    held = first_fit.owner >= 0
    # reserved-but-empty slots exist only for the tokens not yet generated
    assert (first_fit.filled <= held).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"capacity_tokens": 1}, "capacity_tokens must be an integer >= 2"),
        ({"block_size": 0}, "block_size must be an integer >= 1"),
        ({"num_steps": 2.5}, "num_steps must be an integer >= 1"),
        ({"reservation": "half"}, "reservation must be"),
        ({"step_time_s": float("nan")}, "step_time_s must be"),
        ({"capacity_tokens": 20, "block_size": 16}, "at least 2 blocks"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        memory_maps(default_workload(num_requests=5), **kwargs)


def test_png_and_gif_are_written(maps, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    image = pytest.importorskip("PIL.Image")
    plot_memory_maps(maps, tmp_path / "m.png")
    animate_memory_maps(maps, tmp_path / "m.gif", frames=4)
    png = image.open(tmp_path / "m.png").convert("RGB")
    assert len(png.getcolors(maxcolors=1 << 20) or []) > 20
    gif = image.open(tmp_path / "m.gif")
    assert gif.n_frames == 4
