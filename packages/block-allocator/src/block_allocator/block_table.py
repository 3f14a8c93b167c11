"""Block tables and slot mapping: the page table between the allocator and the kernels.

A request's ``block_table`` lists its physical block ids in logical order: logical block
``i`` covers token positions ``[i * block_size, (i + 1) * block_size)``. The kernels read
K/V through it (the *read map*); ``slot_mapping`` tells the cache-write kernel where each
new token goes (the *write map*)::

    slot = block_table[seq][pos // block_size] * block_size + pos % block_size

This module is the repository's one definition of record of that formula and of the
padding of block tables; the kernels' vectorised versions are tested equal to it. It
mirrors ``vllm/v1/worker/block_table.py`` (``BlockTable.compute_slot_mapping``, whose
padded tokens get ``PAD_SLOT_ID = -1``; unused table entries are 0, the null block) and
the logical-to-physical translation step of the "PagedAttention from scratch in 300
lines" capstone.

Block 0 is the null block: a placeholder (sliding-window tables, padding) that stores
nothing, so a position that maps into it is refused rather than given an address there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._checks import check_int, type_name
from .errors import ArgumentTypeError, ArgumentValueError, NullBlockAccessError

__all__ = ["NULL_BLOCK_ID", "PAD_SLOT_ID", "BlockTable", "pad_block_tables", "slot_mapping"]

NULL_BLOCK_ID = 0
"""The null block's id: the padding value of block tables (never read past ``seq_len``)."""

PAD_SLOT_ID = -1
"""The slot of a padding token (negative position): the cache-write kernel skips it."""


def _check_block_size(block_size: object) -> int:
    return check_int("block_size", block_size, 1)


def _check_block_id(block_id: object, name: str = "block id") -> int:
    return check_int(name, block_id, 0)


