"""Backend selection, the no-numba fallback, torch tensors and the ``out`` contract."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _cases import allocator_case, dense, rel_err, to_torch

import paged_attn_kernels.api as api
from paged_attn_kernels import (
    available_backends,
    encode_fp8_e4m3,
    gather_kv,
    paged_attention,
    write_kv_cache,
)


def test_import_pulls_in_no_heavy_dependency() -> None:
    import subprocess
    import sys

    code = (
        "import sys, paged_attn_kernels; "
        "print(sorted(m for m in ('numba', 'torch', 'triton') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_available_backends_lists_numpy_first() -> None:
    names = available_backends()
    assert names[0] == "numpy"
    assert set(names) <= {"numpy", "numba", "triton"}


def test_missing_numba_warns_once_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    case = allocator_case(0, [20, 9], 4, 2, 16, 8, "float64")
    args = (case.query, case.key_cache, case.value_cache, case.block_table, case.seq_lens)
    monkeypatch.setattr(api, "_numba_available", lambda: False)
    monkeypatch.setattr(api, "_warned", set())
    with pytest.warns(RuntimeWarning, match="numba is not installed"):
        out = paged_attention(*args, backend="numba")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second call stays quiet
        again = paged_attention(*args, backend="auto")
    np.testing.assert_array_equal(out, again)
    np.testing.assert_allclose(out, dense(case), atol=1e-12, rtol=0)


def test_numba_disabled_jit_runs_the_same_code_in_python() -> None:
    import subprocess
    import sys

    code = (
        "import os, sys, numpy as np; sys.path.insert(0, 'tests');"
        "from _cases import allocator_case, dense;"
        "from paged_attn_kernels import paged_attention;"
        "c = allocator_case(0, [9, 4], 4, 2, 8, 4);"
        "o = paged_attention(c.query, c.key_cache, c.value_cache, c.block_table, c.seq_lens,"
        " backend='numba', num_splits=2);"
        "from paged_attn_kernels import gather_kv;"
        "t = (c.key_cache, c.value_cache, c.block_table, c.seq_lens);"
        "k, v = gather_kv(*t, backend='numba');"
        "k0, v0 = gather_kv(*t, backend='numpy');"
        "assert (k == k0).all() and (v == v0).all();"
        "print(float(abs(o - dense(c)).max()))"
    )
    import os
    from pathlib import Path

    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=root
    )
    assert float(out.stdout) < 1e-12


@pytest.mark.parametrize("storage", ["float32", "bfloat16", "float16"])
def test_torch_cpu_tensors_round_trip(storage: str) -> None:
    torch = pytest.importorskip(
        "torch", reason="needs torch; for a CPU-only build see the README (Installing)"
    )
    case = to_torch(allocator_case(1, [30, 12], 8, 2, 64, 16, storage))
    out = torch.full_like(case.query, float("nan"))
    result = paged_attention(
        case.query, case.key_cache, case.value_cache, case.block_table, case.seq_lens,
        out=out, backend="auto",
    )  # fmt: skip
    assert result is out and result.dtype == case.query.dtype
    assert rel_err(result, dense(case)) < {"float32": 1e-5}.get(storage, 1.6e-2)


def test_auto_picks_numba_for_host_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("numba")
    seen: list[str] = []
    real = api._resolve

    def spy(backend: str, first: api.Arr) -> str:
        chosen = real(backend, first)
        seen.append(chosen)
        return chosen

    monkeypatch.setattr(api, "_resolve", spy)
    case = allocator_case(2, [5], 2, 1, 8, 4, "float32")
    paged_attention(case.query, case.key_cache, case.value_cache, case.block_table, case.seq_lens)
    assert seen == ["numba"]


def test_float64_rejected_on_triton() -> None:
    pytest.importorskip("triton", reason="needs triton (it comes with torch on Linux)")
    torch = pytest.importorskip(
        "torch", reason="needs torch; for a CPU-only build see the README (Installing)"
    )
    if "triton" not in available_backends():
        pytest.skip("no CUDA and no TRITON_INTERPRET")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    case = to_torch(allocator_case(3, [5], 2, 1, 8, 4, "float64"), device)
    with pytest.raises(TypeError, match="float64 inputs need backend='numpy' or 'numba'"):
        paged_attention(case.query, case.key_cache, case.value_cache, case.block_table,
                        case.seq_lens, backend="triton")  # fmt: skip


@pytest.mark.triton
def test_numpy_arrays_through_triton_backend() -> None:
    if "triton" not in available_backends():
        pytest.skip("no CUDA and no TRITON_INTERPRET")
    case = allocator_case(4, [21, 6], 4, 2, 16, 8, "float32")
    out = np.full_like(case.query, np.nan)
    result = paged_attention(
        case.query, case.key_cache, case.value_cache, case.block_table, case.seq_lens,
        backend="triton", out=out,
    )  # fmt: skip
    assert result is out and isinstance(result, np.ndarray)
    assert rel_err(result, dense(case)) < 1e-5
    # writes land in the caller's numpy caches (shared memory or copied back from CUDA)
    kc = np.full((4, 8, 2, 16), np.nan, np.float32)
    vc = kc.copy()
    key = np.random.default_rng(0).standard_normal((3, 2, 16)).astype(np.float32)
    write_kv_cache(key, -key, kc, vc, np.array([0, 9, 31]), backend="triton")
    np.testing.assert_array_equal(kc[1, 1], key[1])
    np.testing.assert_array_equal(vc[3, 7], -key[2])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_ml_dtypes_arrays(backend: str) -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    torch_case = allocator_case(5, [19, 40], 8, 2, 64, 16, "bfloat16")  # torch tensors
    bf16 = ml_dtypes.bfloat16

    def np_bf16(t: object) -> np.ndarray:
        import torch

        assert isinstance(t, torch.Tensor)
        return t.view(torch.int16).numpy().view(np.uint16).view(bf16)

    q, kc, vc = (
        np_bf16(t) for t in (torch_case.query, torch_case.key_cache, torch_case.value_cache)
    )
    bt, sl = torch_case.block_table.numpy(), torch_case.seq_lens.numpy()
    out = paged_attention(q, kc, vc, bt, sl, backend=backend)
    assert out.dtype == bf16
    fields = ("query", "key_cache", "value_cache", "block_table", "seq_lens")
    expected = paged_attention(*(getattr(torch_case, f) for f in fields), backend=backend)
    np.testing.assert_array_equal(out.astype(np.float32), expected.float().numpy())
    k, _ = gather_kv(kc, vc, bt, sl, backend=backend)
    assert k.dtype == bf16
    np.testing.assert_array_equal(k[0, :19].astype(np.float64), torch_case.key[0, :19])
    # fp8 caches as ml_dtypes float8_e4m3fn: the same bytes as uint8 caches
    e4m3 = ml_dtypes.float8_e4m3fn
    cache = np.zeros((2, 4, 1, 8), e4m3)
    key = np.linspace(-3, 3, 16, dtype=np.float32).reshape(2, 1, 8)
    write_kv_cache(key, key, cache, cache.copy(), np.array([1, 6]), backend=backend, k_scale=0.5)
    np.testing.assert_array_equal(cache.view(np.uint8)[0, 1], encode_fp8_e4m3(key[0], 0.5))
    # ml_dtypes' own cast of x / scale gives the same byte
    np.testing.assert_array_equal(cache[0, 1], (key[0] / np.float32(0.5)).astype(e4m3))


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    import paged_attn_kernels

    assert paged_attn_kernels.__version__ == version("paged-attn-kernels")
