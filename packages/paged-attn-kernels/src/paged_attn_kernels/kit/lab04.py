"""Phase 02 lab-04 (the Triton kernel): a learner's GPU ``paged_attention``, graded.

Same contract as lab-06's ``paged_attention`` (see ``lab06.CONTRACT``), but every argument is
a torch tensor on the device and the result is one too::

    paged_attention(query, key_cache, value_cache, block_table, seq_lens) -> out

``query``/``out`` ``[num_seqs, num_heads, head_dim]`` float32 or float16; caches
``[num_blocks, block_size, num_kv_heads, head_dim]`` of the query's dtype; ``block_table``
``[num_seqs, max_blocks_per_seq]`` and ``seq_lens`` ``[num_seqs]`` int32. Scale
``1 / sqrt(head_dim)``; query head ``h`` reads KV head ``h // (num_heads // num_kv_heads)``.
Tolerances allow Triton's default TF32 ``tl.dot`` and float16 storage; the bugs this kit
looks for (wrong head, unmasked tail, poisoned padding read) miss by orders of magnitude more.

The checks run on ``cuda`` and are skipped without a CUDA device. To run a Triton kernel on
the CPU, set ``TRITON_INTERPRET=1`` before Triton is imported and
``PAGED_ATTN_KIT_DEVICE=cpu`` (slow, but it grades the same code).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from block_allocator.grading import Check, CheckFailed
from paged_attn_kernels.kit.cases import Case, make_case

__all__ = ["CHECKS", "CONTRACT", "DEVICE_ENV"]

DEVICE_ENV = "PAGED_ATTN_KIT_DEVICE"
CONTRACT = """\
  paged_attention(query, key_cache, value_cache, block_table, seq_lens) -> out
torch tensors on the device (PAGED_ATTN_KIT_DEVICE, default cuda); float32 or float16
query/caches, int32 block_table/seq_lens; otherwise as lab06."""

TOL = {"float32": 1e-2, "float16": 2e-2}


def _device() -> str:
    return os.environ.get(DEVICE_ENV, "cuda")


def _skip() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed (pip install 'paged-attn-kernels[triton]')"
    if _device().startswith("cuda") and not torch.cuda.is_available():
        return (
            "needs a CUDA device (or TRITON_INTERPRET=1 with "
            f"{DEVICE_ENV}=cpu to run the Triton interpreter)"
        )
    return None


def _run(m: ModuleType, case: Case, dtype: str, what: str) -> None:
    import torch

    dev = _device()
    tdt = getattr(torch, dtype)

    def t(a: Any, to: Any = tdt) -> Any:
        return torch.as_tensor(np.ascontiguousarray(a)).to(device=dev, dtype=to)

    args = (
        t(case.query),
        t(case.key_cache),
        t(case.value_cache),
        t(case.block_table, torch.int32),
        t(case.seq_lens, torch.int32),
    )
    out = m.paged_attention(*args)
    if dev.startswith("cuda"):
        torch.cuda.synchronize()
    if not isinstance(out, torch.Tensor):
        raise CheckFailed(f"{what}: paged_attention returned {type(out).__name__}, not a tensor")
    got = out.detach().float().cpu().numpy().astype(np.float64)
    if got.shape != case.expected.shape:
        raise CheckFailed(
            f"{what}: out has shape {tuple(got.shape)}, expected {case.expected.shape}"
        )
    if not np.isfinite(got).all():
        seq, head = np.argwhere(~np.isfinite(got))[0][:2]
        raise CheckFailed(
            f"{what}: out[{seq}, {head}] is not finite ({case.describe()}): a poisoned slot "
            "was read (table padding or an unmasked tail)"
        )
    err = np.abs(got - case.expected)
    if err.max() > TOL[dtype]:
        seq, head = np.unravel_index(int(err.argmax()), err.shape)[:2]
        raise CheckFailed(
            f"{what}: max |paged - dense| = {err.max():.2e} > {TOL[dtype]:.0e} at sequence "
            f"{seq}, query head {head} ({case.describe()})"
        )


def _case(seed: int, lens: list[int], **kw: Any) -> Case:
    kw.setdefault("head_dim", 64)
    kw.setdefault("block_size", 16)
    return make_case(seed, lens, **kw)


def _mha(m: ModuleType) -> None:
    _run(m, _case(20, [32, 64, 16], num_kv_heads=4, num_heads=4), "float32", "MHA, whole blocks")


def _ragged(m: ModuleType) -> None:
    _run(m, _case(21, [37, 5, 61, 1], num_kv_heads=2, num_heads=2), "float32", "ragged lengths")


def _gqa(m: ModuleType) -> None:
    _run(m, _case(22, [40, 90], num_kv_heads=2, num_heads=8), "float32", "GQA 8 on 2")


def _poisoned(m: ModuleType) -> None:
    case = _case(23, [37, 5, 61, 1], num_kv_heads=2, num_heads=8, poison=True)
    _run(m, case, "float32", "poisoned unused slots and padding")


def _fp16(m: ModuleType) -> None:
    case = _case(24, [37, 130, 9], num_kv_heads=2, num_heads=8, poison=True)
    _run(m, case, "float16", "float16 cache and query")


def _long(m: ModuleType) -> None:
    case = _case(25, [4000, 33], num_kv_heads=2, num_heads=8, poison=True)
    _run(m, case, "float32", "4,000 tokens over 250 scattered blocks")


def _check(name: str, summary: str, fn: Callable[[ModuleType], None]) -> Check:
    return Check(name, "lab04", summary, ("paged_attention",), fn, skip_reason=_skip)


CHECKS: dict[str, tuple[Check, ...]] = {
    "lab04": (
        _check("gpu_mha", "float32, whole blocks, MHA", _mha),
        _check("gpu_ragged", "ragged lengths: the last block is masked", _ragged),
        _check("gpu_gqa", "GQA: query head h reads KV head h // group", _gqa),
        _check(
            "gpu_poisoned", "NaN in unused slots and table padding never reaches out", _poisoned
        ),
        _check("gpu_fp16", "float16 storage, float32 accumulation", _fp16),
        _check("gpu_long", "a 4,000-token sequence (online softmax over many blocks)", _long),
    )
}
