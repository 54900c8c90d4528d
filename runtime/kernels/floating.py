"""Numba kernels of the float executor (`alls.runtime.exec.native`) where NumPy would make a temporary
per step.

The depthwise convolution adds the taps in the order NumPy's tap-by-tap sum does, in float32,
so both give the same bits.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from alls.runtime.kernels._common import njit

__all__ = ["depthwise"]


@njit(parallel=True, cache=True)
def depthwise(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, sh: int, sw: int, dh: int, dw: int, ho: int,
              wo: int) -> np.ndarray:
    """Depthwise conv of a padded NCHW float32 ``x`` with ``weight`` (C, KH, KW) and ``bias`` (C,)."""
    n, c = x.shape[0], x.shape[1]
    kh, kw = weight.shape[1], weight.shape[2]
    out = np.zeros((n, c, ho, wo), np.float32)
    for job in prange(n * c):
        i, ch = job // c, job % c
        plane = out[i, ch]
        for a in range(kh):
            for b in range(kw):
                w = weight[ch, a, b]
                for y in range(ho):
                    row = x[i, ch, y * sh + a * dh]
                    for z in range(wo):
                        plane[y, z] += row[z * sw + b * dw] * w
        for y in range(ho):
            for z in range(wo):
                plane[y, z] += bias[ch]
    return out
