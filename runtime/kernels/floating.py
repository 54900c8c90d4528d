"""Numba kernels of the float executor (`alls.runtime.exec.native`) where NumPy would make a temporary
per step: the columns of a grouped conv. (The dense conv is `floatconv`'s, the depthwise `floatdw`'s.)

The parallel kernel `im2col` is called through `alls.runtime.kernels._parallel`, as the integer
kernels are: each call site (a kernel at one shape) runs on one thread or on the runtime call's
budget, by its work and by what its earlier calls measured, so that a busy machine never makes a
second thread cost more than it gives. `im2col_batch`, for layers whose columns over the whole batch
are small, is serial: its work is below what a thread repays.
"""

from __future__ import annotations

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

__all__ = ["im2col", "im2col_batch"]

F32 = npt.NDArray[np.float32]


def im2col(x: F32, i: int, cols: F32, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, top: int, left: int,
           ho: int, wo: int) -> None:
    """`_im2col` of image ``i`` on the threads `_parallel` chooses for its call site (its channels are the
    parts it splits; the work, the values it moves)."""
    key = ("float im2col", x.shape, kh, kw, sh, sw, dh, dw, top, left, ho, wo)
    _parallel.run(key, cols.size, x.shape[1], _im2col, x, i, cols, kh, kw, sh, sw, dh, dw, top, left, ho, wo)


