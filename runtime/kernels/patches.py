"""The gather of centred input patches at sampled output positions (`alls.runtime.algorithms.patches`).

One pass: each row's taps are read from the NHWC input (a run of C channels a tap), centred by the
zero point and written in the weights' (C, KH, KW) order, zeros where a tap falls outside the input
(`gather_patches`). A depthwise layer's taps are gathered the way its training step reads them
(`gather_laid`: (R, K, G), tap k of every channel side by side), as the input codes themselves, a
copy of C channels a tap. The NumPy form (a fancy-indexed (R, KH, KW, C) copy, a conversion, a
subtraction, a mask and a transposed copy) made five passes and as many temporaries.

The positions are sampled at random over a layer's input, which is far larger than the caches: a
tap read waited for memory, and the gather's time was mostly those waits. So each row asks for the
lines of the taps of the row `AHEAD` rows on (`alls.runtime.kernels._simd.prefetch`), and they
arrive while the rows between are written. The rows are cut into ranges on the threads
`alls.runtime.kernels._parallel` chooses for their size (one: no parallel region); each row is
written alone, so the result is the same on any number.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import prange

from alls.runtime.kernels import _parallel
from alls.runtime.kernels._common import njit
from alls.runtime.kernels._simd import prefetch

__all__ = ["gather_patches", "gather_laid", "AHEAD"]

AHEAD = 8  # rows between a row's prefetch and its copy (measured 4 to 16 alike: the waits overlap)
_LINE = 64  # bytes a prefetch brings

_I64 = npt.NDArray[np.int64]
_Bool = npt.NDArray[np.bool_]


@njit(cache=True, inline="always")
def _ask(flat: np.ndarray, x: np.ndarray, n: _I64, ii: _I64, jj: _I64, q: int) -> None:
    """Prefetch every line of the taps of row ``q`` of NHWC ``x`` (``flat`` its flat view)."""
    channels = x.shape[3]
    for a in range(ii.shape[1]):
        for b in range(jj.shape[1]):
            base = ((n[q] * x.shape[1] + ii[q, a]) * x.shape[2] + jj[q, b]) * channels
            for c in range(0, channels, _LINE // x.itemsize):
                prefetch(flat, base + c)


@njit(cache=True)
def _patches(x: np.ndarray, n: _I64, ii: _I64, jj: _I64, vi: _Bool, vj: _Bool, zero_point: int, out: np.ndarray,
             first: int, last: int) -> None:
    """Rows ``first`` to ``last`` of `gather_patches`, ``out`` (R, C·KH·KW)."""
    kh, kw = ii.shape[1], jj.shape[1]
    taps = kh * kw
    channels = out.shape[1] // taps
    flat = x.reshape(-1)
    for r in range(first, last):
        if r + AHEAD < last:
            _ask(flat, x, n, ii, jj, r + AHEAD)
        row = out[r]
        for a in range(kh):
            for b in range(kw):
                t = a * kw + b
                if vi[r, a] and vj[r, b]:
                    src = x[n[r], ii[r, a], jj[r, b]]
                    for c in range(channels):
                        row[c * taps + t] = src[c] - zero_point
                else:
                    for c in range(channels):
                        row[c * taps + t] = 0


@njit(cache=True, parallel=True)
def _patches_parts(x: np.ndarray, n: _I64, ii: _I64, jj: _I64, vi: _Bool, vj: _Bool, zero_point: int,
                   out: np.ndarray, parts: int) -> None:
    """`_patches` over the rows in ``parts`` ranges, one a parallel job."""
    rows = out.shape[0]
    for part in prange(parts):
        _patches(x, n, ii, jj, vi, vj, zero_point, out, part * rows // parts, (part + 1) * rows // parts)


def gather_patches(x: np.ndarray, n: _I64, ii: _I64, jj: _I64, vi: _Bool, vj: _Bool, zero_point: int,
                   out: np.ndarray) -> None:
    """``out[r, c, a, b] = x[n[r], ii[r, a], jj[r, b], c] − zero_point`` where ``vi[r, a]`` and ``vj[r, b]``
    (the tap lies inside the input), else 0; ``x`` (N, H, W, C) integers (C-contiguous), ``out``
    (R, C, KH, KW) C-contiguous."""
    flat = out.reshape(len(out), -1)
    _run("patches", _patches, _patches_parts, (x, n, ii, jj, vi, vj, zero_point, flat))


@njit(cache=True)
def _laid(x: np.ndarray, n: _I64, ii: _I64, jj: _I64, vi: _Bool, vj: _Bool, shift: int, fill: int, out: np.ndarray,
          first: int, last: int) -> None:
    """Rows ``first`` to ``last`` of `gather_laid`."""
    groups = out.shape[2]
    kh, kw = ii.shape[1], jj.shape[1]
    per = out.shape[1] // (kh * kw)
    flat = x.reshape(-1)
    for r in range(first, last):
        if r + AHEAD < last:
            _ask(flat, x, n, ii, jj, r + AHEAD)
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


@njit(cache=True, parallel=True)
def _laid_parts(x: np.ndarray, n: _I64, ii: _I64, jj: _I64, vi: _Bool, vj: _Bool, shift: int, fill: int,
                out: np.ndarray, parts: int) -> None:
    """`_laid` over the rows in ``parts`` ranges, one a parallel job."""
    rows = out.shape[0]
    for part in prange(parts):
        _laid(x, n, ii, jj, vi, vj, shift, fill, out, part * rows // parts, (part + 1) * rows // parts)


def gather_laid(x: np.ndarray, n: _I64, ii: _I64, jj: _I64, vi: _Bool, vj: _Bool, shift: int, fill: int,
                out: np.ndarray) -> None:
    """A depthwise (one output a group) layer's taps as its training step reads them, tap k of every group
    side by side: ``out[r, (ci, a, b), g] = x[n[r], ii[r, a], jj[r, b], g·P + ci] − shift`` for the P input
    channels ci of group g where the tap lies inside the input, else ``fill``; ``out`` (R, P·KH·KW, G).
    With one channel a group, a tap is a run of C channels copied as it is read."""
    _run("laid", _laid, _laid_parts, (x, n, ii, jj, vi, vj, shift, fill, out))


def _run(name: str, serial: Callable[..., None], parallel: Callable[..., None], args: tuple[Any, ...]) -> None:
    """``serial(*args, 0, rows)``, or ``parallel(*args, parts)`` on the threads the rows' size is worth."""
    out = args[-1]
    assert isinstance(out, np.ndarray) and out.flags.c_contiguous, "the rows are written in place, contiguous"
    rows, work = len(out), out.size
    budget = _parallel.budget()
    parts = min(rows, 4 * budget)  # four a thread
    key = ("gather " + name, out.shape, out.dtype.str)
    if budget == 1 or work < 2 * _parallel.WORK_PER_THREAD or _parallel.choose(work, parts) == 1:
        _parallel.run(key, work, 1, serial, *args, 0, rows)
    else:
        _parallel.run(key, work, parts, parallel, *args, parts)
