"""Numba kernels of the float executor (`alls.runtime.exec.native`) where NumPy would make a temporary
per step.

The parallel kernels (`depthwise`, `im2col`) are called through `alls.runtime.kernels._parallel`, as
the integer kernels are: each call site (a kernel at one shape) runs on one thread or on the runtime
call's budget, by its work and by what its earlier calls measured, so that a busy machine never makes
a second thread cost more than it gives. `im2col_batch`, for layers whose columns over the whole batch
are small, is serial: its work is below what a thread repays.

Every kernel adds in float32 and in a fixed order, the order NumPy's step-by-step form of the same
sum takes, so that a result does not depend on the batch, the layout or the machine: the depthwise
convolution adds the taps row by row (KH), each row's taps left to right (KW), to zero, then the
bias.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import prange

from alls.runtime.kernels import _parallel
from alls.runtime.kernels._common import njit

__all__ = ["depthwise", "im2col", "im2col_batch"]

F32 = npt.NDArray[np.float32]


def depthwise(x: F32, weight: F32, bias: F32, sh: int, sw: int, dh: int, dw: int, top: int, left: int,
              bottom: int, right: int, ho: int, wo: int) -> F32:
    """Depthwise conv of an NCHW float32 ``x`` with ``weight`` (C, KH, KW), ``bias`` (C,) and pads, on
    the threads `_parallel` chooses for its call site (its planes are the parts it splits)."""
    n, c = x.shape[0], x.shape[1]
    kh, kw = weight.shape[1], weight.shape[2]
    key = ("float dw", x.shape, weight.shape, sh, sw, dh, dw, top, left, bottom, right)
    parts = min(n * c, 4 * _parallel.budget())  # four a thread (at one thread: a loop over them)
    out: F32 = _parallel.run(key, n * c * ho * wo * kh * kw, n * c, _depthwise, x, weight, bias, sh, sw, dh, dw,
                             top, left, bottom, right, ho, wo, parts)
    return out


@njit(parallel=True, cache=True)
def _depthwise(x: F32, weight: F32, bias: F32, sh: int, sw: int, dh: int, dw: int, top: int, left: int,
               bottom: int, right: int, ho: int, wo: int, parts: int) -> F32:
    """Depthwise conv of an NCHW float32 ``x`` with ``weight`` (C, KH, KW), ``bias`` (C,) and pads.

    Each plane is copied, padded, into scratch memory that stays in the cache while its taps read
    it. With a column stride of 1 (or above 2), the plane is split into its ``sh``·``sw`` stride
    phases (x[p::sh, q::sw]; none when the stride is 1), so that every tap reads a phase as one
    contiguous run: output (y, z) lies at y·Wq + z of a flat accumulator whose row pitch Wq is the
    phase's width, the columns past ``wo`` computed and dropped. A column stride of 2 is read
    directly, row by row (LLVM vectorizes a constant stride). The scratch is allocated once for each
    of the ``parts`` of the work (four a thread of the budget), not per plane nor for the whole batch
    (fresh memory costs a page fault a page).
    """
    n, c, h, w = x.shape
    hp, wp = h + top + bottom, w + left + right
    out = np.empty((n, c, ho, wo), np.float32)
    padded = top > 0 or left > 0 or bottom > 0 or right > 0
    strided = (sh > 1 or sw > 1) and sw != 2
    hq, wq = (hp + sh - 1) // sh, (wp + sw - 1) // sw
    length = (ho - 1) * wq + wo
    jobs = n * c
    for part in prange(parts):
        plane = np.empty((hp, wp), np.float32)
        phases = np.empty((sh, sw, hq, wq) if strided else (1, 1, 1, 1), np.float32)
        acc = np.empty(length if sw != 2 else 1, np.float32)
        for job in range(part * jobs // parts, (part + 1) * jobs // parts):
            i, ch = job // c, job % c
            if padded:
                _pad_into(x[i, ch], plane, top, left)
                source = plane
            else:
                source = x[i, ch]
            if sw == 2:
                _taps_stride2(source, weight[ch], bias[ch], sh, dh, dw, out[i, ch])
            elif strided:
                _split(source, phases)
                _taps_flat(phases.reshape(-1), weight[ch], bias[ch], sh, sw, dh, dw, hq, wq, acc, out[i, ch])
            else:
                _taps_flat(source.reshape(-1), weight[ch], bias[ch], 1, 1, dh, dw, hp, wp, acc, out[i, ch])
    return out


@njit(cache=True)
def _pad_into(plane: F32, padded: F32, top: int, left: int) -> None:
    """``plane`` (H, W) into ``padded`` at (top, left), zeros around it (explicit loops: a slice
    assignment between arrays would allocate for its overlap check)."""
    h, w = plane.shape
    hp, wp = padded.shape
    for y in range(hp):
        row = padded[y]
        if y < top or y >= top + h:
            for z in range(wp):
                row[z] = 0
            continue
        src = plane[y - top]
        for z in range(left):
            row[z] = 0
        for z in range(w):
            row[left + z] = src[z]
        for z in range(left + w, wp):
            row[z] = 0


@njit(cache=True)
def _taps_flat(flat: F32, weight: F32, bias: np.float32, sh: int, sw: int, dh: int, dw: int, hq: int, wq: int,
               acc: F32, out: F32) -> None:
    """One plane's taps over its flat phases (sh, sw, Hq, Wq), each row's taps in one pass."""
    kh, kw = weight.shape
    ho, wo = out.shape
    length = acc.shape[0]
    acc[:] = 0
    for a in range(kh):
        p, base = (a * dh) % sh, ((a * dh) // sh) * wq
        if kw == 3:  # a row's taps in one pass, added in the same order
            s0 = flat[_at(p, 0, base, sw, hq, wq):]
            s1 = flat[_at(p, dw % sw, base + dw // sw, sw, hq, wq):]
            s2 = flat[_at(p, (2 * dw) % sw, base + (2 * dw) // sw, sw, hq, wq):]
            w0, w1, w2 = weight[a, 0], weight[a, 1], weight[a, 2]
            for j in range(length):
                acc[j] = acc[j] + s0[j] * w0 + s1[j] * w1 + s2[j] * w2
        elif kw == 5:
            s0 = flat[_at(p, 0, base, sw, hq, wq):]
            s1 = flat[_at(p, dw % sw, base + dw // sw, sw, hq, wq):]
            s2 = flat[_at(p, (2 * dw) % sw, base + (2 * dw) // sw, sw, hq, wq):]
            s3 = flat[_at(p, (3 * dw) % sw, base + (3 * dw) // sw, sw, hq, wq):]
            s4 = flat[_at(p, (4 * dw) % sw, base + (4 * dw) // sw, sw, hq, wq):]
            w0, w1, w2, w3, w4 = weight[a, 0], weight[a, 1], weight[a, 2], weight[a, 3], weight[a, 4]
            for j in range(length):
                acc[j] = acc[j] + s0[j] * w0 + s1[j] * w1 + s2[j] * w2 + s3[j] * w3 + s4[j] * w4
        else:
            for b in range(kw):
                s = flat[_at(p, (b * dw) % sw, base + (b * dw) // sw, sw, hq, wq):]
                wt = weight[a, b]
                for j in range(length):
                    acc[j] += s[j] * wt
    for y in range(ho):
        dst = out[y]
        src = acc[y * wq:y * wq + wo]
        for z in range(wo):
            dst[z] = src[z] + bias


@njit(cache=True)
def _taps_stride2(plane: F32, weight: F32, bias: np.float32, sh: int, dh: int, dw: int, out: F32) -> None:
    """One padded plane's taps with a column stride of 2, row by row, in the same order."""
    kh, kw = weight.shape
    ho, wo = out.shape
    for y in range(ho):
        acc = out[y]
        acc[:] = 0
        for a in range(kh):
            src = plane[y * sh + a * dh]
            for b in range(kw):
                seg = src[b * dw:]
                wt = weight[a, b]
                for z in range(wo):
                    acc[z] += seg[2 * z] * wt
        for z in range(wo):
            acc[z] += bias


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


@njit(inline="always", cache=True)
def _at(p: int, q: int, offset: int, sw: int, hq: int, wq: int) -> int:
    """Where phase (p, q)'s element ``offset`` (y·Wq + z) lies in the flat (sh, sw, Hq, Wq) phases."""
    return (p * sw + q) * hq * wq + offset


@njit(cache=True)
def _split(plane: F32, phases: F32) -> None:
    """Fill ``phases`` (sh, sw, Hq, Wq) from ``plane`` (H, W): phase (p, q) holds plane[p::sh, q::sw],
    zeros past its end (a last row or column, read only for the outputs that are dropped)."""
    sh, sw, hq, wq = phases.shape
    h, w = plane.shape
    for p in range(h % sh, sh) if h % sh else range(0):
        phases[p, :, hq - 1] = 0
    for q in range(w % sw, sw) if w % sw else range(0):
        phases[:, q, :, wq - 1] = 0
    for y in range(h):
        src = plane[y]
        for q in range(sw):
            dst = phases[y % sh, q, y // sh]
            for z in range((w - q + sw - 1) // sw):
                dst[z] = src[z * sw + q]

