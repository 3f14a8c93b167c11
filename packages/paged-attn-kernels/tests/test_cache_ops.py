"""Triton ``gather_kv`` / ``copy_blocks`` kernels against the package's numpy paths, on tiny
shapes (interpreted on CPU, native on CUDA); bad input leaves the caches unchanged."""

from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before the first @triton.jit
pytest.importorskip("triton")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from paged_attn_kernels import KernelInputError, gather_kv  # noqa: E402
from paged_attn_kernels.cache_ops import copy_blocks_kernel, gather_kv_kernel  # noqa: E402

pytestmark = pytest.mark.triton
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _caches(num_blocks=12, block_size=4, kv_heads=2, head_dim=8, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (num_blocks, block_size, kv_heads, head_dim)
    k = torch.randn(shape, generator=g).to(dtype)
    v = torch.randn(shape, generator=g).to(dtype)
    return k.to(DEVICE), v.to(DEVICE)


@settings(max_examples=15, deadline=None)
@given(
    lens=st.lists(st.integers(0, 14), min_size=1, max_size=4),
    block_size=st.sampled_from([1, 4, 5]),
    extra=st.integers(0, 6),
    seed=st.integers(0, 1000),
)
def test_gather_matches_numpy(lens, block_size, extra, seed):
    num_blocks = 16 * 4
    k, v = _caches(num_blocks=num_blocks, block_size=block_size, seed=seed)
    rng = np.random.default_rng(seed)
    max_len = max(lens) + extra
    max_blocks = -(-max(max_len, 1) // block_size) + 1
    table = rng.integers(0, num_blocks, (len(lens), max_blocks)).astype(np.int32)
    table[:, -1] = 10**6  # padding past every sequence: never read
    sl = np.array(lens, np.int32)
    bt, lens_t = torch.from_numpy(table).to(DEVICE), torch.from_numpy(sl).to(DEVICE)
    got = gather_kv_kernel(k, v, bt, lens_t, max_seq_len=max_len, validate=False)
    table[:, -1] = 0
    want = gather_kv(k.cpu().numpy(), v.cpu().numpy(), table, sl, max_seq_len=max_len,
                     backend="numpy")  # fmt: skip
    for g_, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g_.cpu().numpy(), w)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float8_e4m3fn])
def test_gather_dtypes(dtype):
    k, v = _caches(dtype=dtype)
    table = torch.tensor([[3, 1, 7], [2, 5, 0]], dtype=torch.int32, device=DEVICE)
    sl = torch.tensor([10, 6], dtype=torch.int32, device=DEVICE)
    scales = {"k_scale": 0.5, "v_scale": 2.0} if dtype == torch.float8_e4m3fn else {}
    got = gather_kv_kernel(k, v, table, sl, **scales)
    want = gather_kv(k.cpu(), v.cpu(), table.cpu(), sl.cpu(), backend="numpy", **scales)
    for g_, w in zip(got, want, strict=True):
        assert g_.dtype == w.dtype
        assert torch.equal(g_.cpu(), w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float8_e4m3fn])
def test_copy_blocks(dtype):
    k, v = _caches(dtype=dtype, block_size=5)
    want_k, want_v = k.clone(), v.clone()
    pairs = [(1, 4), (3, 9), (1, 11)]
    for s, d in pairs:
        want_k[d], want_v[d] = want_k[s], want_v[s]
    copy_blocks_kernel(k, v, pairs)
    assert torch.equal(k.view(torch.uint8), want_k.view(torch.uint8))
    assert torch.equal(v.view(torch.uint8), want_v.view(torch.uint8))
    copy_blocks_kernel(k, v, torch.zeros((0, 2), dtype=torch.int64, device=DEVICE))  # no-op


@pytest.mark.parametrize(
    ("pairs", "match"),
    [
        ([(1, 4), (2, 4)], "destination block more than once"),
        ([(1, 4), (4, 6)], "block 4 is both a source and a destination"),
        ([(1, 12)], r"block_mapping\[0, 1\]=12 is outside \[0, 11\]"),
        ([(-1, 3)], r"block_mapping\[0, 0\]=-1 is outside"),
        (np.zeros((2, 3), np.int64), r"must be \[n, 2\] integer pairs"),
    ],
)
def test_copy_blocks_rejects(pairs, match):
    k, v = _caches()
    k0, v0 = k.clone(), v.clone()
    with pytest.raises(KernelInputError, match=match):
        copy_blocks_kernel(k, v, pairs)
    assert torch.equal(k, k0) and torch.equal(v, v0)


def test_gather_rejects_bad_lengths():
    k, v = _caches()
    table = torch.zeros((1, 2), dtype=torch.int32, device=DEVICE)
    with pytest.raises(KernelInputError, match=r"seq_lens\[0\]=9 is outside \[0, 8\]"):
        gather_kv_kernel(k, v, table, torch.tensor([9], dtype=torch.int32, device=DEVICE))
    with pytest.raises(KernelInputError, match="must be a torch tensor"):
        gather_kv_kernel(k.cpu().numpy(), v.cpu().numpy(), table, table[0])
