"""Bad input fails before any kernel runs, with the parameter and its allowed range named."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from paged_attn_kernels import (
    KernelDtypeError,
    KernelInputError,
    gather_kv,
    paged_attention,
    write_kv_cache,
)


def _args(**over: Any) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    args: dict[str, Any] = {
        "query": rng.standard_normal((2, 8, 16)).astype(np.float32),
        "key_cache": np.zeros((5, 4, 2, 16), np.float32),
        "value_cache": np.zeros((5, 4, 2, 16), np.float32),
        "block_table": np.array([[1, 2, 0], [3, 0, 0]], np.int32),
        "seq_lens": np.array([7, 3], np.int32),
    }
    args.update(over)
    return args


@pytest.mark.parametrize("backend", ["numpy", "numba", "auto"])
@pytest.mark.parametrize(
    ("over", "error", "match"),
    [
        (
            {"query": np.zeros((2, 5, 16), np.float32)},
            KernelInputError,
            r"num_heads=5 \(query\) must be a positive multiple of num_kv_heads=2",
        ),
        (
            {"query": np.zeros((2, 8, 32), np.float32)},
            KernelInputError,
            "query head_dim=32 must equal key_cache head_dim=16",
        ),
        (
            {"query": np.zeros((3, 8, 16), np.float32)},
            KernelInputError,
            r"block_table rows \(2\) and seq_lens length \(2\) must both equal num_seqs=3",
        ),
        (
            {"query": np.zeros((2, 8, 16), np.float16)},
            KernelDtypeError,
            "query dtype float16 must equal the cache dtype float32",
        ),
        (
            {"value_cache": np.zeros((5, 4, 2, 8), np.float32)},
            KernelInputError,
            "value_cache shape",
        ),
        (
            {"value_cache": np.zeros((5, 4, 2, 16), np.float16)},
            KernelDtypeError,
            "value_cache dtype float16 must equal key_cache dtype float32",
        ),
        (
            {"key_cache": np.zeros((5, 4, 16), np.float32)},
            KernelInputError,
            r"key_cache must be 4-D \[num_blocks, block_size, num_kv_heads, head_dim\]",
        ),
        (
            {"key_cache": np.zeros((5, 4, 2, 16), np.int32)},
            KernelDtypeError,
            "key_cache dtype int32 is not one of",
        ),
        (
            {"block_table": np.array([[1, 5, 0], [3, 0, 0]], np.int32)},
            KernelInputError,
            r"block_table\[0, 1\]=5 is outside \[0, 4\] \(num_blocks=5\)",
        ),
        (
            {"block_table": np.array([[1, 2, 0], [-1, 0, 0]], np.int32)},
            KernelInputError,
            r"block_table\[1, 0\]=-1 is outside \[0, 4\]",
        ),
        (
            {"block_table": np.array([[1.0, 2, 0], [3, 0, 0]])},
            KernelDtypeError,
            "block_table must hold integers",
        ),
        (
            {"seq_lens": np.array([13, 3], np.int32)},
            KernelInputError,
            r"seq_lens\[0\]=13 is outside \[0, 12\] \(block_table width 3 x block_size 4\)",
        ),
        (
            {"seq_lens": np.array([7, -1], np.int32)},
            KernelInputError,
            r"seq_lens\[1\]=-1 is outside \[0, 12\]",
        ),
        ({"seq_lens": [7, 3]}, TypeError, "seq_lens must be a numpy array or a torch tensor"),
    ],
)
def test_attention_rejects(backend: str, over: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        paged_attention(**_args(**over), backend=backend)


def test_attention_rejects_bad_out_scale_backend() -> None:
    with pytest.raises(KernelDtypeError, match="out must have query's shape"):
        paged_attention(**_args(), out=np.zeros((2, 8, 16), np.float64))
    with pytest.raises(KernelInputError, match="scale must be a finite non-zero float"):
        paged_attention(**_args(), scale=float("nan"))
    with pytest.raises(KernelInputError, match="backend='cuda' is not one of"):
        paged_attention(**_args(), backend="cuda")
    with pytest.raises(KernelInputError, match="k_scale applies to fp8 caches only"):
        paged_attention(**_args(), k_scale=0.5)
    with pytest.raises(KernelInputError, match="num_splits must be an int >= 1"):
        paged_attention(**_args(), num_splits=0)
    fp8 = np.zeros((5, 4, 2, 16), np.uint8)
    with pytest.raises(KernelInputError, match="v_scale must be a finite positive float"):
        paged_attention(**_args(key_cache=fp8, value_cache=fp8), v_scale=-1.0)


def test_validate_false_still_checks_host_arrays() -> None:
    # validate=False exists to avoid a device sync; on the host the checks are free and
    # keep numba from reading out of bounds, so they always run
    bad_table = np.array([[1, 2, 0], [9, 0, 0]], np.int32)
    with pytest.raises(KernelInputError, match=r"block_table\[1, 0\]=9"):
        paged_attention(**_args(block_table=bad_table), validate=False, backend="numba")
    with pytest.raises(KernelInputError, match="num_heads=5"):
        paged_attention(**_args(query=np.zeros((2, 5, 16), np.float32)), validate=False)
    np.testing.assert_array_equal(
        paged_attention(**_args(), validate=False, backend="numpy"),
        paged_attention(**_args(), backend="numpy"),
    )


def test_mixed_frameworks_and_devices_rejected() -> None:
    torch = pytest.importorskip(
        "torch", reason="needs torch; for a CPU-only build see the README (Installing)"
    )
    args = _args()
    args["query"] = torch.from_numpy(args["query"])
    with pytest.raises(KernelDtypeError, match="query is a torch array but key_cache is a numpy"):
        paged_attention(**args)
    targs = {k: torch.from_numpy(v) for k, v in _args().items()}
    targs["query"] = targs["query"].to("meta")
    with pytest.raises(KernelDtypeError, match="query is on meta but key_cache is on cpu"):
        paged_attention(**targs)


def test_write_rejects() -> None:
    kc = np.zeros((2, 4, 2, 8), np.float32)
    key = np.zeros((3, 2, 8), np.float32)
    slots = np.array([0, 1, 2])
    with pytest.raises(
        KernelInputError, match=r"key shape \(3, 1, 8\) must be \[num_tokens, 2, 8\]"
    ):
        write_kv_cache(key[:, :1], key[:, :1], kc, kc.copy(), slots)
    with pytest.raises(KernelInputError, match="slot_mapping length 2 must equal num_tokens=3"):
        write_kv_cache(key, key, kc, kc.copy(), slots[:2])
    with pytest.raises(KernelDtypeError, match="key dtype float64 must equal the cache dtype"):
        write_kv_cache(key.astype(np.float64), key, kc, kc.copy(), slots)
    with pytest.raises(KernelDtypeError, match="slot_mapping must hold integers"):
        write_kv_cache(key, key, kc, kc.copy(), slots.astype(np.float32))


def test_gather_rejects() -> None:
    kc = np.zeros((2, 4, 2, 8), np.float32)
    with pytest.raises(KernelInputError, match=r"block_table\[0, 0\]=2 is outside \[0, 1\]"):
        gather_kv(kc, kc, np.array([[2]], np.int32), np.array([3], np.int32))
    with pytest.raises(KernelInputError, match=r"max_seq_len=9 is outside \[0, 4\]"):
        gather_kv(kc, kc, np.array([[1]], np.int32), np.array([3], np.int32), max_seq_len=9)
