"""Numba kernels of the reconstruction's float model for depthwise layers, and of Adam's step.

A depthwise layer's rows are ``(R, C, K)`` centred integers (int16 or int32, `alls.runtime.algorithms.patches`)
with one weight vector of K taps per channel. NumPy would convert the rows to float and contract
them with `einsum` on every step; these kernels read the integers as they are, in float32, in
parallel over rows (forward) or channels (backward). They are training arithmetic, not the integer
path: rounding differs from an exact sum only in float32's last bits. Each call runs on the threads
`alls.runtime.kernels._parallel` chooses for its call site (its rows, or its channels, are the parts),
as the other parallel kernels do.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from alls.runtime.kernels import _parallel
from alls.runtime.kernels._common import njit

__all__ = ["depthwise_forward", "depthwise_backward", "adam_step"]


@njit(parallel=True, cache=True)
def _forward(rows: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    n_rows, channels, taps = rows.shape
    for r in prange(n_rows):
        for c in range(channels):
            acc = np.float32(0.0)
            for k in range(taps):
                acc += np.float32(rows[r, c, k]) * w[c, k]
            out[r, c] = acc


@njit(parallel=True, cache=True)
def _backward(rows: np.ndarray, grad: np.ndarray, out: np.ndarray) -> None:
    n_rows, channels, taps = rows.shape
    for c in prange(channels):
        for k in range(taps):
            out[c, k] = 0.0
        for r in range(n_rows):
            g = grad[r, c]
            for k in range(taps):
                out[c, k] += g * np.float32(rows[r, c, k])


def depthwise_forward(rows: np.ndarray, w: np.ndarray) -> np.ndarray:
    """acc[r, c] = Σ_k rows[r, c, k]·w[c, k], float32 (R, C)."""
    out = np.empty(rows.shape[:2], np.float32)
    _parallel.run(("float dw forward", rows.shape, rows.dtype), rows.size, rows.shape[0], _forward,
                  np.ascontiguousarray(rows), np.ascontiguousarray(w, np.float32), out)
    return out


def depthwise_backward(rows: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """d/dw of Σ grad·acc: out[c, k] = Σ_r grad[r, c]·rows[r, c, k], float32 (C, K)."""
    out = np.empty((rows.shape[1], rows.shape[2]), np.float32)
    _parallel.run(("float dw backward", rows.shape, rows.dtype), rows.size, rows.shape[1], _backward,
                  np.ascontiguousarray(rows), np.ascontiguousarray(grad, np.float32), out)
    return out


_F = np.float32


@njit(cache=True, fastmath=True)
def _adam(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, lr: float, m_scale: float,
          v_scale: float) -> None:
    b1, b2, c1, c2 = _F(0.9), _F(0.999), _F(0.1), _F(0.001)
    rate, ms, vs, eps = _F(lr), _F(m_scale), _F(v_scale), _F(1e-8)
    for i in range(len(p)):
        mi = b1 * m[i] + c1 * g[i]
        vi = b2 * v[i] + c2 * g[i] * g[i]
        m[i], v[i] = mi, vi
        p[i] -= rate * (mi * ms) / (np.sqrt(vi * vs) + eps)


def adam_step(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, lr: float, t: int) -> None:
    """One Adam step (β₁ = 0.9, β₂ = 0.999, ε = 1e−8, bias-corrected for step ``t`` ≥ 1) on ``p`` in
    place, with its moments ``m`` and ``v``; all contiguous float32 of one shape, in one pass."""
    if not all(a.flags.c_contiguous and a.dtype == np.float32 for a in (p, m, v)):
        raise ValueError("adam_step updates contiguous float32 arrays in place")
    _adam(p.reshape(-1), np.ascontiguousarray(g, np.float32).reshape(-1), m.reshape(-1), v.reshape(-1), lr,
          1.0 / (1.0 - 0.9 ** t), 1.0 / (1.0 - 0.999 ** t))
