"""Numba kernels for `alls.runtime.exec.calibration.TensorStats`: the extremes and counts (two vectorized
passes over each row of a channel, `extremes`) and the histogram (one pass), instead of the half-dozen
temporary arrays NumPy would make per tensor.

A histogram bin is ``⌊|v| / width⌋`` (the last bin takes the rest), with the division in the
tensor's own float type, so float32 tensors bin exactly as NumPy's float32 arithmetic would.
"""

from __future__ import annotations

import numpy as np

from alls.runtime.kernels._common import njit

__all__ = ["extremes", "histogram"]


@njit(cache=True)
def extremes(x: np.ndarray, channel_min: np.ndarray, channel_max: np.ndarray, per_channel: bool
             ) -> tuple[float, float, int, float, float, int]:
    """Over ``x`` (N, C, R; C-contiguous): the minimum, the maximum, the count of zeros, the largest positive
    value and negative magnitude (0 when there are none), and the count of NaNs; with ``per_channel``, each channel's
    minimum and maximum are folded into ``channel_min`` / ``channel_max`` (C,).

    The extremes are those of a scan in order, which keeps the first of equal values (a zero's sign
    included) and passes over NaNs; each row's are found by `_row`, whose loop vectorizes."""
    low, high = np.inf, -np.inf
    zeros = 0
    nans = 0
    top_pos, top_neg = 0.0, 0.0
    n, c, _ = x.shape
    for i in range(n):
        for j in range(c):
            lo, hi, row_zeros, row_nans = _row(x[i, j])
            if hi > top_pos:
                top_pos = hi
            if -lo > top_neg:
                top_neg = -lo
            zeros += row_zeros
            nans += row_nans
            if per_channel:
                if not lo < channel_min[j]:  # the earlier value is the first of equals
                    lo = channel_min[j]
                if not hi > channel_max[j]:
                    hi = channel_max[j]
                channel_min[j], channel_max[j] = lo, hi
            if lo < low:
                low = lo
            if hi > high:
                high = hi
    return low, high, zeros, top_pos, top_neg, nans


@njit(cache=True)
def _row(row: np.ndarray) -> tuple[float, float, int, int]:
    """The minimum and maximum of a contiguous float ``row`` (inf and −inf when it has nothing but
    NaNs), its zeros and its NaNs.

    A float's bits, as a signed integer with the magnitude bits flipped where the sign is set
    (`_ordered`), order as the float does, −0 below +0: the extremes are the integers' minimum and
    maximum, a reduction the compiler vectorizes, which it does not do for floats (a comparison
    with a NaN is false either way). Rows with a NaN, and rows whose extreme is a zero where zeros
    of both signs occur, are scanned in order instead."""
    if row.size == 0:
        return np.inf, -np.inf, 0, 0
    zeros, negative_zeros, nans = _counts(row)
    if row.itemsize == 4:
        low, high = _ordered_extremes(row, row.view(np.int32), np.int32(0x7FFFFFFF))
    else:
        low, high = _ordered_extremes(row, row.view(np.int64), np.int64(0x7FFFFFFFFFFFFFFF))
    if nans or (0 < negative_zeros < zeros and (low == 0 or high == 0)):
        low, high = np.inf, -np.inf
        for k in range(row.size):
            v = row[k]
            low = v if v < low else low
            high = v if v > high else high
    return low, high, zeros, nans


@njit(cache=True)
def _counts(row: np.ndarray) -> tuple[int, int, int]:
    """The zeros of ``row``, its negative zeros and its NaNs."""
    zeros = negative_zeros = nans = 0
    for k in range(row.size):
        v = row[k]
        zeros += v == 0
        negative_zeros += v == 0 and np.signbit(v)
        nans += v != v
    return zeros, negative_zeros, nans


@njit(cache=True)
def _ordered_extremes(row: np.ndarray, bits: np.ndarray, magnitude: int) -> tuple[float, float]:
    """The floats of the least and the greatest ordered integers (`_ordered`) of ``bits``, the bits
    of a non-empty ``row``."""
    lo = hi = _ordered(bits[0], magnitude)
    for k in range(bits.size):
        key = _ordered(bits[k], magnitude)
        lo = min(lo, key)
        hi = max(hi, key)
    pair = np.empty(2, row.dtype)
    ints = pair.view(bits.dtype)
    ints[0], ints[1] = _ordered(lo, magnitude), _ordered(hi, magnitude)  # its own inverse
    return pair[0], pair[1]


@njit(cache=True, inline="always")
def _ordered(b: int, magnitude: int) -> int:
    """A float's bits ``b`` as an integer in the float's order: the magnitude bits flipped where the sign is set."""
    return b ^ magnitude if b < 0 else b


@njit(cache=True)
def histogram(flat: np.ndarray, pos_width: float, neg_width: float, pos_hist: np.ndarray, neg_hist: np.ndarray) -> None:
    """Add the positive values of ``flat`` to ``pos_hist`` and the negative ones' magnitudes to
    ``neg_hist`` (bins of ``pos_width`` / ``neg_width``, given in ``flat``'s float type)."""
    last = pos_hist.size - 1
    for v in flat:
        if v > 0:
            b = int(v / pos_width)
            pos_hist[b if b < last else last] += 1
        elif v < 0:
            b = int(-v / neg_width)
            neg_hist[b if b < last else last] += 1
