"""Parent-chained block hashes (lab-01 step 4; vLLM kv_cache_utils.hash_block_tokens)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
from _allocator_impl import IMPL_NAME, impl

pytestmark = pytest.mark.lab01

TOKENS = list(range(16))


def test_same_input_same_hash() -> None:
    assert impl.hash_block_tokens(None, TOKENS) == impl.hash_block_tokens(None, list(TOKENS))


def test_parent_chaining_same_tokens_different_parent() -> None:
    p1 = impl.hash_block_tokens(None, [1] * 16)
    p2 = impl.hash_block_tokens(None, [2] * 16)
    assert impl.hash_block_tokens(p1, TOKENS) != impl.hash_block_tokens(p2, TOKENS)
    assert impl.hash_block_tokens(p1, TOKENS) != impl.hash_block_tokens(None, TOKENS)


def test_token_order_matters() -> None:
    assert impl.hash_block_tokens(None, [1, 2]) != impl.hash_block_tokens(None, [2, 1])


@pytest.mark.extended
def test_hash_is_32_bytes() -> None:
    h = impl.hash_block_tokens(None, TOKENS)
    assert isinstance(h, bytes) and len(h) == 32


@pytest.mark.extended
def test_deterministic_across_processes() -> None:
    code = (
        f"import {IMPL_NAME} as m; "
        "p = m.hash_block_tokens(None, list(range(16)), (('lora', 3), ('cache_salt', 's'))); "
        "print(m.hash_block_tokens(p, [5] * 16).hex())"
    )
    outs = set()
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outs.add(run.stdout.strip())
    p = impl.hash_block_tokens(None, TOKENS, (("lora", 3), ("cache_salt", "s")))
    outs.add(impl.hash_block_tokens(p, [5] * 16).hex())
    assert len(outs) == 1


@pytest.mark.extended
def test_known_answer_pins_the_encoding() -> None:
    # Changing the encoding silently would invalidate every cross-node cache key.
    if IMPL_NAME != "block_allocator":
        pytest.skip("the byte encoding is block_allocator's own; other hashes may differ")
    h = impl.hash_block_tokens(None, list(range(16)))
    assert h == impl.hash_block_tokens(impl.NONE_HASH, list(range(16)))
    none_hash = hashlib.sha256(b"block_allocator/none-hash/v1").digest()
    body = (16).to_bytes(4, "little") + b"".join(t.to_bytes(8, "little") for t in range(16))
    assert h == hashlib.sha256(none_hash + body).digest()
    assert h.hex() == "cd91d336906dd8b3de47490b8e5aae943409b83b1e253bbc69d35d2cc072c642"


@pytest.mark.extended
def test_extra_keys_isolate_tenants() -> None:
    plain = impl.hash_block_tokens(None, TOKENS)
    lora1 = impl.hash_block_tokens(None, TOKENS, (("lora", 1),))
    lora2 = impl.hash_block_tokens(None, TOKENS, (("lora", 2),))
    salted = impl.hash_block_tokens(None, TOKENS, (("cache_salt", "tenant-a"),))
    assert len({plain, lora1, lora2, salted}) == 4
    assert impl.hash_block_tokens(None, TOKENS, ()) == plain  # empty extra keys = none


@pytest.mark.extended
def test_block_extra_keys_salt_first_block_only_and_mm_overlap() -> None:
    mm = [("img0", 20, 10)]  # placeholder tokens 20..29 span blocks 1 (16..31) only
    assert impl.block_extra_keys(0, 16, cache_salt="s") == (("cache_salt", "s"),)
    assert impl.block_extra_keys(1, 16, cache_salt="s") is None
    assert impl.block_extra_keys(0, 16, mm_hashes=mm) is None
    assert impl.block_extra_keys(1, 16, mm_hashes=mm, lora_id=4) == (
        ("lora", 4),
        ("mm", "img0", 4),
    )


@pytest.mark.extended
def test_salt_reaches_every_block_through_the_chain() -> None:
    tokens = list(range(48))
    a = impl.hash_request_tokens(16, tokens, cache_salt="a")
    b = impl.hash_request_tokens(16, tokens, cache_salt="b")
    plain = impl.hash_request_tokens(16, tokens)
    assert len(a) == 3
    assert all(x != y and x != z for x, y, z in zip(a, b, plain, strict=True))


@pytest.mark.extended
def test_hash_request_tokens_only_full_blocks() -> None:
    hashes = impl.hash_request_tokens(16, list(range(40)))
    assert len(hashes) == 2
    assert hashes[1] == impl.hash_block_tokens(hashes[0], list(range(16, 32)))


@pytest.mark.extended
def test_bad_hash_inputs() -> None:
    with pytest.raises(ValueError, match="block_size=16"):
        impl.hash_block_tokens(None, list(range(15)), block_size=16)
    with pytest.raises(TypeError, match="token_ids"):
        impl.hash_block_tokens(None, ["a"] * 16)
    with pytest.raises(TypeError, match="parent_hash"):
        impl.hash_block_tokens(b"short", TOKENS)
    with pytest.raises(TypeError, match="extra_keys"):
        impl.hash_block_tokens(None, TOKENS, ({"not": "canonical"},))
    with pytest.raises(ValueError, match="block_size"):
        impl.hash_request_tokens(0, TOKENS)