def _is_sequence(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _rows_of(block_table: object) -> list[Sequence[int]]:
    # One request's ids (1-D) or a batch's rows (2-D); both come back as a list of rows.
    if not _is_sequence(block_table):
        raise ArgumentTypeError(
            "block_table must be a list of block ids or a list of rows, "
            f"got {type_name(block_table)}"
        )
    assert isinstance(block_table, Sequence)
    if len(block_table) and all(_is_sequence(row) for row in block_table):
        return list(block_table)
    return [block_table]


def slot_mapping(
    block_table: Sequence[int] | Sequence[Sequence[int]],
    positions: Iterable[int],
    block_size: int,
    seq_indices: Iterable[int] | None = None,
) -> list[int]:
    """Physical cache slot of each token: the write map of one step.

    ``block_table`` is one request's block ids (1-D) or a batch's rows
    ``[num_seqs][max_blocks_per_seq]`` (2-D, e.g. from :func:`pad_block_tables`);
    ``positions`` are the tokens' positions in their sequences and ``seq_indices`` the
    row of each token (may be omitted with a single row). A negative position is a padding
    token and maps to :data:`PAD_SLOT_ID` (-1). Raises :class:`ArgumentValueError` for a
    position past its row or an unknown row, :class:`NullBlockAccessError` for a position
    in a null-block entry.
    """
    _check_block_size(block_size)
    rows = _rows_of(block_table)
    if isinstance(positions, (str, bytes)) or not isinstance(positions, Iterable):
        raise ArgumentTypeError(
            f"positions must be an iterable of ints, got {type_name(positions)}"
        )
    pos_list = list(positions)
    if seq_indices is None:
        if len(rows) != 1:
            raise ArgumentValueError(
                f"seq_indices is required when block_table has {len(rows)} rows"
            )
        seqs: list[int] = [0] * len(pos_list)
    else:
        if isinstance(seq_indices, (str, bytes)) or not isinstance(seq_indices, Iterable):
            raise ArgumentTypeError(
                f"seq_indices must be an iterable of ints or None, got {type_name(seq_indices)}"
            )
        seqs = list(seq_indices)
        if len(seqs) != len(pos_list):
            raise ArgumentValueError(
                f"seq_indices must have one entry per position: {len(pos_list)} positions, "
                f"got {len(seqs)}"
            )
    slots: list[int] = []
    push = slots.append
    for i, (pos, seq) in enumerate(zip(pos_list, seqs, strict=True)):
        if pos.__class__ is not int:
            check_int(f"positions[{i}]", pos, -(2**63))
        if pos < 0:
            push(PAD_SLOT_ID)
            continue
        if seq.__class__ is not int or not 0 <= seq < len(rows):
            check_int(f"seq_indices[{i}]", seq, 0)
            raise ArgumentValueError(
                f"seq_indices[{i}]={seq} is outside [0, {len(rows) - 1}] (block_table rows)"
            )
        row = rows[seq]
        logical, offset = divmod(pos, block_size)
        if logical >= len(row):
            raise ArgumentValueError(
                f"positions[{i}]={pos} is outside [0, {len(row) * block_size - 1}] "
                f"(row {seq}: {len(row)} blocks of block_size={block_size})"
            )
        block_id = row[logical]
        if block_id.__class__ is not int or block_id <= 0:
            _check_block_id(block_id, f"block_table[{seq}][{logical}]")
            raise NullBlockAccessError(
                f"positions[{i}]={pos} falls in logical block {logical} of row {seq}, "
                "which is the null block (a placeholder that stores no K/V)"
            )
        push(block_id * block_size + offset)
    return slots


def pad_block_tables(
    tables: Sequence[Sequence[int]], pad_id: int = NULL_BLOCK_ID, width: int | None = None
) -> list[list[int]]:
    """Rectangular rows for a kernel's ``block_table[num_seqs, max_blocks_per_seq]``.

    Short rows are padded with ``pad_id``: 0, the null block, by default, as vLLM leaves
    unused entries of its block-table buffer at 0 (a valid id that kernels never read past
    ``seq_len``). ``width`` defaults to the longest row.
    """
    if not _is_sequence(tables):
        raise ArgumentTypeError(f"tables must be a list of block-id lists, got {type_name(tables)}")
    _check_block_id(pad_id, "pad_id")
    for r, table in enumerate(tables):
        if isinstance(table, (str, bytes)) or not isinstance(table, Sequence):
            raise ArgumentTypeError(
                f"tables[{r}] must be a list of block ids, got {type_name(table)}"
            )
        for c, block_id in enumerate(table):
            _check_block_id(block_id, f"tables[{r}][{c}]")
    longest = max((len(t) for t in tables), default=0)
    if width is None:
        width = longest
    else:
        check_int("width", width, longest, " (the longest table)")
    return [[*t, *([pad_id] * (width - len(t)))] for t in tables]


class BlockTable:
    """One request's logical -> physical block map (entries may be the null block, 0)."""

    __slots__ = ("_block_ids", "block_size")

    def __init__(self, block_size: int, block_ids: Iterable[int] = ()) -> None:
        self.block_size = _check_block_size(block_size)
        if isinstance(block_ids, (str, bytes)) or not isinstance(block_ids, Iterable):
            raise ArgumentTypeError(
                f"block_ids must be an iterable of ints, got {type_name(block_ids)}"
            )
        self._block_ids: list[int] = [_check_block_id(b) for b in block_ids]

    @property
    def block_ids(self) -> list[int]:
        """A copy of the physical ids in logical order (mutate through the methods)."""
        return list(self._block_ids)

    @property
    def num_blocks(self) -> int:
        return len(self._block_ids)

    @property
    def capacity(self) -> int:
        """Token positions the table can address."""
        return len(self._block_ids) * self.block_size

    def __len__(self) -> int:
        return len(self._block_ids)

    def __getitem__(self, logical_index: int) -> int:
        return self._block_ids[logical_index]

    def __repr__(self) -> str:
        return f"BlockTable(block_size={self.block_size}, block_ids={self._block_ids})"

    def append(self, block_id: int) -> None:
        self._block_ids.append(_check_block_id(block_id))

    def extend(self, block_ids: Iterable[int]) -> None:
        if isinstance(block_ids, (str, bytes)) or not isinstance(block_ids, Iterable):
            raise ArgumentTypeError(
                f"block_ids must be an iterable of ints, got {type_name(block_ids)}"
            )
        new = [_check_block_id(b) for b in block_ids]  # validate all before changing any
        self._block_ids.extend(new)

    def _extend_trusted(self, block_ids: list[int]) -> None:
        # For the KVCacheManager only: ids fresh from its BlockPool are valid by construction.
        self._block_ids += block_ids

    def replace(self, logical_index: int, block_id: int) -> int:
        """Point `logical_index` at another physical block (copy-on-write); returns the old id."""
        _check_block_id(block_id)
        check_int("logical_index", logical_index, 0)
        if logical_index >= len(self._block_ids):
            raise ArgumentValueError(
                f"logical_index must be in [0, {len(self._block_ids) - 1}], got {logical_index}"
            )
        old = self._block_ids[logical_index]
        self._block_ids[logical_index] = block_id
        return old

    def translate(self, position: int) -> tuple[int, int]:
        """(physical block id, offset in block) of a token position: the page-table walk.

        A position in a null-block entry raises :class:`NullBlockAccessError`.
        """
        check_int("position", position, 0)
        if position >= self.capacity:
            raise ArgumentValueError(
                f"position must be in [0, {self.capacity - 1}] "
                f"({len(self._block_ids)} blocks of {self.block_size}), got {position}"
            )
        logical, offset = divmod(position, self.block_size)
        block_id = self._block_ids[logical]
        if block_id == NULL_BLOCK_ID:
            raise NullBlockAccessError(
                f"position {position} falls in logical block {logical}, which is the null "
                "block (a placeholder that stores no K/V)"
            )
        return block_id, offset

    def slot(self, position: int) -> int:
        """Physical slot of a token position: `block_id * block_size + offset`."""
        block_id, offset = self.translate(position)
        return block_id * self.block_size + offset

    def slot_mapping(self, start: int, num_tokens: int) -> list[int]:
        """Slots of positions `start .. start + num_tokens - 1` (one step's write map).

        The same as :func:`slot_mapping` over this table's ids.
        """
        check_int("start", start, 0)
        check_int("num_tokens", num_tokens, 0)
        return slot_mapping(self._block_ids, range(start, start + num_tokens), self.block_size)