@njit(parallel=True, cache=True)
def _im2col(x: F32, i: int, cols: F32, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, top: int, left: int,
            ho: int, wo: int) -> None:
    """Fill ``cols`` (C·KH·KW, Ho·Wo) with the conv columns of image ``i`` of an unpadded NCHW float32
    ``x``: row (c, a, b) holds tap (a, b) of channel c at every output position, zero where the tap
    falls in the padding. One buffer serves every image of a batch, so it stays allocated and warm."""
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    for ch in prange(c):
        for a in range(kh):
            for b in range(kw):
                row = cols[(ch * kh + a) * kw + b]
                off = b * dw - left
                z0 = min(wo, max(0, (sw - 1 - off) // sw))  # the first z with z·sw + off >= 0
                z1 = max(z0, min(wo, (w - 1 - off) // sw + 1))  # past the last with z·sw + off < w
                for y in range(ho):
                    dst = row[y * wo:(y + 1) * wo]
                    yy = y * sh + a * dh - top
                    if yy < 0 or yy >= h:
                        for z in range(wo):
                            dst[z] = 0
                        continue
                    src = x[i, ch, yy]
                    for z in range(z0):
                        dst[z] = 0
                    for z in range(z1, wo):
                        dst[z] = 0
                    if sw == 1:
                        for z in range(z0, z1):
                            dst[z] = src[z + off]
                    else:
                        for z in range(z0, z1):
                            dst[z] = src[z * sw + off]


@njit(cache=True)
def im2col_batch(x: F32, cols: F32, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, top: int, left: int,
                 ho: int, wo: int) -> None:
    """`im2col` of every image at once, serially, into ``cols`` (N, C·KH·KW, Ho·Wo): for a layer whose
    columns over the whole batch are small, one call where a call per image would cost more than its
    work. Both are read and written through flat indices (a small layer's rows are a few values, and a
    view a row costs more than they do)."""
    n, c, h, w = x.shape
    src, dst = x.reshape(-1), cols.reshape(-1)
    at = 0
    for plane in range(n * c):  # image i's channel ch is plane i·C + ch in both, its rows the next KH·KW
        base = plane * h * w
        for a in range(kh):
            for b in range(kw):
                off = b * dw - left
                for y in range(ho):
                    yy = y * sh + a * dh - top
                    inside = 0 <= yy < h
                    row = base + yy * w
                    for z in range(wo):
                        col = z * sw + off
                        dst[at + z] = src[row + col] if inside and 0 <= col < w else np.float32(0)
                    at += wo


@njit(cache=True)
def global_pool(x: F32, mean: bool) -> F32:
    """A global max or mean pool of NCHW float32 ``x`` to (N, C, 1, 1), serially: the max (NaN if any
    is; the max of the maxima of eight interleaved runs), or NumPy's ``add.reduce`` over the plane
    (`_pairwise`: the same float32 adds in the same order, so the same bits) divided by H·W in
    float32. (Flat indices: a view a plane costs more than a small plane's work.)"""
    n, c, h, w = x.shape
    size = h * w
    flat = x.reshape(-1)
    out = np.empty(n * c, np.float32)
    count = np.float32(size)
    if mean and 8 <= size <= 128:  # `_block`'s sum, the planes indexed straight from the flat tensor
        _small_means(flat, size, count, out)
        return out.reshape(n, c, 1, 1)
    stack, sums = np.empty(3 * 64, np.int64), np.empty(64, np.float32)  # 2^64 values deep
    for p in range(n * c):
        if mean:
            out[p] = (np.float32(0) + _pairwise(flat, p * size, size, stack, sums)) / count
        else:
            out[p] = _plane_max(flat, p * size, size)
    return out.reshape(n, c, 1, 1)


@njit(cache=True)
def _small_means(flat: F32, size: int, count: np.float32, out: F32) -> None:
    """``out[p]`` = (0 + the sum of plane p) / ``count`` for planes of 8 to 128 values: `_block`'s adds
    in `_block`'s order (eight running sums, joined as a tree, then the rest), through unsigned
    indices into the flat tensor, no view a plane."""
    end, step = np.uint64(size - size % 8), np.uint64(size)
    for p in range(np.uint64(out.shape[0])):
        i = p * step
        s0, s1, s2, s3 = flat[i], flat[i + np.uint64(1)], flat[i + np.uint64(2)], flat[i + np.uint64(3)]
        s4, s5, s6, s7 = flat[i + np.uint64(4)], flat[i + np.uint64(5)], flat[i + np.uint64(6)], flat[i + np.uint64(7)]
        for k in range(np.uint64(8), end, np.uint64(8)):
            j = i + k
            s0, s1 = s0 + flat[j], s1 + flat[j + np.uint64(1)]
            s2, s3 = s2 + flat[j + np.uint64(2)], s3 + flat[j + np.uint64(3)]
            s4, s5 = s4 + flat[j + np.uint64(4)], s5 + flat[j + np.uint64(5)]
            s6, s7 = s6 + flat[j + np.uint64(6)], s7 + flat[j + np.uint64(7)]
        total = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
        for k in range(end, step):
            total = total + flat[i + k]
        out[p] = (np.float32(0) + total) / count


@njit(cache=True, inline="always")
def _plane_max(a: F32, first: int, n: int) -> np.float32:
    """The max of ``a[first:first + n]``, NaN if any is: eight running maxima, then theirs."""
    inf = np.float32(-np.inf)
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = inf
    a = a[first:first + n]  # indices from 0: Numba wraps a negative index, which would cost a test a read
    end = n - n % 8
    for k in range(np.uint64(end // 8)):  # unsigned, as in `_block`
        i = k * np.uint64(8)
        m0, m1 = _max(a[i], m0), _max(a[i + np.uint64(1)], m1)
        m2, m3 = _max(a[i + np.uint64(2)], m2), _max(a[i + np.uint64(3)], m3)
        m4, m5 = _max(a[i + np.uint64(4)], m4), _max(a[i + np.uint64(5)], m5)
        m6, m7 = _max(a[i + np.uint64(6)], m6), _max(a[i + np.uint64(7)], m7)
    best = _max(_max(_max(m0, m1), _max(m2, m3)), _max(_max(m4, m5), _max(m6, m7)))
    for i in range(end, n):
        best = _max(a[i], best)
    return best


@njit(cache=True, inline="always")
def _max(v: np.float32, m: np.float32) -> np.float32:
    """``v`` where it is above ``m`` or NaN, else ``m`` (a NaN ``m`` stays): NumPy's maximum, the
    first of equal values kept."""
    return v if v > m or v != v else m


@njit(cache=True)
def _pairwise(a: F32, first: int, n: int, stack: npt.NDArray[np.int64], sums: F32) -> np.float32:
    """NumPy's pairwise float32 sum of ``a[first:first + n]``: up to 128 values as `_block` sums them;
    above, the halves (the first a multiple of 8) summed so and added. The recursion runs on
    ``stack`` (3 ints a level) and ``sums`` (a level's left half): Numba's cache does not keep a
    recursive function."""
    if n <= 128:
        return _block(a, first, n)
    top, got = 0, np.float32(0)
    stack[0], stack[1], stack[2] = first, n, 0
    while top >= 0:
        f, m, phase = stack[3 * top], stack[3 * top + 1], stack[3 * top + 2]
        half = m // 2 - (m // 2) % 8
        if m <= 128:
            got = _block(a, f, m)
            top -= 1
        elif phase == 0:  # the left half next
            stack[3 * top + 2] = 1
            top += 1
            stack[3 * top], stack[3 * top + 1], stack[3 * top + 2] = f, half, 0
        elif phase == 1:  # the left half's sum is in; the right half next
            sums[top] = got
            stack[3 * top + 2] = 2
            top += 1
            stack[3 * top], stack[3 * top + 1], stack[3 * top + 2] = f + half, m - half, 0
        else:
            got = sums[top] + got
            top -= 1
    total: np.float32 = got
    return total


@njit(cache=True, inline="always")
def _block(a: F32, first: int, n: int) -> np.float32:
    """NumPy's pairwise sum of up to 128 values: below 8 in order; else eight running sums (values i,
    i + 8, ...) joined as ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)), the last n mod 8 added after."""
    a = a[first:first + n]  # indices from 0: Numba wraps a negative index, which would cost a test a read
    if n < 8:
        s = np.float32(0)
        for i in range(n):
            s = s + a[i]
        short: np.float32 = s
        return short
    s0, s1, s2, s3, s4, s5, s6, s7 = a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]
    end = n - n % 8
    for k in range(np.uint64(1), np.uint64(end // 8)):  # unsigned: no wrapping test a read, so the eight go as one vector
        i = k * np.uint64(8)
        s0, s1 = s0 + a[i], s1 + a[i + np.uint64(1)]
        s2, s3 = s2 + a[i + np.uint64(2)], s3 + a[i + np.uint64(3)]
        s4, s5 = s4 + a[i + np.uint64(4)], s5 + a[i + np.uint64(5)]
        s6, s7 = s6 + a[i + np.uint64(6)], s7 + a[i + np.uint64(7)]
    s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for i in range(end, n):
        s = s + a[i]
    total: np.float32 = s
    return total


@njit(cache=True)
def scale_planes(x: F32, s: F32, out: F32, in_place: bool) -> F32:
    """``x`` (N, C, H, W) times ``s`` (N, C, 1, 1) into ``out`` (x's shape, C-contiguous), each plane by
    its value (a squeeze-and-excite block's gate): NumPy's broadcast product, the same float32
    products, in one pass. ``in_place``: ``out`` is ``x`` (read and written through one view, since
    a loop over two views of the same memory does not vectorize)."""
    n, c, h, w = x.shape
    size = h * w
    src, gate, dst = x.reshape(-1), s.reshape(-1), out.reshape(-1)
    for p in range(n * c):
        v, b = gate[p], dst[p * size:(p + 1) * size]
        if in_place:
            for j in range(size):
                b[j] = b[j] * v
            continue
        a = src[p * size:(p + 1) * size]
        for j in range(size):
            b[j] = a[j] * v
    return out


@njit(cache=True)
def maxpool(x: F32, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, top: int, left: int, ho: int,
            wo: int) -> F32:
    """Max pooling of NCHW float32 ``x`` to (N, C, ``ho``, ``wo``), serially: each window's taps inside
    the plane (ONNX pads never win a max; -inf where none is inside), in row-major order, a NaN
    winning as in NumPy's ``maximum``, the first of equal values kept (+0 or -0: NumPy's own choice
    between them differs between its vector and scalar loops). The columns whose taps are all inside go a tap at a time along the output row,
    the others one by one; flat, unsigned indices (no view a row; no wrapping of a negative index)."""
    n, c, h, w = x.shape
    xf = x.reshape(-1)
    if kh == kw == sh == sw == 2 and dh == dw == 1 and top == left == 0 and w == 2 * wo and 2 * ho <= h:
        return _maxpool_2x2(xf, n * c, h, ho, wo).reshape(n, c, ho, wo)
    out = np.empty(n * c * ho * wo, np.float32)
    z0 = min(wo, (left + sw - 1) // sw)  # the first column whose taps are all inside
    reach = w - 1 - (kw - 1) * dw + left
    z1 = max(z0, min(wo, reach // sw + 1 if reach >= 0 else 0))  # past the last
    span, step = np.uint64(z1 - z0), np.uint64(sw)
    rows = np.empty((ho, 2), np.int64)  # each output row's window rows inside the plane (divisions cost)
    for y in range(ho):
        y0 = y * sh - top
        rows[y, 0] = min(kh, max(0, (-y0 + dh - 1) // dh))
        rows[y, 1] = max(rows[y, 0], min(kh, (h - 1 - y0) // dh + 1 if h - 1 - y0 >= 0 else 0))
    for p in range(n * c):
        for y in range(ho):
            y0, a0, a1 = y * sh - top, rows[y, 0], rows[y, 1]
            at = (p * ho + y) * wo
            for z in range(z0):
                out[at + z] = _window_max(xf, p * h * w, h, w, y0, a0, a1, dh, kw, dw, z * sw - left)
            for z in range(z1, wo):
                out[at + z] = _window_max(xf, p * h * w, h, w, y0, a0, a1, dh, kw, dw, z * sw - left)
            dst = np.uint64(at + z0)
            if a0 == a1:
                for j in range(span):
                    out[dst + j] = -np.inf
                continue
            if kh == 2 and kw == 2 and a1 - a0 == 2:  # the common 2x2 window, whole, in registers
                first, right, down = np.uint64(p * h * w + y0 * w + z0 * sw - left), np.uint64(dw), np.uint64(dh * w)
                for j in range(span):
                    k = first + step * j
                    m = _max(xf[k + right], xf[k])
                    m = _max(xf[k + down], m)
                    out[dst + j] = _max(xf[k + down + right], m)
                continue
            for a in range(a0, a1):
                row = p * h * w + (y0 + a * dh) * w + z0 * sw - left
                for b in range(kw):
                    src = np.uint64(row + b * dw)
                    if a == a0 and b == 0:
                        for j in range(span):
                            out[dst + j] = xf[src + step * j]
                        continue
                    for j in range(span):
                        v, m = xf[src + step * j], out[dst + j]
                        out[dst + j] = v if v > m or v != v else m
    return out.reshape(n, c, ho, wo)


@njit(cache=True)
def _maxpool_2x2(xf: F32, planes: int, h: int, ho: int, wo: int) -> F32:
    """`maxpool`'s common 2x2 window at stride 2 without pads, over planes as wide as two outputs a
    window (``xf``: the planes, flat): a window row's four outputs at a time in registers (`_quads`: the
    pairs of columns of its two input rows shuffled apart, their maxima, then the rows'), over every
    output row of every plane in one loop where the planes have no odd last row; the columns past the
    last four one by one. The same choice between the four as the taps in row-major order (the first of
    equal values, the last NaN): ``max(max(bl, br), max(tl, tr))``, each keeping the first."""
    out = np.empty(planes * ho * wo, np.float32)
    w, quads = 2 * wo, wo // 4
    if quads and h == 2 * ho:
        _quads(xf, 0, w, out, 0, wo, planes * ho, quads)
    elif quads:
        for p in range(planes):
            _quads(xf, p * h * w, w, out, p * ho * wo, wo, ho, quads)
    if wo % 4:
        for p in range(planes):
            for y in range(ho):
                first, at = np.uint64((p * h + 2 * y) * w), np.uint64((p * ho + y) * wo)
                below = first + np.uint64(w)
                for z in range(np.uint64(4 * quads), np.uint64(wo)):
                    j = np.uint64(2) * z
                    top = _max(xf[first + j + np.uint64(1)], xf[first + j])
                    out[at + z] = _max(_max(xf[below + j + np.uint64(1)], xf[below + j]), top)
    return out


Codegen = Callable[[Any, Any, Any, Any], Any]


@intrinsic
def _quads_intrinsic(typingctx: Any, xf: Any, first: Any, w: Any, out: Any, at: Any, wo: Any, rows: Any,
           quads: Any) -> tuple[Any, Codegen]:
    """For each output row ``r`` < ``rows`` (its input rows at ``first + 2r·w`` and ``w`` floats below,
    its outputs at ``at + r·wo``) and each ``q`` < ``quads``: the 2x2 maxima of the 8 input columns
    from ``8q``, as `_max` takes them (``v > m`` or ``v`` NaN: ``v``), into outputs ``4q`` to ``4q + 3``."""
    sig = types.void(xf, first, w, out, at, wo, rows, quads)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        xa, firstv, wv, oa, atv, wov, rowsv, quadsv = args
        X = context.make_array(signature.args[0])(context, builder, xa)
        O = context.make_array(signature.args[3])(context, builder, oa)
        f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
        vec8, vec4 = ir.VectorType(f32, 8), ir.VectorType(f32, 4)
        evens, odds = (ir.Constant(ir.VectorType(i32, 4), list(range(k, 8, 2))) for k in (0, 1))
        undef = ir.Constant(vec8, ir.Undefined)

        def pick(v: Any, m: Any) -> Any:  # `_max(v, m)`
            wins = builder.or_(builder.fcmp_ordered(">", v, m), builder.fcmp_unordered("uno", v, v))
            return builder.select(wins, v, m)

        def across(index: Any) -> Any:  # the max of each pair of columns of 8
            row = builder.load(builder.bitcast(builder.gep(X.data, [index]), vec8.as_pointer()), align=4)
            return pick(builder.shuffle_vector(row, undef, odds), builder.shuffle_vector(row, undef, evens))

        with cgutils.for_range(builder, rowsv) as r:
            top = builder.add(firstv, builder.mul(r.index, builder.mul(wv, ir.Constant(i64, 2))))
            dst = builder.add(atv, builder.mul(r.index, wov))
            with cgutils.for_range(builder, quadsv) as q:
                t = builder.add(top, builder.mul(q.index, ir.Constant(i64, 8)))
                m = pick(across(builder.add(t, wv)), across(t))
                ptr = builder.gep(O.data, [builder.add(dst, builder.mul(q.index, ir.Constant(i64, 4)))])
                builder.store(m, builder.bitcast(ptr, vec4.as_pointer()), align=4)
        return context.get_dummy_value()

    return sig, codegen


_quads: Any = _quads_intrinsic  # called from compiled code with the arguments after ``typingctx``


@njit(cache=True, inline="always")
def _window_max(xf: F32, base: int, h: int, w: int, y0: int, a0: int, a1: int, dh: int, kw: int, dw: int,
                x0: int) -> np.float32:
    """One window's max over its taps inside the plane at ``base`` (input columns from ``x0``), -inf if
    none is."""
    m = np.float32(-np.inf)
    first = True
    for a in range(a0, a1):
        row = base + (y0 + a * dh) * w
        for b in range(kw):
            xx = x0 + b * dw
            if 0 <= xx < w:
                v = xf[row + xx]
                if first or v > m or v != v:
                    m, first = v, False
    best: np.float32 = m
    return best
