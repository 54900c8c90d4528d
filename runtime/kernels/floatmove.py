"""Numba kernels of the float executor's memory-bound layers: each writes its output once, in one pass,
where NumPy would make an intermediate tensor.

- `scatter_taps`: a ConvTranspose whose kernel taps do not overlap (stride at least the dilated
  kernel: the 2x2 stride-2 upsampling of segmentation heads), from the columns of one BLAS product
  per image: every output pixel is its one tap's product (or nothing) plus the bias.
- `gather_nearest`: a nearest resize, each output row gathered once from its source row and a row
  that repeats the one above it copied.

They move values and add one bias: no sum whose order could depend on the batch or the machine.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alls.runtime.kernels._common import njit

__all__ = ["scatter_taps", "gather_nearest"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


@njit(cache=True)
def scatter_taps(cols: F32, bias: F32, row_tap: I64, row_at: I64, col_at: I64, kh: int, kw: int, out: F32) -> None:
    """One image's deconv output ``out`` (C, Ho, Wo) from its columns ``cols`` (C·kh·kw, H·W), flat.

    Output row ``yo`` takes tap row ``row_tap[yo]`` (-1: none, the bias only) of the input row that
    starts at ``row_at[yo]`` (its row · W); output column ``xo`` reads ``col_at[xo]`` = its tap column
    · H·W + its input column (-1: none, the bias only).
    """
    c, ho, wo = out.shape
    hw = cols.shape[1]
    flat = cols.reshape(-1)
    for ch in range(c):
        b = bias[ch]
        for yo in range(ho):
            dst = out[ch, yo]
            i = row_tap[yo]
            if i < 0:
                dst[:] = b
                continue
            base = (ch * kh + i) * kw * hw + row_at[yo]
            for xo in range(wo):
                k = col_at[xo]
                dst[xo] = flat[base + k] + b if k >= 0 else b


@njit(cache=True)
def gather_nearest(x: F32, iy: I64, ix: I64, out: F32) -> None:
    """Nearest resize of NCHW ``x`` into ``out`` (N, C, Ho, Wo): out[.., y, z] = x[.., iy[y], ix[z]]."""
    n, c, ho, wo = out.shape
    for i in range(n):
        for ch in range(c):
            plane, dst = x[i, ch], out[i, ch]
            for y in range(ho):
                row = dst[y]
                if y > 0 and iy[y] == iy[y - 1]:
                    row[:] = dst[y - 1]
                    continue
                src = plane[iy[y]]
                for z in range(wo):
                    row[z] = src[ix[z]]
