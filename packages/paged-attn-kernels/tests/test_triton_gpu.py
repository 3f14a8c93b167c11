"""Triton kernels on CUDA at realistic shapes: bf16, fp8 KV, CUDA graphs, >2^31-element caches.

Skipped without CUDA. Tolerances for 16-bit dtypes are relative to torch SDPA's own error on
the same inputs against an fp32 reference ("no worse than torch SDPA").
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

torch = pytest.importorskip(
    "torch", reason="needs torch; for a CPU-only build see the README (Installing)"
)
pytest.importorskip("triton", reason="needs triton (it comes with torch on Linux)")

pytestmark = [
    pytest.mark.triton,
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

from paged_attn_kernels import _triton_decode as _dec  # noqa: E402
from paged_attn_kernels import paged_attention, plan_decode  # noqa: E402
from paged_attn_kernels._triton_decode import paged_attention_triton  # noqa: E402
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
    grid = _dec.grid_from_shapes(1, 8, 32768, 64, case.query.device)
    assert grid.num_splits > 8
    one = case.decode(num_splits=1)
    ref = case.reference()
    assert rel_err(auto, ref) < 1e-5
    assert rel_err(one, ref) < 1e-5


VARIANTS = {
    "fused-merge": {},  # the default: up to 32 splits merged by the last one to finish
    "fused-merge-peek": {"peek_min_chunk": 0},  # every split peeks at the counter first
    "fused-merge-publish-first": {"peek_min_chunk": 1 << 30},  # every split publishes first
    "reduce-kernel": {"fused_merge_max_splits": 0},
    "fused-merge-16": {"fused_merge_max_splits": 16},
    "4-stages": {"num_stages": 4},
    "merge-8-per-step": {"merge_step": 8},  # the partials read 8 splits at a time
}


def _decode_with(case, num_splits, k_scale=None, v_scale=None, **changes):
    """The shape launch with its policy changed, as the benchmark's variants do."""
    q, kc, vc, bt, sl = case.inputs
    cfg = replace(_dec.launch_config(q.dtype, kc.dtype, 128, 4, False), **changes)
    grid = _dec.grid_from_shapes(q.shape[0], 8, bt.shape[1] * 16, cfg.tile_n, q.device, num_splits)
    meta = _dec.constexprs(cfg, grid, tuple(kc.shape[1:]), q.shape[1], q.device)
    parts = _dec.partial_buffers(q.shape[0], q.shape[1], 128, grid.num_splits, q.device)
    sems = _dec.counters(q.device, q.shape[0] * 8)
    out = case.poisoned_out()
    return _dec.launch(
        meta, grid, q, kc, vc, bt, sl, out, parts, sems, case.scale, k_scale, v_scale
    )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_launch_variants_match_reference_and_leave_counters_zero(variant, dtype):
    case = _gqa_case(dtype, 2048, seq_lens=[32768, 1, 0, 700, 4096, 5000, 31000, 64])
    ref = case.reference()
    outs = [_decode_with(case, ns, **VARIANTS[variant]) for ns in (None, 4, 4)]
    for out in outs:
        assert rel_err(out, ref) <= 1.25 * _sdpa_err(case, ref) + 1e-4
    assert torch.equal(outs[1], outs[2])  # counters were reset: the second launch is the same
    for buf in _dec._COUNTERS.values():
        assert int(buf.abs().sum()) == 0


@pytest.mark.parametrize("order", ["grid", "lpt", "seq"])
def test_plan_run_equals_the_3d_grid(order):
    # a 1-D grid over the host's work list (register-capped on CUDA) gives the 3-D grid's
    # output bit for bit, layer after layer
    lens = [32768, 1, 0, 700, 4096, 5000, 31000, 64]
    case = _gqa_case(torch.bfloat16, 2048, seq_lens=lens)
    chunk = _dec.grid_from_shapes(8, 8, 32768, 64, case.query.device).chunk
    want = case.decode(case.poisoned_out())
    plan = plan_decode(case.query, case.key_cache, case.block_table, lens, chunk=chunk, order=order)
    assert plan.grid.work_list is not None
    for _ in range(2):  # the second run takes the plan's cached launcher
        got = plan.run(case.query, case.key_cache, case.value_cache, out=case.poisoned_out())
        assert torch.equal(got, want)
    # another "layer" whose caches are views of one [num_blocks, 2, ...] tensor (another block
    # stride, so another specialisation): still the same answer
    kv = torch.stack([case.key_cache, case.value_cache], dim=1)
    for _ in range(2):
        got = plan.run(case.query, kv[:, 0], kv[:, 1], out=case.poisoned_out())
        assert torch.equal(got, want)
    assert len(plan._runners) >= 3  # two specialisations and the constant tail


def test_plan_graph_replay_follows_updates():
    # pinned chunk + capacity: the captured run replays later steps after plan.update()
    lens = [4096, 100, 2000, 7]
    case = _gqa_case(torch.bfloat16, 256, seq_lens=lens)
    q, kc, vc, bt, sl = case.inputs
    plan = plan_decode(q, kc, bt, lens, chunk=512, capacity=160)  # 112 items
    out = case.poisoned_out()
    plan.run(q, kc, vc, out=out)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        plan.run(q, kc, vc, out=out)
    new_lens = [3000, 64, 2000, 1]  # within each row's written slots (the rest is NaN)
    sl.copy_(torch.tensor(new_lens, dtype=torch.int32, device="cuda"))
    plan.update(new_lens)
    _replay_and_check(graph, out, case)


