"""Resize, nearest and bilinear, on NHWC activations: NUMERICS.md §11, (N28)–(N31).

The source coordinates are computed once per layer, in Python, with exact rationals
(``fractions.Fraction``). They become integer index and weight tables. The kernels only
gather and, for bilinear, do one integer interpolation and one RHU.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from numpy.typing import ArrayLike

from alls.runtime.kernels._common import _requant1, act_bits, as_activation, check_requant, njit
from alls.runtime.numerics import RESIZE_FRACTION_BITS, Requant, activation_max, round_half_up_real

__all__ = ["resize_nearest", "resize_bilinear", "source_coordinates", "nearest_indices", "linear_weights"]

COORDINATE_MODES = ("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel",
                    "tf_half_pixel_for_nn", "half_pixel_symmetric")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def source_coordinates(l_in: int, l_out: int, mode: str = "half_pixel",
                       scale: float | None = None) -> list[Fraction]:
    """ξ(x) for x = 0..l_out−1 (N28), exact. ``scale`` is ONNX's ρ for this axis (the exact value
    of the given float); by default l_out/l_in. As in ONNX, align_corners divides by ρ·l_in − 1."""
    if mode not in COORDINATE_MODES:
        raise ValueError(f"coordinate_transformation_mode {mode!r} is not one of {', '.join(COORDINATE_MODES)}")
    rho = Fraction(l_out, l_in) if scale is None else Fraction(scale)
    length = rho * l_in  # ONNX's output_width (l_out when sizes are given)
    half = Fraction(1, 2)
    out = []
    for x in range(l_out):
        if mode == "half_pixel":
            xi = (x + half) / rho - half
        elif mode == "asymmetric":
            xi = x / rho
        elif mode == "align_corners":
            xi = Fraction(0) if length == 1 else x * Fraction(l_in - 1) / (length - 1)
        elif mode == "pytorch_half_pixel":
            xi = (x + half) / rho - half if length > 1 else -half
        elif mode == "tf_half_pixel_for_nn":
            xi = (x + half) / rho
        else:  # half_pixel_symmetric
            offset = Fraction(l_in, 2) * (1 - Fraction(l_out) / length)
            xi = offset + (x + half) / rho - half
        out.append(xi)
    return out


def nearest_indices(l_in: int, l_out: int, mode: str = "half_pixel", nearest_mode: str = "round_prefer_floor",
                    scale: float | None = None) -> np.ndarray:
    """The source index of every output position (N29), clamped to [0, l_in − 1]: int64."""
    if nearest_mode not in NEAREST_MODES:
        raise ValueError(f"nearest_mode {nearest_mode!r} is not one of {', '.join(NEAREST_MODES)}")
    half = Fraction(1, 2)
    pick = {"round_prefer_floor": lambda t: math.ceil(t - half), "round_prefer_ceil": lambda t: math.floor(t + half),
            "floor": math.floor, "ceil": math.ceil}[nearest_mode]
    idx = [min(max(pick(xi), 0), l_in - 1) for xi in source_coordinates(l_in, l_out, mode, scale)]
    return np.array(idx, dtype=np.int64)


def linear_weights(l_in: int, l_out: int, mode: str = "half_pixel", scale: float | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(i0, i1, ω0, ω1) per output position (N30): ω1 = rhu(λ·2^F), ω0 = 2^F − ω1, indices clamped."""
    one = 1 << RESIZE_FRACTION_BITS
    i0, i1, w0, w1 = [], [], [], []
    for xi in source_coordinates(l_in, l_out, mode, scale):
        base = math.floor(xi)
        frac = round_half_up_real((xi - base) * one)
        i0.append(min(max(base, 0), l_in - 1))
        i1.append(min(max(base + 1, 0), l_in - 1))
        w0.append(one - frac)
        w1.append(frac)
    return (np.array(i0, dtype=np.int64), np.array(i1, dtype=np.int64), np.array(w0, dtype=np.int64),
            np.array(w1, dtype=np.int64))


