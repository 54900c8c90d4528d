"""Numba kernels of the float executor (`alls.runtime.exec.native`) where NumPy would make a temporary
per step.

Every kernel adds in float32 and in a fixed order, the order NumPy's step-by-step form of the same
sum takes, so that a result does not depend on the batch, the layout or the machine: the depthwise
convolution adds the taps row by row (KH), each row's taps left to right (KW), to zero, then the
bias.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["depthwise", "im2col"]


@njit(parallel=True, cache=True)
def depthwise(x, weight, bias, sh, sw, dh, dw, ho, wo):
    """Depthwise conv of a padded NCHW float32 ``x`` with ``weight`` (C, KH, KW) and ``bias`` (C,).

    Each plane is split into its ``sh``·``sw`` stride phases (x[p::sh, q::sw], none when the stride
    is 1), so that every tap reads a phase as one contiguous run: output (y, z) lies at y·Wq + z of
    a flat accumulator whose row pitch Wq is the phase's width, the columns past ``wo`` being
    computed and dropped.
    """
    n, c, h, w = x.shape
    kh, kw = weight.shape[1], weight.shape[2]
    out = np.empty((n, c, ho, wo), np.float32)
    hq, wq = (h + sh - 1) // sh, (w + sw - 1) // sw
    length = (ho - 1) * wq + wo
    sums = np.empty((n * c, length), np.float32)  # scratch allocated once: the planes may be small
    if sw == 2:  # LLVM vectorizes a constant stride of 2 without splitting the plane
        return _depthwise_stride2(x, weight, bias, sh, dh, dw, ho, wo)
    strided = sh > 1 or sw > 1
    split = np.empty((n * c, sh, sw, hq, wq), np.float32) if strided else x.reshape((n * c, 1, 1, hq, wq))
    for job in prange(n * c):
        i, ch = job // c, job % c
        acc = sums[job]
        acc[:] = 0
        phases = split[job]
        if strided:
            _split(x[i, ch], phases)
        flat = phases.reshape(-1)
        for a in range(kh):
            p, base = (a * dh) % sh, ((a * dh) // sh) * wq
            if kw == 3:  # a row's taps in one pass, added in the same order
                s0 = flat[_at(p, 0, base, sw, hq, wq):]
                s1 = flat[_at(p, dw % sw, base + dw // sw, sw, hq, wq):]
                s2 = flat[_at(p, (2 * dw) % sw, base + (2 * dw) // sw, sw, hq, wq):]
                w0, w1, w2 = weight[ch, a, 0], weight[ch, a, 1], weight[ch, a, 2]
                for j in range(length):
                    acc[j] = acc[j] + s0[j] * w0 + s1[j] * w1 + s2[j] * w2
            elif kw == 5:
                s0 = flat[_at(p, 0, base, sw, hq, wq):]
                s1 = flat[_at(p, dw % sw, base + dw // sw, sw, hq, wq):]
                s2 = flat[_at(p, (2 * dw) % sw, base + (2 * dw) // sw, sw, hq, wq):]
                s3 = flat[_at(p, (3 * dw) % sw, base + (3 * dw) // sw, sw, hq, wq):]
                s4 = flat[_at(p, (4 * dw) % sw, base + (4 * dw) // sw, sw, hq, wq):]
                w0, w1, w2, w3, w4 = weight[ch, a, 0], weight[ch, a, 1], weight[ch, a, 2], weight[ch, a, 3], \
                    weight[ch, a, 4]
                for j in range(length):
                    acc[j] = acc[j] + s0[j] * w0 + s1[j] * w1 + s2[j] * w2 + s3[j] * w3 + s4[j] * w4
            else:
                for b in range(kw):
                    s = flat[_at(p, (b * dw) % sw, base + (b * dw) // sw, sw, hq, wq):]
                    wt = weight[ch, a, b]
                    for j in range(length):
                        acc[j] += s[j] * wt
        bb = bias[ch]
        for y in range(ho):
            dst = out[i, ch, y]
            src = acc[y * wq:y * wq + wo]
            for z in range(wo):
                dst[z] = src[z] + bb
    return out


@njit(parallel=True, cache=True)
def _depthwise_stride2(x, weight, bias, sh, dh, dw, ho, wo):
    """`depthwise` with a column stride of 2, row by row, in the same order."""
    n, c = x.shape[0], x.shape[1]
    kh, kw = weight.shape[1], weight.shape[2]
    out = np.empty((n, c, ho, wo), np.float32)
    for job in prange(n * c):
        i, ch = job // c, job % c
        for y in range(ho):
            acc = out[i, ch, y]
            acc[:] = 0
            for a in range(kh):
                src = x[i, ch, y * sh + a * dh]
                for b in range(kw):
                    seg = src[b * dw:]
                    wt = weight[ch, a, b]
                    for z in range(wo):
                        acc[z] += seg[2 * z] * wt
            bb = bias[ch]
            for z in range(wo):
                acc[z] += bb
    return out


@njit(parallel=True, cache=True)
def im2col(x, kh, kw, sh, sw, dh, dw, top, left, ho, wo):
    """The conv columns of an unpadded NCHW float32 ``x``: (N, C·KH·KW, Ho·Wo), row (c, a, b) holding
    tap (a, b) of channel c at every output position, zero where the tap falls in the padding."""
    n, c, h, w = x.shape
    cols = np.empty((n, c * kh * kw, ho * wo), np.float32)
    for job in prange(n * c):
        i, ch = job // c, job % c
        for a in range(kh):
            for b in range(kw):
                row = cols[i, (ch * kh + a) * kw + b]
                off = b * dw - left
                z0 = min(wo, max(0, (sw - 1 - off) // sw))  # the first z with z·sw + off >= 0
                z1 = max(z0, min(wo, (w - 1 - off) // sw + 1))  # past the last with z·sw + off < w
                for y in range(ho):
                    dst = row[y * wo:(y + 1) * wo]
                    yy = y * sh + a * dh - top
                    if yy < 0 or yy >= h:
                        dst[:] = 0
                        continue
                    src = x[i, ch, yy]
                    dst[:z0] = 0
                    dst[z1:] = 0
                    if sw == 1:
                        dst[z0:z1] = src[z0 + off:z1 + off]
                    else:
                        for z in range(z0, z1):
                            dst[z] = src[z * sw + off]
    return cols


@njit(inline="always", cache=True)
def _at(p, q, offset, sw, hq, wq):
    """Where phase (p, q)'s element ``offset`` (y·Wq + z) lies in the flat (sh, sw, Hq, Wq) phases."""
    return (p * sw + q) * hq * wq + offset


@njit(cache=True)
def _split(plane, phases):
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