def test_default_one_shot_call_is_captured_and_replayed():
    # paged_attention(...) with its defaults: no host sync, so it captures; the replay follows
    # new lengths, tables and queries written into the same buffers
    case = _gqa_case(torch.bfloat16, 256, seq_lens=[4096, 100, 2000, 7])
    q, kc, vc, bt, sl = case.inputs
    out = case.poisoned_out()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up (compile) outside the capture, as torch advises
        paged_attention(q, kc, vc, bt, sl, case.scale, out=out)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        paged_attention(q, kc, vc, bt, sl, case.scale, out=out)
    order = [1, 0, 3, 2]
    written = sl.cpu()[order]  # slots past these hold NaN
    new_lens = torch.minimum(torch.tensor([4000, 4096, 1, 2048]), written).to(torch.int32)
    bt.copy_(bt[order].clone())
    sl.copy_(new_lens.to("cuda"))
    _replay_and_check(graph, out, case)


@pytest.mark.parametrize(
    "changes", [{}, {"fused_merge_max_splits": 0}], ids=["fused-merge", "reduce-kernel"]
)
def test_cuda_graph_replay_follows_new_lengths_and_tables(changes):
    case = _gqa_case(torch.bfloat16, 256, seq_lens=[4096, 100, 2000, 7])
    q, kc, vc, bt, sl = case.inputs
    out = _decode_with(case, 16, **changes)  # compile outside capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = _decode_with(case, 16, **changes)
    order = [1, 0, 3, 2]
    written = sl.cpu()[order]
    new_lens = torch.minimum(torch.tensor([4000, 4096, 1, 2048]), written).to(torch.int32)
    bt.copy_(bt[order].clone())
    sl.copy_(new_lens.to("cuda"))
    q.copy_(torch.randn_like(q))
    graph.replay()
    torch.cuda.synchronize()
    ref = reference_attention(q, kc, vc, bt, sl, case.scale)
    assert torch.isfinite(captured).all() and out.shape == captured.shape
    assert rel_err(captured, ref) < 1e-2


def _replay_and_check(graph: Any, out: torch.Tensor, case: Any) -> None:
    """New query, replay, and compare with an eager launch (bit for bit) and the reference."""
    q, kc, vc, bt, sl = case.inputs
    q.copy_(torch.randn_like(q))
    out.fill_(float("nan"))
    graph.replay()
    torch.cuda.synchronize()
    ref = reference_attention(q, kc, vc, bt, sl, case.scale)
    assert torch.isfinite(out).all()
    eager = paged_attention_triton(q, kc, vc, bt, sl, case.scale)
    assert rel_err(out, eager.cpu().double()) < 1e-2
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
    # the host plan on an fp8 cache (docs/DESIGN.md: one-long fp8 91 -> 67 us)
    lens = [2048, 1, 0, 300, 1500, 64, 2000, 7]
    case = _gqa_case(torch.bfloat16, 2048, seq_lens=lens)
    fp8, (ks, vs), (sk, sv) = _to_fp8(case, True)
    plan = plan_decode(fp8.query, fp8.key_cache, fp8.block_table, lens)
    assert plan.grid.work_list is not None  # a work list, not the grid
    got = plan.run(fp8.query, fp8.key_cache, fp8.value_cache, out=case.poisoned_out(),
                   k_scale=sk, v_scale=sv)  # fmt: skip
    grid = fp8.decode(case.poisoned_out(), k_scale=sk, v_scale=sv)
    assert rel_err(got, _dequantised_reference(fp8, ks, vs)) < 1.25 * 4e-3
    assert rel_err(got, grid.cpu().double()) < 1.25 * 4e-3
    assert torch.equal(got[2].cpu(), torch.zeros_like(got[2].cpu()))  # the empty sequence


@pytest.mark.parametrize("tile_n, num_warps, num_stages", [(64, 2, 5), (64, 4, 7), (128, 4, 5)])
def test_fp8_early_value_conversion_gives_the_same_bits(tile_n, num_warps, num_stages):
    # EARLY_CVT_V converts V with the instruction Triton's own cast emits, before the
    # operand load instead of inside it: same fp16 operands, same dots, same output bits
    lens = [8192, 1, 0, 700, 4096, 33, 8000, 64]
    case = _gqa_case(torch.bfloat16, 512, seq_lens=lens)
    fp8, (ks, vs), _ = _to_fp8(case, False)
    shape = {"tile_n": tile_n, "num_warps": num_warps, "num_stages": num_stages}
    plain = _decode_with(fp8, None, ks, vs, **shape)
    early = _decode_with(fp8, None, ks, vs, early_value_cvt=True, **shape)
    assert torch.equal(plain, early)
    assert rel_err(early, _dequantised_reference(fp8, ks, vs)) < 1.25 * 4e-3


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
