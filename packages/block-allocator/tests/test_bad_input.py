# ruff: noqa: E501
"""Bad input: a named exception that names the parameter, and everything exactly as it was.

One table of bad calls (well over 100) against a busy world: a manager with running,
shared, forked and freed requests (events on), a second pool with cached and in-use
blocks, a foreign pool, a block table. Before and after each call the test takes a full
snapshot of the pools (every block's fields and links, the free queues, the hash index,
the event log), the manager (tables, block lists, pending lookups, copies, stats) and
every request (tokens, hashes, progress), and requires them equal. The call must raise
the class of mistake it is (a :class:`BlockAllocatorError` subclass, never a raw
``TypeError``/``AttributeError`` from deep inside) with a message naming the parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import block_allocator as ba
from block_allocator import (
    ArgumentTypeError as TypeErr,
)
from block_allocator import (
    ArgumentValueError as ValueErr,
)
from block_allocator import (
    BlockPool,
    BlockTable,
    DoubleFreeError,
    ForeignBlockError,
    InvalidBlockError,
    KVCacheManager,
    NullBlockAccessError,
    OutOfBlocksError,
    Request,
    RequestStateError,
    UnknownRequestError,
)

pytestmark = pytest.mark.extended

BS = 4
H = [ba.hash_block_tokens(None, [i] * BS) for i in range(8)]
NAN = math.nan


@dataclass
class World:
    mgr: KVCacheManager
    reqs: dict[str, Request]
    pool: BlockPool  # a bare pool: in-use, shared, cached-free and plain free blocks
    blocks: list[Any]
    other: BlockPool  # blocks of this one are foreign everywhere else
    table: BlockTable
    fresh: Request = field(default_factory=lambda: Request("new", list(range(100, 110))))


def world() -> World:
    mgr = KVCacheManager(16, BS, enable_kv_cache_events=True)
    reqs = {}
    a = reqs["a"] = Request("a", list(range(10)))
    mgr.allocate_slots(a, 10)
    a.num_computed_tokens = 10
    b = reqs["b"] = Request("b", [*range(9), 99])
    hits, n = mgr.get_computed_blocks(b)
    mgr.allocate_slots(b, b.num_tokens - n, hits)
    b.num_computed_tokens = b.num_tokens
    reqs["c"] = mgr.fork(a, "c")
    gone = Request("gone", [7] * 12)
    mgr.allocate_slots(gone, 12)
    mgr.free(gone)  # cached free blocks in the queue
    pool = BlockPool(10, enable_kv_cache_events=True, block_size=BS)
    blocks = pool.get_new_blocks(5)
    pool.cache_full_blocks(blocks[:3], H[:3], token_ids=[0] * 12)
    pool.touch(blocks[:1])
    pool.free_blocks([blocks[2]])
    other = BlockPool(4)
    other.get_new_blocks(2)
    return World(mgr, reqs, pool, blocks, other, BlockTable(BS, [0, 3, 5]))


def _pool_state(pool: BlockPool) -> tuple[Any, ...]:
    def bid(b: Any) -> Any:
        return None if b is None else b.block_id

    return (
        tuple(
            (
                b.block_id,
                b.ref_cnt,
                b.block_hash,
                b.retention_priority,
                bid(b.prev_free),
                bid(b.next_free),
            )
            for b in pool.blocks
        ),
        tuple(b.block_id for b in pool.get_free_blocks()),
        tuple(q.num_free_blocks for q in pool._queues),
        tuple(sorted((h, b.block_id) for h, b in pool._index._blocks.items())),
        tuple(pool._index.events),
        pool._index.num_prioritized,
    )


def _request_state(r: Request) -> tuple[Any, ...]:
    return (
        r.request_id, tuple(r.all_token_ids), tuple(r.output_token_ids), tuple(r.block_hashes),
        r.block_size, r.num_computed_tokens, r.num_preemptions, r.prefix_cache_hit_limit,
    )  # fmt: skip


def snapshot(w: World) -> tuple[Any, ...]:
    m = w.mgr
    return (
        _pool_state(m.block_pool),
        _pool_state(w.pool),
        _pool_state(w.other),
        tuple(sorted((rid, tuple(t.block_ids)) for rid, t in m._tables.items())),
        tuple(sorted((rid, tuple(b.block_id for b in bl)) for rid, bl in m._req_blocks.items())),
        tuple(sorted(m._prefix_stats._lookups.items())),
        tuple(sorted(m._num_cached_block.items())),
        tuple(m._blocks_to_copy),
        m._prefix_stats.peek(),
        tuple(_request_state(r) for r in (*w.reqs.values(), w.fresh)),
        tuple(w.table.block_ids),
    )


def raising_iter(w: World) -> Iterator[Any]:
    yield w.blocks[3]
    raise ValueErr("the iterator failed midway")


Case = tuple[str, Callable[[World], object], type[BaseException], str]
A = "a"

CASES: list[Case] = [
    # -- BlockPool() -------------------------------------------------------------------
    *[(f"pool num_blocks={v!r}", lambda w, v=v: BlockPool(v), err, "num_blocks")
      for v, err in [(0, ValueErr), (-1, ValueErr), (1, ValueErr), (2.0, TypeErr), (True, TypeErr),
                     (None, TypeErr), ("4", TypeErr), (NAN, TypeErr)]],
    *[(f"pool enable_caching={v!r}", lambda w, v=v: BlockPool(4, v), TypeErr, "enable_caching")
      for v in [1, None, "yes"]],
    *[(f"pool free_order={v!r}", lambda w, v=v: BlockPool(4, free_order=v), ValueErr, "free_order")
      for v in ["lifo", None, 1]],
    *[(f"pool events={v!r}", lambda w, v=v: BlockPool(4, enable_kv_cache_events=v), TypeErr,
       "enable_kv_cache_events") for v in [0, "no"]],
    *[(f"pool block_size={v!r}", lambda w, v=v: BlockPool(4, block_size=v), err, "block_size")
      for v, err in [(0, ValueErr), (-1, ValueErr), (1.5, TypeErr), (True, TypeErr), ("16", TypeErr)]],
    # -- get_new_blocks ---------------------------------------------------------------
    *[(f"get_new_blocks({v!r})", lambda w, v=v: w.pool.get_new_blocks(v), err, "num_blocks")
      for v, err in [(-1, ValueErr), (1.5, TypeErr), (True, TypeErr), (None, TypeErr), ("2", TypeErr),
                     (NAN, TypeErr), (2.0, TypeErr)]],
    ("get_new_blocks(free+1)", lambda w: w.pool.get_new_blocks(w.pool.get_num_free_blocks() + 1),
     OutOfBlocksError, "free"),
    ("get_new_blocks(10**9)", lambda w: w.pool.get_new_blocks(10**9), OutOfBlocksError, "free"),
    # -- touch --------------------------------------------------------------------------
    ("touch(None)", lambda w: w.pool.touch(None), TypeErr, "blocks"),
    ("touch([None])", lambda w: w.pool.touch([None]), TypeErr, "blocks"),
    ("touch([1])", lambda w: w.pool.touch([1]), TypeErr, "blocks"),
    ("touch(str)", lambda w: w.pool.touch("abc"), TypeErr, "blocks"),
    ("touch(block)", lambda w: w.pool.touch(w.blocks[3]), TypeErr, "blocks"),
    ("touch({block})", lambda w: w.pool.touch({w.blocks[3]}), TypeErr, "blocks"),
    ("touch([ok, 3])", lambda w: w.pool.touch([w.blocks[2], 3]), TypeErr, "blocks"),
    ("touch([foreign])", lambda w: w.pool.touch([w.blocks[2], w.other.blocks[1]]), ForeignBlockError,
     "another BlockPool"),
    # -- free_blocks --------------------------------------------------------------------
    ("free_blocks(None)", lambda w: w.pool.free_blocks(None), TypeErr, "blocks"),
    ("free_blocks(5)", lambda w: w.pool.free_blocks(5), TypeErr, "blocks"),
    ("free_blocks([None])", lambda w: w.pool.free_blocks([w.blocks[3], None]), TypeErr, "blocks"),
    ("free_blocks([ok, 'x'])", lambda w: w.pool.free_blocks([w.blocks[4], "x"]), TypeErr, "blocks"),
    ("free_blocks([foreign])", lambda w: w.pool.free_blocks([w.blocks[3], w.other.blocks[1]]),
     ForeignBlockError, "another BlockPool"),
    ("free_blocks([null])", lambda w: w.pool.free_blocks([w.blocks[4], w.pool.null_block]),
     InvalidBlockError, "null block"),
    ("free_blocks([free])", lambda w: w.pool.free_blocks([w.blocks[2]]), DoubleFreeError, "freed more"),
    ("free_blocks twice in one list", lambda w: w.pool.free_blocks([w.blocks[3], w.blocks[1], w.blocks[1]]),
     DoubleFreeError, "block 2"),
    ("free_blocks(generator) double", lambda w: w.pool.free_blocks(b for b in [w.blocks[0], w.blocks[4], w.blocks[4]]),
     DoubleFreeError, "freed more"),
    ("free_blocks(iterator raises)", lambda w: w.pool.free_blocks(raising_iter(w)), ValueErr, "midway"),
    ("free_blocks evict_first=1", lambda w: w.pool.free_blocks([w.blocks[3]], evict_first=1), TypeErr,
     "evict_first"),
    ("free_blocks evict_first=None", lambda w: w.pool.free_blocks([w.blocks[3]], evict_first=None), TypeErr,
     "evict_first"),
    ("free_blocks evict_first double", lambda w: w.pool.free_blocks([w.blocks[4], w.blocks[4]], evict_first=True),
     DoubleFreeError, "freed more"),
    # -- fork_block ---------------------------------------------------------------------
    ("fork_block(None)", lambda w: w.pool.fork_block(None), TypeErr, "block"),
    ("fork_block(3)", lambda w: w.pool.fork_block(3), TypeErr, "block"),
    ("fork_block(null)", lambda w: w.pool.fork_block(w.pool.null_block), InvalidBlockError, "null block"),
    ("fork_block(free)", lambda w: w.pool.fork_block(w.blocks[2]), InvalidBlockError, "ref_cnt == 0"),
    ("fork_block(foreign)", lambda w: w.pool.fork_block(w.other.blocks[1]), ForeignBlockError, "another"),
    # -- cache_full_blocks --------------------------------------------------------------
    ("cache blocks=None", lambda w: w.pool.cache_full_blocks(None, H[:1]), TypeErr, "blocks"),
    ("cache hashes=None", lambda w: w.pool.cache_full_blocks(w.blocks[3:4], None), TypeErr, "block_hashes"),
    ("cache length mismatch", lambda w: w.pool.cache_full_blocks(w.blocks[3:5], H[3:4]), ValueErr,
     "block_hashes"),
    ("cache hash str", lambda w: w.pool.cache_full_blocks(w.blocks[3:4], ["ab"]), TypeErr, "block_hashes"),
    ("cache hash 31 bytes", lambda w: w.pool.cache_full_blocks(w.blocks[3:4], [b"x" * 31]), TypeErr,
     "block_hashes"),
    ("cache parent str", lambda w: w.pool.cache_full_blocks(w.blocks[3:4], H[3:4], parent_block_hash="p"),
     TypeErr, "parent_block_hash"),
    ("cache token count", lambda w: w.pool.cache_full_blocks(w.blocks[3:5], H[3:5], token_ids=[1] * 7),
     ValueErr, "token_ids"),
    ("cache token float", lambda w: w.pool.cache_full_blocks(w.blocks[3:4], H[3:4], token_ids=[1.5] * 4),
     TypeErr, "token_ids"),
    ("cache token_ids str", lambda w: w.pool.cache_full_blocks(w.blocks[3:4], H[3:4], token_ids="abcd"),
     TypeErr, "token_ids"),
    *[(f"cache lora_id={v!r}", lambda w, v=v: w.pool.cache_full_blocks(w.blocks[3:4], H[3:4], lora_id=v),
       err, "lora_id") for v, err in [(-1, ValueErr), (1.5, TypeErr), (True, TypeErr), ("l", TypeErr)]],
    *[(f"cache priority={v!r}",
       lambda w, v=v: w.pool.cache_full_blocks(w.blocks[3:4], H[3:4], retention_priority=v), err,
       "retention_priority")
      for v, err in [(1.5, TypeErr), (-1, ValueErr), (3, ValueErr), (True, TypeErr), (None, TypeErr),
                     (NAN, TypeErr)]],
    ("cache null block", lambda w: w.pool.cache_full_blocks([w.pool.null_block], H[3:4]), InvalidBlockError,
     "null block"),
    ("cache free block", lambda w: w.pool.cache_full_blocks([w.blocks[2]], H[5:6]), InvalidBlockError,
     "free"),
    ("cache foreign block", lambda w: w.pool.cache_full_blocks([w.other.blocks[1]], H[5:6]),
     ForeignBlockError, "another"),
    ("cache other hash", lambda w: w.pool.cache_full_blocks([w.blocks[3], w.blocks[0]], [H[6], H[7]]),
     InvalidBlockError, "another hash"),
    # -- lookups, priorities ------------------------------------------------------------
    *[(f"get_cached_block({v!r})", lambda w, v=v: w.pool.get_cached_block(v), TypeErr, "block_hash")
      for v in ["abc", None, 5, (1,)]],
    *[(f"set_retention_priority({v!r})", lambda w, v=v: w.pool.set_retention_priority(w.blocks[:1], v),
       err, "priority") for v, err in [(1.5, TypeErr), (3, ValueErr), (-1, ValueErr), (True, TypeErr),
                                       (None, TypeErr), ("1", TypeErr)]],
    ("set_retention_priority(None, 1)", lambda w: w.pool.set_retention_priority(None, 1), TypeErr, "blocks"),
    ("set_retention_priority foreign", lambda w: w.pool.set_retention_priority(w.other.blocks[1:2], 1),
     ForeignBlockError, "another"),
    # -- Request() ----------------------------------------------------------------------
    *[(f"Request id={v!r}", lambda w, v=v: Request(v, [1]), err, "request_id")
      for v, err in [("", ValueErr), (None, TypeErr), (5, TypeErr)]],
    *[(f"Request prompt={v!r}", lambda w, v=v: Request("r", v), err, "prompt_token_ids")
      for v, err in [([], ValueErr), (None, TypeErr), ("abc", TypeErr), ([1.5], TypeErr), ([-1], TypeErr),
                     ([2**63], TypeErr), ([1, None], TypeErr), (5, TypeErr)]],
    *[(f"Request lora_id={v!r}", lambda w, v=v: Request("r", [1], lora_id=v), err, "lora_id")
      for v, err in [(-1, ValueErr), (1.5, TypeErr), (True, TypeErr), ("a", TypeErr)]],
    *[(f"Request cache_salt={v!r}", lambda w, v=v: Request("r", [1], cache_salt=v), err, "cache_salt")
      for v, err in [(5, TypeErr), ("", ValueErr), (b"s", TypeErr)]],
    *[(f"Request mm_hashes={v!r}", lambda w, v=v: Request("r", [1] * 8, mm_hashes=v), err, "mm_hashes")
      for v, err in [("abc", TypeErr), ([("img", 1.5, 4)], TypeErr), ([("img", -1, 4)], ValueErr),
                     ([("img", 0, 0)], ValueErr), ([(None, 0, 4)], TypeErr), ([("img", 0)], TypeErr),
                     ([["img", 0, 4]], TypeErr), (None, TypeErr), ([("", 0, 4)], TypeErr),
                     ([("img", True, 4)], TypeErr)]],
    *[(f"Request retention_priority={v!r}", lambda w, v=v: Request("r", [1], retention_priority=v), err,
       "retention_priority") for v, err in [(1.5, TypeErr), (3, ValueErr), (True, TypeErr), (-1, ValueErr)]],
    *[(f"Request retention_num_tokens={v!r}", lambda w, v=v: Request("r", [1], retention_num_tokens=v),
       err, "retention_num_tokens") for v, err in [(-1, ValueErr), (1.5, TypeErr)]],
    *[(f"Request block_size={v!r}", lambda w, v=v: Request("r", [1], block_size=v), err, "block_size")
      for v, err in [(0, ValueErr), (1.5, TypeErr)]],
    *[(f"Request prefix_cache_hit_limit={v!r}", lambda w, v=v: Request("r", [1], prefix_cache_hit_limit=v),
       err, "prefix_cache_hit_limit") for v, err in [(-1, ValueErr), (1.5, TypeErr), (True, TypeErr)]],
    ("Request validate='yes'", lambda w: Request("r", [1], validate="yes"), TypeErr, "validate"),
    # -- Request methods ----------------------------------------------------------------
    *[(f"append_output_token_ids({v!r})", lambda w, v=v: w.reqs[A].append_output_token_ids(v), TypeErr,
       "token") for v in [None, "ab", [1, None], -1, 1.5, True, [2**64], b"ab"]],
    ("append validate='x'", lambda w: w.reqs[A].append_output_token_ids([1], validate="x"), TypeErr,
     "validate"),
    ("bind_block_size(8) on a bound request", lambda w: w.reqs[A].bind_block_size(8), RequestStateError,
     "block_size=4"),
    ("bind_block_size(0)", lambda w: w.reqs[A].bind_block_size(0), ValueErr, "block_size"),
    ("get_max_cache_hit_length(-1)", lambda w: w.reqs[A].get_max_cache_hit_length(-1), ValueErr, "bound"),
    ("get_max_cache_hit_length(1.5)", lambda w: w.reqs[A].get_max_cache_hit_length(1.5), TypeErr, "bound"),
    # -- KVCacheManager() ---------------------------------------------------------------
    ("manager num_blocks=1", lambda w: KVCacheManager(1, BS), ValueErr, "num_blocks"),
    *[(f"manager block_size={v!r}", lambda w, v=v: KVCacheManager(8, v), err, "block_size")
      for v, err in [(0, ValueErr), (1.5, TypeErr), (True, TypeErr), (None, TypeErr)]],
    ("manager enable_caching='y'", lambda w: KVCacheManager(8, 4, enable_caching="y"), TypeErr,
     "enable_caching"),
    ("manager free_order='x'", lambda w: KVCacheManager(8, 4, free_order="x"), ValueErr, "free_order"),
    ("manager events=1", lambda w: KVCacheManager(8, 4, enable_kv_cache_events=1), TypeErr,
     "enable_kv_cache_events"),
    # -- KVCacheManager calls -----------------------------------------------------------
    ("get_computed_blocks(None)", lambda w: w.mgr.get_computed_blocks(None), TypeErr, "request"),
    ("get_computed_blocks('a')", lambda w: w.mgr.get_computed_blocks("a"), TypeErr, "request"),
    ("get_computed_blocks bound=-1", lambda w: w.mgr.get_computed_blocks(w.fresh, -1), ValueErr,
     "max_cache_hit_length"),
    ("get_computed_blocks bound=1.5", lambda w: w.mgr.get_computed_blocks(w.fresh, 1.5), TypeErr,
     "max_cache_hit_length"),
    ("get_num_cached_tokens(None)", lambda w: w.mgr.get_num_cached_tokens(None), TypeErr, "request"),
    ("get_num_cached_tokens other block size", lambda w: w.mgr.get_num_cached_tokens(Request("z", [1] * 9,
     block_size=8)), RequestStateError, "block_size=8"),
    ("allocate_slots(None)", lambda w: w.mgr.allocate_slots(None, 1), TypeErr, "request"),
    *[(f"allocate_slots(a, {v!r})", lambda w, v=v: w.mgr.allocate_slots(w.reqs[A], v), err, "num_new_tokens")
      for v, err in [(-1, ValueErr), (1.5, TypeErr), (True, TypeErr), (None, TypeErr), (NAN, TypeErr)]],
    ("allocate_slots past the tokens", lambda w: w.mgr.allocate_slots(w.fresh, 11), RequestStateError,
     "num_new_tokens=11"),
    ("allocate_slots hits foreign", lambda w: w.mgr.allocate_slots(w.fresh, 4, [w.other.blocks[1]]),
     ForeignBlockError, "another"),
    ("allocate_slots hits str", lambda w: w.mgr.allocate_slots(w.fresh, 4, "abc"), TypeErr,
     "new_computed_blocks"),
    ("allocate_slots hits [None]", lambda w: w.mgr.allocate_slots(w.fresh, 4, [None]), TypeErr,
     "new_computed_blocks"),
    ("allocate_slots hits [null]", lambda w: w.mgr.allocate_slots(w.fresh, 4, [w.mgr.block_pool.null_block]),
     RequestStateError, "new_computed_blocks"),
    ("allocate_slots hits not first", lambda w: w.mgr.allocate_slots(w.reqs[A], 0,
     w.mgr.block_pool.blocks[1:2]), RequestStateError, "first allocation"),
    ("allocate_slots hits of another prompt", lambda w: w.mgr.allocate_slots(w.fresh, 4,
     [w.mgr.block_pool.get_cached_block(w.reqs[A].block_hashes[0])]), RequestStateError,
     "new_computed_blocks"),
    ("free(None)", lambda w: w.mgr.free(None), TypeErr, "request"),
    ("free('a')", lambda w: w.mgr.free("a"), TypeErr, "request"),
    ("fork(None, 'x')", lambda w: w.mgr.fork(None, "x"), TypeErr, "parent"),
    ("fork(a, '')", lambda w: w.mgr.fork(w.reqs[A], ""), ValueErr, "child_request_id"),
    ("fork(a, 5)", lambda w: w.mgr.fork(w.reqs[A], 5), TypeErr, "child_request_id"),
    ("fork(a, 'b') id in use", lambda w: w.mgr.fork(w.reqs[A], "b"), RequestStateError, "already in use"),
    ("fork(unknown)", lambda w: w.mgr.fork(w.fresh, "z"), UnknownRequestError, "holds no blocks"),
    ("get_block_ids(None)", lambda w: w.mgr.get_block_ids(None), TypeErr, "request_id"),
    ("get_block_ids(5)", lambda w: w.mgr.get_block_ids(5), TypeErr, "request_id"),
    ("get_block_ids('nope')", lambda w: w.mgr.get_block_ids("nope"), UnknownRequestError, "nope"),
    ("get_block_table('nope')", lambda w: w.mgr.get_block_table("nope"), UnknownRequestError, "nope"),
    ("slot_mapping(a, -1)", lambda w: w.mgr.slot_mapping(w.reqs[A], -1), ValueErr, "num_tokens"),
    ("slot_mapping(a, 1.5)", lambda w: w.mgr.slot_mapping(w.reqs[A], 1.5), TypeErr, "num_tokens"),
    ("slot_mapping(a, 100)", lambda w: w.mgr.slot_mapping(w.reqs[A], 100), ValueErr, "outside"),
    ("slot_mapping(None, 1)", lambda w: w.mgr.slot_mapping(None, 1), TypeErr, "request"),
    ("slot_mapping(unknown, 1)", lambda w: w.mgr.slot_mapping(w.fresh, 1), UnknownRequestError, "new"),
    # -- BlockTable and the slot formula ------------------------------------------------
    *[(f"BlockTable({v!r})", lambda w, v=v: BlockTable(v), err, "block_size")
      for v, err in [(0, ValueErr), (1.5, TypeErr), (None, TypeErr)]],
    ("BlockTable ids [-1]", lambda w: BlockTable(4, [-1]), ValueErr, "block id"),
    ("BlockTable ids [1.5]", lambda w: BlockTable(4, [1.5]), TypeErr, "block id"),
    ("BlockTable ids None", lambda w: BlockTable(4, None), TypeErr, "block_ids"),
    ("table.append(-1)", lambda w: w.table.append(-1), ValueErr, "block id"),
    ("table.append(True)", lambda w: w.table.append(True), TypeErr, "block id"),
    ("table.extend([1, 'x'])", lambda w: w.table.extend([1, "x"]), TypeErr, "block id"),
    ("table.extend(None)", lambda w: w.table.extend(None), TypeErr, "block_ids"),
    ("table.replace(5, 1)", lambda w: w.table.replace(5, 1), ValueErr, "logical_index"),
    ("table.replace(-1, 1)", lambda w: w.table.replace(-1, 1), ValueErr, "logical_index"),
    ("table.replace(0, -1)", lambda w: w.table.replace(0, -1), ValueErr, "block id"),
    ("table.translate(-1)", lambda w: w.table.translate(-1), ValueErr, "position"),
    ("table.translate(100)", lambda w: w.table.translate(100), ValueErr, "position"),
    ("table.translate(null)", lambda w: w.table.translate(1), NullBlockAccessError, "null block"),
    ("table.slot(True)", lambda w: w.table.slot(True), TypeErr, "position"),
    ("table.slot_mapping(0, -1)", lambda w: w.table.slot_mapping(4, -1), ValueErr, "num_tokens"),
    ("table.slot_mapping(1.5, 2)", lambda w: w.table.slot_mapping(1.5, 2), TypeErr, "start"),
    ("slot_mapping past the row", lambda w: ba.slot_mapping([1, 2], [0, 9], 4), ValueErr, "positions[1]=9"),
    ("slot_mapping null", lambda w: ba.slot_mapping([0, 2], [1], 4), NullBlockAccessError, "null block"),
    ("slot_mapping position 1.5", lambda w: ba.slot_mapping([1], [1.5], 4), TypeErr, "positions[0]"),
    ("slot_mapping block_size 0", lambda w: ba.slot_mapping([1], [0], 0), ValueErr, "block_size"),
    ("slot_mapping positions None", lambda w: ba.slot_mapping([1], None, 4), TypeErr, "positions"),
    ("slot_mapping table None", lambda w: ba.slot_mapping(None, [0], 4), TypeErr, "block_table"),
    ("slot_mapping rows no seq", lambda w: ba.slot_mapping([[1], [2]], [0], 4), ValueErr, "seq_indices"),
    ("slot_mapping seq short", lambda w: ba.slot_mapping([[1], [2]], [0, 1], 4, seq_indices=[0]), ValueErr,
     "seq_indices"),
    ("pad_block_tables pad_id=-1", lambda w: ba.pad_block_tables([[1]], pad_id=-1), ValueErr, "pad_id"),
    ("pad_block_tables width=0", lambda w: ba.pad_block_tables([[1]], width=0), ValueErr, "width"),
    ("pad_block_tables width=1.5", lambda w: ba.pad_block_tables([[1]], width=1.5), TypeErr, "width"),
    ("pad_block_tables None", lambda w: ba.pad_block_tables(None), TypeErr, "tables"),
    ("pad_block_tables [[1, 'x']]", lambda w: ba.pad_block_tables([[1, "x"]]), TypeErr, "tables[0][1]"),
    # -- hashing --------------------------------------------------------------------------
    ("hash parent str", lambda w: ba.hash_block_tokens("p", [1]), TypeErr, "parent_hash"),
    ("hash parent 31 bytes", lambda w: ba.hash_block_tokens(b"p" * 31, [1]), TypeErr, "parent_hash"),
    ("hash tokens None", lambda w: ba.hash_block_tokens(None, None), TypeErr, "token_ids"),
    ("hash tokens float", lambda w: ba.hash_block_tokens(None, [1.5]), TypeErr, "token_ids"),
    ("hash extra_keys list", lambda w: ba.hash_block_tokens(None, [1], [1]), TypeErr, "extra_keys"),
    ("hash extra_keys float", lambda w: ba.hash_block_tokens(None, [1], (1.5,)), TypeErr, "extra_keys"),
    ("hash block_size mismatch", lambda w: ba.hash_block_tokens(None, [1], block_size=4), ValueErr,
     "block_size=4"),
    ("hash_request_tokens block_size 0", lambda w: ba.hash_request_tokens(0, [1]), ValueErr, "block_size"),
    ("hash_request_tokens block_size 1.5", lambda w: ba.hash_request_tokens(1.5, [1]), TypeErr, "block_size"),
    ("hash_request_tokens mm", lambda w: ba.hash_request_tokens(4, [1] * 4, mm_hashes=[("i", -1, 1)]),
     ValueErr, "mm_hashes"),
    ("hash_request_tokens lora", lambda w: ba.hash_request_tokens(4, [1] * 4, lora_id=1.5), TypeErr, "lora_id"),
    ("hash_request_tokens tokens None", lambda w: ba.hash_request_tokens(4, None), TypeErr, "token_ids"),
    ("block_extra_keys index -1", lambda w: ba.block_extra_keys(-1, 4), ValueErr, "block_index"),
    ("block_extra_keys block_size 0", lambda w: ba.block_extra_keys(0, 0), ValueErr, "block_size"),
    ("block_extra_keys salt 5", lambda w: ba.block_extra_keys(0, 4, cache_salt=5), TypeErr, "cache_salt"),
    # -- version defaults ---------------------------------------------------------------
    ("defaults_for('0.20')", lambda w: ba.defaults_for("0.20"), ValueErr, "version"),
    ("defaults_for('abc')", lambda w: ba.defaults_for("abc"), ValueErr, "version"),
    ("defaults_for(0.34)", lambda w: ba.defaults_for(0.34), TypeErr, "version"),
]  # fmt: skip


def test_the_table_is_large() -> None:
    assert len(CASES) >= 100
    assert len({name for name, *_ in CASES}) == len(CASES)


@pytest.mark.parametrize(("name", "call", "error", "needle"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_named_error_and_changes_nothing(
    name: str, call: Callable[[World], object], error: type[BaseException], needle: str
) -> None:
    w = world()
    before = snapshot(w)
    with pytest.raises(error) as info:
        call(w)
    assert isinstance(info.value, ba.BlockAllocatorError), (
        f"{name}: raw {type(info.value).__name__}"
    )
    assert needle in str(info.value), f"{name}: {info.value}"
    assert snapshot(w) == before, name


def test_out_of_blocks_error_carries_the_counts() -> None:
    pool = BlockPool(4)
    with pytest.raises(OutOfBlocksError) as info:
        pool.get_new_blocks(4)
    assert (info.value.requested, info.value.available) == (4, 3)
    assert isinstance(info.value, RuntimeError)


def test_float_retention_priority_cannot_leak_blocks() -> None:
    # Once accepted, a float level made the later free raise after dropping the reference.
    mgr = KVCacheManager(8, BS)
    with pytest.raises(TypeErr):
        Request("r", list(range(9)), retention_priority=1.5)
    req = Request("r", list(range(9)), retention_priority=1)
    mgr.allocate_slots(req, 9)
    mgr.free(req)
    pool = mgr.block_pool
    assert pool.get_num_free_blocks() == pool.num_blocks - 1


def test_malformed_mm_hashes_are_refused_before_any_block_is_taken() -> None:
    with pytest.raises(TypeErr, match=r"mm_hashes\[0\]"):
        Request("r", list(range(12)), mm_hashes=[("img", "0", 4)])
    mgr = KVCacheManager(8, BS)
    req = Request("r", list(range(12)), mm_hashes=[("img", 2, 4)])
    assert mgr.allocate_slots(req, 12) is not None
    assert mgr.block_pool.get_free_blocks()[0].block_id == 4
