"""Max, average and global pooling on NHWC activations: NUMERICS.md §11, (N26) and (N27)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from alls.runtime.kernels._common import _requant1, act_bits, as_activation, check_requant, conv_out_size, njit
from alls.runtime.numerics import Requant, activation_max

__all__ = ["maxpool", "global_maxpool", "avgpool", "global_avgpool"]


@njit(cache=True)
def maxpool_rows(x: np.ndarray, k_h: np.int64, k_w: np.int64, stride_h: np.int64, stride_w: np.int64,
                 dil_h: np.int64, dil_w: np.int64, top: np.int64,
                 left: np.int64, out: np.ndarray) -> None:
    """(N26): out[n,i,j,c] = max over the taps inside the image of x (raw codes, same S and Z).

    x: (N, H, W, C) uint8/uint16; out: (N, OH, OW, C) same dtype. Padding taps are not
    candidates. A window with no tap inside the image gives 0.
    """
    n_b, h, w, ch = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    for row in range(n_b * out_h):
        n, oh = row // out_h, row % out_h
        for ow in range(out_w):
            o = out[n, oh, ow]
            o[:] = 0
            for kh in range(k_h):
                ih = oh * stride_h - top + kh * dil_h
                if ih < 0 or ih >= h:
                    continue
                for kw in range(k_w):
                    iw = ow * stride_w - left + kw * dil_w
                    if iw < 0 or iw >= w:
                        continue
                    xr = x[n, ih, iw]
                    for c in range(ch):
                        o[c] = max(o[c], xr[c])


@njit(cache=True)
def avgpool_rows(x: np.ndarray, z_in: np.int64, k_h: np.int64, k_w: np.int64, stride_h: np.int64,
                 stride_w: np.int64, dil_h: np.int64, dil_w: np.int64,
                 top: np.int64, left: np.int64, bottom: np.int64, right: np.int64, include_pad: bool,
                 mult: np.ndarray, shift: np.ndarray, zo: np.int64,
                 lo: np.int64, hi: np.int64, out: np.ndarray) -> None:
    """(N27): Σ = Σ_valid (x − Z_x); out = clamp(zo + RHU(Σ·M[κ], n[κ]), lo, hi).

    κ counts the taps inside the image (include_pad = 0) or inside the padded image
    (include_pad = 1). x: (N, H, W, C) uint8/uint16; mult, shift: (KH·KW + 1,) int64 indexed
    by κ; out: (N, OH, OW, C) uint8/uint16. |Σ| ≤ KH·KW·A = V, so |Σ·M| < 2^62 (N15).
    """
    n_b, h, w, ch = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    for row in range(n_b * out_h):
        n, oh = row // out_h, row % out_h
        s = np.empty(ch, dtype=np.int64)
        for ow in range(out_w):
            s[:] = 0
            valid = 0
            kappa = 0
            for kh in range(k_h):
                ih = oh * stride_h - top + kh * dil_h
                for kw in range(k_w):
                    iw = ow * stride_w - left + kw * dil_w
                    if 0 <= ih < h and 0 <= iw < w:
                        valid += 1
                        xr = x[n, ih, iw]
                        for c in range(ch):
                            s[c] += xr[c]
                    if include_pad and -top <= ih < h + bottom and -left <= iw < w + right:
                        kappa += 1
            if not include_pad:
                kappa = valid
            m, k = mult[kappa], shift[kappa]
            centre = valid * z_in
            for c in range(ch):
                out[n, oh, ow, c] = _requant1(s[c] - centre, m, k, zo, lo, hi)


@njit(cache=True)
def global_avgpool_rows(x: np.ndarray, z_in: np.int64, mult: np.int64, shift: np.int64, zo: np.int64,
                        lo: np.int64, hi: np.int64, out: np.ndarray) -> None:
    """(N27) over the whole image: out[n, c] = clamp(zo + RHU((Σ_p x[n,p,c] − HW·Z)·M, n), lo, hi).

    x: (N, H·W, C) uint8/uint16; out: (N, C) uint8/uint16; |Σ| ≤ H·W·A = V (N15).
    """
    n_b, pixels, ch = x.shape
    for n in range(n_b):
        s = np.zeros(ch, dtype=np.int64)
        for p in range(pixels):
            xr = x[n, p]
            for c in range(ch):
                s[c] += xr[c]
        centre = pixels * z_in
        for c in range(ch):
            out[n, c] = _requant1(s[c] - centre, mult, shift, zo, lo, hi)


def _window(x: np.ndarray, kernel_shape: Sequence[int], strides: Sequence[int], pads: Sequence[int],
            dilations: Sequence[int], ceil_mode: bool) -> tuple[int, int]:
    if len(kernel_shape) != 2 or len(strides) != 2 or len(pads) != 4 or len(dilations) != 2:
        raise ValueError("2-D pools take 2 kernel sizes, 2 strides, 2 dilations and 4 pads")
    (k_h, k_w), (sh, sw), (dh, dw), (pt, pl, pb, pr) = kernel_shape, strides, dilations, pads
    out_h = conv_out_size(x.shape[1], k_h, sh, dh, pt, pb, ceil_mode)
    out_w = conv_out_size(x.shape[2], k_w, sw, dw, pl, pr, ceil_mode)
    if out_h < 1 or out_w < 1:
        raise ValueError("the pooling window is larger than the padded input")
    return out_h, out_w


def maxpool(x: ArrayLike, *, kernel_shape: Sequence[int], strides: Sequence[int] = (1, 1),
            pads: Sequence[int] = (0, 0, 0, 0), dilations: Sequence[int] = (1, 1),
            ceil_mode: bool = False) -> np.ndarray:
    """Max pool (N26) on raw codes: NHWC uint8/uint16 in and out, the input's (S, Z) kept."""
    x = as_activation(x)
    out_h, out_w = _window(x, kernel_shape, strides, pads, dilations, ceil_mode)
    out = np.empty((x.shape[0], out_h, out_w, x.shape[3]), dtype=x.dtype)
    k_h, k_w, s_h, s_w, d_h, d_w, top, left = (np.int64(v) for v in (*kernel_shape, *strides, *dilations, pads[0],
                                                                       pads[1]))
    maxpool_rows(x, k_h, k_w, s_h, s_w, d_h, d_w, top, left, out)
    return out


