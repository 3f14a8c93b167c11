"""Block tables and slot mapping: the page table between the allocator and the kernels.

A request's `block_table` lists its physical block ids in logical order: logical block
`i` covers token positions `[i * block_size, (i + 1) * block_size)`. The kernels read K/V
through it (the *read map*); `slot_mapping` tells the cache-write kernel where each new
token goes (the *write map*): `slot = block_id * block_size + position % block_size`.
Mirrors `vllm/v1/worker/block_table.py` (`BlockTable.compute_slot_mapping`) and
seed 003 step 03 (logical-to-physical translation).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["BlockTable", "pad_block_tables", "slot_mapping"]


def _check_block_size(block_size: int) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, int):
        raise TypeError(f"block_size must be an int, got {type(block_size).__name__}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    return block_size


def _check_block_id(block_id: int) -> int:
    if isinstance(block_id, bool) or not isinstance(block_id, int):
        raise TypeError(f"block id must be an int, got {type(block_id).__name__}")
    if block_id < 0:
        raise ValueError(f"block id must be >= 0, got {block_id}")
    return block_id


def slot_mapping(block_ids: Sequence[int], positions: Iterable[int], block_size: int) -> list[int]:
    """Physical slot of each token position of one request.

    `slot = block_ids[pos // block_size] * block_size + pos % block_size`; a position
    beyond the table raises ValueError naming the position and the table's capacity.
    """
    _check_block_size(block_size)
    capacity = len(block_ids) * block_size
    slots: list[int] = []
    for pos in positions:
        if isinstance(pos, bool) or not isinstance(pos, int):
            raise TypeError(f"position must be an int, got {type(pos).__name__}")
        if not 0 <= pos < capacity:
            raise ValueError(
                f"position {pos} is outside the block table: allowed 0..{capacity - 1} "
                f"({len(block_ids)} blocks of {block_size} tokens)"
            )
        logical, offset = divmod(pos, block_size)
        slots.append(block_ids[logical] * block_size + offset)
    return slots


def pad_block_tables(
    tables: Sequence[Sequence[int]], pad_id: int = 0, width: int | None = None
) -> list[list[int]]:
    """Rectangular rows for a kernel's `block_table[num_seqs, max_blocks_per_seq]`.

    Short rows are padded with `pad_id` (0, the null block, by default: a valid id that
    kernels must never read past `seq_len`). `width` defaults to the longest row.
    """
    _check_block_id(pad_id)
    longest = max((len(t) for t in tables), default=0)
    if width is None:
        width = longest
    elif isinstance(width, bool) or not isinstance(width, int):
        raise TypeError(f"width must be an int, got {type(width).__name__}")
    elif width < longest:
        raise ValueError(f"width must be >= the longest table ({longest} blocks), got {width}")
    return [[*t, *([pad_id] * (width - len(t)))] for t in tables]


class BlockTable:
    """One request's logical -> physical block map (seed 003 step 03)."""

    __slots__ = ("_block_ids", "block_size")

    def __init__(self, block_size: int, block_ids: Iterable[int] = ()) -> None:
        self.block_size = _check_block_size(block_size)
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
        new = [_check_block_id(b) for b in block_ids]  # validate all before changing any
        self._block_ids.extend(new)

    def _extend_trusted(self, block_ids: list[int]) -> None:
        # For the KVCacheManager only: ids fresh from its BlockPool are valid by construction.
        self._block_ids += block_ids

    def replace(self, logical_index: int, block_id: int) -> int:
        """Point `logical_index` at another physical block (copy-on-write); returns the old id."""
        _check_block_id(block_id)
        if not 0 <= logical_index < len(self._block_ids):
            raise ValueError(
                f"logical_index must be in 0..{len(self._block_ids) - 1}, got {logical_index}"
            )
        old = self._block_ids[logical_index]
        self._block_ids[logical_index] = block_id
        return old

    def translate(self, position: int) -> tuple[int, int]:
        """(physical block id, offset in block) of a token position: the page-table walk."""
        if isinstance(position, bool) or not isinstance(position, int):
            raise TypeError(f"position must be an int, got {type(position).__name__}")
        if not 0 <= position < self.capacity:
            raise ValueError(
                f"position {position} is outside the block table: allowed "
                f"0..{self.capacity - 1} ({len(self._block_ids)} blocks of {self.block_size})"
            )
        logical, offset = divmod(position, self.block_size)
        return self._block_ids[logical], offset

    def slot(self, position: int) -> int:
        """Physical slot of a token position: `block_id * block_size + offset`."""
        block_id, offset = self.translate(position)
        return block_id * self.block_size + offset

    def slot_mapping(self, start: int, num_tokens: int) -> list[int]:
        """Slots of positions `start .. start + num_tokens - 1` (one step's write map)."""
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) or num_tokens < 0:
            raise ValueError(f"num_tokens must be an int >= 0, got {num_tokens!r}")
        return slot_mapping(self._block_ids, range(start, start + num_tokens), self.block_size)
