"""Logical-to-physical translation, the slot formula and block-table padding.

The capstone's logical-to-physical step ("PagedAttention from scratch in 300 lines"):
a table of scrambled physical ids read back position by position, the slot formula as
a property, padding tokens, batched rows, and the null block refused as an address.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from block_allocator import NullBlockAccessError
from block_allocator.block_table import (
    PAD_SLOT_ID,
    BlockTable,
    pad_block_tables,
    slot_mapping,
)


def test_append_1000_tokens_and_read_back() -> None:
    # Physical blocks handed out in a scrambled order, as a real pool would (never block 0).
    ids = [(7 * i + 3) % 101 + 1 for i in range(63)]
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
    positions = data.draw(st.lists(st.integers(-3, len(ids) * block_size - 1), max_size=50))
    readable = [p for p in positions if p < 0 or ids[p // block_size] != 0]
    slots = slot_mapping(ids, readable, block_size)
    for pos, slot in zip(readable, slots, strict=True):
        if pos < 0:
            assert slot == PAD_SLOT_ID
            continue
        block_id, offset = divmod(slot, block_size)
        assert block_id == ids[pos // block_size]
        assert offset == pos % block_size
    if any(p >= 0 and ids[p // block_size] == 0 for p in positions):
        with pytest.raises(NullBlockAccessError):
            slot_mapping(ids, positions, block_size)


@given(
    st.integers(1, 8),
    st.lists(st.lists(st.integers(1, 99), max_size=6), min_size=1, max_size=5),
    st.data(),
)
def test_batched_rows_equal_per_row_calls(
    block_size: int, tables: list[list[int]], data: st.DataObject
) -> None:
    rows = [r for r, t in enumerate(tables) if t]
    if not rows:
        return
    tokens = data.draw(
        st.lists(
            st.sampled_from(rows).flatmap(
                lambda r: st.tuples(st.just(r), st.integers(0, len(tables[r]) * block_size - 1))
            ),
            max_size=20,
        )
    )
    padded = pad_block_tables(tables)
    got = slot_mapping(
        padded, [p for _, p in tokens], block_size, seq_indices=[r for r, _ in tokens]
    )
    assert got == [slot_mapping(tables[r], [p], block_size)[0] for r, p in tokens]
    assert got == [BlockTable(block_size, tables[r]).slot(p) for r, p in tokens]


def test_step_slot_mapping_is_contiguous_inside_a_block() -> None:
    table = BlockTable(4, [9, 2])
    assert table.slot_mapping(2, 4) == [38, 39, 8, 9]
    assert table.slot_mapping(2, 4) == slot_mapping(table.block_ids, range(2, 6), 4)
    assert table.slot_mapping(0, 0) == []


def test_padding_positions_and_rows() -> None:
    block_table = [[3, 1], [4, 5]]
    assert slot_mapping(block_table, [0, 9, 4, -1], 8, seq_indices=[0, 0, 1, 1]) == [24, 9, 36, -1]
    with pytest.raises(ValueError, match="seq_indices is required when block_table has 2 rows"):
        slot_mapping(block_table, [0], 8)
    with pytest.raises(ValueError, match=r"seq_indices\[0\]=2 is outside \[0, 1\]"):
        slot_mapping(block_table, [0], 8, seq_indices=[2])


def test_the_null_block_is_not_an_address() -> None:
    # A sliding-window table: logical block 0 left the window and points at the null block.
    table = BlockTable(4, [0, 7])
    assert table.translate(5) == (7, 1)
    with pytest.raises(NullBlockAccessError, match="position 2 falls in logical block 0"):
        table.translate(2)
    with pytest.raises(NullBlockAccessError):
        table.slot_mapping(3, 2)
    with pytest.raises(
        NullBlockAccessError, match=r"positions\[0\]=4 falls in logical block 1 of row 0"
    ):
        slot_mapping(pad_block_tables([[5], [6, 7]]), [4], 4, seq_indices=[0])
    assert isinstance(NullBlockAccessError("x"), ValueError)


def test_out_of_range_positions_name_the_capacity() -> None:
    table = BlockTable(16, [5])
    with pytest.raises(ValueError, match=r"position must be in \[0, 15\]"):
        table.translate(16)
    with pytest.raises(ValueError, match="position must be >= 0"):
        table.slot(-1)
    with pytest.raises(ValueError, match=r"positions\[0\]=16 is outside \[0, 15\]"):
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
