"""Triton kernels on CUDA at realistic shapes: bf16, fp8 KV, CUDA graphs, >2^31-element caches.

Skipped without CUDA. Tolerances for 16-bit dtypes are relative to torch SDPA's own error on
the same inputs against an fp32 reference (issue 5: "no worse than torch SDPA").
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

pytestmark = [
    pytest.mark.triton,
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

from paged_attn_kernels import _triton_decode as _dec  # noqa: E402
from paged_attn_kernels._triton_decode import paged_attention_triton, plan_splits  # noqa: E402
from paged_attn_kernels._triton_write import write_kv_cache_triton  # noqa: E402

try:  # tests/ may or may not be a package
    from .test_triton_cases import make_case, reference_attention, rel_err
except ImportError:
    from test_triton_cases import make_case, reference_attention, rel_err  # type: ignore[no-redef]

F8 = torch.float8_e4m3fn


def _gqa_case(dtype: torch.dtype, max_blocks: int, **kwargs: Any):
    """The benchmark's key layout on CUDA: 32 query heads over 8 KV heads, head_dim 128,
    block_size 16; ``kwargs`` (num_seqs / seq_lens) go to ``make_case``."""
    return make_case(
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        block_size=16,
        max_blocks=max_blocks,
        dtype=dtype,
        device="cuda",
        **kwargs,
    )


def _sdpa_err(case, ref: torch.Tensor) -> float:
    """Error of torch SDPA on the same (gathered, dense) inputs: the dtype's floor."""
    q = case.query
    b, h, d = q.shape
    kv = case.key_cache.shape[2]
    outs = []
    for i in range(b):
        n = int(case.seq_lens[i])
        ids = case.block_table[i, : math.ceil(n / case.key_cache.shape[1])].long()
        k = case.key_cache[ids].reshape(-1, kv, d)[:n].transpose(0, 1)[None]
        v = case.value_cache[ids].reshape(-1, kv, d)[:n].transpose(0, 1)[None]
        qi = q[i].view(1, kv, h // kv, d)
        o = torch.nn.functional.scaled_dot_product_attention(qi, k, v, scale=case.scale)
        outs.append(o.reshape(h, d))
    return rel_err(torch.stack(outs), ref)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize(
    ("heads", "kv_heads", "head_dim", "bs"),
    [
        (32, 8, 128, 16),
        (32, 32, 128, 16),
        (16, 2, 64, 8),
        (8, 8, 256, 32),
        (12, 4, 96, 128),
        (32, 1, 128, 16),
        (8, 2, 192, 64),
    ],
)
@pytest.mark.parametrize("num_splits", [None, 1])
def test_decode_realistic(dtype, heads, kv_heads, head_dim, bs, num_splits):
    case = make_case(
        num_seqs=6,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        block_size=bs,
        max_blocks=4096 // bs,
        dtype=dtype,
        device="cuda",
        seed=heads * head_dim + bs,
        seq_lens=[1, 17, 1000, 4096, 2500, 333],
    )
    out = case.poisoned_out()
    case.decode(out, num_splits=num_splits)
    ref = case.reference()
    err = rel_err(out, ref)
    if dtype == torch.float32:
        assert err < 1e-5
    else:
        assert err <= 1.25 * _sdpa_err(case, ref) + 1e-4


def test_long_context_split_agrees_with_unsplit():
    case = _gqa_case(torch.float32, 2048, seq_lens=[32768])
    auto = case.decode()
    assert plan_splits(case.query, case.key_cache, case.block_table).num_splits > 8
    one = case.decode(num_splits=1)
    ref = case.reference()
    assert rel_err(auto, ref) < 1e-5
    assert rel_err(one, ref) < 1e-5


VARIANTS = {
    "fused-merge": {},  # the default: up to 8 splits merged by the last one to finish
    "fused-merge-peek": {"peek": 1},  # every split peeks at the counter first
    "fused-merge-publish-first": {"peek": 0},  # every split publishes before it checks
    "reduce-kernel": {"fused_merge": 0},
    "fused-merge-16": {"fused_merge": 16},
    "prefetch-4-stages": {"prefetch": 1, "num_stages": 4},
}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_launch_variants_match_reference_and_leave_counters_zero(variant, dtype):
    case = _gqa_case(dtype, 2048, seq_lens=[32768, 1, 0, 700, 4096, 5000, 31000, 64])
    ref = case.reference()
    _dec._LAUNCH_OVERRIDES.update(VARIANTS[variant])
    try:
        outs = [case.decode(case.poisoned_out(), num_splits=ns) for ns in (None, 4, 4)]
    finally:
        _dec._LAUNCH_OVERRIDES.clear()
    for out in outs:
        assert rel_err(out, ref) <= 1.25 * _sdpa_err(case, ref) + 1e-4
    assert torch.equal(outs[1], outs[2])  # counters were reset: the second launch is the same
    for buf in _dec._COUNTERS.values():
        assert int(buf.abs().sum()) == 0


@pytest.mark.parametrize("order", [None, "grid", "lpt"])
def test_trace_hook_and_plan_launch(order):
    # a 1-D grid over the host's work list (register-capped on CUDA) gives the 3-D grid's
    # output bit for bit; the trace hook (docs/GPU_NOTES.md section 14) stamps every program
    lens = [32768, 1, 0, 700, 4096, 5000, 31000, 64]
    case = _gqa_case(torch.bfloat16, 2048, seq_lens=lens)
    want = case.decode(case.poisoned_out())
    shape_plan = plan_splits(case.query, case.key_cache, case.block_table)
    plan = None
    if order is None:
        programs = len(lens) * 8 * shape_plan.num_splits
    else:
        plan = _dec.plan_decode(
            case.query, case.key_cache, case.block_table, lens, chunk=shape_plan.chunk, order=order
        )
        programs = plan.num_items
    trace = torch.zeros((programs, 4), dtype=torch.int64, device="cuda")
    _dec._LAUNCH_TENSORS["trace"] = trace
    try:
        got = paged_attention_triton(*case.inputs, case.scale, case.poisoned_out(), plan=plan)
    finally:
        _dec._LAUNCH_TENSORS.clear()
    assert torch.equal(got, want)
    tr = trace.cpu()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    assert int(tr[:, 0].min()) >= 0 and int(tr[:, 0].max()) < sms
    assert bool((tr[:, 1] > 0).all()) and bool((tr[:, 2] >= tr[:, 1]).all())
    assert bool((tr[:, 3] >= tr[:, 1]).all()) and bool((tr[:, 3] <= tr[:, 2]).all())  # loop end
    assert int(tr[:, 2].max() - tr[:, 1].min()) < 10**9  # one launch, well under a second


def test_plan_graph_replay_follows_new_plans():
    # pinned chunk + capacity: the captured launch replays later steps' plans
    lens = [4096, 100, 2000, 7]
    case = _gqa_case(torch.bfloat16, 256, seq_lens=lens)
    q, kc, vc, bt, sl = case.inputs
    plan = _dec.plan_decode(q, kc, bt, lens, chunk=512, capacity=160)  # 112 items
    out = case.poisoned_out()
    paged_attention_triton(q, kc, vc, bt, sl, case.scale, out, plan=plan)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        paged_attention_triton(q, kc, vc, bt, sl, case.scale, out, plan=plan)
    new_lens = [3000, 64, 2000, 1]  # within each row's written slots (the rest is NaN)
    sl.copy_(torch.tensor(new_lens, dtype=torch.int32, device="cuda"))
    plan.work_list.copy_(_dec.plan_decode(q, kc, bt, new_lens, chunk=512, capacity=160).work_list)
    _replay_and_check(graph, out, case, plan=plan)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"pdl": 1, "fused_merge": 0}, {"fused_merge": 0}],
    ids=["default-fused-merge", "pdl-reduce", "reduce-kernel"],
)
def test_cuda_graph_replay_follows_new_lengths_and_tables(overrides):
    # opt-in launch variants (docs/GPU_NOTES.md) must stay correct and capturable too
    _dec._LAUNCH_OVERRIDES.update(overrides)
    try:
        _graph_replay_case()
    finally:
        _dec._LAUNCH_OVERRIDES.clear()


