"""Numba kernels for `alls.runtime.exec.calibration.TensorStats`: one pass for the extremes, one for the
histogram, instead of the half-dozen temporary arrays NumPy would make per tensor.

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
    """Over ``x`` (N, C, R): the minimum, the maximum, the count of zeros, the largest positive
    value and negative magnitude (0 when there are none), and the count of NaNs; with ``per_channel``, each channel's
    minimum and maximum are folded into ``channel_min`` / ``channel_max`` (C,)."""
    low, high = np.inf, -np.inf
    zeros = 0
    nans = 0
    top_pos, top_neg = 0.0, 0.0
    n, c, r = x.shape
    for i in range(n):
        for j in range(c):
            lo, hi = channel_min[j] if per_channel else np.inf, channel_max[j] if per_channel else -np.inf
            for k in range(r):
                v = x[i, j, k]
                if v < lo:
                    lo = v
                if v > hi:
                    hi = v
                if v > 0:
                    if v > top_pos:
                        top_pos = v
                elif v < 0:
                    if -v > top_neg:
                        top_neg = -v
                elif v == 0:
                    zeros += 1
                else:  # NaN: no comparison holds
                    nans += 1
            if per_channel:
                channel_min[j], channel_max[j] = lo, hi
            if lo < low:
                low = lo
            if hi > high:
                high = hi
    return low, high, zeros, top_pos, top_neg, nans


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
