"""Forked sequences: block-allocator's copy-on-write plus ``copy_blocks`` keep both
branches' attention equal to dense attention over their own histories."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from block_allocator import KVCacheManager, Request
from paged_attn_kernels import (
    KernelInputError,
    copy_blocks,
    dense_attention_reference,
    paged_attention,
    write_kv_cache,
)

BS, KV_HEADS, HEADS, D = 4, 2, 4, 16


def _store(mgr: KVCacheManager, req: Request, n: int, caches: Any, rng: Any) -> np.ndarray:
    """Write this step's n tokens through the manager's slot_mapping (after allocate)."""
    slots = np.array(mgr.slot_mapping(req, n), dtype=np.int64)
    kv = rng.standard_normal((n, KV_HEADS, D))
    write_kv_cache(kv, -kv, *caches, slots, backend="numpy")
    req.num_computed_tokens += n
    return kv


@pytest.mark.parametrize("do_copy", [True, False])
def test_fork_copy_then_decode(do_copy: bool) -> None:
    rng = np.random.default_rng(0)
    mgr = KVCacheManager(16, BS, enable_caching=False)
    caches = (np.full((16, BS, KV_HEADS, D), np.nan), np.full((16, BS, KV_HEADS, D), np.nan))
    parent = Request("parent", list(range(10)))
    assert mgr.allocate_slots(parent, 10) is not None
    prompt = _store(mgr, parent, 10, caches, rng)  # blocks of 4: the third holds 2 tokens
    child = mgr.fork(parent, "child")
    child.append_output_token_ids([101])
    parent.append_output_token_ids([202])
    # the step: allocate (queues the copy of the shared tail), copy, then write
    assert mgr.allocate_slots(child, 1) is not None
    assert mgr.allocate_slots(parent, 1) is not None
    pairs = mgr.take_blocks_to_copy()
    assert len(pairs) == 1  # only the shared partial block is copied, once
    if do_copy:
        copy_blocks(*caches, pairs)
    child_tok = _store(mgr, child, 1, caches, rng)
    parent_tok = _store(mgr, parent, 1, caches, rng)
    tables = [mgr.get_block_ids("parent"), mgr.get_block_ids("child")]
    assert tables[0][:2] == tables[1][:2] and tables[0][2] != tables[1][2]
    block_table = np.array([t + [0] * (4 - len(t)) for t in tables], np.int32)
    seq_lens = np.array([11, 11], np.int32)
    query = rng.standard_normal((2, HEADS, D))
    out = paged_attention(query, *caches, block_table, seq_lens, backend="numpy")
    key = np.stack([np.concatenate([prompt, parent_tok]), np.concatenate([prompt, child_tok])])
    ref = dense_attention_reference(query, key, -key)
    if do_copy:
        np.testing.assert_allclose(out, ref, atol=1e-12, rtol=0)
    else:  # without the copy the child's positions 8-9 are NaN, not the prompt
        assert np.isnan(out[1]).all()
        np.testing.assert_allclose(out[0], ref[0], atol=1e-12, rtol=0)


def test_copy_blocks_checks_and_torch() -> None:
    kc = np.arange(4 * 2 * 1 * 2, dtype=np.float32).reshape(4, 2, 1, 2)
    vc = -kc
    copy_blocks(kc, vc, np.array([[1, 3], [3, 0]]))  # sources read before writes
    assert (kc[3] == kc[1]).all() and (kc[0] == np.arange(12, 16).reshape(2, 1, 2)).all()
    with pytest.raises(KernelInputError, match=r"block_mapping\[0, 1\]=4 is outside \[0, 3\]"):
        copy_blocks(kc, vc, [(0, 4)])
    with pytest.raises(KernelInputError, match="destination block more than once"):
        copy_blocks(kc, vc, [(0, 1), (2, 1)])
    torch = pytest.importorskip(
        "torch", reason="needs torch; for a CPU-only build see the README (Installing)"
    )
    tk = torch.zeros((3, 2, 1, 2), dtype=torch.bfloat16)
    tk[0] = 1.5
    tv = tk.clone()
    copy_blocks(tk, tv, torch.tensor([[0, 2]]))
    assert torch.equal(tk[2], tk[0]) and torch.equal(tv[2], tv[0])


def test_copy_blocks_takes_the_triton_kernel_unless_a_block_is_both_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Host pairs over CUDA caches (here: the interpreter) go to the one-launch kernel; a
    block that is both a source and a destination keeps the read-all-first indexing path."""
    torch = pytest.importorskip("torch", reason="needs torch")
    pytest.importorskip("triton", reason="needs triton")
    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("needs CUDA or TRITON_INTERPRET=1")
    from paged_attn_kernels.cache_ops import triton_kernels

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    calls: list[int] = []
    real = triton_kernels.copy_blocks_triton

    def spy(kc: object, vc: object, mapping: object) -> None:
        calls.append(1)
        real(kc, vc, mapping)  # type: ignore[arg-type]

    monkeypatch.setattr(triton_kernels, "copy_blocks_triton", spy)
    gen = torch.Generator().manual_seed(0)
    kc = torch.randn((6, 4, 2, 8), generator=gen).to(dev, torch.bfloat16)
    vc = torch.randn((6, 4, 2, 8), generator=gen).to(dev, torch.bfloat16)
    k0, v0 = kc.clone(), vc.clone()
    copy_blocks(kc, vc, [(0, 3), (1, 5)])
    assert calls == [1]
    assert torch.equal(kc[3], k0[0]) and torch.equal(vc[5], v0[1])
    assert torch.equal(kc[[0, 1, 2, 4]], k0[[0, 1, 2, 4]])  # nothing else moved
    k1 = kc.clone()
    copy_blocks(kc, vc, [(1, 3), (3, 0)])  # 3 is both: sources are read before writes
    assert calls == [1]
    assert torch.equal(kc[3], k1[1]) and torch.equal(kc[0], k1[3])
