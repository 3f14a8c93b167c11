"""Package hygiene: the public API is exported and importing it pulls in nothing heavy."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from importlib.metadata import requires
from pathlib import Path

import pytest

pytestmark = pytest.mark.extended

PACKAGE = Path(__file__).resolve().parents[1]


def test_no_runtime_dependencies() -> None:
    runtime = [r for r in requires("block-allocator") or [] if "extra ==" not in r]
    assert runtime == []


def test_import_is_pure_standard_library() -> None:
    code = (
        "import sys, block_allocator; "
        "heavy = {'numpy', 'torch', 'numba', 'triton', 'matplotlib'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_all_names_resolve_and_cover_the_contract() -> None:
    import block_allocator as ba

    for name in ba.__all__:
        assert hasattr(ba, name), name
    contract = {
        "KVCacheBlock", "FreeKVCacheBlockQueue", "BlockHash", "hash_block_tokens",
        "hash_request_tokens", "BlockPool", "Request", "KVCacheManager", "BlockAllocatorError",
        "OutOfBlocksError", "InvalidBlockError", "DoubleFreeError", "KVCacheEvent", "BlockTable",
        "slot_mapping", "pad_block_tables", "cdiv", "blocks_needed", "dtype_size",
        "kv_heads_per_rank", "FullAttentionSpec", "SlidingWindowSpec", "MLAAttentionSpec",
        "MambaSpec", "KVCacheSpec",
    }  # fmt: skip
    assert contract <= set(ba.__all__)
    assert (resources.files("block_allocator") / "py.typed").is_file()  # the installed copy
