"""The one-shot call's memoised fast path gives the checked path's answers and errors.

Runs the Triton backend (interpreted on CPU, ``backend="triton"``; natively on CUDA, where
the fast path serves ``backend="auto"`` too). A repeat of a call signature must skip the
checks (proved by making the checker raise), give the same output as the checked call, and
take per-call values (scale tensors, buffers' contents) from the call, not from the memo;
a signature that fails the checks is never remembered.
"""

from __future__ import annotations

import math
import os

import pytest

torch = pytest.importorskip(
    "torch", reason="needs torch; for a CPU-only build see the README (Installing)"
)
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton", reason="needs triton (it comes with torch on Linux)")

from paged_attn_kernels import (  # noqa: E402
    KernelDtypeError,
    KernelInputError,
    _one_shot,
    paged_attention,
)
from paged_attn_kernels import api as _api  # noqa: E402

try:  # tests/ may or may not be a package
    from .test_triton_cases import make_case, reference_attention, rel_err
except ImportError:
    from test_triton_cases import make_case, reference_attention, rel_err  # type: ignore[no-redef]

pytestmark = pytest.mark.triton
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _case(seed: int = 0, seq_lens: tuple[int, ...] = (5, 40, 17)):
    return make_case(
        num_heads=8, num_kv_heads=2, head_dim=32, block_size=8, max_blocks=6,
        dtype=torch.float32, device=DEVICE, seed=seed, seq_lens=list(seq_lens),
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _empty_memo():
    _one_shot._MEMO.clear()
    yield
    _one_shot._MEMO.clear()


def _no_checks(*args, **kwargs):
    raise AssertionError("the checks ran on a memoised signature")


@pytest.mark.parametrize("num_splits", [None, 1, 3], ids=["auto", "one", "three"])
def test_repeat_skips_the_checks_and_matches_the_checked_call(monkeypatch, num_splits):
    case = _case()
    first = paged_attention(
        *case.inputs, backend="triton", num_splits=num_splits, out=case.poisoned_out()
    )
    assert len(_one_shot._MEMO) == 1
    monkeypatch.setattr(_api, "check_attention", _no_checks)
    out = case.poisoned_out()
    again = paged_attention(*case.inputs, backend="triton", num_splits=num_splits, out=out)
    assert again is out
    torch.testing.assert_close(again, first, rtol=0, atol=0)
    assert rel_err(again, case.reference()) < 2e-6


def test_new_values_under_the_same_signature_are_read_from_the_call(monkeypatch):
    a, b = _case(seed=1), _case(seed=2)  # same shapes, different values and block tables
    paged_attention(*a.inputs, backend="triton")
    monkeypatch.setattr(_api, "check_attention", _no_checks)
    got = paged_attention(*b.inputs, backend="triton")
    assert rel_err(got, b.reference()) < 2e-6


def test_a_changed_signature_is_checked_again():
    case = _case()
    paged_attention(*case.inputs, backend="triton")
    wrong_out = torch.empty(case.query.shape, dtype=torch.float16, device=DEVICE)
    with pytest.raises(KernelDtypeError, match="out must have query's shape"):
        paged_attention(*case.inputs, backend="triton", out=wrong_out)
    with pytest.raises(KernelInputError, match="scale must be a finite non-zero float"):
        paged_attention(*case.inputs, scale=math.nan, backend="triton")
    with pytest.raises(KernelInputError, match="num_splits must be an int"):
        paged_attention(*case.inputs, backend="triton", num_splits=0)
    assert len(_one_shot._MEMO) == 1  # only the valid signature was stored


def test_a_failed_repeat_leaves_out_untouched():
    case = _case()
    paged_attention(*case.inputs, backend="triton")
    short = case.block_table[:2]  # one row fewer than the batch: a new signature, rejected
    out = case.poisoned_out()
    with pytest.raises(KernelInputError, match="block_table rows"):
        paged_attention(case.query, case.key_cache, case.value_cache, short, case.seq_lens,
                        backend="triton", out=out)  # fmt: skip
    assert torch.isnan(out).all()


def test_fp8_float_scales_are_part_of_the_signature(monkeypatch):
    case = _case()
    k8, v8 = case.key_cache.to(torch.float8_e4m3fn), case.value_cache.to(torch.float8_e4m3fn)
    args = (case.query, k8, v8, case.block_table, case.seq_lens)
    for ks, vs in ((0.5, 2.0), (0.25, 4.0), (0.5, 2.0)):
        got = paged_attention(*args, backend="triton", k_scale=ks, v_scale=vs)
        want = reference_attention(*args[:3], case.block_table, case.seq_lens, case.scale, ks, vs)
        assert rel_err(got, want) < 2e-3
    assert len(_one_shot._MEMO) == 2


@pytest.mark.skipif(DEVICE != "cuda", reason="device scale tensors need CUDA")
def test_fp8_device_scale_tensors_are_passed_through(monkeypatch):
    case = _case()
    k8, v8 = case.key_cache.to(torch.float8_e4m3fn), case.value_cache.to(torch.float8_e4m3fn)
    args = (case.query, k8, v8, case.block_table, case.seq_lens)
    ks = torch.tensor([0.5], device=DEVICE)
    vs = torch.tensor([2.0], device=DEVICE)
    paged_attention(*args, backend="triton", k_scale=ks, v_scale=vs)
    monkeypatch.setattr(_api, "check_attention", _no_checks)
    ks.fill_(0.125)
    vs.fill_(3.0)
    got = paged_attention(*args, backend="triton", k_scale=ks, v_scale=vs)
    want = reference_attention(*args[:3], case.block_table, case.seq_lens, case.scale, 0.125, 3.0)
    assert rel_err(got, want) < 2e-3


def test_calls_that_need_a_conversion_are_not_memoised():
    case = _case()
    bt64 = case.block_table.long()
    got = paged_attention(case.query, case.key_cache, case.value_cache, bt64, case.seq_lens,
                          backend="triton")  # fmt: skip
    assert rel_err(got, case.reference()) < 2e-6
    assert not _one_shot._MEMO
    paged_attention(*case.inputs, backend="triton", validate="full")
    assert not _one_shot._MEMO  # the full check reads values: never skipped


@pytest.mark.skipif(
    DEVICE == "cuda", reason="host tensors take the Triton backend only interpreted"
)
def test_host_scale_tensors_are_read_on_every_call():
    case = _case()
    k8, v8 = case.key_cache.to(torch.float8_e4m3fn), case.value_cache.to(torch.float8_e4m3fn)
    args = (case.query.cpu(), k8.cpu(), v8.cpu(), case.block_table.cpu(), case.seq_lens.cpu())
    ks, vs = torch.tensor([0.5]), torch.tensor([2.0])
    paged_attention(*args, backend="triton", k_scale=ks, v_scale=vs)
    ks.fill_(-1.0)  # the checked path reads a host scale's value: it must see this one
    with pytest.raises(KernelInputError, match="k_scale must be a finite positive float"):
        paged_attention(*args, backend="triton", k_scale=ks, v_scale=vs)