def _graph_replay_case() -> None:
    case = _gqa_case(torch.bfloat16, 256, seq_lens=[4096, 100, 2000, 7])
    q, kc, vc, bt, sl = case.inputs
    out = case.poisoned_out()
    paged_attention_triton(q, kc, vc, bt, sl, case.scale, out)  # compile outside capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        paged_attention_triton(q, kc, vc, bt, sl, case.scale, out)
    # next step: rows swapped, lengths changed (within each row's owned blocks), new query;
    # the same buffers and no re-capture
    order = [1, 0, 3, 2]
    written = sl.cpu()[order]  # slots past these hold NaN
    new_lens = torch.minimum(torch.tensor([4000, 4096, 1, 2048]), written).to(torch.int32)
    bt.copy_(bt[order].clone())
    sl.copy_(new_lens.to("cuda"))
    _replay_and_check(graph, out, case)


def _replay_and_check(graph: Any, out: torch.Tensor, case: Any, **launch: Any) -> None:
    """New query, replay, and compare with an eager launch (bit for bit) and the reference."""
    q, kc, vc, bt, sl = case.inputs
    q.copy_(torch.randn_like(q))
    out.fill_(float("nan"))
    graph.replay()
    torch.cuda.synchronize()
    ref = reference_attention(q, kc, vc, bt, sl, case.scale)
    assert torch.isfinite(out).all()
    assert torch.equal(out, paged_attention_triton(q, kc, vc, bt, sl, case.scale, **launch))
    assert rel_err(out, ref) < 1e-2


