"""The gather of centred input patches at sampled output positions (`alls.runtime.algorithms.patches`).

One pass: each row's taps are read from the NHWC input (a run of C channels a tap), centred by the
zero point and written in the weights' (C, KH, KW) order, zeros where a tap falls outside the input.
A depthwise layer's taps are gathered the way its training step reads them (`gather_laid`: (R, K, G),
tap k of every channel side by side), as the input codes themselves, a copy of C channels a tap.
The NumPy form (a fancy-indexed (R, KH, KW, C) copy, a conversion, a subtraction, a mask and a
transposed copy) made five passes and as many temporaries.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alls.runtime.kernels._common import njit

__all__ = ["gather_patches", "gather_laid"]


@njit(cache=True)
def gather_patches(x: np.ndarray, n: npt.NDArray[np.int64], ii: npt.NDArray[np.int64], jj: npt.NDArray[np.int64],
                   vi: npt.NDArray[np.bool_], vj: npt.NDArray[np.bool_], zero_point: int, out: np.ndarray) -> None:
    """``out[r, c, a, b] = x[n[r], ii[r, a], jj[r, b], c] − zero_point`` where ``vi[r, a]`` and ``vj[r, b]``
    (the tap lies inside the input), else 0; ``x`` (N, H, W, C) integers, ``out`` (R, C, KH, KW)."""
    rows, channels = out.shape[0], out.shape[1]
    kh, kw = ii.shape[1], jj.shape[1]
    for r in range(rows):
        for a in range(kh):
            for b in range(kw):
                dst = out[r, :, a, b]
                if vi[r, a] and vj[r, b]:
                    src = x[n[r], ii[r, a], jj[r, b]]
                    for c in range(channels):
                        dst[c] = src[c] - zero_point
                else:
                    for c in range(channels):
                        dst[c] = 0


@njit(cache=True)
def gather_laid(x: np.ndarray, n: npt.NDArray[np.int64], ii: npt.NDArray[np.int64], jj: npt.NDArray[np.int64],
                vi: npt.NDArray[np.bool_], vj: npt.NDArray[np.bool_], shift: int, fill: int, out: np.ndarray) -> None:
    """A depthwise (one output a group) layer's taps as its training step reads them, tap k of every group
    side by side: ``out[r, (ci, a, b), g] = x[n[r], ii[r, a], jj[r, b], g·P + ci] − shift`` for the P input
    channels ci of group g where the tap lies inside the input, else ``fill``; ``out`` (R, P·KH·KW, G).
    With one channel a group, a tap is a run of C channels copied as it is read."""
    rows, groups = out.shape[0], out.shape[2]
    kh, kw = ii.shape[1], jj.shape[1]
    per = out.shape[1] // (kh * kw)
    for r in range(rows):
        for ci in range(per):
            for a in range(kh):
                for b in range(kw):
                    dst = out[r, (ci * kh + a) * kw + b]
                    if vi[r, a] and vj[r, b]:
                        src = x[n[r], ii[r, a], jj[r, b]]
                        for g in range(groups):
                            dst[g] = src[g * per + ci] - shift
                    else:
                        for g in range(groups):
                            dst[g] = fill
