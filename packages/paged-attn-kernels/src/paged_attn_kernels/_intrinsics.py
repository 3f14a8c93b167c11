"""Two LLVM features numba does not expose, as numba intrinsics for the CPU kernels.

- ``prefetch(arr, byte_offset)``: ``llvm.prefetch`` of one cache line. The kernels follow
  the block table to scattered blocks, which the hardware prefetcher cannot predict.
- ``stream_copy(dst, dst_off, src, src_off, nbytes)``: a copy with non-temporal stores
  (``!nontemporal`` metadata, then ``sfence``), as memcpy does for large copies.

Under ``NUMBA_DISABLE_JIT=1`` both are plain Python (a no-op and a byte copy).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
from numba import config, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["prefetch", "stream_copy"]

# llvmlite ships no type information; imported by name so type checkers without it are happy
ir: Any = importlib.import_module("llvmlite.ir")


def _make_prefetch() -> Any:
    """``_prefetch(arr, byte_offset)``: hint the CPU to pull the cache line at
    ``arr.data + byte_offset`` (llvm.prefetch); a no-op under NUMBA_DISABLE_JIT=1."""
    if getattr(config, "DISABLE_JIT", False):
        return lambda arr, byte_offset: None

    @intrinsic
    def prefetch(typingctx, arr, byte_offset):
        if not isinstance(arr, types.Array) or not isinstance(byte_offset, types.Integer):
            return None
        sig = types.void(arr, byte_offset)

        def codegen(context, builder, signature, args):
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            offset = context.cast(builder, args[1], signature.args[1], types.intp)
            ptr = builder.gep(builder.bitcast(ary.data, ir.IntType(8).as_pointer()), [offset])
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            # read, highest locality, data cache
            args = [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)]
            builder.call(fn, args)
            return context.get_dummy_value()

        return sig, codegen

    return prefetch


prefetch = _make_prefetch()


def _make_stream_copy() -> Any:
    """``_stream_copy(dst, dst_off, src, src_off, nbytes)``: copy bytes with non-temporal
    16-byte stores (dst_off and nbytes multiples of 16, dst 16-byte aligned), then sfence.

    Plain stores first read every destination line (read-for-ownership): a gather would move
    3 bytes per byte copied while memcpy's streaming stores move 2. Under NUMBA_DISABLE_JIT
    it is a plain byte copy.
    """
    if getattr(config, "DISABLE_JIT", False):

        def plain(dst, dst_off, src, src_off, nbytes):
            d = dst.reshape(-1).view(np.uint8)
            d[dst_off : dst_off + nbytes] = src.reshape(-1).view(np.uint8)[
                src_off : src_off + nbytes
            ]

        return plain

    @intrinsic
    def stream_copy(typingctx, dst, dst_off, src, src_off, nbytes):
        if not (isinstance(dst, types.Array) and isinstance(src, types.Array)):
            return None
        sig = types.void(dst, dst_off, src, src_off, nbytes)

        def codegen(context, builder, signature, args):
            argtys = signature.args
            d = context.make_array(argtys[0])(context, builder, args[0])
            s = context.make_array(argtys[2])(context, builder, args[2])
            d_off, s_off, n = (
                context.cast(builder, args[k], argtys[k], types.intp) for k in (1, 3, 4)
            )
            i8p = ir.IntType(8).as_pointer()
            vec = ir.VectorType(ir.IntType(64), 2)
            d_base = builder.gep(builder.bitcast(d.data, i8p), [d_off])
            s_base = builder.gep(builder.bitcast(s.data, i8p), [s_off])
            sixteen = ir.Constant(n.type, 16)
            nontemporal = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
            with cgutils.for_range(builder, builder.udiv(n, sixteen)) as loop:
                off = builder.mul(loop.index, sixteen)
                src_ptr = builder.bitcast(builder.gep(s_base, [off]), vec.as_pointer())
                dst_ptr = builder.bitcast(builder.gep(d_base, [off]), vec.as_pointer())
                store = builder.store(builder.load(src_ptr, align=1), dst_ptr, align=16)
                store.set_metadata("nontemporal", nontemporal)
            fnty = ir.FunctionType(ir.VoidType(), [])
            fence = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.sfence")
            builder.call(fence, [])
            return context.get_dummy_value()

        return sig, codegen

    return stream_copy


stream_copy = _make_stream_copy()
