"""Prefix caching at block granularity (the Phase 02 exercises, ex. 10)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capacity_planner import SettingError
from capacity_planner.prefix import prefix_caching_estimate


def test_seed_exercise_10() -> None:
    est = prefix_caching_estimate(4096, 1000, 50, 16)
    assert (est.shared_blocks, est.blocks_per_user_without, est.blocks_per_user_with) == (
        256,
        260,
        4,
    )
    assert (est.blocks_without, est.blocks_with) == (260_000, 4_256)
    assert round(est.multiplier, 2) == 61.09


def test_partial_prefix_block_is_private() -> None:
    # 4100 = 256 full blocks + 4 tokens; the 4 tokens share a block with each user's 50.
    est = prefix_caching_estimate(4100, 10, 50, 16)
    assert est.shared_blocks == 256 and est.blocks_per_user_with == 4  # cdiv(4 + 50, 16)
    assert est.blocks_per_user_without == 260  # cdiv(4150, 16)


def test_bytes_and_pool() -> None:
    est = prefix_caching_estimate(4096, 1000, 50, 16, bytes_per_block=2 << 20, pool_blocks=28_000)
    assert est.bytes_without == 260_000 * (2 << 20) and est.bytes_with == 4_256 * (2 << 20)
    assert est.users_that_fit_without == 107  # 28,000 // 260
    assert est.users_that_fit_with == (28_000 - 256) // 4


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((-1, 1, 1), "prefix_tokens"),
        ((1, 0, 1), "users"),
        ((1, 1, -2), "suffix_tokens"),
        ((0, 5, 0), "> 0"),
        ((1, 1, 1, 0), "block_size"),
    ],
)
def test_bad_input(args: tuple[int, ...], match: str) -> None:
    with pytest.raises(SettingError, match=match):
        prefix_caching_estimate(*args)


@settings(max_examples=200, deadline=None)
@given(
    p=st.integers(0, 100_000),
    u=st.integers(1, 5_000),
    s=st.integers(0, 10_000),
    bs=st.sampled_from([1, 8, 16, 32, 128, 544]),
)
def test_caching_never_costs_more_than_one_extra_block_set(p: int, u: int, s: int, bs: int) -> None:
    if p + s == 0:
        return
    est = prefix_caching_estimate(p, u, s, bs)
    # Sharing saves memory, except that the shared blocks are counted once even for one user.
    assert est.blocks_with <= est.blocks_without + est.shared_blocks
    if u > 1:
        assert est.blocks_with <= est.blocks_without
    # Every token is in some block: with caching, shared + private cover P + S per user.
    assert est.shared_blocks * bs + est.blocks_per_user_with * bs >= p + s
