"""Numba kernels of the float executor (`alls.runtime.exec.native`) where NumPy would make a temporary
per step: the columns of a grouped conv. (The dense conv is `floatconv`'s, the depthwise `floatdw`'s.)

The parallel kernel `im2col` is called through `alls.runtime.kernels._parallel`, as the integer
kernels are: each call site (a kernel at one shape) runs on one thread or on the runtime call's
budget, by its work and by what its earlier calls measured, so that a busy machine never makes a
second thread cost more than it gives. `im2col_batch`, for layers whose columns over the whole batch
are small, is serial: its work is below what a thread repays.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import prange

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