def test_fp8_write_matches_torch_rounding_and_skips_padding():
    g = torch.Generator(device="cuda").manual_seed(0)
    num_blocks, bs, kv, d = 64, 16, 8, 128
    kc = torch.zeros((num_blocks, bs, kv, d), dtype=F8, device="cuda")
    vc = torch.zeros_like(kc)
    key = torch.randn((700, kv, d), generator=g, device="cuda", dtype=torch.bfloat16) * 40
    value = torch.randn((700, kv, d), generator=g, device="cuda", dtype=torch.bfloat16)
    key[0, 0, 0] = float("nan")
    key[1, 0, 0] = 1e5  # saturates to 448 * scale
    slots = torch.randperm(num_blocks * bs, generator=g, device="cuda")[:700]
    slots[5::7] = -1
    k_scale, v_scale = 0.37, torch.tensor([0.011], device="cuda")
    write_kv_cache_triton(key, value, kc, vc, slots, k_scale=k_scale, v_scale=v_scale)
    keep = slots >= 0
    exp_k = (key[keep].float() / k_scale).clamp(-448, 448).to(F8)
    exp_v = (value[keep].float() / v_scale).clamp(-448, 448).to(F8)
    got_k = kc.view(-1, kv, d)[slots[keep]]
    got_v = vc.view(-1, kv, d)[slots[keep]]
    assert torch.equal(got_k.view(torch.uint8), exp_k.view(torch.uint8))
    assert torch.equal(got_v.view(torch.uint8), exp_v.view(torch.uint8))
    untouched = torch.ones(num_blocks * bs, dtype=torch.bool, device="cuda")
    untouched[slots[keep]] = False
    assert (kc.view(-1, kv, d)[untouched].view(torch.uint8) == 0).all()


def _to_fp8(case, scales_as_tensors: bool):
    """``case`` with its caches written to e4m3 by the Triton write kernel, and the scales."""
    kc, vc = case.key_cache, case.value_cache
    flat = (-1, kc.shape[2], kc.shape[3])
    amax_k = float(torch.nan_to_num(kc.float(), nan=0, posinf=0, neginf=0).abs().amax())
    amax_v = float(torch.nan_to_num(vc.float(), nan=0, posinf=0, neginf=0).abs().amax())
    ks, vs = amax_k / 448, amax_v / 448
    k8, v8 = (
        torch.empty(kc.shape, dtype=F8, device="cuda"),
        torch.empty(kc.shape, dtype=F8, device="cuda"),
    )
    slots = torch.arange(kc.shape[0] * kc.shape[1], device="cuda")
    sk = torch.tensor([ks], device="cuda") if scales_as_tensors else ks
    sv = torch.tensor([vs], device="cuda") if scales_as_tensors else vs
    write_kv_cache_triton(kc.view(flat), vc.view(flat), k8, v8, slots, k_scale=sk, v_scale=sv)
    return replace(case, key_cache=k8, value_cache=v8), (ks, vs), (sk, sv)


