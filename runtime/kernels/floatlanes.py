"""The float executor's dense conv on tiny planes: the output channels in the lanes, the batch in the
positions, and no multiply-add for a tap that reads the padding.

The micro-kernel of `floatconv` puts consecutive output positions in its lanes. On a plane of a few
positions (a network's head: 4x4, 3x3, 2x2) that leaves lanes empty or reads them under masks, and
every tap of every position is a multiply-add, those that read the padding included: on a 4x4
plane with a 3x3 kernel and pads of 1, 31% of them multiply a zero. Here a vector holds 8 output
channels of one position, a tap's input is one value broadcast to the lanes, and the taps are
listed per position: the positions whose windows meet the plane's edges the same way (a
"class": the same range of kernel rows and columns inside the plane) share one list of the taps
inside the plane, (c, a, b) in order, each an offset into the input as it lies (no copy, no
padding) and an offset into the weights. A class's positions are those of every image, so a batch
fills the blocks of positions even where an image has one position of the class (a corner).

`lane_kernel` keeps ``P`` positions × ``V`` vectors (8·V channels) in registers; the weights are
packed by blocks of 8 channels, [block][tap][channel] (`floatpack.pack` with ``rows`` 8), the
vectors of a call's consecutive blocks a block apart. Outputs are stored lane by lane, one plane
apart (NCHW), the bias added and the layer's activation applied first (`_activate`'s `EPILOGUES`).
A class's last positions are run by a kernel of fewer positions, its last position computed twice
where they are fewer still (the same value stored twice).

Summation order: every output is ``(((x0·w0 + x1·w1) + x2·w2) + ...) + bias`` over the taps inside
the plane in (c, a, b) order, each step one fused multiply-add in float32, from +0: the chain of
`floatconv`'s kernels without their steps that add a product of the padding's zero. Such a step
leaves a sum as it is (x + 0 = x for every x but -0, and a chain from +0 reaches -0 only through a
product below float32's smallest subnormal), so the results are the direct conv's bits, for any
batch and thread count; a weight that is infinite or NaN, which the direct conv multiplies by the
padding's zero into a NaN, is not multiplied here where it meets only padding.
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

from alls.runtime.kernels._activate import splat, switch
from alls.runtime.kernels._common import njit

__all__ = ["lane_kernel", "takes", "tables", "lanes_part", "lanes_direct", "LANES", "UP_TO", "MIN_TAPS"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
LANES = 8  # output channels a vector, and a packed block of the weights
UP_TO = 64  # outputs a plane: at most this many, the conv runs here (`takes`)
MIN_TAPS = 27  # taps an output (C·KH·KW): at least this many

_alloca_once_value: Callable[[Any, Any], Any] = cgutils.alloca_once_value
_get_or_insert_function: Callable[[Any, Any, str], Any] = cgutils.get_or_insert_function
Codegen = Callable[[Any, Any, Any, Any], Any]


@functools.cache
def lane_kernel(vectors: int, positions: int) -> Any:
    """The micro-kernel of ``positions`` positions × ``vectors``·8 channels.

    ``_lk(xf, pos, p0, last, taps, t0, t1, wf, wb, step, bias, bb, of, ob, plane, count, code, act)``: for
    each position ``p`` < ``positions`` its entry ``q = min(p0 + p, last)`` of ``pos`` (two int64s an
    entry: the input's offset ``xb`` and the output's ``o``), and for every tap ``t`` from ``t0`` to
    ``t1`` (two int64s: the input's offset ``xo`` and the weights' ``wo``), each vector ``v``:
    ``acc[p][v] = fma(xf[xb + xo], wf[wb + v·step + wo : +8], acc[p][v])``, from zero; then channel
    ``8v + l`` < ``count`` of position ``p`` is ``of[ob + o + (8v + l)·plane] = f(acc[p][v] +
    bias[bb + 8v :])[l]``, ``f`` the activation ``code`` names (`EPILOGUES`, constants ``act``). It
    reads and writes nothing else; the caller guarantees every index is in bounds.
    """

    def _lk(typingctx: Any, xf: Any, pos: Any, p0: Any, last: Any, taps: Any, t0: Any, t1: Any, wf: Any, wb: Any,
            step: Any, bias: Any, bb: Any, of: Any, ob: Any, plane: Any, count: Any, code: Any,
            act: Any) -> tuple[Any, Codegen]:
        sig = types.void(xf, pos, p0, last, taps, t0, t1, wf, wb, step, bias, bb, of, ob, plane, count, code, act)
        return sig, codegen

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        xa, pa, p0v, lastv, ta, t0v, t1v, wa, wbv, stepv, ba, bbv, oa, obv, planev, cv, code_v, act_a = args
        s = signature.args
        X = context.make_array(s[0])(context, builder, xa)
        Q = context.make_array(s[1])(context, builder, pa)
        T = context.make_array(s[4])(context, builder, ta)
        W = context.make_array(s[7])(context, builder, wa)
        B = context.make_array(s[10])(context, builder, ba)
        O = context.make_array(s[12])(context, builder, oa)
        C = context.make_array(s[17])(context, builder, act_a)
        f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
        vec = ir.VectorType(f32, LANES)
        fma = _get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), "llvm.fma.v8f32")
        accs = [_alloca_once_value(builder, ir.Constant(vec, None)) for _ in range(positions * vectors)]
        two = ir.Constant(i64, 2)

        def entry(table: Any, index: Any, k: int) -> Any:
            return builder.load(builder.gep(table, [builder.add(builder.mul(index, two), ir.Constant(i64, k))]))

        def vector(data: Any, index: Any) -> Any:
            return builder.load(builder.bitcast(builder.gep(data, [index]), vec.as_pointer()), align=4)

        rows = []
        for p in range(positions):
            at = builder.add(p0v, ir.Constant(i64, p))
            rows.append(builder.select(builder.icmp_signed("<", at, lastv), at, lastv))
        xbs = [entry(Q.data, q, 0) for q in rows]
        with cgutils.for_range_slice(builder, t0v, t1v, ir.Constant(i64, 1)) as (tap, _):
            xo, wo = entry(T.data, tap, 0), entry(T.data, tap, 1)
            w_at = builder.add(wbv, wo)
            ws = [vector(W.data, builder.add(w_at, builder.mul(stepv, ir.Constant(i64, v)))) for v in range(vectors)]
            for p in range(positions):
                xv = splat(builder, builder.load(builder.gep(X.data, [builder.add(xbs[p], xo)])))
                for v in range(vectors):
                    slot = accs[p * vectors + v]
                    builder.store(builder.call(fma, [xv, ws[v], builder.load(slot)]), slot)
        constants = [splat(builder, builder.load(builder.gep(C.data, [ir.Constant(i64, k)]))) for k in range(2)]
        biases = [vector(B.data, builder.add(bbv, ir.Constant(i64, LANES * v))) for v in range(vectors)]
        obs = [builder.add(obv, entry(Q.data, q, 1)) for q in rows]
        full = builder.icmp_signed(">=", cv, ir.Constant(i64, LANES * vectors))

        def store(activate: Any) -> None:
            for p in range(positions):
                for v in range(vectors):
                    y = activate(builder, builder.fadd(builder.load(accs[p * vectors + v]), biases[v]), constants)
                    for lane in range(LANES):
                        channel = LANES * v + lane
                        at = builder.add(obs[p], builder.mul(planev, ir.Constant(i64, channel)))
                        value = builder.extract_element(y, ir.Constant(i32, lane))
                        if channel == 0:
                            builder.store(value, builder.gep(O.data, [at]))
                            continue
                        inside = builder.or_(full, builder.icmp_signed("<", ir.Constant(i64, channel), cv))
                        with builder.if_then(inside, likely=True):
                            builder.store(value, builder.gep(O.data, [at]))

        switch(builder, code_v, store)
        return context.get_dummy_value()

    return intrinsic(_lk)


_K26, _K24, _K22 = lane_kernel(2, 6), lane_kernel(2, 4), lane_kernel(2, 2)
_K16, _K14, _K12 = lane_kernel(1, 6), lane_kernel(1, 4), lane_kernel(1, 2)


def takes(ho: int, wo: int, c: int, kh: int, kw: int) -> bool:
    """Whether a dense conv of ``c`` input channels to a plane of ``ho`` x ``wo`` outputs with a ``kh``
    x ``kw`` kernel runs here: a plane of at most `UP_TO` outputs, a kernel of more than one tap (a
    1x1 conv reads no padding, and has its own in-place form) and at least `MIN_TAPS` taps an output
    (fewer, and the lane-by-lane stores cost more than the vector stores of `floatconv`'s forms:
    the digits CNN's first conv, 8x8 from one channel, 6.0 against 5.2 µs at batch 8)."""
    return ho * wo <= UP_TO and kh * kw > 1 and c * kh * kw >= MIN_TAPS


def tables(shape: tuple[int, ...], w_shape: tuple[int, ...], strides: tuple[int, int], dilations: tuple[int, int],
           pads: tuple[int, int, int, int]) -> tuple[I64, I64, I64]:
    """The taps, the classes and the positions of a geometry, as `lanes_part` reads them.

    ``taps``: per class, its taps inside the plane in (c, a, b) order, two int64s each: the offset
    c·H·W + a·dh·W + b·dw from a position's input offset, and the tap's offset (c·KH + a)·KW + b
    times 8 into a packed block. ``classes``: four int64s each, its taps' range and its positions'.
    ``positions``: two int64s each: i·C·H·W + (y·sh - top)·W + z·sw - left (where its window's
    first tap would lie, inside the plane or not) and i·C_out·Ho·Wo + y·Wo + z.
    """
    n, c, h, w = shape
    out_c, _, kh, kw = w_shape
    (sh, sw), (dh, dw), (top, left, bottom, right) = strides, dilations, pads
    ho = (h + top + bottom - (kh - 1) * dh - 1) // sh + 1
    wo = (w + left + right - (kw - 1) * dw - 1) // sw + 1
    rows = [_inside(y * sh - top, kh, dh, h) for y in range(ho)]
    cols = [_inside(z * sw - left, kw, dw, w) for z in range(wo)]
    members: dict[tuple[int, int, int, int], list[tuple[int, int]]] = {}
    for y in range(ho):
        for z in range(wo):
            members.setdefault((*rows[y], *cols[z]), []).append((y, z))
    taps: list[int] = []
    classes: list[int] = []
    positions: list[int] = []
    for (a0, a1, b0, b1), where in members.items():
        first_tap, first_position = len(taps) // 2, len(positions) // 2
        for ch in range(c):
            for a in range(a0, a1):
                for b in range(b0, b1):
                    taps += [ch * h * w + a * dh * w + b * dw, ((ch * kh + a) * kw + b) * LANES]
        for i in range(n):
            for y, z in where:
                positions += [i * c * h * w + (y * sh - top) * w + z * sw - left, i * out_c * ho * wo + y * wo + z]
        classes += [first_tap, len(taps) // 2, first_position, len(positions) // 2]
    return np.array(taps, np.int64), np.array(classes, np.int64), np.array(positions, np.int64)


def _inside(start: int, k: int, d: int, size: int) -> tuple[int, int]:
    """The range of kernel taps ``a`` whose input ``start + a·d`` lies inside ``size`` (empty: (0, 0))."""
    first = next((a for a in range(k) if 0 <= start + a * d < size), k)
    last = next((a + 1 for a in reversed(range(k)) if 0 <= start + a * d < size), first)
    return (first, last) if first < last else (0, 0)


@njit(parallel=True, cache=True)
def lanes_direct(x: F32, wp: F32, bp: F32, taps: I64, classes: I64, out: F32, positions: I64, code: int, act: F32,
                 parts: int) -> None:
    """`lanes_part` with its pairs of channel blocks in ``parts`` ranges on parallel threads."""
    pairs = -(-(bp.shape[0] // LANES) // 2)
    for part in prange(parts):
        _pairs(x, wp, bp, taps, classes, out, positions, code, act, part * pairs // parts, (part + 1) * pairs // parts)


@njit(cache=True)
def lanes_part(x: F32, wp: F32, bp: F32, taps: I64, classes: I64, out: F32, positions: I64, code: int,
               act: F32) -> None:
    """The conv of NCHW float32 ``x`` into ``out`` (N, C_out, Ho, Wo), on the calling thread: ``wp`` and
    ``bp`` packed by blocks of 8 channels (`floatpack.pack`), ``taps``, ``classes`` and ``positions``
    as `tables` makes them for ``x``'s shape; activated as ``code`` and ``act`` say (`lane_kernel`)."""
    _pairs(x, wp, bp, taps, classes, out, positions, code, act, 0, -(-(bp.shape[0] // LANES) // 2))


@njit(cache=True)
def _pairs(x: F32, wp: F32, bp: F32, taps: I64, classes: I64, out: F32, positions: I64, code: int, act: F32,
           j0: int, j1: int) -> None:
    """Pairs ``j0`` to ``j1`` of channel blocks (16 channels; the last block alone where their count is
    odd), each over every class and every block of its positions: a pair's weights stay in the L1
    cache while all the positions read them."""
    out_c, plane = out.shape[1], out.shape[2] * out.shape[3]
    blocks, step = bp.shape[0] // LANES, wp.shape[0] // (bp.shape[0] // LANES)
    xf, of = x.reshape(-1), out.reshape(-1)
    for j in range(j0, j1):
        blk = 2 * j
        count, wb, bb, ob = min(2 * LANES, out_c - blk * LANES), blk * step, blk * LANES, blk * LANES * plane
        for k in range(classes.shape[0] // 4):
            t0, t1, p0, p1 = classes[4 * k], classes[4 * k + 1], classes[4 * k + 2], classes[4 * k + 3]
            last = p1 - 1
            p = p0
            if blk + 1 < blocks:
                while p1 - p > 4:
                    _K26(xf, positions, p, last, taps, t0, t1, wp, wb, step, bp, bb, of, ob, plane, count, code, act)
                    p += 6
                if p1 - p > 2:
                    _K24(xf, positions, p, last, taps, t0, t1, wp, wb, step, bp, bb, of, ob, plane, count, code, act)
                elif p < p1:
                    _K22(xf, positions, p, last, taps, t0, t1, wp, wb, step, bp, bb, of, ob, plane, count, code, act)
                continue
            while p1 - p > 4:
                _K16(xf, positions, p, last, taps, t0, t1, wp, wb, step, bp, bb, of, ob, plane, count, code, act)
                p += 6
            if p1 - p > 2:
                _K14(xf, positions, p, last, taps, t0, t1, wp, wb, step, bp, bb, of, ob, plane, count, code, act)
            elif p < p1:
                _K12(xf, positions, p, last, taps, t0, t1, wp, wb, step, bp, bb, of, ob, plane, count, code, act)
