"""The torch side of the public API: Triton dispatch and torch-indexing fallbacks.

numpy arrays sent to ``backend="triton"`` are wrapped (CPU, under ``TRITON_INTERPRET=1``) or
copied to CUDA and back; torch tensors go to the kernels of ``_triton_decode.py`` /
``_triton_write.py`` as they are. torch and triton are imported inside the functions.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from paged_attn_kernels import _dtypes as dt
from paged_attn_kernels._arrays import Arr, host_of, to_float_output
from paged_attn_kernels._validate import AttentionCall, CacheInfo, KernelInputError

if TYPE_CHECKING:
    from paged_attn_kernels.decode_plan import DecodePlan


def is_torch_tensor(x: object) -> bool:
    torch = sys.modules.get("torch")  # never import torch just to answer no
    return torch is not None and isinstance(x, torch.Tensor)


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def to_torch(a: Arr, device: Any) -> Any:
    import torch

    if a.framework == "torch":
        return a.value
    host = host_of(a)
    if a.kind == dt.BFLOAT16:
        t = torch.from_numpy(host.view(np.int16)).view(torch.bfloat16)
    elif a.kind in (dt.FP8_E4M3, "uint8"):
        t = torch.from_numpy(host).view(torch.float8_e4m3fn)
    else:
        t = torch.from_numpy(host)
    return t.to(device)


def triton_device(first: Arr) -> Any:
    if first.framework == "torch":
        return first.value.device
    return "cpu" if interpreting() or not cuda_available() else "cuda"


def scale_arg(x: Any, device: Any) -> Any:
    # a float (read on the host by validation) or the caller's one-element device tensor
    return x if isinstance(x, float) else x.to(device)


def host_bits(t: Any) -> npt.NDArray[Any]:
    import torch

    t = t.detach().cpu()
    if t.element_size() == 1 and t.dtype != torch.uint8:
        t = t.view(torch.uint8)
    if t.dtype == torch.bfloat16:
        return np.asarray(t.view(torch.int16).numpy().view(np.uint16))
    return np.asarray(t.numpy())


def write_triton(key: Arr, value: Arr, cache: CacheInfo, slots: Arr) -> None:
    import torch

    from paged_attn_kernels._triton_write import write_kv_cache_triton

    device = triton_device(cache.key_cache)
    kc = to_torch(cache.key_cache, device)
    vc = to_torch(cache.value_cache, device)
    if kc.dtype == torch.uint8:
        kc, vc = kc.view(torch.float8_e4m3fn), vc.view(torch.float8_e4m3fn)
    write_kv_cache_triton(
        to_torch(key, device), to_torch(value, device), kc, vc,
        to_torch(slots, device).long(),
        k_scale=scale_arg(cache.k_scale, device), v_scale=scale_arg(cache.v_scale, device),
    )  # fmt: skip
    if cache.key_cache.framework == "numpy" and kc.device.type != "cpu":
        host_of(cache.key_cache)[...] = host_bits(kc)  # numpy caches ran on a device copy
        host_of(cache.value_cache)[...] = host_bits(vc)


def gather_torch(cache: CacheInfo, block_table: Arr, seq_lens: Arr, max_seq_len: int) -> Any:
    import torch

    device = triton_device(cache.key_cache)
    bt = to_torch(block_table, device).long()
    sl = to_torch(seq_lens, device).long()
    num_blocks_out = -(-max_seq_len // cache.block_size)
    # entries past a sequence's blocks may hold anything: clamp them into range, mask below
    ids = bt[:, :num_blocks_out].clamp(0, cache.num_blocks - 1)
    keep = torch.arange(max_seq_len, device=device)[None, :] < sl[:, None]
    result = []
    for arr, scale in ((cache.key_cache, cache.k_scale), (cache.value_cache, cache.v_scale)):
        c = to_torch(arr, device)
        fp8 = cache.kind == dt.FP8_E4M3
        if fp8:
            c = c.view(torch.float8_e4m3fn) if c.dtype == torch.uint8 else c
            c = c.float()
        x = c[ids].reshape(ids.shape[0], -1, *c.shape[2:])[:, :max_seq_len]
        x = torch.where(keep[..., None, None], x, torch.zeros((), dtype=x.dtype, device=device))
        if fp8:
            x = x * (scale if isinstance(scale, float) else scale.to(device).float())
        result.append(x if arr.framework == "torch" else from_torch(x, arr))
    return result[0], result[1]


def from_torch(x: Any, like: Arr) -> npt.NDArray[Any]:
    bits = host_bits(x)
    return bits.view(like.value.dtype) if like.kind == dt.BFLOAT16 else bits


def attention_triton(
    call: AttentionCall, out: Any, num_splits: int | None, plan: DecodePlan | None = None
) -> Any:
    """The one-shot Triton path: no host synchronisation, cached policy and split choice."""
    import torch

    from paged_attn_kernels import _triton_decode as td

    cache = call.cache
    device = triton_device(call.query)
    kc = to_torch(cache.key_cache, device)
    vc = to_torch(cache.value_cache, device)
    if kc.dtype == torch.uint8:
        kc, vc = kc.view(torch.float8_e4m3fn), vc.view(torch.float8_e4m3fn)
    slot_strides = (cache.num_kv_heads * cache.head_dim, cache.head_dim, 1)
    if kc.stride()[1:] != slot_strides or vc.stride()[1:] != slot_strides:
        raise KernelInputError(
            "backend='triton' needs caches contiguous in their last three dims (any block "
            f"stride), got strides {kc.stride()} and {vc.stride()}"
        )
    bt = to_torch(call.block_table, device)
    sl = to_torch(call.seq_lens, device)
    if bt.dtype != torch.int32 or bt.stride(1) != 1:
        bt = bt.to(torch.int32).contiguous()
    sl = sl if sl.dtype == torch.int32 else sl.to(torch.int32)
    q = to_torch(call.query, device)
    if q.stride()[1:] != (cache.head_dim, 1):
        q = q.contiguous()  # e.g. a slice of a fused qkv projection with a head stride
    torch_out = out if call.query.framework == "torch" else None
    target = torch_out
    if torch_out is not None and torch_out.stride()[1:] != (cache.head_dim, 1):
        target = None  # written into a fresh buffer, then copied into the caller's
    scales = {
        "k_scale": scale_arg(cache.k_scale, device),
        "v_scale": scale_arg(cache.v_scale, device),
    }
    if plan is None:
        result = td.paged_attention_triton(
            q, kc, vc, bt, sl, call.scale, target, num_splits=num_splits, **scales
        )
    else:
        if plan.query_dtype != q.dtype or plan.cache_dtype != kc.dtype or plan.device != q.device:
            raise KernelInputError(
                f"plan was made for {plan.query_dtype} queries over {plan.cache_dtype} caches "
                f"on {plan.device}; the call has {q.dtype} over {kc.dtype} on {q.device}"
            )
        if target is None:
            target = torch.empty_like(q)
        result = td.launch(
            plan._meta, plan.grid, q, kc, vc, bt, sl, target, plan._partials, plan._sems,
            call.scale, **scales,
        )  # fmt: skip
    if torch_out is not None and result is not torch_out:
        torch_out.copy_(result)
        result = torch_out
    if call.query.framework == "torch":
        return result
    return to_float_output(host_bits(result.float()), call.query, out)
