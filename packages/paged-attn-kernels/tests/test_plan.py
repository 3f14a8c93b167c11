"""The host work list of ``_plan.py`` (pure numpy: runs without torch or a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paged_attn_kernels._plan import build_work_list as build_plan
from paged_attn_kernels._plan import choose_chunk, fair_share_chunk


@settings(max_examples=60, deadline=None)
@given(
    lens=st.lists(st.integers(0, 5000), min_size=1, max_size=12),
    kv=st.integers(1, 4),
    tile=st.sampled_from([16, 32, 64]),
    pin=st.one_of(st.none(), st.integers(1, 40)),
    order=st.sampled_from(["lpt", "grid", "seq"]),
)
def test_items_partition_every_sequence_once(lens, kv, tile, pin, order):
    chunk = None if pin is None else pin * tile
    plan = build_plan(lens, kv, tile, 132, 5008, chunk=chunk, order=order)
    items = plan.items
    assert plan.chunk % tile == 0 and plan.chunk >= tile
    assert len({tuple(r[:3]) for r in items.tolist()}) == plan.num_items  # no duplicates
    for s, n in enumerate(lens):
        for h in range(kv):
            mine = items[(items[:, 0] == s) & (items[:, 1] == h)]
            assert sorted(mine[:, 2].tolist()) == list(range(max(1, -(-n // plan.chunk))))
            assert int(mine[:, 3].sum()) == n  # every token once
    assert int(items[:, 2].max()) < plan.num_splits
    assert (plan.covered_tokens() >= np.asarray(lens)).all()
    if order == "lpt":
        assert (np.diff(items[:, 3]) <= 0).all()
    padded = plan.padded_items()
    assert padded.shape[0] == plan.capacity
    assert (padded[plan.num_items :, 2] == plan.num_splits).all()  # past every sequence's end


def test_chunk_rule_on_the_benchmark_batches():
    # the fair share picks the H100's best measured chunk
    one_long = [32768] + [576] * 63
    zipf = [32768 // r for r in range(1, 65)]
    assert build_plan(one_long, 8, 64, 132, 32768).chunk == 1024
    assert build_plan(zipf, 8, 64, 132, 32768).chunk == 2048
    assert build_plan([8192] * 8, 8, 64, 132, 8192).chunk == 1024  # as the shape model
    # one long sequence: 32 splits merged in the kernel beat 64 and a reduce launch (H100)
    assert build_plan([32768], 8, 64, 132, 32768).chunk == 1024
    # a uniform long batch is no longer cut by the ragged rule (the grid's 32 splits)
    assert build_plan([32768] * 64, 8, 64, 132, 32768).num_splits == 1
    # uniform batches keep the shape model's chunk, which is the 3-D grid's
    for b, n in ((1, 512), (8, 512), (1, 2048), (8, 8192)):
        assert build_plan([n] * b, 8, 64, 132, n).chunk == choose_chunk(b, 8, n, 64, 132)
    assert build_plan([512] * 8, 8, 64, 132, 512).chunk == 128  # the fair share would say 64
    assert choose_chunk(64, 8, 32768, 64, 132) == 1024
    assert fair_share_chunk([0], 8, 64, 132) == 64


def test_capacity_and_order_errors():
    with pytest.raises(ValueError, match="capacity"):
        build_plan([100, 100], 2, 16, 132, 128, chunk=16, capacity=3)
    with pytest.raises(ValueError, match="order"):
        build_plan([1], 1, 16, 132, 16, order="random")


@settings(max_examples=200, deadline=None)
@given(
    num_seqs=st.integers(1, 256),
    num_kv_heads=st.sampled_from([1, 2, 4, 8, 32]),
    max_tokens=st.integers(1, 1 << 20),
    tile_n=st.sampled_from([16, 32, 64, 128]),
    num_sms=st.sampled_from([1, 78, 132]),
)
def test_shape_model_keeps_every_split_inside_the_fused_merge(
    num_seqs, num_kv_heads, max_tokens, tile_n, num_sms
):
    # at most 32 splits (merged inside the split kernel, no reduce launch), each a whole
    # number of tiles, together covering the capacity
    chunk = choose_chunk(num_seqs, num_kv_heads, max_tokens, tile_n, num_sms)
    assert chunk % tile_n == 0 and chunk >= tile_n
    assert -(-max_tokens // chunk) <= 32
    assert chunk <= -(-max_tokens // tile_n) * tile_n