@njit(cache=True)
def gather_rows(x: np.ndarray, iy: np.ndarray, ix: np.ndarray, out: np.ndarray) -> None:
    """Nearest resize (N29): out[n, i, j, :] = x[n, iy[i], ix[j], :]; any dtype, a copy."""
    n_b = x.shape[0]
    out_h, out_w = out.shape[1], out.shape[2]
    for row in range(n_b * out_h):
        n, oh = row // out_h, row % out_h
        src = x[n, iy[oh]]
        for ow in range(out_w):
            out[n, oh, ow, :] = src[ix[ow]]


@njit(cache=True)
def bilinear_rows(x: np.ndarray, z_in: np.int64, iy0: np.ndarray, iy1: np.ndarray, wy0: np.ndarray,
                  wy1: np.ndarray, ix0: np.ndarray, ix1: np.ndarray, wx0: np.ndarray,
                  wx1: np.ndarray, mult: np.int64, shift: np.int64, zo: np.int64, lo: np.int64, hi: np.int64,
                  out: np.ndarray) -> None:
    """Bilinear resize (N31): Σ = Σ ω^y·ω^x·(x − Z_x) in int64, out = clamp(zo + RHU(Σ·M, n), lo, hi).

    x: (N, H, W, C) uint8/uint16; tables int64; out: (N, OH, OW, C) uint8/uint16.
    The weights sum to 2^(2F), so |Σ| ≤ 2^(2F)·A = V and |Σ·M| < 2^62 (N15).
    """
    n_b, _, _, ch = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    for row in range(n_b * out_h):
        n, oh = row // out_h, row % out_h
        r0, r1 = x[n, iy0[oh]], x[n, iy1[oh]]
        a0, a1 = wy0[oh], wy1[oh]
        for ow in range(out_w):
            c0, c1, b0, b1 = ix0[ow], ix1[ow], wx0[ow], wx1[ow]
            for c in range(ch):
                top = b0 * (np.int64(r0[c0, c]) - z_in) + b1 * (np.int64(r0[c1, c]) - z_in)
                bottom = b0 * (np.int64(r1[c0, c]) - z_in) + b1 * (np.int64(r1[c1, c]) - z_in)
                out[n, oh, ow, c] = _requant1(a0 * top + a1 * bottom, mult, shift, zo, lo, hi)


def _scales(scales: tuple[float, float] | None) -> tuple[float | None, float | None]:
    return (None, None) if scales is None else (float(scales[0]), float(scales[1]))


def resize_nearest(x: ArrayLike, *, size: tuple[int, int], mode: str = "half_pixel",
                   nearest_mode: str = "round_prefer_floor",
                   scales: tuple[float, float] | None = None) -> np.ndarray:
    """Nearest resize of rows and columns (N28)/(N29): an index copy, the input's (S, Z) kept.

    ``size`` is (OH, OW); ``scales`` are ONNX's (ρ_h, ρ_w) when the model gives scales.
    """
    x = as_activation(x)
    sh, sw = _scales(scales)
    iy = nearest_indices(x.shape[1], size[0], mode, nearest_mode, sh)
    ix = nearest_indices(x.shape[2], size[1], mode, nearest_mode, sw)
    out = np.empty((x.shape[0], size[0], size[1], x.shape[3]), dtype=x.dtype)
    gather_rows(x, iy, ix, out)
    return out


def resize_bilinear(x: ArrayLike, rq: Requant, *, zero_point: int, size: tuple[int, int], mode: str = "half_pixel",
                    scales: tuple[float, float] | None = None) -> np.ndarray:
    """Bilinear resize (N30)/(N31), F = 10 fractional bits, one rounding.

    ``rq`` comes from ``numerics.bilinear_requant`` (μ = S_x/(S_y·2^(2F))).
    """
    x = as_activation(x)
    sh, sw = _scales(scales)
    ty = linear_weights(x.shape[1], size[0], mode, sh)
    tx = linear_weights(x.shape[2], size[1], mode, sw)
    bound = (1 << (2 * RESIZE_FRACTION_BITS)) * activation_max(act_bits(x))
    mult, shift = check_requant(rq, bound, 1)
    out = np.empty((x.shape[0], size[0], size[1], x.shape[3]), dtype=rq.out_dtype())
    bilinear_rows(x, np.int64(zero_point), *ty, *tx, mult[0], shift[0], np.int64(rq.zero_point),
                  np.int64(rq.lo), np.int64(rq.hi), out)
    return out
