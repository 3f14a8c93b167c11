"""The Mamba (state-space / linear-attention) group: one state block per request, not per token.

Mirrors ``MambaManager`` in vLLM 0.34.0's ``vllm/v1/core/single_type_kv_cache_manager.py``
with ``mamba_cache_mode`` from ``vllm/config/cache.py``:

- ``"none"`` (prefix caching off): one block holds the request's running state for its
  whole life. vLLM gets this by giving the Mamba group a block size of
  ``max_model_len``; here the manager simply allocates one block.
- ``"align"`` (vLLM's caching mode): the block table is indexed by token position like an
  attention table, but only the block of the current position holds a state. When a
  step crosses a block boundary the running state moves to a new block at the new last
  index; the earlier blocks turn into null blocks once no step reads them
  (``get_num_skipped_tokens = num_computed_tokens - 1``). A state is cached only when
  a step ends exactly on a block boundary, the only moment the block holds the state
  of that prefix, so a scheduler splits prefill chunks at block boundaries
  (:meth:`HybridKVCacheManager.align_num_new_tokens`, vLLM's
  ``Scheduler._mamba_block_aligned_split``). A hit is the LAST cached state at or below
  the candidate length; the blocks before it are null.
- ``"all"`` (our spec's third mode, sized by the capacity planner; not in 0.34): keeps the
  state of every block boundary, so the table is all real blocks, as in full attention.

Differences from vLLM: no speculative blocks, prefill checkpoints, partial-block hits or
copy-on-write of a shared tail; the previous step's state block is released by the skip
rule alone (vLLM also tracks ``last_state_block_idx`` for the kernel's state copy).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..block import BlockHash, KVCacheBlock
from ..block_pool import BlockPool
from ..errors import ArgumentValueError
from ..request import Request
from .single_type import SingleTypeKVCacheManager, _cdiv

__all__ = ["MambaManager"]


class MambaManager(SingleTypeKVCacheManager):
    """State blocks of one Mamba group in ``"none"``, ``"align"`` or ``"all"`` mode."""

    def __init__(self, spec: object, block_pool: BlockPool, group_id: int, enable_caching: bool):
        super().__init__(spec, block_pool, group_id, enable_caching)
        self.mamba_cache_mode: str = spec.mamba_cache_mode  # type: ignore[attr-defined]
        if enable_caching and self.mamba_cache_mode == "none":
            raise ArgumentValueError(
                f"group {group_id}: prefix caching with a Mamba group needs "
                "mamba_cache_mode='align' (or 'all'), got 'none'; or pass enable_caching=False"
            )
        self._num_retired: dict[str, int] = {}  # table prefix already nulled ("align")

    def get_num_skipped_tokens(self, num_computed_tokens: int) -> int:
        # Only the state after the last computed token is read by the next step.
        return num_computed_tokens - 1 if self.mamba_cache_mode == "align" else 0

    def find_longest_cache_hit(
        self, keys: Sequence[BlockHash], max_length: int
    ) -> tuple[list[KVCacheBlock], int]:
        if self.mamba_cache_mode == "none":
            return [], 0
        get = self.block_pool.get_cached_block
        # Right to left: the state at the longest cached boundary is all a hit needs.
        for i in range(min(max_length // self.block_size, len(keys)) - 1, -1, -1):
            block = get(keys[i])
            if block is not None:
                return [self.null_block] * i + [block], (i + 1) * self.block_size
        return [], 0

    def get_num_blocks_to_allocate(
        self,
        request_id: str,
        num_tokens: int,
        new_computed_blocks: Sequence[KVCacheBlock],
        num_computed_tokens: int,
    ) -> int:
        if self.mamba_cache_mode == "all":
            return super().get_num_blocks_to_allocate(
                request_id, num_tokens, new_computed_blocks, num_computed_tokens
            )
        held = self.req_to_blocks.get(request_id, [])
        if self.mamba_cache_mode == "none":
            return 0 if held else 1
        num_new = _cdiv(num_tokens, self.block_size) - len(new_computed_blocks) - len(held)
        evictable = sum(1 for b in new_computed_blocks if b.ref_cnt == 0 and not b.is_null)
        return min(max(num_new, 0), 1) + evictable  # at most one new state block per step

    def allocate_new_blocks(self, request_id: str, num_tokens: int) -> list[KVCacheBlock]:
        if self.mamba_cache_mode == "all":
            return super().allocate_new_blocks(request_id, num_tokens)
        table = self.req_to_blocks.setdefault(request_id, [])
        if self.mamba_cache_mode == "none":
            if table:
                return []
            table += self.block_pool.get_new_blocks(1)
            return list(table)
        num_required = _cdiv(num_tokens, self.block_size)
        if num_required <= len(table):
            return []
        # The running state moves to the block at the new last index; the positions it
        # skips over hold no state.
        table += [self.null_block] * (num_required - 1 - len(table))
        new = self.block_pool.get_new_blocks(1)
        table += new
        return new

    def skipped_indices(self, request_id: str, num_computed_tokens: int) -> list[int]:
        if self.mamba_cache_mode != "align":
            return []
        table = self.req_to_blocks.get(request_id)
        if not table:
            return []
        end = min(self.get_num_skipped_tokens(num_computed_tokens) // self.block_size, len(table))
        start = self._num_retired.get(request_id, 0)
        # Null gaps lie between states, so scan the whole unretired range.
        return [i for i in range(end - 1, start - 1, -1) if not table[i].is_null]

    def remove_skipped_blocks(self, request_id: str, num_computed_tokens: int) -> None:
        super().remove_skipped_blocks(request_id, num_computed_tokens)
        if self.mamba_cache_mode == "align" and request_id in self.req_to_blocks:
            end = max(0, num_computed_tokens - 1) // self.block_size
            end = min(end, len(self.req_to_blocks[request_id]))
            self._num_retired[request_id] = max(self._num_retired.get(request_id, 0), end)

    def free(self, request_id: str) -> None:
        self._num_retired.pop(request_id, None)
        super().free(request_id)

    def cache_blocks(self, request: Request, num_tokens: int, keys: Sequence[BlockHash]) -> None:
        if self.mamba_cache_mode != "align":
            if self.mamba_cache_mode == "all":
                super().cache_blocks(request, num_tokens, keys)
            return
        rid = request.request_id
        start = self.num_cached_block.get(rid, 0)
        end = min(num_tokens // self.block_size, len(keys))
        if end <= start:
            return
        # Only a step that ends on a boundary leaves that boundary's state in its block.
        if num_tokens % self.block_size == 0 and num_tokens // self.block_size == end:
            table = self.req_to_blocks[rid]
            if not table[end - 1].is_null:
                self._cache_range(request, end - 1, end, keys)
        self.num_cached_block[rid] = end
