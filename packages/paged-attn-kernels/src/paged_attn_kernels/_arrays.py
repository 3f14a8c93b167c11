"""One view of numpy arrays and torch tensors for every backend.

Each public argument is described once (framework, device, storage kind, shape) and, when it
lives in host memory, viewed as a numpy array without a copy, so the numpy and numba
backends can read and write torch CPU tensors in place. torch is never imported here: a
tensor is recognised by the module of its type.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from paged_attn_kernels import _dtypes as dt

_NUMPY_KINDS = {
    "float16": dt.FLOAT16,
    "float32": dt.FLOAT32,
    "float64": dt.FLOAT64,
    "bfloat16": dt.BFLOAT16,  # ml_dtypes
    "float8_e4m3fn": dt.FP8_E4M3,  # ml_dtypes
}
_TORCH_KINDS = {
    "torch.float16": dt.FLOAT16,
    "torch.float32": dt.FLOAT32,
    "torch.float64": dt.FLOAT64,
    "torch.bfloat16": dt.BFLOAT16,
    "torch.float8_e4m3fn": dt.FP8_E4M3,
}


_KIND_OF: dict[Any, str] = {}
_DEVICE_NAME: dict[Any, str] = {}


@dataclass(slots=True)
class Arr:
    """A described argument. ``kind`` is a storage kind of _dtypes or an integer dtype name."""

    name: str
    value: Any
    framework: str  # "numpy" or "torch"
    device: str  # "cpu", "cuda:0", ...
    kind: str
    shape: tuple[int, ...]
    host: npt.NDArray[Any] | None  # numpy view of the data (bits for bf16/fp8); None on GPU

    @property
    def is_float(self) -> bool:
        return self.kind in dt.FLOAT_KINDS or self.kind in dt.BITS_KINDS

    @property
    def is_int(self) -> bool:
        return self.kind.startswith(("int", "uint")) and self.kind != "uint8"


def is_torch(x: object) -> bool:
    return type(x).__module__.startswith("torch") and "torch" in sys.modules


def describe(x: object, name: str) -> Arr:
    """Describe ``x`` or raise TypeError naming ``name``."""
    if isinstance(x, np.ndarray):
        kind = _NUMPY_KINDS.get(x.dtype.name, x.dtype.name)
        host: npt.NDArray[Any] = x
        if kind == dt.BFLOAT16:
            host = x.view(np.uint16)
        elif kind == dt.FP8_E4M3:
            host = x.view(np.uint8)
        return Arr(name, x, "numpy", "cpu", kind, tuple(x.shape), host)
    if is_torch(x):
        import torch

        assert isinstance(x, torch.Tensor)
        # str() of a dtype or device costs microseconds; the one-shot GPU call describes six
        # tensors, so their names are looked up once per dtype and device
        kind = _KIND_OF.get(x.dtype)
        if kind is None:
            dtype_name = str(x.dtype)
            kind = _KIND_OF[x.dtype] = _TORCH_KINDS.get(
                dtype_name, dtype_name.removeprefix("torch.")
            )
        device = x.device
        where = _DEVICE_NAME.get(device)
        if where is None:
            where = _DEVICE_NAME[device] = str(device)
        host_t: npt.NDArray[Any] | None = None
        if device.type == "cpu":
            t = x.detach()
            if kind == dt.BFLOAT16:
                host_t = t.view(torch.int16).numpy().view(np.uint16)
            elif kind == dt.FP8_E4M3:
                host_t = t.view(torch.uint8).numpy()
            else:
                host_t = t.numpy()
        return Arr(name, x, "torch", where, kind, tuple(x.shape), host_t)
    raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")


def host_of(a: Arr) -> npt.NDArray[Any]:
    """The host view of ``a`` (the dispatcher sends device tensors to Triton only)."""
    assert a.host is not None
    return a.host


def to_float_output(values: npt.NDArray[Any], like: Arr, out: object | None) -> Any:
    """Return ``values`` (host floats) in ``like``'s framework and dtype, written into ``out``."""
    if like.framework == "torch":
        import torch

        src = torch.from_numpy(np.ascontiguousarray(values))
        if out is not None:
            assert isinstance(out, torch.Tensor)
            out.copy_(src)
            return out
        return src.to(device=like.value.device, dtype=like.value.dtype)
    target_dtype = like.value.dtype
    if like.kind == dt.BFLOAT16:
        bits = dt.encode_bf16(values)
        if out is not None:
            assert isinstance(out, np.ndarray)
            out.view(np.uint16)[...] = bits
            return out
        return bits.view(target_dtype)
    if out is not None:
        assert isinstance(out, np.ndarray)
        out[...] = values
        return out
    return values.astype(target_dtype, copy=False)