def _dequantised_reference(fp8, ks: float, vs: float) -> torch.Tensor:
    """float64 attention over an fp8 case's cache times its scales."""
    q, k8, v8, bt, sl = fp8.inputs
    return reference_attention(q, k8.float(), v8.float(), bt, sl, fp8.scale, ks, vs)


@pytest.mark.parametrize("scales_as_tensors", [False, True])
@pytest.mark.parametrize("num_splits", [None, 1])
def test_fp8_decode_accuracy(scales_as_tensors, num_splits):
    case = _gqa_case(torch.bfloat16, 256, num_seqs=8)
    fp8, (ks, vs), (sk, sv) = _to_fp8(case, scales_as_tensors)
    out = case.poisoned_out()
    fp8.decode(out, k_scale=sk, v_scale=sv, num_splits=num_splits)
    # exact against the dequantised cache...
    assert rel_err(out, _dequantised_reference(fp8, ks, vs)) < 1.25 * 4e-3  # bf16 rounding
    # ...and the quantisation cost against the original bf16 cache is e4m3's 3 mantissa bits
    assert rel_err(out, case.reference()) < 0.08


def test_fp8_planned_launch():
    # the host plan (docs/GPU_NOTES.md section 15: one-long fp8 91 -> 67 us) on an fp8 cache
    lens = [2048, 1, 0, 300, 1500, 64, 2000, 7]
    case = _gqa_case(torch.bfloat16, 2048, seq_lens=lens)
    fp8, (ks, vs), (sk, sv) = _to_fp8(case, True)
    plan = _dec.plan_decode(fp8.query, fp8.key_cache, fp8.block_table, lens)
    assert plan.num_items < len(lens) * 8 * plan.num_splits  # a work list, not the grid
    got = fp8.decode(case.poisoned_out(), k_scale=sk, v_scale=sv, plan=plan)
    grid = fp8.decode(case.poisoned_out(), k_scale=sk, v_scale=sv)
    assert rel_err(got, _dequantised_reference(fp8, ks, vs)) < 1.25 * 4e-3
    assert rel_err(got, grid.cpu().double()) < 1.25 * 4e-3
    assert torch.equal(got[2].cpu(), torch.zeros_like(got[2].cpu()))  # the empty sequence


def test_cache_larger_than_2_pow_31_elements():
    # FlexAttention's paged path fails to compile here (int32 indices); ours uses int64 offsets
    bs, kv, d = 16, 8, 128
    num_blocks = 2**31 // (bs * kv * d) + 64
    free = torch.cuda.mem_get_info()[0]
    if free < 2 * num_blocks * bs * kv * d * 2 + (2 << 30):
        pytest.skip("not enough GPU memory for two 4.3 GB caches")
    kc = torch.empty((num_blocks, bs, kv, d), dtype=torch.bfloat16, device="cuda")
    vc = torch.empty_like(kc)
    kc[-70:].normal_()
    vc[-70:].normal_()
    ids = torch.arange(num_blocks - 64, num_blocks, device="cuda", dtype=torch.int32)
    bt = ids.flip(0)[None].contiguous()
    sl = torch.tensor([64 * bs], dtype=torch.int32, device="cuda")
    q = torch.randn((1, 32, d), dtype=torch.bfloat16, device="cuda")
    out = paged_attention_triton(q, kc, vc, bt, sl, d**-0.5)
    k = kc[bt[0].long()].reshape(-1, kv, d).float().repeat_interleave(4, 1)
    v = vc[bt[0].long()].reshape(-1, kv, d).float().repeat_interleave(4, 1)
    p = torch.softmax(torch.einsum("hd,nhd->hn", q[0].float(), k) * d**-0.5, -1)
    ref = torch.einsum("hn,nhd->hd", p, v)
    assert rel_err(out[0], ref.double().cpu()) < 1e-2
