"""The fast-path micro-kernel: int16 pairs times int8/int16 weight pairs into int32 lanes.

Numba's loop vectorizer turns ``acc += int32(x) * int32(w)`` into one 32-bit multiply per
lane (8 MACs per AVX2 instruction). An int16 pair multiply-add (``pmaddwd``, 16 MACs per
instruction) is what int8 GEMMs run on, and no Numba-level loop gets LLVM to emit it
(measured: 24 GMAC/s against 71 GMAC/s for this kernel, conv 3x3 64→64, one thread). So this
module writes the inner loop in LLVM IR through ``numba.extending.intrinsic``. It writes
plain, portable vector IR, not an x86 intrinsic:

    prod = sext<16 x i32>(x_pair_broadcast) * sext<16 x i32>(w16)      ; 16 lanes, nsw
    acc  = acc + (prod[0, 2, 4, ...] + prod[1, 3, 5, ...])              ; <8 x i32>

The x86 backend matches this even/odd pattern to ``vpmaddwd``. Other targets lower it to their
own widening multiply-adds. The arithmetic is exact: each lane adds
``x[2k]·w[2k] + x[2k+1]·w[2k+1]`` (``|x| ≤ 255``, ``|w| ≤ 127``, or ``|w| ≤ 32767``, so the
pair sum is below 2^31) into an int32 whose partial sums obey NUMERICS.md (N8).

``pair_kernel(P)`` builds the intrinsic for a block of P output pixels × 16 output channels.
It is ``_pair_mk(xf, xb, toff, ncp, wf, wb, accf, ab)``:

- ``xf``: int16 1-D (the centred, padded input, flattened NHWC). Pixel ``p`` of the block
  reads the pair ``xf[xb[p] + toff[t] + 2·cp : +2]`` for tap ``t`` and channel pair ``cp``.
- ``wf``: int8 or int16 1-D, packed as ``[t][cp][16 channels][2]`` from ``wb``.
- ``accf``: int32 1-D. The 16 sums of pixel ``p`` are added to ``accf[ab[p] : ab[p] + 16]``.

The kernel reads and writes nothing else. The callers in ``conv.py`` guarantee every index is
in bounds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 16  # output channels per block: two <8 x i32> accumulators

# numba's and llvmlite's code-generation objects carry no types: they are `Any` here, and
# cgutils' helper is called through a typed name.
_alloca_once_value: Callable[[Any, Any], Any] = cgutils.alloca_once_value
_get_or_insert_function: Callable[[Any, Any, str], Any] = cgutils.get_or_insert_function
Codegen = Callable[[Any, Any, Any, Any], Any]


@functools.cache
def pair_kernel(pixels: int) -> Any:
    """The micro-kernel intrinsic for a block of ``pixels`` × 16 channels (see module doc)."""

    @intrinsic
    def _pair_mk(typingctx: Any, xf: Any, xb: Any, toff: Any, ncp: Any, wf: Any, wb: Any, accf: Any,
                 ab: Any) -> tuple[Any, Codegen]:
        sig = types.void(xf, xb, toff, ncp, wf, wb, accf, ab)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            xa, xbt, ta, ncpv, wa, wbv, aa, abt = args
            X = context.make_array(signature.args[0])(context, builder, xa)
            T = context.make_array(signature.args[2])(context, builder, ta)
            W = context.make_array(signature.args[4])(context, builder, wa)
            A = context.make_array(signature.args[6])(context, builder, aa)
            wbits = signature.args[4].dtype.bitwidth
            i32, i64 = ir.IntType(32), ir.IntType(64)
            v16w = ir.VectorType(ir.IntType(wbits), LANES)
            v2x = ir.VectorType(ir.IntType(16), 2)
            v16x32 = ir.VectorType(i32, LANES)
            v8 = ir.VectorType(i32, 8)
            even = ir.Constant(v8, list(range(0, 16, 2)))
            odd = ir.Constant(v8, list(range(1, 16, 2)))
            splat = ir.Constant(v16x32, [0, 1] * 8)
            accs = [_alloca_once_value(builder, ir.Constant(v8, None)) for _ in range(2 * pixels)]
            ntap = builder.extract_value(T.shape, 0)
            bases = [builder.extract_value(xbt, p) for p in range(pixels)]
            step = ir.Constant(i64, 2 * LANES)
            with cgutils.for_range(builder, ntap) as tap:
                toff_t = builder.load(builder.gep(T.data, [tap.index]))
                w_tap = builder.add(wbv, builder.mul(builder.mul(tap.index, ncpv), step))
                with cgutils.for_range(builder, ncpv) as pair:
                    w_off = builder.add(w_tap, builder.mul(pair.index, step))
                    ws = []
                    for half in range(2):
                        ptr = builder.gep(W.data, [builder.add(w_off, ir.Constant(i64, LANES * half))])
                        vec = builder.load(builder.bitcast(ptr, v16w.as_pointer()), align=wbits // 8)
                        ws.append(builder.sext(vec, v16x32))
                    x_rel = builder.add(toff_t, builder.mul(pair.index, ir.Constant(i64, 2)))
                    for p in range(pixels):
                        ptr = builder.gep(X.data, [builder.add(bases[p], x_rel)])
                        xv = builder.load(builder.bitcast(ptr, v2x.as_pointer()), align=2)
                        xs = builder.sext(builder.shuffle_vector(xv, xv, splat), v16x32)
                        for half in range(2):
                            prod = builder.mul(xs, ws[half], flags=["nsw"])
                            pairs = builder.add(builder.shuffle_vector(prod, prod, even),
                                                builder.shuffle_vector(prod, prod, odd))
                            slot = accs[2 * p + half]
                            builder.store(builder.add(builder.load(slot), pairs), slot)
            for p in range(pixels):
                out = builder.extract_value(abt, p)
                for half in range(2):
                    ptr = builder.gep(A.data, [builder.add(out, ir.Constant(i64, 8 * half))])
                    ptr = builder.bitcast(ptr, v8.as_pointer())
                    builder.store(builder.add(builder.load(ptr, align=4), builder.load(accs[2 * p + half])),
                                  ptr, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return _pair_mk


@functools.cache
def depthwise_kernel(pixels: int) -> Any:
    """The depthwise micro-kernel for a block of ``pixels`` × 16 channels.

    ``_dw_mk(xf, xb, toff, wf, wstride, wb, accf, ab)``: for every tap ``t``,
    ``acc_p += sext32(x16[xb[p] + toff[t] : +16] * w16[t·wstride + wb : +16])``, then
    ``accf[ab[p] : +16] += acc_p``. ``xf`` and ``wf`` are int16 1-D, ``accf`` int32 1-D. The product
    is formed in 16 bits. It is exact only when ``|x·w| ≤ 32767``, which holds on the fast path:
    ``255 · 127 = 32,385``.
    """

    @intrinsic
    def _dw_mk(typingctx: Any, xf: Any, xb: Any, toff: Any, wf: Any, wstride: Any, wb: Any, accf: Any,
               ab: Any) -> tuple[Any, Codegen]:
        sig = types.void(xf, xb, toff, wf, wstride, wb, accf, ab)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            xa, xbt, ta, wa, wsv, wbv, aa, abt = args
            X = context.make_array(signature.args[0])(context, builder, xa)
            T = context.make_array(signature.args[2])(context, builder, ta)
            W = context.make_array(signature.args[3])(context, builder, wa)
            A = context.make_array(signature.args[6])(context, builder, aa)
            i32 = ir.IntType(32)
            v16 = ir.VectorType(ir.IntType(16), LANES)
            v16x32 = ir.VectorType(i32, LANES)
            accs = [_alloca_once_value(builder, ir.Constant(v16x32, None)) for _ in range(pixels)]
            ntap = builder.extract_value(T.shape, 0)
            bases = [builder.extract_value(xbt, p) for p in range(pixels)]
            with cgutils.for_range(builder, ntap) as tap:
                toff_t = builder.load(builder.gep(T.data, [tap.index]))
                wptr = builder.gep(W.data, [builder.add(wbv, builder.mul(tap.index, wsv))])
                wv = builder.load(builder.bitcast(wptr, v16.as_pointer()), align=2)
                for p in range(pixels):
                    xptr = builder.gep(X.data, [builder.add(bases[p], toff_t)])
                    xv = builder.load(builder.bitcast(xptr, v16.as_pointer()), align=2)
                    prod = builder.sext(builder.mul(xv, wv, flags=["nsw"]), v16x32)
                    builder.store(builder.add(builder.load(accs[p]), prod), accs[p])
            for p in range(pixels):
                ptr = builder.gep(A.data, [builder.extract_value(abt, p)])
                ptr = builder.bitcast(ptr, v16x32.as_pointer())
                builder.store(builder.add(builder.load(ptr, align=4), builder.load(accs[p])), ptr, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return _dw_mk


@intrinsic
def _prefetch(typingctx: Any, flat: Any, index: Any) -> tuple[Any, Codegen]:
    """Ask for the cache line of ``flat[index]`` (a 1-D array, ``index`` in bounds), to be read soon;
    nothing waits for it (LLVM's ``llvm.prefetch``: a read, kept in every cache level)."""
    sig = types.void(flat, index)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        array = context.make_array(signature.args[0])(context, builder, args[0])
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        address = builder.bitcast(builder.gep(array.data, [args[1]]), i8p)
        name = "llvm.prefetch.p0" if _llvm_major() >= 15 else "llvm.prefetch.p0i8"
        function = _get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), name)
        builder.call(function, [address, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


# `prefetch(flat, index)` in a compiled kernel (to mypy, the call it is there)
prefetch = cast(Callable[[np.ndarray, int], None], _prefetch)


def _llvm_major() -> int:
    """The major version of the LLVM that llvmlite binds (its intrinsics' names follow it)."""
    from llvmlite import binding

    return int(binding.llvm_version_info[0])
