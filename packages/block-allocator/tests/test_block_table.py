"""Logical-to-physical translation and the slot formula (seed 003 step 03)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from block_allocator.block_table import BlockTable, pad_block_tables, slot_mapping


def test_seed_003_checkpoint_append_1000_tokens_and_read_back() -> None:
    # Physical blocks handed out in a scrambled order, as a real pool would.
    ids = [(7 * i + 3) % 101 for i in range(63)]
    table = BlockTable(16, ids)
    assert table.capacity == 63 * 16
    for t in range(1000):
        block_id, offset = table.translate(t)
        assert block_id == ids[t // 16]
        assert offset == t % 16
        assert table.slot(t) == ids[t // 16] * 16 + t % 16


@given(
    st.integers(1, 64),
    st.lists(st.integers(0, 10_000), min_size=1, max_size=40),
    st.data(),
)
def test_slot_mapping_inverts_to_block_and_offset(
    block_size: int, ids: list[int], data: st.DataObject
) -> None:
    positions = data.draw(st.lists(st.integers(0, len(ids) * block_size - 1), max_size=50))
    slots = slot_mapping(ids, positions, block_size)
    for pos, slot in zip(positions, slots, strict=True):
        block_id, offset = divmod(slot, block_size)
        assert block_id == ids[pos // block_size]
        assert offset == pos % block_size


def test_step_slot_mapping_is_contiguous_inside_a_block() -> None:
    table = BlockTable(4, [9, 2])
    assert table.slot_mapping(2, 4) == [38, 39, 8, 9]
    assert table.slot_mapping(0, 0) == []


def test_out_of_range_positions_name_the_capacity() -> None:
    table = BlockTable(16, [5])
    with pytest.raises(ValueError, match=r"allowed 0\.\.15"):
        table.translate(16)
    with pytest.raises(ValueError, match="position -1"):
        table.slot(-1)
    with pytest.raises(ValueError, match="position 16"):
        slot_mapping([5], [16], 16)


def test_replace_is_copy_on_write_and_validates() -> None:
    table = BlockTable(16, [1, 2, 3])
    assert table.replace(2, 9) == 3
    assert table.block_ids == [1, 2, 9]
    with pytest.raises(ValueError, match="logical_index"):
        table.replace(3, 4)
    with pytest.raises(ValueError, match="block id"):
        table.extend([4, -1])
    assert table.block_ids == [1, 2, 9]  # failed extend changed nothing


def test_block_ids_is_a_copy() -> None:
    table = BlockTable(8, [1])
    table.block_ids.append(5)
    assert table.block_ids == [1]


def test_pad_block_tables() -> None:
    assert pad_block_tables([[3, 4], [7]]) == [[3, 4], [7, 0]]
    assert pad_block_tables([[3]], width=3, pad_id=1) == [[3, 1, 1]]
    assert pad_block_tables([]) == []
    with pytest.raises(ValueError, match="width"):
        pad_block_tables([[1, 2]], width=1)


def test_bad_block_size() -> None:
    with pytest.raises(ValueError, match="block_size"):
        BlockTable(0)
    with pytest.raises(TypeError, match="block_size"):
        BlockTable(16.0)  # type: ignore[arg-type]
