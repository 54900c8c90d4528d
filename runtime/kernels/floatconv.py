"""The float executor's dense conv (KH·KW > 1): a direct convolution over a register-blocked
micro-kernel, with no im2col columns.

The im2col form (one BLAS product per image over a columns buffer KH·KW times the input's size)
spent as much time writing and reading the columns as multiplying. Here each image is copied
once, padded, into scratch, split into its stride phases (phase (p, q) of a channel holds the
padded plane's [p::sh, q::sw]; one phase when the stride is 1), so that every tap (c, a, b) reads
the outputs of a row as one contiguous run: output (y, z) lies at y·Wq + z of a phase of width
Wq, and a tap is a fixed offset into the image's scratch (``toff``). The positions past a row's
Wo columns are computed and dropped. Channels lie an odd number of cache lines apart in the
scratch, so that the taps of many channels do not compete for one cache set.

The micro-kernel (`block_kernel`, LLVM IR through ``numba.extending.intrinsic``, as the integer
kernels' in ``_simd.py``) keeps ``ROWS`` output channels × ``LANES`` consecutive positions in
registers (``ROWS·LANES/8`` vectors of 8 floats) and, for every tap, loads the positions' inputs
once and multiplies them by each channel's weight, broadcast. The blocks of a strip of output
rows go to scratch, from which their rows are copied out, or, where no column is dropped
(Wq = Wo), straight into the output planes. The loops run over a strip's blocks of positions,
then over the channel blocks, so that the inputs of a block stay in the L1 cache while every
channel block reads them.

The store adds the bias and applies the layer's activation where it is one of `EPILOGUES` (ReLU,
ReLU6, clip, LeakyReLU, hard sigmoid, hardswish, sigmoid, SiLU: `_activate`), so each output is
written once; the BLAS paths of `alls.runtime.ops.conv` (1x1 and grouped convs) give their products
the same step in one pass per image (`bias_activate`).

Where an image's plane fills less than `FOLD_BELOW` of its blocks' lanes (small planes: a 4x4
output padded to 6x6 fills 16 of 32), `conv` folds the batch into the positions instead
(`floatfold`), with the same micro-kernel and the same sums; a small stride-1 plane as wide as its
input, of whole blocks, is read in place instead, the padding masked off the loads (`floatfold.in_place`); a
plane of at most `floatlanes.UP_TO` outputs runs with the output channels in the lanes and no tap of the
padding (`floatlanes`). The weights are packed once per
parameter array (`floatpack.packed`) and a geometry's offsets and kernel worked out once (`_Plan`).

Summation order: every output is ``(((x0·w0 + x1·w1) + x2·w2) + ...) + bias``, the taps in the
order (c, a, b), each step one fused multiply-add in float32. A result therefore depends neither
on the batch, the blocking, the thread count nor a BLAS library (the im2col path's order was
OpenBLAS's, which changes with the matrix sizes and the machine); the two differ by float32
rounding (relative 1e-7 to 1e-6).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from alls.runtime.kernels import _parallel
from alls.runtime.kernels._activate import EPILOGUES, Emit, constants, splat, switch
from alls.runtime.kernels._common import njit
from alls.runtime.kernels.floatpack import ROWS, packed, packed_with_copy, unchanged
from alls.values import Activation

__all__ = ["conv", "prepare", "conv_direct", "conv_part", "offsets", "packed", "block_kernel", "run_block", "bias_activate", "fused_activation",
           "EPILOGUES", "ROWS", "LANES"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
LANES = 16  # consecutive output positions per block: two 8-wide vectors
_WIDTH = 8

_alloca_once_value: Callable[[Any, Any], Any] = cgutils.alloca_once_value
_get_or_insert_function: Callable[[Any, Any, str], Any] = cgutils.get_or_insert_function
Codegen = Callable[[Any, Any, Any, Any], Any]


@functools.cache
def block_kernel(rows: int, lanes: int, step: int = 0, masked: bool = False, as_laid: bool = False) -> Any:
    """The micro-kernel for ``rows`` channels × ``lanes`` positions (a multiple of 8), its weights
    ``step`` apart from one tap to the next (default ``rows``: a block packed for it).

    ``_mk(xf, xb, toff, wf, wb, bias, af, ab, pitch, count, code, act)``: for every tap ``t`` of
    ``toff``, and each row ``j``, ``acc[j] = fma(xf[xb + toff[t] : +lanes], wf[wb + t·step + j],
    acc[j])``, from zero; then ``af[ab + j·pitch : +lanes] = f(acc[j] + bias[j])`` for the first
    ``count`` rows, ``f`` the activation ``code`` names (`EPILOGUES`, with its constants ``act``).
    It reads and writes nothing else; the caller guarantees every index is in bounds.

    ``masked``: ``_mk(xf, xb, toff, mf, mb, wf, ...)``, ``toff`` twice as long: for tap ``t``, the
    inputs are read under the mask ``mf[mb + toff[T + t] :]`` (``T`` taps; int32 lanes, negative:
    read), zeros in the other lanes, which are not read (`floatfold.in_place`: the padding).
    ``as_laid``: the weights as the layer holds them, (C_out, T) in C order, not packed: row ``j``'s
    tap ``t`` at ``wf[wb + j·T + t]``; a row past ``count`` reads row ``count - 1`` (its sums are not
    stored), so nothing past the layer's last channel is read.
    """
    vectors = lanes // _WIDTH
    step = step or rows

    def _mk_masked(typingctx: Any, xf: Any, xb: Any, toff: Any, mf: Any, mb: Any, wf: Any, wb: Any, bias: Any,
                   af: Any, ab: Any, pitch: Any, count: Any, code: Any, act: Any) -> tuple[Any, Codegen]:
        sig = types.void(xf, xb, toff, mf, mb, wf, wb, bias, af, ab, pitch, count, code, act)
        return sig, _codegen

    def _mk_plain(typingctx: Any, xf: Any, xb: Any, toff: Any, wf: Any, wb: Any, bias: Any, af: Any, ab: Any,
                  pitch: Any, count: Any, code: Any, act: Any) -> tuple[Any, Codegen]:
        sig = types.void(xf, xb, toff, wf, wb, bias, af, ab, pitch, count, code, act)
        return sig, _codegen

    def _codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        if masked:
            xa, xbv, ta, ma, mbv, *args = args
            M = context.make_array(signature.args[3])(context, builder, ma)
            signature = types.void(*signature.args[:3], *signature.args[5:])
            args = [xa, xbv, ta, *args]
        return codegen(context, builder, signature, args, *((M, mbv) if masked else ()))

    def codegen(context: Any, builder: Any, signature: Any, args: Any, M: Any = None, mbv: Any = None) -> Any:
        xa, xbv, ta, wa, wbv, ba, aa, abv, pv, cv, code_v, act_a = args
        X = context.make_array(signature.args[0])(context, builder, xa)
        T = context.make_array(signature.args[2])(context, builder, ta)
        W = context.make_array(signature.args[3])(context, builder, wa)
        B = context.make_array(signature.args[5])(context, builder, ba)
        A = context.make_array(signature.args[6])(context, builder, aa)
        C = context.make_array(signature.args[11])(context, builder, act_a)
        f32, i64 = ir.FloatType(), ir.IntType(64)
        vec = ir.VectorType(f32, _WIDTH)
        fma = _get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), "llvm.fma.v8f32")
        accs = [_alloca_once_value(builder, ir.Constant(vec, None)) for _ in range(rows * vectors)]

        def load(data: Any, index: Any) -> Any:
            return builder.load(builder.bitcast(builder.gep(data, [index]), vec.as_pointer()), align=4)

        ntap = builder.extract_value(T.shape, 0)
        if masked:
            ntap = builder.sdiv(ntap, ir.Constant(i64, 2))
            ivec, bits = ir.VectorType(ir.IntType(32), _WIDTH), ir.VectorType(ir.IntType(1), _WIDTH)
            masked_load = _get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec.as_pointer(), ir.IntType(32), bits, vec]),
                "llvm.masked.load.v8f32.p0")
        if as_laid:  # row j's weights, rows past the count reading the last one
            last = builder.sub(cv, ir.Constant(i64, 1))
            row_at = [builder.mul(builder.select(builder.icmp_signed("<", ir.Constant(i64, j), cv), ir.Constant(i64, j),
                                                 last), ntap) for j in range(rows)]
        else:
            row_at = [ir.Constant(i64, j) for j in range(rows)]
        with cgutils.for_range(builder, ntap) as tap:
            base = builder.add(xbv, builder.load(builder.gep(T.data, [tap.index])))
            if masked:
                mat = builder.add(mbv, builder.load(builder.gep(T.data, [builder.add(ntap, tap.index)])))
                xs = []
                for v in range(vectors):
                    mp = builder.bitcast(builder.gep(M.data, [builder.add(mat, ir.Constant(i64, _WIDTH * v))]),
                                         ivec.as_pointer())
                    m = builder.icmp_signed("<", builder.load(mp, align=4), ir.Constant(ivec, None))
                    xp = builder.bitcast(builder.gep(X.data, [builder.add(base, ir.Constant(i64, _WIDTH * v))]),
                                         vec.as_pointer())
                    xs.append(builder.call(masked_load, [xp, ir.Constant(ir.IntType(32), 4), m,
                                                         ir.Constant(vec, None)]))
            else:
                xs = [load(X.data, builder.add(base, ir.Constant(i64, _WIDTH * v))) for v in range(vectors)]
            if as_laid:
                w_at = builder.add(wbv, tap.index)
            else:
                w_at = builder.add(wbv, builder.mul(tap.index, ir.Constant(i64, step)))
            for j in range(rows):
                w = splat(builder, builder.load(builder.gep(W.data, [builder.add(w_at, row_at[j])])))
                for v in range(vectors):
                    slot = accs[j * vectors + v]
                    builder.store(builder.call(fma, [xs[v], w, builder.load(slot)]), slot)
        constants = [splat(builder, builder.load(builder.gep(C.data, [ir.Constant(i64, k)]))) for k in range(2)]

        def store(activate: Emit) -> None:
            for j in range(rows):
                with builder.if_then(builder.icmp_signed("<", ir.Constant(i64, j), cv)):
                    b = splat(builder, builder.load(builder.gep(B.data, [ir.Constant(i64, j)])))
                    row = builder.add(abv, builder.mul(pv, ir.Constant(i64, j)))
                    for v in range(vectors):
                        ptr = builder.gep(A.data, [builder.add(row, ir.Constant(i64, _WIDTH * v))])
                        y = activate(builder, builder.fadd(builder.load(accs[j * vectors + v]), b), constants)
                        builder.store(y, builder.bitcast(ptr, vec.as_pointer()), align=4)

        switch(builder, code_v, store)
        return context.get_dummy_value()

    return intrinsic(_mk_masked if masked else _mk_plain)


_MK = block_kernel(ROWS, LANES)
_MK4, _MK2 = block_kernel(4, LANES, ROWS), block_kernel(2, LANES, ROWS)  # the first rows of a packed block


_MKM, _MKM4, _MKM2 = (block_kernel(ROWS, LANES, 0, True, True), block_kernel(4, LANES, 0, True, True),
                      block_kernel(2, LANES, 0, True, True))
_MKL, _MKL4, _MKL2 = (block_kernel(ROWS, LANES, 0, False, True), block_kernel(4, LANES, 0, False, True),
                      block_kernel(2, LANES, 0, False, True))


@njit(cache=True, inline="always")
def run_laid(xf: F32, xb: int, toff: I64, wf: F32, wb: int, bias: F32, af: F32, ab: int, pitch: int, count: int,
             code: int, act: F32) -> None:
    """`run_block` with the weights as the layer holds them (`block_kernel`'s ``as_laid``): ``wb`` the
    block's first channel's, ``bias`` from its first channel."""
    if count > 4:
        _MKL(xf, xb, toff, wf, wb, bias, af, ab, pitch, count, code, act)
    elif count > 2:
        _MKL4(xf, xb, toff, wf, wb, bias, af, ab, pitch, count, code, act)
    else:
        _MKL2(xf, xb, toff, wf, wb, bias, af, ab, pitch, count, code, act)


@njit(cache=True, inline="always")
def run_masked(xf: F32, xb: int, toff: I64, mf: npt.NDArray[np.int32], mb: int, wp: F32, wb: int, bias: F32, af: F32,
               ab: int, pitch: int, count: int, code: int, act: F32) -> None:
    """`run_laid` with the inputs read under masks (`block_kernel`'s ``masked``)."""
    if count > 4:
        _MKM(xf, xb, toff, mf, mb, wp, wb, bias, af, ab, pitch, count, code, act)
    elif count > 2:
        _MKM4(xf, xb, toff, mf, mb, wp, wb, bias, af, ab, pitch, count, code, act)
    else:
        _MKM2(xf, xb, toff, mf, mb, wp, wb, bias, af, ab, pitch, count, code, act)


@njit(cache=True, inline="always")
def run_block(xf: F32, xb: int, toff: I64, wp: F32, wb: int, bias: F32, af: F32, ab: int, pitch: int, count: int,
              code: int, act: F32) -> None:
    """`block_kernel`'s block of ``count`` channels (at most `ROWS`): a block of 4 or 2 rows where
    that is all it has (the last of a layer whose channels are not a multiple of `ROWS`), so that no
    row is computed for nothing. The same operations for each output whichever runs it."""
    if count > 4:
        _MK(xf, xb, toff, wp, wb, bias, af, ab, pitch, count, code, act)
    elif count > 2:
        _MK4(xf, xb, toff, wp, wb, bias, af, ab, pitch, count, code, act)
    else:
        _MK2(xf, xb, toff, wp, wb, bias, af, ab, pitch, count, code, act)


def fused_activation(activation: Activation | None, params: dict[str, float]) -> tuple[int, float, float] | None:
    """``activation`` with the layer's ``params`` as `conv` and `bias_activate` take it (its `EPILOGUES`
    number and two float32 constants), or None when they do not fuse it."""
    if activation is None or activation not in EPILOGUES:
        return None
    return EPILOGUES[activation], *constants(activation, params)


@intrinsic
def _activate_intrinsic(typingctx: Any, af: Any, at: Any, count: Any, b: Any, code: Any, act: Any) -> tuple[Any, Codegen]:
    """``af[at : at + 8·count] = f(af[at : +8·count] + b)``, ``f`` the activation ``code`` names with its
    constants ``act``: the store of `block_kernel`, over a run of vectors already summed."""
    sig = types.void(af, at, count, b, code, act)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aa, atv, nv, bv, code_v, act_a = args
        A = context.make_array(signature.args[0])(context, builder, aa)
        C = context.make_array(signature.args[5])(context, builder, act_a)
        i64 = ir.IntType(64)
        vec = ir.VectorType(ir.FloatType(), _WIDTH)
        bias = splat(builder, bv)
        constants = [splat(builder, builder.load(builder.gep(C.data, [ir.Constant(i64, k)]))) for k in range(2)]

        def emit(activate: Emit) -> None:
            with cgutils.for_range(builder, nv) as loop:
                at = builder.add(atv, builder.mul(loop.index, ir.Constant(i64, _WIDTH)))
                ptr = builder.bitcast(builder.gep(A.data, [at]), vec.as_pointer())
                builder.store(activate(builder, builder.fadd(builder.load(ptr, align=4), bias), constants), ptr, align=4)

        switch(builder, code_v, emit)
        return context.get_dummy_value()

    return sig, codegen


_activate_run: Any = _activate_intrinsic  # called from compiled code with the arguments after ``typingctx``


@njit(cache=True)
def bias_activate(out: F32, bias: F32, code: int, act: F32) -> None:
    """``out`` (N, C_out, positions), contiguous, plus ``bias`` (C_out,) and activated as ``code``
    and ``act`` say (`block_kernel`), in place: a BLAS product's outputs get what the direct conv's
    store gives its own, the same float32 steps, in one pass."""
    n, out_c, m = out.shape
    flat = out.reshape(-1)
    whole, rest = m // _WIDTH, m % _WIDTH
    tail = np.zeros(_WIDTH, np.float32)
    for i in range(n):
        for o in range(out_c):
            at = (i * out_c + o) * m
            _activate_run(flat, at, whole, bias[o], code, act)
            if rest:
                end = at + whole * _WIDTH
                for q in range(rest):
                    tail[q] = flat[end + q]
                _activate_run(tail, 0, 1, bias[o], code, act)
                for q in range(rest):
                    flat[end + q] = tail[q]
_STRIP_BYTES = 1 << 17  # a strip's outputs in scratch: within the L2 cache beside the image's inputs
FOLD_BELOW = 0.85  # the share of the direct conv's lanes an image's plane fills, below which the batch is folded


def conv(x: F32, weight: F32, bias: F32, strides: tuple[int, int], dilations: tuple[int, int],
         pads: tuple[int, int, int, int], threads: int | None = None,
         activation: tuple[int, float, float] = (0, 0.0, 0.0), fold: bool | None = None) -> F32:
    """ONNX Conv (one group) of an NCHW float32 ``x`` with ``weight`` (C_out, C, KH, KW), ``bias``
    (C_out,), ``strides``, ``dilations`` and ``pads`` (top, left, bottom, right), then the
    ``activation`` (its `EPILOGUES` number and two constants; 0: none) as each output is stored.
    Its jobs are cut into at most ``threads`` parts (default: the runtime call's budget), run on the
    threads `_parallel` chooses for the call site; the result is the same on any number.

    ``fold``: whether the batch is folded into the positions (`floatfold`; the same bits); by
    default, when an image's plane fills less than `FOLD_BELOW` of the lanes of its blocks. What a
    geometry needs besides the arrays (`_Plan`) is worked out once."""
    if x.dtype != np.float32 or not x.flags.c_contiguous:
        x = np.ascontiguousarray(x, np.float32)
    plan = _planned(x.shape, weight.shape, strides, dilations, pads, fold)
    if plan.laid:  # the weights read as they lie
        wp, bp = np.ascontiguousarray(weight, np.float32), np.ascontiguousarray(bias, np.float32).reshape(-1)
    else:
        wp, bp = packed(weight, bias, plan.rows)
    out = np.empty(plan.out_shape, np.float32)
    act = _constants.get(activation)
    if act is None:
        act = _constants[activation] = np.array(activation[1:], np.float32)
    parts = min(_parallel.budget() if threads is None else threads, plan.jobs)
    if parts <= 1:  # no parallel region: it would cost more than a small layer
        _parallel.run(plan.key, plan.work, 1, plan.serial, x, wp, bp, plan.toff, plan.used, out, *plan.args,
                      activation[0], act, *plan.alone)
    else:
        _parallel.run(plan.key, plan.work, parts, plan.parallel, x, wp, bp, plan.toff, plan.used, out, *plan.args,
                      activation[0], act, parts)
    return out


def prepare(weight: F32, bias: F32, strides: tuple[int, int], dilations: tuple[int, int],
            pads: tuple[int, int, int, int], activation: tuple[int, float, float] = (0, 0.0, 0.0)
            ) -> Callable[[F32], F32]:
    """`conv` bound to ``weight`` and ``bias`` (float32, contiguous), a geometry and an activation:
    a call of an input does the kernel call and the output's allocation. The plan is worked out
    once per input shape; the packed weights are checked against a copy of the arrays on every call
    (`floatpack.unchanged`) and packed again when they were changed in place. A layer of more work
    than one thread takes runs as `conv` runs it, on the threads `_parallel` chooses."""
    code, act = activation[0], np.array(activation[1:], np.float32)
    w_shape = weight.shape
    state: dict[int, tuple[F32, F32, F32]] = {}  # the packed weights by the plans' layout, and their copy
    plain = weight.dtype == bias.dtype == np.float32 and weight.flags.c_contiguous and bias.flags.c_contiguous and \
        bias.ndim == 1
    plans: dict[tuple[int, ...], _Plan] = {}  # by input shape, in front of `_plans`

    def call(x: F32) -> F32:
        if x.dtype != np.float32 or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, np.float32)
        plan = plans.get(x.shape)
        if plan is None:
            if len(plans) > 64:
                plans.clear()
            plan = plans[x.shape] = _planned(x.shape, w_shape, strides, dilations, pads, None)
        if plan.work >= 2 * _parallel.WORK_PER_THREAD and plan.jobs > 1 or plan.laid and not plain:
            return conv(x, weight, bias, strides, dilations, pads, activation=activation)
        if plan.laid:  # the arrays themselves: nothing packed, nothing to check
            out = np.empty(plan.out_shape, np.float32)
            plan.serial(x, weight, bias, plan.toff, plan.used, out, code, act)
            return out
        kept = state.get(plan.rows)
        if kept is None or weight.shape != w_shape or not unchanged(weight, bias, kept[2]):
            kept = state[plan.rows] = packed_with_copy(weight, bias, plan.rows)
        wp, bp = kept[0], kept[1]
        out = np.empty(plan.out_shape, np.float32)
        plan.serial(x, wp, bp, plan.toff, plan.used, out, *plan.args, code, act, *plan.alone)
        return out

    return call


@dataclass(frozen=True)
class _Plan:
    """How `conv` runs a geometry: its output's shape, the work and call site `_parallel` weighs, the
    kernel alone (``serial``, with ``alone`` after its arguments) and on parallel threads
    (``parallel``, up to ``jobs`` parts), and the tap offsets and integers they take."""

    out_shape: tuple[int, int, int, int]
    work: int
    key: tuple[object, ...]
    serial: Callable[..., None]
    parallel: Callable[..., None]
    jobs: int
    toff: I64
    used: npt.NDArray[Any]  # the phases the taps read; the masks of a conv read in place; `floatlanes`' classes
    args: tuple[int | I64, ...]
    alone: tuple[int, ...]
    laid: bool = False  # the kernel reads the weights as the layer holds them, not packed
    rows: int = ROWS  # else the channels of a packed block (`floatpack.pack`)


_plans: dict[tuple[object, ...], _Plan] = {}


def _planned(shape: tuple[int, ...], w_shape: tuple[int, ...], strides: tuple[int, int], dilations: tuple[int, int],
             pads: tuple[int, int, int, int], fold: bool | None) -> _Plan:
    """`_plan` of a geometry, worked out once (the last 4096 kept)."""
    spec = (shape, w_shape, strides, dilations, pads, fold)
    plan = _plans.get(spec)
    if plan is None:
        plan = _plans[spec] = _plan(shape, w_shape, strides, dilations, pads, fold)
        if len(_plans) > 4096:
            _plans.pop(next(iter(_plans)))
    return plan
_constants: dict[tuple[int, float, float], F32] = {}


def _plan(shape: tuple[int, ...], w_shape: tuple[int, ...], strides: tuple[int, int], dilations: tuple[int, int],
          pads: tuple[int, int, int, int], fold: bool | None) -> _Plan:
    n, c, h, w = shape
    out_c, _, kh, kw = w_shape
    (sh, sw), (dh, dw) = strides, dilations
    top, left, bottom, right = pads
    ho = (h + top + bottom - (kh - 1) * dh - 1) // sh + 1
    wo = (w + left + right - (kw - 1) * dw - 1) // sw + 1
    hq, wq = -(-(h + top + bottom) // sh), -(-(w + left + right) // sw)
    out_shape, work = (n, out_c, ho, wo), n * out_c * ho * wo * c * kh * kw
    if fold is None and floatlanes.takes(ho, wo, c, kh, kw):  # a tiny plane: the channels in the lanes
        taps, classes, positions = floatlanes.tables(shape, w_shape, strides, dilations, pads)
        return _Plan(out_shape, work, ("float conv lanes", shape, w_shape, strides, dilations, pads),
                     floatlanes.lanes_part, floatlanes.lanes_direct, -(-out_c // (2 * floatlanes.LANES)), taps,
                     classes, (positions,), (), rows=floatlanes.LANES)
    if fold is None and floatfold.in_place(h, w, ho, wo, sh, sw):  # no copy: the input read under masks
        toff, masks = floatfold.in_place_masks(c, h, w, ho, kh, kw, dh, dw, top, left)
        return _Plan(out_shape, work, ("float conv in place", shape, w_shape, strides, dilations, pads),
                     floatfold.in_place_part, floatfold.in_place_direct, n * (ho * wo // LANES), toff, masks, (), (),
                     True)
    if fold is None:
        fold = ho * wo < FOLD_BELOW * LANES * -(-((ho - 1) * wq + wo) // LANES)
    if fold:  # groups of images whose scratch fits the L2 cache, the blocks of each the parallel jobs
        rows = ho + ((kh - 1) * dh) // sh
        g = floatfold.group_size(n, c, out_c, kh, kw, sh, dh, ho, wo)
        args = (kw, sh, sw, dw, top, left, g, rows)
        if floatfold.stacked(ho, wo):
            pitch = _lines(g * -(-rows * wo // LANES) * LANES + LANES)
            toff, used = floatfold.fold_offsets(c, kh, kw, sh, dh, wo, pitch)
            return _Plan(out_shape, work, ("float conv stacked", shape, w_shape, strides, dilations, pads),
                         floatfold.stack_part, floatfold.stack_direct, g * (ho * wo // LANES), toff, used,
                         (*args, pitch), ())
        pitch = _lines(rows * g * wo + LANES)  # the last block's dropped lanes read within the plane's zeros
        toff, used = floatfold.fold_offsets(c, kh, kw, sh, dh, g * wo, pitch)
        return _Plan(out_shape, work, ("float conv folded", shape, w_shape, strides, dilations, pads),
                     floatfold.fold_part, floatfold.fold_direct, -(-ho * g * wo // LANES), toff, used,
                     (*args, pitch), ())
    pitch = _lines(sh * sw * hq * wq)
    toff, used = offsets(c, kh, kw, sh, sw, dh, dw, hq, wq, pitch)
    strip = max(1, min(ho, _STRIP_BYTES // (4 * -(-out_c // ROWS) * ROWS * wq)))
    return _Plan(out_shape, work, ("float conv", shape, w_shape, strides, dilations, pads), conv_part, conv_direct,
                 n * -(-ho // strip), toff, used, (sh, sw, top, left, hq, wq, strip, pitch), (0, 1))


def _lines(size: int) -> int:
    """`_odd_lines`, in Python (a compiled call costs more than the arithmetic)."""
    lines = (size + 15) // 16
    return (lines + 1 - lines % 2) * 16


@njit(cache=True)
def offsets(c: int, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, hq: int, wq: int,
            pitch: int) -> tuple[I64, npt.NDArray[np.bool_]]:
    """Each tap's (c, a, b) offset into an image's phases (``pitch`` floats a channel, sh·sw phases of
    ``hq``·``wq``), and which phases the taps read."""
    toff = np.empty(c * kh * kw, np.int64)
    used = np.zeros(sh * sw, np.bool_)
    for ch in range(c):
        for a in range(kh):
            for b in range(kw):
                phase = ((a * dh) % sh) * sw + (b * dw) % sw
                used[phase] = True
                toff[(ch * kh + a) * kw + b] = ch * pitch + phase * hq * wq + ((a * dh) // sh) * wq + (b * dw) // sw
    return toff, used


@njit(parallel=True, cache=True)
def conv_direct(x: F32, wp: F32, bp: F32, toff: I64, used: npt.NDArray[np.bool_], out: F32, sh: int, sw: int,
                top: int, left: int, hq: int, wq: int, strip: int, pitch: int, code: int, act: F32,
                parts: int) -> None:
    """Dense conv of NCHW float32 ``x`` into ``out`` (N, C_out, Ho, Wo): ``wp``, ``bp``, ``toff``
    and ``used`` as `floatpack.pack` and `offsets` make them for an image's phases (`_phases`: ``pitch`` floats a
    channel, its sh·sw phases of ``hq`` rows of ``wq`` columns), activated as ``code`` and ``act`` say
    (`block_kernel`).

    The parallel jobs are (image, strip of ``strip`` output rows), in ``parts`` ranges (`conv_part`),
    each with its own scratch. Each output comes from the same operations whatever ``parts``.
    """
    for part in prange(parts):
        conv_part(x, wp, bp, toff, used, out, sh, sw, top, left, hq, wq, strip, pitch, code, act, part, parts)


@njit(cache=True)
def conv_part(x: F32, wp: F32, bp: F32, toff: I64, used: npt.NDArray[np.bool_], out: F32, sh: int, sw: int,
              top: int, left: int, hq: int, wq: int, strip: int, pitch: int, code: int, act: F32, part: int,
              parts: int) -> None:
    """Range ``part`` of ``parts`` of `conv_direct`'s jobs, with its scratch (an image's phases, copied
    when the range reaches a new image, and a strip's blocks); alone, on the calling thread, when
    ``parts`` is 1 (a parallel region costs more than a small layer)."""
    n, c = x.shape[0], x.shape[1]
    out_c, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    taps, blocks = toff.shape[0], bp.shape[0] // ROWS
    strips = (ho + strip - 1) // strip
    jobs = n * strips
    of = out.reshape(-1)
    flat, plane = wq == wo, ho * wo
    length = _odd_lines(strip * wq + LANES)
    scratch = np.empty(c * pitch + LANES, np.float32)  # the last block reads up to LANES past the end
    tmp = np.empty(blocks * ROWS * length, np.float32)
    image = -1
    for job in range(part * jobs // parts, (part + 1) * jobs // parts):
        i, s = job // strips, job % strips
        if i != image:
            _phases(x[i], scratch, used, top, left, sh, sw, hq, wq, pitch)
            image = i
        y0, y1 = s * strip, min(ho, (s + 1) * strip)
        span = (y1 - y0 - 1) * wq + wo
        count = (span + LANES - 1) // LANES
        full = span // LANES if flat else 0  # blocks stored in place: none past the strip
        for k in range(count):
            for blk in range(blocks):
                rows = min(ROWS, out_c - blk * ROWS)
                dst, at, stride = tmp, blk * ROWS * length + k * LANES, length
                if k < full:
                    dst, at, stride = of, (i * out_c + blk * ROWS) * plane + y0 * wo + k * LANES, plane
                run_block(scratch, y0 * wq + k * LANES, toff, wp, blk * taps * ROWS, bp[blk * ROWS:], dst, at, stride,
                    rows, code, act)
        for o in range(out_c):
            row = tmp[o * length:]
            if flat:
                dst = of[(i * out_c + o) * plane + y0 * wo:]
                for q in range(full * LANES, span):
                    dst[q] = row[q]
                continue
            for y in range(y0, y1):
                src, d = row[(y - y0) * wq:], out[i, o, y]
                for z in range(wo):
                    d[z] = src[z]


@njit(cache=True)
def _odd_lines(size: int) -> int:
    """``size`` floats rounded up to whole 64-byte lines, an odd number of them: channels that far
    apart fall in different cache sets (a multiple of 4 KiB would put them all in one)."""
    lines = (size + 15) // 16
    return (lines + 1 - lines % 2) * 16


@njit(cache=True)
def _phases(image: F32, scratch: F32, used: npt.NDArray[np.bool_], top: int, left: int, sh: int, sw: int, hq: int,
            wq: int, pitch: int) -> None:
    """One image (C, H, W) into ``scratch``: phase (p, q) of channel c, at c·pitch + (p·sw + q)·hq·wq,
    holds the padded plane's rows R·sh + p and columns Z·sw + q at R·wq + Z, zeros in the padding
    and past the plane. Only the ``used`` phases are filled."""
    c, h, w = image.shape
    if sh == sw == 1 and top == left == 0 and hq == h and wq == w:  # no padding: each plane in one run
        flat, size = image.reshape(-1), np.uint64(h * w)
        for ch in range(c):
            src, dst = np.uint64(ch) * size, np.uint64(ch * pitch)
            for k in range(size):
                scratch[dst + k] = flat[src + k]
        return
    for ch in range(c):
        for p in range(sh):
            for q in range(sw):
                if not used[p * sw + q]:
                    continue
                base = ch * pitch + (p * sw + q) * hq * wq
                first = min(wq, max(0, (left - q + sw - 1) // sw))  # the first Z with Z·sw + q >= left
                last = max(first, min(wq, (w + left - q + sw - 1) // sw))  # past the last inside the plane
                for r in range(hq):
                    at = base + r * wq
                    y = r * sh + p - top
                    if y < 0 or y >= h:
                        for z in range(wq):
                            scratch[at + z] = 0
                        continue
                    for z in range(first):
                        scratch[at + z] = 0
                    for z in range(last, wq):
                        scratch[at + z] = 0
                    src = image[ch, y]
                    if sw == 1:
                        for z in range(first, last):
                            scratch[at + z] = src[z - left]
                    else:
                        for z in range(first, last):
                            scratch[at + z] = src[z * sw + q - left]


from alls.runtime.kernels import floatfold, floatlanes  # noqa: E402  (floatfold builds on this module's micro-kernel)
