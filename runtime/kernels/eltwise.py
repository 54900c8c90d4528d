"""Elementwise add/sub and mul, concat, and the lookup-table activation: NUMERICS.md §6, §8–§10.

Inputs are NHWC (or any shape with channels last) uint8/uint16. A second operand is either the
same shape or a per-channel constant (``C`` values, or any shape that broadcasts only along
the channel axis). Other broadcasts are materialized first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from alls.runtime.kernels._common import _requant1, _rhu, as_activation, njit, requantize
from alls.runtime.numerics import AddRequant, Requant, activation_max

__all__ = ["ew_add", "ew_sub", "ew_mult", "concat", "lut"]


@njit(cache=True)
def add_rows(a: np.ndarray, b: np.ndarray, za: np.int64, zb: np.int64, ma: np.int64, mb: np.int64,
             shift: np.int64, zo: np.int64, lo: np.int64, hi: np.int64,
             out: np.ndarray) -> None:
    """(N23): out = clamp(zo + RHU(M_a·(a − Z_a) + M_b·(b − Z_b), n), lo, hi), one rounding.

    a: (R, C) uint8/uint16; b: (R, C) or (1, C) (per-channel constant); out: (R, C)
    uint8/uint16. int64 throughout: |M_a·Δa| + |M_b·Δb| < 2^w·(A_a + A_b) ≤ 2^62.
    """
    rows, cols = a.shape
    shared = b.shape[0] == 1
    for r in range(rows):
        rb = 0 if shared else r
        for c in range(cols):
            s = ma * (np.int64(a[r, c]) - za) + mb * (np.int64(b[rb, c]) - zb)
            out[r, c] = min(max(zo + _rhu(s, shift), lo), hi)


@njit(cache=True)
def mul_rows(a: np.ndarray, b: np.ndarray, za: np.int64, zb: np.int64, mult: np.int64, shift: np.int64,
             zo: np.int64, lo: np.int64, hi: np.int64, out: np.ndarray) -> None:
    """(N24): out = clamp(zo + RHU((a − Z_a)·(b − Z_b)·M, n), lo, hi).

    a: (R, C) uint8/uint16; b: (R, C) or (1, C); out: (R, C) uint8/uint16. |Δa·Δb| ≤ A_a·A_b
    < 2^32, M < 2^w(A_a·A_b), so the int64 product stays below 2^62 (N15).
    """
    rows, cols = a.shape
    shared = b.shape[0] == 1
    for r in range(rows):
        rb = 0 if shared else r
        for c in range(cols):
            p = (np.int64(a[r, c]) - za) * (np.int64(b[rb, c]) - zb)
            out[r, c] = _requant1(p, mult, shift, zo, lo, hi)


@njit(cache=True)
def lut_rows(p: np.ndarray, table: np.ndarray, out: np.ndarray) -> None:
    """(N20): out[r, c] = T[c or 0, p[r, c]]; p: (R, C) uint8/uint16; table: (1 or C, 2^a)."""
    rows, cols = p.shape
    per_channel = table.shape[0] > 1
    for r in range(rows):
        for c in range(cols):
            out[r, c] = table[c if per_channel else 0, p[r, c]]


def _operands(a: ArrayLike, b: ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """(a2, b2, swapped): 2-D (R, C) views, b2 with R or 1 rows; the full-size operand first."""
    a, b = as_activation(a, f"{name} input a"), as_activation(b, f"{name} input b")
    swapped = a.size < b.size
    if swapped:
        a, b = b, a
    channels = a.shape[-1] if a.ndim else 1
    if b.shape == a.shape:
        return a.reshape(-1, channels), b.reshape(-1, channels), swapped
    if b.size == channels and (b.ndim == 1 or b.shape[-1] == channels):
        return a.reshape(-1, channels), b.reshape(1, channels), swapped
    if b.size == 1:
        return a.reshape(-1, channels), np.full((1, channels), b.reshape(-1)[0], dtype=b.dtype), swapped
    full = np.ascontiguousarray(np.broadcast_to(b, a.shape))
    return a.reshape(-1, channels), full.reshape(-1, channels), swapped


def ew_add(a: ArrayLike, b: ArrayLike, rq: AddRequant, *, zero_points: tuple[int, int]) -> np.ndarray:
    """Elementwise add (N23), or subtract when ``rq.multiplier_b < 0``; b may be per-channel."""
    a2, b2, swapped = _operands(a, b, "ew_add")
    za, zb = zero_points
    ma, mb = rq.multiplier_a, rq.multiplier_b
    if swapped:
        za, zb, ma, mb = zb, za, mb, ma
    bound = activation_max(8 if a2.dtype == np.uint8 else 16) + activation_max(8 if b2.dtype == np.uint8 else 16)
    if rq.bound < bound:
        raise ValueError(f"ew_add needs multipliers derived for a bound ≥ {bound} (N23)")
    out = np.empty(a2.shape, dtype=rq.out_dtype())
    add_rows(a2, b2, np.int64(za), np.int64(zb), np.int64(ma), np.int64(mb), np.int64(rq.shift),
             np.int64(rq.zero_point), np.int64(rq.lo), np.int64(rq.hi), out)
    shape = np.asarray(b).shape if swapped else np.asarray(a).shape
    return out.reshape(shape)


def ew_sub(a: ArrayLike, b: ArrayLike, rq: AddRequant, *, zero_points: tuple[int, int]) -> np.ndarray:
    """a − b by (N23): ``rq`` from ``add_requant(..., subtract=True)`` (a negative M_b)."""
    if rq.multiplier_b > 0:
        raise ValueError("a subtraction needs a negative multiplier for b (add_requant(..., subtract=True))")
    return ew_add(a, b, rq, zero_points=zero_points)


def ew_mult(a: ArrayLike, b: ArrayLike, rq: Requant, *, zero_points: tuple[int, int]) -> np.ndarray:
    """Elementwise multiply (N24); b may be a per-channel constant."""
    a2, b2, swapped = _operands(a, b, "ew_mult")
    za, zb = zero_points
    if swapped:
        za, zb = zb, za
    bound = activation_max(8 if a2.dtype == np.uint8 else 16) * activation_max(8 if b2.dtype == np.uint8 else 16)
    if rq.multiplier.size != 1 or rq.bound < bound:
        raise ValueError(f"ew_mult needs one multiplier derived for a bound ≥ {bound}")
    out = np.empty(a2.shape, dtype=rq.out_dtype())
    mul_rows(a2, b2, np.int64(za), np.int64(zb), np.int64(rq.multiplier[0]), np.int64(rq.shift[0]),
             np.int64(rq.zero_point), np.int64(rq.lo), np.int64(rq.hi), out)
    return out.reshape(np.asarray(b).shape if swapped else np.asarray(a).shape)


def concat(inputs: Sequence[np.ndarray], rqs: Sequence[Requant], *, zero_points: Sequence[int],
           axis: int = -1) -> np.ndarray:
    """Concat along ``axis`` (N25): each input requantized to the output's (S_y, Z_y).

    ``rqs[i]`` maps input i to the output (one multiplier each; all share the output's zero
    point and bits). An input whose (M, n) = (1, 0), whose Z_i = Z_y and whose clamp is the full
    range is copied.
    """
    if not inputs or len(inputs) != len(rqs) or len(inputs) != len(zero_points):
        raise ValueError("concat needs one requantization and one zero point per input")
    xs = [as_activation(x, f"concat input {i}") for i, x in enumerate(inputs)]
    ndim = xs[0].ndim
    ax = axis % ndim
    out_dt, zo = rqs[0].out_dtype(), rqs[0].zero_point
    shape = list(xs[0].shape)
    shape[ax] = sum(x.shape[ax] for x in xs)
    if any(x.ndim != ndim or x.shape[:ax] + x.shape[ax + 1:] != xs[0].shape[:ax] + xs[0].shape[ax + 1:] for x in xs):
        raise ValueError("concat inputs differ outside the concat axis")
    if any(rq.out_dtype() != out_dt or rq.zero_point != zo for rq in rqs):
        raise ValueError("concat requantizations must share the output's zero point and bits")
    outer = int(np.prod(shape[:ax], dtype=np.int64))
    out = np.empty(shape, dtype=out_dt)
    out2 = out.reshape(outer, -1)
    col = 0
    for x, rq, z in zip(xs, rqs, zero_points):
        x2 = x.reshape(outer, -1)
        top = activation_max(rq.bits)
        if (rq.multiplier.size == 1 and rq.multiplier[0] == 1 and rq.shift[0] == 0 and z == zo
                and rq.lo == 0 and rq.hi == top and x.dtype == out_dt):
            out2[:, col:col + x2.shape[1]] = x2  # (N25) with (M, n) = (1, 0): a copy
        else:
            rq_cols = Requant(np.broadcast_to(rq.multiplier, x2.shape[1]), np.broadcast_to(rq.shift, x2.shape[1]),
                              rq.zero_point, rq.lo, rq.hi, rq.bits, rq.bound)
            requantize(x2, rq_cols, zero_point=z, bound=activation_max(8 if x.dtype == np.uint8 else 16),
                       out=out2, col0=col)
        col += x2.shape[1]
    return out


def lut(p: ArrayLike, table: np.ndarray) -> np.ndarray:
    """Lookup-table activation (N20): y = T[p] (or T[c, p] per channel), channels last.

    ``table`` has 2^a entries for a uint8/uint16 ``p`` (from ``numerics.build_lut``), or one
    such row per channel.
    """
    p = as_activation(p, "lut input")
    t = np.ascontiguousarray(table)
    t2 = t.reshape(1, -1) if t.ndim == 1 else t
    entries = 256 if p.dtype == np.uint8 else 65536
    channels = p.shape[-1] if p.ndim else 1
    if t2.shape[1] != entries or t2.shape[0] not in (1, channels) or t2.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"a {p.dtype} input needs a uint8/uint16 table of {entries} entries (per tensor or channel)")
    out = np.empty(p.shape, dtype=t2.dtype)
    lut_rows(p.reshape(-1, channels), t2, out.reshape(-1, channels))
    return out
