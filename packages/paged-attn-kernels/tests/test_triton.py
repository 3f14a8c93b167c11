"""Triton kernels on tiny shapes: under ``TRITON_INTERPRET=1`` on CPU, natively on CUDA.

Every case poisons what the kernel must not read (unowned blocks, slots past ``seq_len``,
block-table padding) and the output buffer, then compares against float64 attention.
fp32/fp16 only here: bf16 ``tl.dot`` is wrong in the interpreter (triton #11584), so bf16
runs in ``test_triton_gpu.py``.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="needs torch; for a CPU-only build see the README (Installing)"
)
if not torch.cuda.is_available():
    # must precede the first @triton.jit (the package conftest does the same)
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton", reason="needs triton (it comes with torch on Linux)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from paged_attn_kernels import KernelInputError, plan_decode  # noqa: E402
from paged_attn_kernels import _triton_decode as _dec  # noqa: E402
from paged_attn_kernels._plan import choose_chunk  # noqa: E402
from paged_attn_kernels._triton_decode import paged_attention_triton  # noqa: E402
from paged_attn_kernels._triton_write import write_kv_cache_triton  # noqa: E402

try:  # tests/ may or may not be a package
    from .test_triton_cases import make_case, reference_attention, rel_err
except ImportError:
    from test_triton_cases import make_case, reference_attention, rel_err  # type: ignore[no-redef]

pytestmark = pytest.mark.triton
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOL = {torch.float32: 2e-6, torch.float16: 2e-3}

# (num_seqs, num_heads, num_kv_heads, head_dim, block_size, max_blocks)
SHAPES = [
    pytest.param(3, 8, 2, 64, 16, 6, id="gqa4-d64-bs16"),
    pytest.param(2, 4, 4, 96, 8, 8, id="mha-d96-bs8"),
    pytest.param(2, 8, 1, 64, 32, 4, id="mqa8-d64-bs32"),
    pytest.param(2, 4, 2, 128, 64, 2, id="gqa2-d128-bs64"),
    pytest.param(1, 2, 1, 256, 128, 2, id="gqa2-d256-bs128"),
    pytest.param(2, 6, 2, 80, 16, 3, id="gqa3-d80-bs16"),
]


def _fp32_case(seq_lens: list[int], **shape: int):
    """fp32, head_dim 64, on DEVICE; ``shape``: heads, KV heads, block size, max blocks (seed)."""
    return make_case(head_dim=64, dtype=torch.float32, device=DEVICE, seq_lens=seq_lens, **shape)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize(("num_seqs", "heads", "kv_heads", "head_dim", "bs", "max_blocks"), SHAPES)
def test_decode_matches_float64(dtype, num_seqs, heads, kv_heads, head_dim, bs, max_blocks):
    case = make_case(
        num_seqs=num_seqs,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        block_size=bs,
        max_blocks=max_blocks,
        dtype=dtype,
        device=DEVICE,
        seed=head_dim + bs,
    )
    out = case.poisoned_out()
    got = case.decode(out)
    assert got is out
    assert rel_err(out, case.reference()) < TOL[dtype]


@pytest.mark.parametrize("num_splits", [2, 3, 7])
def test_split_equals_unsplit(num_splits):
    case = _fp32_case([128, 1, 77], num_heads=8, num_kv_heads=2, block_size=8, max_blocks=16)
    one = case.decode(case.poisoned_out(), num_splits=1)
    many = case.decode(case.poisoned_out(), num_splits=num_splits)
    grid = _dec.grid_from_shapes(3, 2, 128, 64, case.query.device, num_splits)
    assert grid.num_splits > 1
    ref = case.reference()
    assert rel_err(one, ref) < 2e-6
    assert rel_err(many, ref) < 2e-6
    torch.testing.assert_close(many, one, rtol=1e-5, atol=1e-6)


def _decode_with(case, num_splits, **config_changes):
    """The shape launch with its policy changed (a benchmark-style variant of the launch)."""
    q, kc, vc, bt, sl = case.inputs
    cfg = _dec.launch_config(q.dtype, kc.dtype, q.shape[2], q.shape[1] // kc.shape[2], False)
    cfg = replace(cfg, **config_changes)
    grid = _dec.grid_from_shapes(q.shape[0], kc.shape[2], bt.shape[1] * kc.shape[1], cfg.tile_n,
                                 q.device, num_splits)  # fmt: skip
    meta = _dec.constexprs(cfg, grid, tuple(kc.shape[1:]), q.shape[1], q.device)
    parts = _dec.partial_buffers(q.shape[0], q.shape[1], q.shape[2], grid.num_splits, q.device)
    sems = _dec.counters(q.device, q.shape[0] * kc.shape[2])
    out = case.poisoned_out()
    return _dec.launch(meta, grid, q, kc, vc, bt, sl, out, parts, sems, case.scale, None, None)


@pytest.mark.parametrize(
    "changes",
    [{}, {"peek_min_chunk": 0}, {"peek_min_chunk": 1 << 30}, {"fused_merge_max_splits": 0},
     {"fused_merge_max_splits": 16}, {"merge_step": 4}, {"merge_step": 1}],
    ids=["fused-merge", "fused-merge-peek", "fused-merge-publish-first", "reduce-kernel",
         "fused-merge-16", "fused-merge-step-4", "fused-merge-step-1"],
)  # fmt: skip
@pytest.mark.parametrize("num_splits", [None, 3, 12])
def test_launch_variants_match_float64(changes, num_splits):
    # the fused merge counts on counters left at zero by the last launch
    case = _fp32_case([128, 1, 77, 0], num_heads=8, num_kv_heads=2, block_size=8, max_blocks=17)
    first = _decode_with(case, num_splits, **changes)
    second = _decode_with(case, num_splits, **changes)
    ref = case.reference()
    assert rel_err(first, ref) < 2e-6
    assert torch.equal(first, second)
    assert all(int(buf.abs().sum()) == 0 for buf in _dec._COUNTERS.values())


@pytest.mark.parametrize("order", ["grid", "lpt", "seq"])
@pytest.mark.parametrize("chunk", [None, 64, 128, 512])  # tile: 64 tokens
def test_plan_run_matches_3d_grid(order, chunk):
    # the 1-D grid over the host's work list computes the 3-D grid's programs, bit for bit
    lens = [128, 1, 77, 0]
    case = _fp32_case(lens, num_heads=8, num_kv_heads=2, block_size=8, max_blocks=17)
    plan = plan_decode(case.query, case.key_cache, case.block_table, lens, chunk=chunk, order=order)
    want = case.decode(case.poisoned_out(), num_splits=-(-136 // plan.chunk))
    assert plan.work.num_items == 2 * sum(max(1, -(-n // plan.chunk)) for n in lens)
    out = case.poisoned_out()
    got = plan.run(case.query, case.key_cache, case.value_cache, out=out)
    assert got is out
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert rel_err(got, case.reference()) < 2e-6
    again = plan.run(case.query, case.key_cache, case.value_cache)  # a second "layer"
    torch.testing.assert_close(again, want, rtol=0, atol=0)


def test_plan_update_follows_shorter_lengths():
    # a pinned chunk and capacity: padding programs do nothing, and update() writes a later
    # (shorter) batch into the same device buffers
    case = _fp32_case([128, 1, 77], num_heads=8, num_kv_heads=2, block_size=8, max_blocks=17)
    plan = plan_decode(case.query, case.key_cache, case.block_table, [128, 1, 77], chunk=64,
                       capacity=40)  # fmt: skip
    assert plan.grid.work_list is not None and plan.grid.work_list.shape[0] == 40
    work_buf, lens_buf = plan.grid.work_list, plan.seq_lens
    got = plan.run(case.query, case.key_cache, case.value_cache, out=case.poisoned_out())
    assert rel_err(got, case.reference()) < 2e-6
    plan.update([5, 0, 64])
    assert plan.grid.work_list is work_buf and plan.seq_lens is lens_buf  # same memory
    case.seq_lens.copy_(torch.tensor([5, 0, 64], dtype=torch.int32))
    got = plan.run(case.query, case.key_cache, case.value_cache, out=case.poisoned_out())
    assert torch.equal(got[1].cpu(), torch.zeros_like(got[1].cpu()))
    assert rel_err(got, case.reference()) < 2e-6
    before = (plan.work, plan.seq_lens.clone(), plan.grid.work_list.clone())
    with pytest.raises(KernelInputError, match=r"seq_lens\[0\]=137 is outside \[0, 136\]"):
        plan.update([137, 0, 0])
    with pytest.raises(KernelInputError, match="2 entries; the batch has 3"):
        plan.update([1, 1])
    assert plan.work is before[0] and torch.equal(plan.seq_lens, before[1])
    assert torch.equal(plan.grid.work_list, before[2])  # a failed update changes nothing
    unpinned = plan_decode(case.query, case.key_cache, case.block_table, [5, 0, 64])
    with pytest.raises(KernelInputError, match="pinned"):
        unpinned.update([5, 0, 64])


def test_plan_run_checks_metadata_only():
    lens = [40, 9]
    case = _fp32_case(lens, num_heads=4, num_kv_heads=2, block_size=16, max_blocks=4)
    q, kc, vc, bt, _ = case.inputs
    plan = plan_decode(q, kc, bt, lens)
    out = case.poisoned_out()
    bad = [
        ((q[:1], kc, vc), {}, "query is"),
        ((q.half(), kc, vc), {}, "query is"),
        ((q, kc[:, :8], vc), {}, "key_cache is"),
        ((q, kc, vc.half()), {}, "value_cache is"),
        ((q, kc, vc[:, :, :, :32]), {}, "value_cache is"),
        ((q, kc, vc), {"out": out[:1]}, "out must be"),
        ((q, kc, vc), {"out": out.transpose(1, 2).contiguous().transpose(1, 2)}, "out must be"),
    ]
    for args, kwargs, msg in bad:
        with pytest.raises(KernelInputError, match=msg):
            plan.run(*args, **kwargs)
    assert out.isnan().all()  # no failed call wrote anything
    strided = torch.empty((kc.shape[0], 16, 4, 64), device=kc.device)[:, :, :2]
    with pytest.raises(KernelInputError, match="contiguous in its last three dims"):
        plan.run(q, strided, vc)
    assert rel_err(plan.run(q, kc, vc, out=out), case.reference()) < 2e-6


@pytest.mark.parametrize("num_splits", [1, 4])
def test_zero_length_sequence_gives_zeros(num_splits):
    case = _fp32_case([40, 0, 64], num_heads=4, num_kv_heads=2, block_size=16, max_blocks=4)
    out = case.decode(case.poisoned_out(), num_splits=num_splits)
    assert torch.equal(out[1].cpu(), torch.zeros_like(out[1].cpu()))
    assert rel_err(out, case.reference()) < 2e-6


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    group=st.sampled_from([1, 2, 4]),
    kv_heads=st.integers(1, 2),
    block_size=st.sampled_from([8, 16, 32]),
    lens=st.lists(st.integers(0, 96), min_size=1, max_size=3),
    num_splits=st.sampled_from([None, 1, 2, 5]),
    seed=st.integers(0, 2**16),
)
def test_decode_property(group, kv_heads, block_size, lens, num_splits, seed):
    if max(lens) == 0:
        lens = [*lens[:-1], 1]
    max_blocks = -(-max(lens) // block_size) + 1  # one padding column
    case = _fp32_case(
        lens,
        num_heads=group * kv_heads,
        num_kv_heads=kv_heads,
        block_size=block_size,
        max_blocks=max_blocks,
        seed=seed,
    )
    out = case.decode(case.poisoned_out(), num_splits=num_splits)
    ref = case.reference()
    o = out.cpu().double()
    assert torch.isfinite(o).all()
    assert torch.allclose(o, ref, rtol=1e-5, atol=1e-6)


def test_matches_numpy_oracle():
    ref_mod = pytest.importorskip("paged_attn_kernels._reference")
    case = _fp32_case([70, 33], num_heads=8, num_kv_heads=2, block_size=16, max_blocks=5)
    out = case.decode(num_splits=3)
    oracle = ref_mod.paged_attention_reference(
        case.query.cpu().double().numpy(),
        case.key_cache.cpu().numpy(),
        case.value_cache.cpu().numpy(),
        case.block_table.cpu().numpy(),
        case.seq_lens.cpu().numpy(),
        case.scale,
        "float32",
    )
    assert rel_err(out, torch.from_numpy(oracle)) < 2e-6


@pytest.mark.parametrize("qdtype", [torch.float32, torch.float16], ids=["q-fp32", "q-fp16"])
@pytest.mark.parametrize("num_splits", [1, 2])
def test_fp8_cache_dequantised_with_scales(qdtype, num_splits):
    case = _fp32_case([50, 64], num_heads=4, num_kv_heads=2, block_size=16, max_blocks=4)
    k8 = case.key_cache.to(torch.float8_e4m3fn)
    v8 = case.value_cache.to(torch.float8_e4m3fn)
    fp8 = replace(case, query=case.query.to(qdtype), key_cache=k8, value_cache=v8)
    # the output buffer stays fp32 (the query's original dtype)
    out = fp8.decode(case.poisoned_out(), num_splits=num_splits, k_scale=0.5, v_scale=2.0)
    ref = reference_attention(
        fp8.query, k8.float(), v8.float(), case.block_table, case.seq_lens, case.scale, 0.5, 2.0
    )
    assert rel_err(out, ref) < TOL[qdtype]


def test_write_scatters_and_skips_padding():
    g = torch.Generator().manual_seed(3)
    num_blocks, bs, kv, d = 6, 8, 2, 64
    kc = torch.randn((num_blocks, bs, kv, d), generator=g).to(DEVICE)
    vc = torch.randn((num_blocks, bs, kv, d), generator=g).to(DEVICE)
    # a fused qkv projection: key/value are strided views, not contiguous tensors
    qkv = torch.randn((5, 3, kv, d), generator=g).to(DEVICE)
    key, value = qkv[:, 1], qkv[:, 2]
    slots = torch.tensor([17, -1, 0, 47, 30], device=DEVICE)
    exp_k, exp_v = kc.clone(), vc.clone()
    for t, s in enumerate(slots.tolist()):
        if s >= 0:
            exp_k[s // bs, s % bs] = key[t]
            exp_v[s // bs, s % bs] = value[t]
    write_kv_cache_triton(key, value, kc, vc, slots)
    assert torch.equal(kc, exp_k)
    assert torch.equal(vc, exp_v)


def test_write_then_decode_through_block_allocator():
    ba = pytest.importorskip("block_allocator")
    bs, kv, heads, d = 16, 2, 4, 64
    pool_ids = [5, 2, 9, 7, 1, 4]  # physical blocks a shuffled pool might hand out
    tables = [pool_ids[:3], pool_ids[3:]]
    lens = [40, 21]
    slots = []
    for ids, n in zip(tables, lens, strict=True):
        slots += ba.slot_mapping(ids, range(n), bs)
    g = torch.Generator().manual_seed(11)
    key = torch.randn((sum(lens), kv, d), generator=g).to(DEVICE)
    value = torch.randn((sum(lens), kv, d), generator=g).to(DEVICE)
    kc = torch.full((10, bs, kv, d), float("nan"), device=DEVICE)
    vc = torch.full((10, bs, kv, d), float("nan"), device=DEVICE)
    write_kv_cache_triton(key, value, kc, vc, torch.tensor(slots, device=DEVICE))
    bt = torch.tensor(ba.pad_block_tables(tables, pad_id=0), dtype=torch.int32, device=DEVICE)
    sl = torch.tensor(lens, dtype=torch.int32, device=DEVICE)
    q = torch.randn((2, heads, d), generator=g).to(DEVICE)
    out = paged_attention_triton(q, kc, vc, bt, sl, d**-0.5, torch.full_like(q, float("nan")))
    # dense attention over the tokens as written, no paging at all
    ref = torch.empty((2, heads, d), dtype=torch.float64)
    start = 0
    for b, n in enumerate(lens):
        k = key[start : start + n].cpu().double().repeat_interleave(heads // kv, dim=1)
        v = value[start : start + n].cpu().double().repeat_interleave(heads // kv, dim=1)
        p = torch.softmax(torch.einsum("hd,nhd->hn", q[b].cpu().double(), k) * d**-0.5, -1)
        ref[b] = torch.einsum("hn,nhd->hd", p, v)
        start += n
    assert rel_err(out, ref) < 2e-6


def test_chunk_choice_depends_on_shapes_only():
    # few programs: split until the SMs are busy; many: one split, unless capacity is huge
    assert choose_chunk(1, 8, 32768, 64, 132) < 32768
    assert choose_chunk(256, 8, 2048, 64, 132) == 2048
    for b, kv, cap in [(1, 8, 512), (8, 8, 8192), (64, 32, 32768), (3, 1, 100)]:
        c = choose_chunk(b, kv, cap, 64, 132)
        assert c % 64 == 0
        assert 0 < c <= max(64, -(-cap // 64) * 64)


def test_public_plan_matches_numpy_and_checks_its_inputs():
    from paged_attn_kernels import DecodePlan, KernelInputError, paged_attention, plan_decode

    lens = [128, 1, 77, 0]
    case = _fp32_case(lens, num_heads=8, num_kv_heads=2, block_size=8, max_blocks=17)
    q, kc, vc, bt, sl = case.inputs
    plan = plan_decode(q, kc, bt, torch.tensor(lens))
    assert isinstance(plan, DecodePlan)
    got = paged_attention(q, kc, vc, bt, sl, case.scale, backend="triton", plan=plan)
    oracle = paged_attention(*(t.cpu().numpy() for t in case.inputs), case.scale, backend="numpy")
    np_got = got.cpu().numpy()
    assert np.abs(np_got - oracle).max() <= 1e-5 * max(1.0, np.abs(oracle).max())
    bad = [
        (dict(seq_lens=[1, 2, 3]), "seq_lens has 3 entries"),
        (dict(seq_lens=[1, 2, 3, -1]), r"seq_lens\[3\]=-1 is outside \[0, 136\]"),
        (dict(seq_lens=[1, 2, 3, 137]), r"seq_lens\[3\]=137 is outside \[0, 136\]"),
        (dict(seq_lens=lens, scale=float("nan")), "scale must be"),
        (dict(seq_lens=lens, validate="some"), "validate must be"),
        (dict(seq_lens=[1.0, 2.0, 3.0, 4.0]), "1-D sequence of ints"),
        (dict(seq_lens=lens, chunk=100), "chunk must be a positive multiple of 64"),
        (dict(seq_lens=lens, chunk=64, capacity=3), r"capacity must be >= 12"),
        (dict(seq_lens=lens, capacity=64), "capacity needs a pinned chunk"),
        (dict(seq_lens=lens, order="random"), "order must be"),
    ]
    for kwargs, msg in bad:
        lens_arg = kwargs.pop("seq_lens")
        with pytest.raises(KernelInputError, match=msg):
            plan_decode(q, kc, bt, lens_arg, **kwargs)
    with pytest.raises(KernelInputError, match="backend is 'numpy'"):
        paged_attention(q.cpu().numpy(), kc.cpu().numpy(), vc.cpu().numpy(), bt.cpu().numpy(),
                        sl.cpu().numpy(), case.scale, backend="numpy", plan=plan)  # fmt: skip
    with pytest.raises(KernelInputError, match="not both"):
        paged_attention(q, kc, vc, bt, sl, case.scale, backend="triton", plan=plan, num_splits=2)
    with pytest.raises(KernelInputError, match="DecodePlan"):
        paged_attention(q, kc, vc, bt, sl, case.scale, backend="triton", plan="lpt")  # type: ignore[arg-type]
    short = plan_decode(q, kc, bt, [64, 1, 1, 0])
    out = case.poisoned_out()
    before = out.clone()
    with pytest.raises(KernelInputError, match=r"seq_lens\[0\] = 128 is longer than the plan"):
        paged_attention(q, kc, vc, bt, sl, case.scale, backend="triton", plan=short, out=out,
                        validate="full")  # fmt: skip
    assert torch.equal(out.isnan(), before.isnan())  # nothing written
    other = _fp32_case([5, 5], num_heads=8, num_kv_heads=2, block_size=8, max_blocks=17)
    with pytest.raises(KernelInputError, match=r"plan was made for query \(4, 8, 64\)"):
        paged_attention(*other.inputs, other.scale, backend="triton", plan=plan)
