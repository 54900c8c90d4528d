"""The float executor's depthwise conv (group = C_in = C_out): the taps of a run of outputs summed in
registers, the bias and the layer's activation applied as they are stored.

Each plane is copied once into the interior of scratch whose pad zeros are written once per part
of the work (no copy without pads at a column stride of 1: the taps read the input itself). A
tap is then a fixed offset into the padded plane (``toff``), and `tap_kernel`, LLVM IR as the dense
conv's micro-kernel, sums every tap of 32 consecutive outputs in four 8-float vectors (then 8,
then the last few one by one): a column stride of 1 loads each tap's inputs as one vector, a
stride of 2 as two loads and a shuffle to the even lanes, any other stride is summed one output at
a time. A stride-1 plane narrower than `FLAT_BELOW` columns is summed flat: output (y, z) at
y·WP + z of one run over the padded plane, the WP - Wo positions between rows computed and
dropped, so that a narrow plane still fills the vectors (the run rounded up to whole vectors where
the plane is padded: the scratch's tail is read, those sums dropped); any other plane row by row, straight into
the output. A small stride-1 plane as wide as its input (a "same" conv, at most `MASKED_UP_TO`
outputs) is read in place instead (`_masked`): output and input share their flat places, so a tap
is one offset into the input itself, and the lanes that offset would take from the padding, across
a row's end or past the plane are masked off the load (zeros, multiplied as the padding's), a
plane's sums stored straight into the output: on the digits CNN's 8x8 planes this is half the time
of the copy, the flat sums and the row-by-row finish. Everything is indexed flat and unsigned: a view a row costs an atomic reference count
more than a small row's work, and Numba tests a signed index for wrapping, which keeps a loop
scalar.

Summation order, as the kernel it replaced (and NumPy's step-by-step form of the same sum): every
output is ``((((0 + x00·w00) + x01·w01) + ...) + x(KH-1)(KW-1)·w(KH-1)(KW-1)) + bias``, the taps row
by row, each row left to right, a float32 product then a float32 add (no fused multiply-add). Then
the activation, `ACT_CODES`, with the float32 steps of `alls.runtime.ops.activation` (ReLU
``max(v, 0)``, ReLU6 ``min(max(v, 0), 6)``, hardswish ``v·clip(v/6 + 0.5, 0, 1)``). A result
therefore depends neither on the batch, the thread count nor the machine.

The planes (image, channel) are the parallel parts: a call runs on the threads `_parallel` chooses
for its call site, or, when it has no thread to share (a budget of one, or work below a thread's
worth), as one serial call with no parallel region.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from alls.runtime.kernels import _parallel
from alls.runtime.kernels._common import njit

__all__ = ["depthwise", "prepare", "ACT_CODES", "NONE", "RELU", "RELU6", "HARDSWISH"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
LANES = 8  # the floats of a vector

NONE, RELU, RELU6, HARDSWISH = 0, 1, 2, 3
ACT_CODES = {"relu": RELU, "relu6": RELU6, "hardswish": HARDSWISH}  # the activations the store applies
FLAT_BELOW = 64  # a stride-1 conv whose output rows are narrower runs flat over its padded plane

_alloca_once_value: Callable[[Any, Any], Any] = cgutils.alloca_once_value
_get_or_insert_function: Callable[[Any, Any, str], Any] = cgutils.get_or_insert_function
Codegen = Callable[[Any, Any, Any, Any], Any]


@functools.cache
def tap_kernel(vectors: int, stride: int) -> Any:
    """The register kernel of ``vectors``·`LANES` consecutive outputs at column stride ``stride`` (1 or 2).

    ``_tk(src, sbase, toff, wt, dst, dbase)``: for every tap ``t`` of ``toff`` in order, ``acc[k] =
    acc[k] + src[sbase + toff[t] + stride·k]·wt[t]`` (a float32 product, then a float32 add, as
    Numba's loops compute it), from +0; then ``dst[dbase + k] = acc[k]``. At stride 2 a vector is
    two loads, the even lanes shuffled out, so it reads one float past its last input. The caller
    guarantees every index is in bounds.
    """
    @intrinsic
    def _tk(typingctx: Any, src: Any, sbase: Any, toff: Any, wt: Any, dst: Any, dbase: Any) -> tuple[Any, Codegen]:
        sig = types.void(src, sbase, toff, wt, dst, dbase)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            sa, sbv, ta, wa, da, dbv = args
            S = context.make_array(signature.args[0])(context, builder, sa)
            T = context.make_array(signature.args[2])(context, builder, ta)
            W = context.make_array(signature.args[3])(context, builder, wa)
            D = context.make_array(signature.args[4])(context, builder, da)
            f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
            vec = ir.VectorType(f32, LANES)
            undef = ir.Constant(vec, ir.Undefined)
            zeros = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)
            evens = ir.Constant(ir.VectorType(i32, LANES), list(range(0, 2 * LANES, 2)))
            accs = [_alloca_once_value(builder, ir.Constant(vec, None)) for _ in range(vectors)]

            def load(data: Any, index: Any) -> Any:
                return builder.load(builder.bitcast(builder.gep(data, [index]), vec.as_pointer()), align=4)

            ntap = builder.extract_value(T.shape, 0)
            with cgutils.for_range(builder, ntap) as tap:
                at = builder.add(sbv, builder.load(builder.gep(T.data, [tap.index])))
                one = builder.insert_element(undef, builder.load(builder.gep(W.data, [tap.index])),
                                             ir.Constant(i32, 0))
                weight = builder.shuffle_vector(one, undef, zeros)
                for v in range(vectors):
                    first = builder.add(at, ir.Constant(i64, stride * LANES * v))
                    xs = load(S.data, first)
                    if stride == 2:
                        xs = builder.shuffle_vector(xs, load(S.data, builder.add(first, ir.Constant(i64, LANES))),
                                                    evens)
                    builder.store(builder.fadd(builder.load(accs[v]), builder.fmul(xs, weight)), accs[v])
            for v in range(vectors):
                ptr = builder.gep(D.data, [builder.add(dbv, ir.Constant(i64, LANES * v))])
                builder.store(builder.load(accs[v]), builder.bitcast(ptr, vec.as_pointer()), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return _tk


_TK4_1, _TK1_1, _TK4_2, _TK1_2 = tap_kernel(4, 1), tap_kernel(1, 1), tap_kernel(4, 2), tap_kernel(1, 2)


@functools.cache
def masked_kernel(vectors: int, tail: bool = False) -> Any:
    """The register kernel of a small stride-1 plane read in place (`_masked`): ``vectors``·`LANES`
    consecutive outputs, every tap's inputs one masked load from the input itself.

    ``_mk(src, sbase, toff, masks, mbase, wt, bias, dst, dbase)``: for every tap ``t`` in order and
    each vector ``k``, ``acc[k] = acc[k] + x·wt[t]`` (a float32 product, then a float32 add), from +0,
    ``x`` the lanes of ``src[sbase + 8k + toff[t] :]`` whose mask (``masks[mbase + (k·taps + t)·8 :]``,
    negative: read) is set, zero elsewhere (the padding: no lane past the plane is read); then
    ``dst[dbase + 8k :]`` = ``acc[k] + bias``, the whole vector, or with ``tail`` only the lanes of
    its store mask (``masks`` after the taps' masks of the vector: ``mbase + (k·taps + taps)·8``, the
    lanes inside the plane: a masked store costs tens of cycles here, so only a plane's last,
    partial vector takes one).
    """
    @intrinsic
    def _mk(typingctx: Any, src: Any, sbase: Any, toff: Any, masks: Any, mbase: Any, wt: Any, bias: Any, dst: Any,
            dbase: Any) -> tuple[Any, Codegen]:
        sig = types.void(src, sbase, toff, masks, mbase, wt, bias, dst, dbase)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            sa, sbv, ta, ma, mbv, wa, bv, da, dbv = args
            S = context.make_array(signature.args[0])(context, builder, sa)
            T = context.make_array(signature.args[2])(context, builder, ta)
            M = context.make_array(signature.args[3])(context, builder, ma)
            W = context.make_array(signature.args[5])(context, builder, wa)
            D = context.make_array(signature.args[7])(context, builder, da)
            f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
            vec, ivec, bits = ir.VectorType(f32, LANES), ir.VectorType(i32, LANES), ir.VectorType(ir.IntType(1), LANES)
            undef, zero = ir.Constant(vec, ir.Undefined), ir.Constant(vec, None)
            splat = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)
            load_fn = _get_or_insert_function(builder.module, ir.FunctionType(vec, [vec.as_pointer(), i32, bits, vec]),
                                              "llvm.masked.load.v8f32.p0")
            store_fn = _get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [vec, vec.as_pointer(), i32, bits]),
                                               "llvm.masked.store.v8f32.p0")
            accs = [_alloca_once_value(builder, zero) for _ in range(vectors)]
            ntap = builder.extract_value(T.shape, 0)

            def mask(index: Any) -> Any:
                at = builder.bitcast(builder.gep(M.data, [index]), ivec.as_pointer())
                return builder.icmp_signed("<", builder.load(at, align=4), ir.Constant(ivec, None))

            with cgutils.for_range(builder, ntap) as tap:
                at = builder.add(sbv, builder.load(builder.gep(T.data, [tap.index])))
                one = builder.insert_element(undef, builder.load(builder.gep(W.data, [tap.index])), ir.Constant(i32, 0))
                weight = builder.shuffle_vector(one, undef, splat)
                for v in range(vectors):
                    row = builder.add(builder.mul(ir.Constant(i64, v), builder.add(ntap, ir.Constant(i64, 1))), tap.index)
                    m = mask(builder.add(mbv, builder.mul(row, ir.Constant(i64, LANES))))
                    ptr = builder.bitcast(builder.gep(S.data, [builder.add(at, ir.Constant(i64, LANES * v))]),
                                          vec.as_pointer())
                    xs = builder.call(load_fn, [ptr, ir.Constant(i32, 4), m, zero])
                    builder.store(builder.fadd(builder.load(accs[v]), builder.fmul(xs, weight)), accs[v])
            one = builder.insert_element(undef, bv, ir.Constant(i32, 0))
            b = builder.shuffle_vector(one, undef, splat)
            for v in range(vectors):
                ptr = builder.bitcast(builder.gep(D.data, [builder.add(dbv, ir.Constant(i64, LANES * v))]),
                                      vec.as_pointer())
                y = builder.fadd(builder.load(accs[v]), b)
                if not tail:
                    builder.store(y, ptr, align=4)
                    continue
                row = builder.add(builder.mul(ir.Constant(i64, v), builder.add(ntap, ir.Constant(i64, 1))), ntap)
                builder.call(store_fn, [y, ptr, ir.Constant(i32, 4), mask(builder.add(mbv, builder.mul(row, ir.Constant(i64, LANES))))])
            return context.get_dummy_value()

        return sig, codegen

    return _mk


_MK8, _MK1, _MK1_TAIL = masked_kernel(8), masked_kernel(1), masked_kernel(1, True)
MASKED_UP_TO = 256  # a stride-1 plane of at most this many outputs, as wide as its input, is read in place


def depthwise(x: F32, weight: F32, bias: F32, strides: tuple[int, int], dilations: tuple[int, int],
              pads: tuple[int, int, int, int], out_hw: tuple[int, int], act: int = NONE,
              threads: int | None = None) -> F32:
    """Depthwise conv of an NCHW float32 ``x`` with ``weight`` (C, KH, KW), ``bias`` (C,), ONNX's
    ``strides``, ``dilations`` and ``pads`` (top, left, bottom, right), to ``out_hw``, then the
    activation ``act`` (`ACT_CODES`). Its planes are cut into at most ``threads`` parts (default:
    the runtime call's budget); the result is the same on any number."""
    n, c = x.shape[0], x.shape[1]
    kh, kw = weight.shape[1], weight.shape[2]
    (sh, sw), (dh, dw), (ho, wo) = strides, dilations, out_hw
    top, left = pads[0], pads[1]
    if x.dtype != np.float32 or not x.flags.c_contiguous:
        x = np.ascontiguousarray(x, np.float32)
    if weight.dtype != np.float32 or not weight.flags.c_contiguous:
        weight = np.ascontiguousarray(weight, np.float32)
    out = np.empty((n, c, ho, wo), np.float32)
    key = ("float dw", x.shape, weight.shape, strides, dilations, pads, act)
    work = n * c * ho * wo * kh * kw
    budget = _parallel.budget() if threads is None else threads
    parts = min(n * c, 4 * budget)  # four a thread
    geometry = _in_place(x.shape[2], x.shape[3], ho, wo, kh, kw, strides, dh, dw, top, left)
    if geometry is not None:
        if budget == 1 or work < 2 * _parallel.WORK_PER_THREAD or _parallel.choose(work, parts) == 1:
            _parallel.run(key, work, 1, _masked, x, weight, bias, *geometry, act, out, 0, n * c)
        else:
            _parallel.run(key, work, parts, _masked_parts, x, weight, bias, *geometry, act, out, parts)
        return out
    args = (x, weight, bias, sh, sw, dh, dw, top, left, act, out)
    if budget == 1 or work < 2 * _parallel.WORK_PER_THREAD or _parallel.choose(work, parts) == 1:
        # no parallel region: it would cost more than a small layer
        _parallel.run(key, work, 1, _depthwise, *args, 0, n * c)
    else:
        _parallel.run(key, work, parts, _depthwise_parts, *args, parts)
    return out


def prepare(weight: F32, bias: F32, strides: tuple[int, int], dilations: tuple[int, int],
            pads: tuple[int, int, int, int], act: int = NONE) -> Callable[[F32], F32]:
    """`depthwise` bound to ``weight`` (C, KH, KW) and ``bias`` (float32, contiguous: read on every
    call, so values changed in place are run), a geometry and an activation: a call of an NCHW input
    allocates the output and runs the kernel on the calling thread; a layer of more work than one
    thread takes runs as `depthwise` runs it, on the threads `_parallel` chooses."""
    kh, kw = weight.shape[1], weight.shape[2]
    (sh, sw), (dh, dw) = strides, dilations
    top, left, bottom, right = pads

    shapes: dict[tuple[int, ...], tuple[tuple[int, int, int, int], tuple[I64, npt.NDArray[np.int32]] | None]] = {}

    def call(x: F32) -> F32:
        if x.dtype != np.float32 or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, np.float32)
        found = shapes.get(x.shape)  # the output's shape and `_in_place`'s masks, by input shape
        if found is None:
            n, c, h, w = x.shape
            ho = (h + top + bottom - (kh - 1) * dh - 1) // sh + 1
            wo = (w + left + right - (kw - 1) * dw - 1) // sw + 1
            if len(shapes) > 64:
                shapes.clear()
            found = shapes[x.shape] = (n, c, ho, wo), _in_place(h, w, ho, wo, kh, kw, strides, dh, dw, top, left)
        (n, c, ho, wo), geometry = found
        if n * c * ho * wo * kh * kw >= 2 * _parallel.WORK_PER_THREAD:
            return depthwise(x, weight, bias, strides, dilations, pads, (ho, wo), act)
        out = np.empty((n, c, ho, wo), np.float32)
        if geometry is not None:
            _masked(x, weight, bias, geometry[0], geometry[1], act, out, 0, n * c)
        else:
            _depthwise(x, weight, bias, sh, sw, dh, dw, top, left, act, out, 0, n * c)
        return out

    return call


@njit(parallel=True, cache=True)
def _depthwise_parts(x: F32, weight: F32, bias: F32, sh: int, sw: int, dh: int, dw: int, top: int, left: int,
                     act: int, out: F32, parts: int) -> None:
    """`_depthwise` over the planes in ``parts`` ranges, one a parallel job."""
    jobs = x.shape[0] * x.shape[1]
    for part in prange(parts):
        _depthwise(x, weight, bias, sh, sw, dh, dw, top, left, act, out, part * jobs // parts,
                   (part + 1) * jobs // parts)


@njit(cache=True)
def _depthwise(x: F32, weight: F32, bias: F32, sh: int, sw: int, dh: int, dw: int, top: int, left: int, act: int,
               out: F32, first: int, last: int) -> None:
    """Planes ``first`` to ``last`` (image·C + channel) of the depthwise conv into ``out``, with their
    scratch: the padded plane (none without pads at a column stride of 1; its zeros written once)
    and, for the flat form, its sums. Everything is read and written through flat, unsigned indices:
    a view a row costs more than a small plane's row of work, and Numba wraps a negative index,
    which would keep a loop from vectorizing."""
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    kh, kw = weight.shape[1], weight.shape[2]
    ho, wo = out.shape[2], out.shape[3]
    hp = max(h + top, (ho - 1) * sh + (kh - 1) * dh + 1)  # the rows the taps read (bottom pads included)
    wp = max(w + left, (wo - 1) * sw + (kw - 1) * dw + 1)
    padded = top > 0 or left > 0 or hp > h or wp > w or sw == 2  # (a stride-2 vector reads one past its last)
    flat = sh == 1 and sw == 1 and wo < FLAT_BELOW
    scratch = np.zeros(hp * wp + LANES if padded else 0, np.float32)
    span = (ho - 1) * wp + wo if flat else 0
    if padded:  # the run rounded up to whole vectors: the scratch's tail is read, its sums dropped
        span = -(-span // LANES) * LANES
    sums = np.empty(span, np.float32)
    toff = np.empty(kh * kw, np.int64)
    for a in range(kh):
        for b in range(kw):
            toff[a * kw + b] = a * dh * wp + b * dw
    taps, xf, of = weight.reshape(c, kh * kw), x.reshape(-1), out.reshape(-1)
    for job in range(first, last):
        wt, b, xbase, obase = taps[job % c], bias[job % c], job * h * w, job * ho * wo
        src, sbase = xf, xbase
        if padded:
            for y in range(h):  # the plane into the scratch's interior; its pads stay zero
                _copy(xf, xbase + y * w, scratch, (y + top) * wp + left, w)
            src, sbase = scratch, 0
        if flat:
            _taps(src, sbase, toff, wt, 1, sums, 0, span)
            for y in range(ho):
                _finish(sums, y * wp, of, obase + y * wo, wo, b, act)
            continue
        for y in range(ho):
            _taps(src, sbase + y * sh * wp, toff, wt, sw, of, obase + y * wo, wo)
            _finish_in_place(of, np.uint64(obase + y * wo), np.uint64(wo), b, act)


def _in_place(h: int, w: int, ho: int, wo: int, kh: int, kw: int, strides: tuple[int, int], dh: int, dw: int,
              top: int, left: int) -> tuple[I64, npt.NDArray[np.int32]] | None:
    """The taps' offsets and masks of `_masked` for a geometry it runs (a stride-1 plane of at most
    `MASKED_UP_TO` outputs as wide as its input), worked out once; None for any other."""
    if strides != (1, 1) or wo != w or ho * wo > MASKED_UP_TO:
        return None
    key = (h, w, ho, kh, kw, dh, dw, top, left)
    found = _geometries.get(key)
    if found is None:
        if len(_geometries) > 1024:
            _geometries.clear()
        found = _geometries[key] = _masks(h, w, ho, kh, kw, dh, dw, top, left)
    return found


_geometries: dict[tuple[int, ...], tuple[I64, npt.NDArray[np.int32]]] = {}


@njit(cache=True)
def _masks(h: int, w: int, ho: int, kh: int, kw: int, dh: int, dw: int, top: int,
           left: int) -> tuple[I64, npt.NDArray[np.int32]]:
    """Each tap's offset into a plane, and by vector of outputs each tap's read mask (the lanes whose
    input is inside the plane) then its store mask (the lanes inside the output plane)."""
    plane, taps = ho * w, kh * kw
    nv = -(-plane // LANES)
    toff = np.empty(taps, np.int64)
    masks = np.zeros(nv * (taps + 1) * LANES, np.int32)
    for a in range(kh):
        for b in range(kw):
            t = a * kw + b
            toff[t] = (a * dh - top) * w + b * dw - left
            for q in range(plane):
                y, z = q // w + a * dh - top, q % w + b * dw - left
                if 0 <= y < h and 0 <= z < w:
                    masks[((q // LANES) * (taps + 1) + t) * LANES + q % LANES] = -1
    for q in range(plane):
        masks[((q // LANES) * (taps + 1) + taps) * LANES + q % LANES] = -1
    return toff, masks


@njit(parallel=True, cache=True)
def _masked_parts(x: F32, weight: F32, bias: F32, toff: I64, masks: npt.NDArray[np.int32], act: int, out: F32,
                  parts: int) -> None:
    """`_masked` over the planes in ``parts`` ranges, one a parallel job."""
    jobs = x.shape[0] * x.shape[1]
    for part in prange(parts):
        _masked(x, weight, bias, toff, masks, act, out, part * jobs // parts, (part + 1) * jobs // parts)


@njit(cache=True)
def _masked(x: F32, weight: F32, bias: F32, toff: I64, masks: npt.NDArray[np.int32], act: int, out: F32, first: int,
            last: int) -> None:
    """`_depthwise` of a small stride-1 plane whose rows are as wide as its input's (a "same" conv):
    output (y, z) and input (y, z) lie at the same flat place y·W + z of their planes, so a tap is one
    offset into the input itself, and the values a tap would read in the padding (or across a row's
    end, or past the plane) are masked off its load (`masked_kernel`): no copy, no scratch, each
    plane's sums, bias included, stored straight into the output; then the activation in one pass
    over the planes. The same float32 steps as the padded form."""
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    plane, taps = out.shape[2] * w, toff.shape[0]
    nv = -(-plane // LANES)
    taps_w, xf, of = weight.reshape(c, taps), x.reshape(-1), out.reshape(-1)
    whole = plane // LANES  # the vectors stored whole; a last one past the plane's end is stored masked
    for job in range(first, last):
        wt, b, xbase, obase = taps_w[job % c], bias[job % c], job * h * w, job * plane
        k = 0
        while k + 8 <= whole:
            _MK8(xf, xbase + k * LANES, toff, masks, k * (taps + 1) * LANES, wt, b, of, obase + k * LANES)
            k += 8
        while k < whole:
            _MK1(xf, xbase + k * LANES, toff, masks, k * (taps + 1) * LANES, wt, b, of, obase + k * LANES)
            k += 1
        if k < nv:
            _MK1_TAIL(xf, xbase + k * LANES, toff, masks, k * (taps + 1) * LANES, wt, b, of, obase + k * LANES)
            k += 1
    if act != NONE:
        _activate(of, np.uint64(first * plane), np.uint64((last - first) * plane), act)


@njit(cache=True)
def _activate(row: F32, v: np.uint64, n: np.uint64, act: int) -> None:
    """``row[v:v + n]`` activated in place as `_finish_in_place` activates (the bias already added)."""
    six, half, one, zero = np.float32(6), np.float32(0.5), np.float32(1), np.float32(0)
    if act == RELU:
        for k in range(n):
            y = row[v + k]
            row[v + k] = zero if y < zero else y
    elif act == RELU6:
        for k in range(n):
            y = row[v + k]
            y = zero if y < zero else y
            row[v + k] = six if y > six else y
    elif act == HARDSWISH:
        for k in range(n):
            y = row[v + k]
            t = y / six + half
            t = zero if t < zero else t
            t = one if t > one else t
            row[v + k] = y * t


@njit(cache=True, inline="always")
def _copy(src: F32, at: int, dst: F32, to: int, n: int) -> None:
    """``dst[to:to + n] = src[at:at + n]`` (unsigned indices, no view)."""
    u, v = np.uint64(at), np.uint64(to)
    for k in range(np.uint64(n)):
        dst[v + k] = src[u + k]


@njit(cache=True, inline="always")
def _taps(src: F32, base: int, toff: I64, wt: F32, sw: int, dst: F32, at: int, count: int) -> None:
    """``dst[at + j]`` = Σ_t wt[t]·src[base + toff[t] + sw·j] for j < ``count``, the taps in order, from
    0: by blocks of `LANES`·4 outputs, then `LANES`, in registers (`tap_kernel`), the rest one by one."""
    j = 0
    if sw == 1:
        while j + 4 * LANES <= count:
            _TK4_1(src, base + j, toff, wt, dst, at + j)
            j += 4 * LANES
        while j + LANES <= count:
            _TK1_1(src, base + j, toff, wt, dst, at + j)
            j += LANES
    elif sw == 2:
        while j + 4 * LANES <= count:
            _TK4_2(src, base + 2 * j, toff, wt, dst, at + j)
            j += 4 * LANES
        while j + LANES <= count:
            _TK1_2(src, base + 2 * j, toff, wt, dst, at + j)
            j += LANES
    for z in range(j, count):
        first = base + sw * z
        s = np.float32(0)
        for t in range(toff.shape[0]):
            s = s + src[np.uint64(first + toff[t])] * wt[t]
        dst[np.uint64(at + z)] = s


@njit(cache=True, inline="always")
def _finish(src: F32, at: int, dst: F32, to: int, n: int, b: np.float32, act: int) -> None:
    """``dst[to:to + n]`` = the activation of ``src[at:at + n]`` + the bias, a loop per activation, each
    vectorized (unsigned indices). A row finished in place takes `_finish_in_place`: two indices into
    one array fail LLVM's overlap test where they are equal, and the loop runs scalar."""
    six, half, one, zero = np.float32(6), np.float32(0.5), np.float32(1), np.float32(0)
    u, v = np.uint64(at), np.uint64(to)
    if act == RELU:
        for k in range(np.uint64(n)):
            y = src[u + k] + b
            dst[v + k] = zero if y < zero else y
    elif act == RELU6:
        for k in range(np.uint64(n)):
            y = src[u + k] + b
            y = zero if y < zero else y
            dst[v + k] = six if y > six else y
    elif act == HARDSWISH:
        for k in range(np.uint64(n)):
            y = src[u + k] + b
            t = y / six + half
            t = zero if t < zero else t
            t = one if t > one else t
            dst[v + k] = y * t
    else:
        for k in range(np.uint64(n)):
            dst[v + k] = src[u + k] + b


@njit(cache=True, inline="always")
def _finish_in_place(row: F32, v: np.uint64, n: np.uint64, b: np.float32, act: int) -> None:
    """`_finish` of ``row[v:v + n]`` into itself."""
    six, half, one, zero = np.float32(6), np.float32(0.5), np.float32(1), np.float32(0)
    if act == RELU:
        for k in range(n):
            y = row[v + k] + b
            row[v + k] = zero if y < zero else y
    elif act == RELU6:
        for k in range(n):
            y = row[v + k] + b
            y = zero if y < zero else y
            row[v + k] = six if y > six else y
    elif act == HARDSWISH:
        for k in range(n):
            y = row[v + k] + b
            t = y / six + half
            t = zero if t < zero else t
            t = one if t > one else t
            row[v + k] = y * t
    else:
        for k in range(n):
            row[v + k] = row[v + k] + b
