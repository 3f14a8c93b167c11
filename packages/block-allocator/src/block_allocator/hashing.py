"""Parent-chained content hashes of full blocks: the keys of the prefix cache.

Mirrors ``hash_block_tokens`` / ``generate_block_hash_extra_keys`` in
``vllm/v1/core/kv_cache_utils.py`` and the sha256 option of ``vllm/utils/hashing.py``.
Block ``i``'s hash covers block ``i-1``'s hash, so equal hashes mean equal *prefixes*, not
just equal blocks (a miss at block ``i`` implies a miss at every later block).

Encoding: ``sha256(parent ‖ uint32 token count ‖ int64-LE tokens ‖ extra keys)``, where the
extra keys use a small tagged, length-prefixed encoding of None/bool/int/str/bytes/tuple.
vLLM pickles a tuple instead; ours is byte-stable across processes, Python versions and
machines (no ``PYTHONHASHSEED``, no pickle protocol drift), so two servers agree on keys.

Collision stance: like vLLM (and unlike nano-vllm's token comparison), a hit is trusted
without comparing tokens. With 256-bit digests the chance that any two of 2**40 distinct
blocks collide is below 2**-175; an adversary would have to break sha256's second-preimage
resistance. Tenant isolation against *timing* side channels is the job of the cache salt
(vLLM RFC #16016), which enters the first block and therefore, by chaining, every block.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from hashlib import sha256

from ._checks import check_extra_keys, check_hash, check_int, type_name
from .block import BlockHash
from .errors import ArgumentTypeError, ArgumentValueError

__all__ = [
    "NONE_HASH",
    "BlockHash",
    "block_extra_keys",
    "hash_block_tokens",
    "hash_request_tokens",
]

NONE_HASH: BlockHash = sha256(b"block_allocator/none-hash/v1").digest()
"""The parent of the first block: a fixed constant, so hashes agree across processes."""

_PACKERS: dict[int, struct.Struct] = {}  # token count -> "<I{n}q" packer (block_size: one entry)


def _packer(num_tokens: int) -> struct.Struct:
    packer = _PACKERS.get(num_tokens)
    if packer is None:
        if len(_PACKERS) > 64:
            _PACKERS.clear()
        packer = _PACKERS[num_tokens] = struct.Struct(f"<I{num_tokens}q")
    return packer


def _encode(obj: object, out: bytearray) -> None:
    if obj is None:
        out += b"N"
    elif obj is True or obj is False:
        out += b"T" if obj else b"F"
    elif isinstance(obj, int):
        raw = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
        out += b"i" + len(raw).to_bytes(4, "little") + raw
    elif isinstance(obj, str):
        raw = obj.encode("utf-8")
        out += b"s" + len(raw).to_bytes(4, "little") + raw
    elif isinstance(obj, bytes):
        out += b"b" + len(obj).to_bytes(4, "little") + obj
    elif isinstance(obj, tuple):
        out += b"t" + len(obj).to_bytes(4, "little")
        for item in obj:
            _encode(item, out)
    else:
        raise ArgumentTypeError(
            f"extra_keys may hold only None, bool, int, str, bytes and tuples, "
            f"got {type(obj).__name__}"
        )


def hash_block_tokens(
    parent_hash: BlockHash | None,
    token_ids: Sequence[int],
    extra_keys: tuple[object, ...] | None = None,
    *,
    block_size: int | None = None,
) -> BlockHash:
    """Hash one full block of ``token_ids`` chained onto ``parent_hash`` (None = first block).

    ``extra_keys`` separate equal tokens that must not share KV (LoRA adapter, cache salt,
    multimodal inputs; see :func:`block_extra_keys`). Pass ``block_size`` to have the
    token count checked: only full blocks are ever hashed.
    """
    if parent_hash is None:
        parent_hash = NONE_HASH
    elif type(parent_hash) is not bytes or len(parent_hash) != 32:
        check_hash("parent_hash", parent_hash, optional=True)
    if not isinstance(token_ids, (list, tuple, range)):
        raise ArgumentTypeError(
            f"token_ids must be a list or tuple of ints, got {type_name(token_ids)}"
        )
    if extra_keys is not None and not isinstance(extra_keys, tuple):
        raise ArgumentTypeError(f"extra_keys must be a tuple or None, got {type_name(extra_keys)}")
    if block_size is not None and len(token_ids) != block_size:
        raise ArgumentValueError(
            f"a full block holds block_size={block_size} tokens, got {len(token_ids)} token_ids"
        )
    num_tokens = len(token_ids)
    try:
        payload = parent_hash + _packer(num_tokens).pack(num_tokens, *token_ids)
    except struct.error as exc:
        raise ArgumentTypeError(f"token_ids must be ints in the int64 range: {exc}") from None
    if extra_keys:
        buf = bytearray(payload)
        _encode(tuple(extra_keys), buf)
        return sha256(buf).digest()
    return sha256(payload).digest()


def _hash_plain_blocks(
    parent_hash: BlockHash | None,
    token_ids: Sequence[int],
    block_size: int,
    out: list[BlockHash],
) -> None:
    """Append the chained hashes of every full block of ``token_ids`` that has no extra keys.

    Byte-identical to calling :func:`hash_block_tokens` per block, but packs all the tokens
    with one ``struct`` call and hashes slices of that buffer (about 30% less per block).
    """
    end = len(token_ids) // block_size * block_size
    if not end:
        return
    try:
        raw = struct.pack(f"<{end}q", *token_ids[:end])
    except struct.error as exc:
        raise ArgumentTypeError(f"token_ids must be ints in the int64 range: {exc}") from None
    header = block_size.to_bytes(4, "little")  # the "<I" token count of hash_block_tokens
    step = 8 * block_size
    parent = NONE_HASH if parent_hash is None else parent_hash
    push = out.append
    for lo in range(0, 8 * end, step):
        parent = sha256(parent + header + raw[lo : lo + step]).digest()
        push(parent)


def block_extra_keys(
    block_index: int,
    block_size: int,
    *,
    lora_id: int | None = None,
    cache_salt: str | None = None,
    mm_hashes: Sequence[tuple[str, int, int]] = (),
) -> tuple[object, ...] | None:
    """Extra hash keys of block ``block_index`` of a request, or None when there are none.

    ``mm_hashes`` lists ``(identifier, offset, length)`` of each multimodal item's
    placeholder tokens; a block gets ``("mm", identifier, offset - block_start)`` for every
    item it overlaps. The cache salt goes into block 0 only (chaining carries it onward),
    as in vLLM's ``generate_block_hash_extra_keys``.
    """
    check_int("block_index", block_index, 0)
    check_int("block_size", block_size, 1)
    mm_hashes = check_extra_keys(lora_id, cache_salt, mm_hashes)
    return _block_extra_keys(block_index, block_size, lora_id, cache_salt, mm_hashes)


def _block_extra_keys(
    block_index: int,
    block_size: int,
    lora_id: int | None,
    cache_salt: str | None,
    mm_hashes: Sequence[tuple[str, int, int]],
) -> tuple[object, ...] | None:
    # block_extra_keys without the argument checks, for callers that checked them once.
    keys: list[object] = []
    if lora_id is not None:
        keys.append(("lora", lora_id))
    start = block_index * block_size
    end = start + block_size
    for identifier, offset, length in mm_hashes:
        if offset < end and offset + length > start:
            keys.append(("mm", identifier, offset - start))
    if cache_salt is not None and block_index == 0:
        keys.append(("cache_salt", cache_salt))
    return tuple(keys) if keys else None


def hash_request_tokens(
    block_size: int,
    token_ids: Sequence[int],
    *,
    parent_hash: BlockHash | None = None,
    lora_id: int | None = None,
    cache_salt: str | None = None,
    mm_hashes: Sequence[tuple[str, int, int]] = (),
) -> list[BlockHash]:
    """Chained hashes of every *full* block of ``token_ids`` (a trailing partial block has none)."""
    check_int("block_size", block_size, 1)
    check_hash("parent_hash", parent_hash, optional=True)
    mm_hashes = check_extra_keys(lora_id, cache_salt, mm_hashes)
    if not isinstance(token_ids, (list, tuple, range)):
        raise ArgumentTypeError(
            f"token_ids must be a list or tuple of ints, got {type_name(token_ids)}"
        )
    hashes: list[BlockHash] = []
    if lora_id is None and cache_salt is None and not mm_hashes:
        _hash_plain_blocks(parent_hash, token_ids, block_size, hashes)
        return hashes
    for i in range(len(token_ids) // block_size):
        extra = _block_extra_keys(i, block_size, lora_id, cache_salt, mm_hashes)
        parent_hash = hash_block_tokens(
            parent_hash, token_ids[i * block_size : (i + 1) * block_size], extra
        )
        hashes.append(parent_hash)
    return hashes
