"""The gather of a layer's float outputs at sampled positions (finetune's targets, `alls.runtime.algorithms.finetune`).

One pass over the rows: each row's channels are read from the NCHW output at its image, row and
column, and written as a row of the (R, C) targets. NumPy's ``y[n, :, i, j]`` made index arrays
and an intermediate copy every layer and batch.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alls.runtime.kernels._common import njit

__all__ = ["gather_positions"]


@njit(cache=True)
def gather_positions(y: np.ndarray, n: npt.NDArray[np.int64], ii: npt.NDArray[np.int64], jj: npt.NDArray[np.int64],
                     first: int, out: np.ndarray) -> None:
    """``out[r, c] = y[n[r] − first, c, ii[r], jj[r]]``; ``y`` (N, C, H, W), ``out`` (R, C)."""
    rows, channels = out.shape[0], out.shape[1]
    for r in range(rows):
        image, i, j = n[r] - first, ii[r], jj[r]
        for c in range(channels):
            out[r, c] = y[image, c, i, j]
