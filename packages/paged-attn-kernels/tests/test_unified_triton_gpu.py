"""The Triton variable-length kernel on a CUDA device at serving shapes: 32 query heads over
8 KV heads, head_dim 128, 16-token blocks, the production tile classes (16/64/128 rows),
bf16/fp16 and fp8 caches, every query shape and modifier in one ragged batch, against the
dense float64 reference (the interpreter cannot run bf16 ``tl.dot``)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from paged_attn_kernels import _dtypes as dt  # noqa: E402
from paged_attn_kernels.cache_ops import copy_blocks_kernel, gather_kv_kernel  # noqa: E402
from paged_attn_kernels.unified import plan_unified  # noqa: E402

try:
    from ._unified_cases import make_varlen_case, rel_err
except ImportError:
    from _unified_cases import make_varlen_case, rel_err  # type: ignore[no-redef]

pytestmark = [pytest.mark.gpu, pytest.mark.triton]

# prefill, chunked prefill, decode, verification (2-8), empty: one batch
SEQS = [(0, 300), (0, 1), (517, 129), (700, 1), (64, 1), (333, 4), (401, 8), (90, 2), (12, 0)]
SLOPES = list(2.0 ** (-8.0 * np.arange(1, 33) / 32))
MODS = {
    "plain": {},
    "window": {"sliding_window": 200},
    "softcap": {"soft_cap": 30.0},
    "sinks": {"sinks": list(np.linspace(-2.0, 3.0, 32))},
    "alibi": {"alibi_slopes": SLOPES},
    "all": {"sliding_window": 129, "soft_cap": 50.0, "sinks": list(np.linspace(0, 1, 32)),
            "alibi_slopes": SLOPES},
}  # fmt: skip
TOL = {dt.BFLOAT16: 1.2e-2, dt.FLOAT16: 2e-3, dt.FP8_E4M3: 1.2e-2}


def _torch(a: np.ndarray, kind: str):
    if kind == dt.BFLOAT16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16).cuda()
    if kind == dt.FP8_E4M3:
        return torch.from_numpy(a).view(torch.float8_e4m3fn).cuda()
    return torch.from_numpy(a).cuda()


# bf16 with every modifier; fp16 and fp8 caches with none and with all of them
CASES = [(dt.BFLOAT16, m) for m in MODS] + [
    (kind, m) for kind in (dt.FLOAT16, dt.FP8_E4M3) for m in ("plain", "all")
]


# ... and, split into 96-key pieces with a merge, bf16 with sinks / all, fp8 with all
CASES = [(k, m, None) for k, m in CASES] + [
    (dt.BFLOAT16, "sinks", 96), (dt.BFLOAT16, "all", 96), (dt.FP8_E4M3, "all", 96)
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "mods", "split_tokens"), CASES, ids=[f"{k}-{m}-{s}" for k, m, s in CASES]
)
def test_serving_shapes(kind, mods, split_tokens):
    args = {k: np.array(v) if isinstance(v, list) else v for k, v in MODS[mods].items()}
    scales = {"k_scale": 0.05, "v_scale": 0.07} if kind == dt.FP8_E4M3 else {}
    case = make_varlen_case(
        SEQS, num_heads=32, num_kv_heads=8, head_dim=128, block_size=16, kind=kind,
        pad_tokens=3, poison_window=args.get("sliding_window"), seed=11, **scales, **args,
    )  # fmt: skip
    q_dtype = torch.float16 if kind == dt.FLOAT16 else torch.bfloat16
    q = torch.from_numpy(case.query).to(q_dtype).cuda()
    case.query = q.float().cpu().numpy()  # the reference sees the rounded query
    kc, vc = _torch(case.key_cache, kind), _torch(case.value_cache, kind)
    layout = [torch.from_numpy(a).cuda() for a in case.layout]
    plan = plan_unified(q, kc, *layout, split_tokens=split_tokens)
    assert {s.block_m for s, *_ in plan.launches} == {16, 64, 128}
    split = any(merge is not None for *_, merge in plan.launches)
    assert split == (split_tokens is not None)  # auto: these contexts are too short to split
    out = torch.full_like(q, float("nan"))
    dev = {k: torch.tensor(v, device="cuda") if isinstance(v, list) else v
           for k, v in MODS[mods].items()}  # fmt: skip
    plan.run(q, kc, vc, out, **dev, **scales)
    got = out.float().cpu().numpy()
    assert np.isfinite(got).all()
    assert not got[-3:].any()
    assert rel_err(got, case.dense()) < TOL[kind]


def test_cache_ops_large_blocks():
    g = torch.Generator(device="cuda").manual_seed(0)
    kc = torch.randn((300, 16, 8, 128), device="cuda", generator=g).bfloat16()
    vc = torch.randn((300, 16, 8, 128), device="cuda", generator=g).bfloat16()
    perm = torch.randperm(300, device="cuda", generator=g).int()
    bt = perm[:280].view(4, 70)
    sl = torch.tensor([1100, 17, 0, 1120], dtype=torch.int32, device="cuda")
    k, v = gather_kv_kernel(kc, vc, bt, sl)
    for i in range(4):
        n = int(sl[i])
        want = kc[bt[i].long()].reshape(-1, 8, 128)[:n]
        assert torch.equal(k[i, :n], want)
        assert not k[i, n:].any() and not v[i, n:].any()
    pairs = torch.stack([perm[:100], perm[100:200]], 1).long()
    want_k = kc.clone()
    want_k[pairs[:, 1]] = want_k[pairs[:, 0]]
    copy_blocks_kernel(kc, vc, pairs)
    assert torch.equal(kc, want_k)


def test_run_is_captured_in_a_cuda_graph():
    """``plan.run`` reads nothing on the host and allocates nothing given ``out``: it can be
    captured once and replayed for new query/cache values of the same layout."""
    case = make_varlen_case(SEQS, num_heads=32, num_kv_heads=8, head_dim=128, block_size=16,
                            kind=dt.BFLOAT16, seed=3)  # fmt: skip
    q = torch.from_numpy(case.query).to(torch.bfloat16).cuda()
    kc, vc = _torch(case.key_cache, dt.BFLOAT16), _torch(case.value_cache, dt.BFLOAT16)
    plan = plan_unified(q, kc, *[torch.from_numpy(a).cuda() for a in case.layout])
    sinks = torch.linspace(0, 1, 32, device="cuda")
    out = torch.empty_like(q)
    plan.run(q, kc, vc, out, sliding_window=100, sinks=sinks)  # compile outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        plan.run(q, kc, vc, out, sliding_window=100, sinks=sinks)
    q.copy_(torch.randn_like(q))
    graph.replay()
    want = plan.run(q, kc, vc, sliding_window=100, sinks=sinks)
    torch.cuda.synchronize()
    assert torch.equal(out, want)