def global_maxpool(x: ArrayLike) -> np.ndarray:
    """Global max pool: (N, H, W, C) → (N, 1, 1, C), raw codes."""
    x = as_activation(x)
    return maxpool(x, kernel_shape=(x.shape[1], x.shape[2]))


def avgpool(x: ArrayLike, rq: Requant, *, zero_point: int, kernel_shape: Sequence[int],
            strides: Sequence[int] = (1, 1), pads: Sequence[int] = (0, 0, 0, 0), dilations: Sequence[int] = (1, 1),
            ceil_mode: bool = False, count_include_pad: bool = False) -> np.ndarray:
    """Average pool (N27): sum × fixed-point reciprocal of the divisor κ, one RHU.

    ``rq`` comes from ``numerics.avgpool_requant(KH·KW, ...)``: its multiplier and shift are
    tables indexed by κ = 0..KH·KW. With ``count_include_pad`` false (ONNX's default) κ is
    the number of taps inside the image, which is smaller at the borders.
    """
    x = as_activation(x)
    out_h, out_w = _window(x, kernel_shape, strides, pads, dilations, ceil_mode)
    taps = kernel_shape[0] * kernel_shape[1]
    mult, shift = check_requant(rq, taps * activation_max(act_bits(x)), taps + 1)
    out = np.empty((x.shape[0], out_h, out_w, x.shape[3]), dtype=rq.out_dtype())
    z_in, k_h, k_w, s_h, s_w, d_h, d_w, top, left, bottom, right = (
        np.int64(v) for v in (zero_point, *kernel_shape, *strides, *dilations, *pads))
    avgpool_rows(x, z_in, k_h, k_w, s_h, s_w, d_h, d_w, top, left, bottom, right, bool(count_include_pad), mult,
                 shift, np.int64(rq.zero_point), np.int64(rq.lo), np.int64(rq.hi), out)
    return out


def global_avgpool(x: ArrayLike, rq: Requant, *, zero_point: int) -> np.ndarray:
    """Global average pool (N27), κ = H·W: (N, H, W, C) → (N, 1, 1, C).

    ``rq`` holds one multiplier for μ = S_x/(S_y·H·W), from ``numerics.global_avgpool_requant``.
    """
    x = as_activation(x)
    n_b, h, w, ch = x.shape
    mult, shift = check_requant(rq, h * w * activation_max(act_bits(x)), 1)
    out = np.empty((n_b, ch), dtype=rq.out_dtype())
    global_avgpool_rows(x.reshape(n_b, h * w, ch), np.int64(zero_point), mult[0], shift[0],
                        np.int64(rq.zero_point), np.int64(rq.lo), np.int64(rq.hi), out)
    return out.reshape(n_b, 1, 1, ch)
