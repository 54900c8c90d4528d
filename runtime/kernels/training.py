"""Numba kernels of the reconstruction's training step (`alls.runtime.algorithms.reconstruct`).

A step reads the rows of a batch of images: a dense or grouped layer's gathered to float32 once for
both matrix products (`gather`, exact for |x| < 2^24); a depthwise layer's read where they are, as
integers, by its products (`depthwise_forward`, `depthwise_backward`), which run along the channels
of rows laid out ``(N, K, C)``, gathered so (`alls.runtime.algorithms.patches.LaidRows`: the input
codes, uint8 for 8-bit inputs) or laid out once a layer from integer rows (`depthwise_rows`: in
uint8 where they fit); a step's rows come from memory, and its time goes with their bytes. Besides the
products a step makes three passes:

- `soft_weights`, over the weights: h(V) and dh/dV (R2), w̃ (R1), the gate (``dh`` where the
  clip of (R1) lets the gradient through, 0 elsewhere) and 2h − 1 for the regulariser;
- `l2_gradient`, over the outputs ``(R, C)``, for a layer with no table activation and the l2 or
  l2rel loss: z (R3) → ŷ (R4) → the slope → d loss / d acc, with the column sums the bias and the
  scales learn from;
- `rounding_step`, over the weights again once the weight gradient is known: dV with the
  regulariser of (R5), and Adam's update of V in the same pass.

They follow NumPy's float32 arithmetic operation by operation (the same roundings in the same
order; sums over the rows in row order, as NumPy reduces a column), so the step learns what the
NumPy formulas learn, bit for bit (exp is NumPy's own pass; pow the C library's powf, which NumPy
calls: `regulariser_powers`). The depthwise products sum the taps (forward) and the rows
(backward) in order, one channel a lane; for the l2 and l2rel losses they and the outputs' pass
are one pass over the rows (`depthwise_l2`), on one thread: a step's work on its 256 rows is below
what a second thread pays for (`alls.runtime.kernels._parallel.WORK_PER_THREAD`). The weights'
passes (a deep layer has up to 590k weights) are cut into ranges of weights on the threads
`_parallel` chooses for their size and the free cores (`_by_weights`), or, for a step on two threads
(`alls.runtime.algorithms.reconstruct`), into two parts, the update of V and the next soft weights
together (`step_part`); each weight is computed alone, so the bits are the same on any number of
threads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import prange

from alls.runtime.kernels import _parallel
from alls.runtime.kernels._common import njit

__all__ = ["gather", "depthwise_rows", "depthwise_forward", "depthwise_backward", "soft_weights", "l2_gradient", "rounding_step",
           "regulariser_powers", "step_part", "depthwise_l2", "weight_parts", "adam_step", "ZETA", "GAMMA"]

_F = np.float32
ZETA, GAMMA = 1.1, -0.1


# ------------------------------------------------------------------- rows


@njit(cache=True)
def _gather(rows: np.ndarray, index: np.ndarray, out: np.ndarray) -> None:
    _, a, b = rows.shape
    for r in range(len(index)):
        source = rows[index[r]]
        for i in range(a):
            for j in range(b):
                out[r, i, j] = _F(source[i, j])


def gather(rows: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The rows ``index`` of integer rows (N, G, K) in float32 (R, G, K), for the matrix products."""
    out = np.empty((len(index), *rows.shape[1:]), _F)
    _gather(rows, index, out)
    return out


# -------------------------------------------------------------- depthwise


@njit(cache=True)
def _lay_out(rows: np.ndarray, offset: int, out: np.ndarray) -> None:
    n_rows, channels, taps = rows.shape
    for r in range(n_rows):
        for c in range(channels):
            for k in range(taps):
                out[r, k, c] = rows[r, c, k] - offset


def depthwise_rows(rows: np.ndarray) -> tuple[np.ndarray, int]:
    """A depthwise layer's integer rows (N, C, K) laid out (N, K, C) for `depthwise_forward`, with the
    offset to add back: where their values span at most 256 (8-bit inputs, centred) they are held
    as uint8 less their least, half the bytes a step reads from memory."""
    low, high = (int(rows.min()), int(rows.max())) if rows.size else (0, 0)
    narrow = high - low < 256
    out = np.empty((rows.shape[0], rows.shape[2], rows.shape[1]), np.uint8 if narrow else rows.dtype)
    _lay_out(rows, low if narrow else 0, out)
    return out, low if narrow else 0


@njit(cache=True, error_model="numpy")
def _forward(rows: np.ndarray, offset: float, index: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    taps, channels = w.shape
    back = _F(offset)  # x + offset is an integer below 2^24: exact in float32
    for r in range(len(index)):
        x = rows[index[r]]
        for c in range(channels):
            out[r, c] = 0.0
        for k in range(taps):
            for c in range(channels):
                out[r, c] += (_F(x[k, c]) + back) * w[k, c]


@njit(cache=True, error_model="numpy")
def _backward(rows: np.ndarray, offset: float, index: np.ndarray, grad: np.ndarray, out: np.ndarray) -> None:
    taps, channels = out.shape
    back = _F(offset)
    out[:] = 0.0
    for r in range(len(index)):
        x = rows[index[r]]
        for k in range(taps):
            for c in range(channels):
                out[k, c] += grad[r, c] * (_F(x[k, c]) + back)


def depthwise_forward(rows: tuple[np.ndarray, int], index: np.ndarray, w: np.ndarray) -> np.ndarray:
    """acc[r, c] = Σ_k x[k, c]·w[c, k] (taps in order) for the rows x = ``rows[index[r]]`` of a depthwise
    layer's rows as `depthwise_rows` lays them out: float32 (R, C)."""
    source, offset = rows
    out = np.empty((len(index), source.shape[2]), _F)
    _forward(source, float(offset), index, np.ascontiguousarray(w.T, _F), out)
    return out


def depthwise_backward(rows: tuple[np.ndarray, int], index: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """d/dw of Σ grad·acc: out[c, k] = Σ_r grad[r, c]·x[k, c] (rows in order) for x = ``rows[index[r]]``
    as in `depthwise_forward`: float32 (C, K)."""
    source, offset = rows
    out = np.empty(source.shape[1:], _F)
    _backward(source, float(offset), index, np.asarray(grad, _F), out)
    return np.ascontiguousarray(out.T)


# ---------------------------------------------------------------- weights


@njit(cache=True, error_model="numpy")
def _soft_weights(e: np.ndarray, base: np.ndarray, wmax: float, w: np.ndarray, gate: np.ndarray, dh: np.ndarray,
                  t: np.ndarray) -> None:
    one, two, zero, span, low, top = _F(1.0), _F(2.0), _F(0.0), _F(ZETA - GAMMA), _F(GAMMA), _F(wmax)
    for i in range(len(e)):
        s = one / (one + e[i])
        raw = s * span + low
        inside = raw > zero and raw < one
        hi = min(max(raw, zero), one)
        slope = span * s * (one - s) if inside else zero
        tilde = base[i] + hi
        w[i] = min(max(tilde, -top), top)
        gate[i] = slope if tilde > -top and tilde < top else zero
        dh[i], t[i] = slope, two * hi - one


@njit(cache=True, error_model="numpy", parallel=True)
def _soft_weights_parts(e: np.ndarray, base: np.ndarray, wmax: float, w: np.ndarray, gate: np.ndarray, dh: np.ndarray,
                        t: np.ndarray, parts: int) -> None:
    for part in prange(parts):
        lo, hi = _range(len(e), part, parts)
        _soft_weights(e[lo:hi], base[lo:hi], wmax, w[lo:hi], gate[lo:hi], dh[lo:hi], t[lo:hi])


def soft_weights(v: np.ndarray, base: np.ndarray, wmax: int, w: np.ndarray, gate: np.ndarray, dh: np.ndarray,
                 t: np.ndarray) -> None:
    """Into ``w``, ``gate``, ``dh``, ``t`` (contiguous float32, V's shape): w̃ = clip(B + h(V), −W, W)
    (R1), dh/dV (0 where h is clipped, R2), the gate (dh where w̃ is not clipped, else 0), and
    2h(V) − 1 for the regulariser. exp(−V) is NumPy's (vectorized; a logit far below zero gives inf,
    and h its limit 0)."""
    with np.errstate(over="ignore"):
        e = np.exp(-v.reshape(-1))
    _by_weights("soft weights", _soft_weights, _soft_weights_parts,
                (e, base.reshape(-1), float(wmax), w.reshape(-1), gate.reshape(-1), dh.reshape(-1), t.reshape(-1)))


# ---------------------------------------------------------------- outputs


@njit(cache=True, error_model="numpy")
def _l2_gradient(acc: np.ndarray, target: np.ndarray, index: np.ndarray, a: np.ndarray, b: np.ndarray,
                 ranges: np.ndarray, nu: float, factor: float, gacc: np.ndarray, sums: np.ndarray,
                 moments: np.ndarray) -> None:
    n_rows, channels = acc.shape
    plo, phi, olo, ohi = ranges[0], ranges[1], ranges[2], ranges[3]
    one, zero, two, count, power, scale = _F(1.0), _F(0.0), _F(2.0), _F(n_rows), _F(nu), _F(factor)
    sums[:] = 0.0
    moments[:] = 0.0
    for r in range(n_rows):
        y_row = target[index[r]]
        for c in range(channels):
            z = a[c] * acc[r, c] + b[c]
            clipped = min(max(z, plo), phi)
            y = min(max(y_row[c], olo), ohi)
            g = scale * (two * (min(max(clipped, olo), ohi) - y) / count / power)  # ν = 1 for l2: exact
            g = g * (one if z >= plo and z <= phi and clipped >= olo and clipped <= ohi else zero)
            gacc[r, c] = g * a[c]
            sums[c] += g
            moments[c] += g * (z - b[c])


def l2_gradient(acc: np.ndarray, target: np.ndarray, index: np.ndarray, a: np.ndarray, b: np.ndarray,
                ranges: np.ndarray, nu: float, relative: bool, factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the l2 (``relative``: l2rel, over ``nu``) loss of a layer with no table activation, from the
    products ``acc`` (R, C) and the target rows ``target[index]``: d loss / d acc (R, C), and per
    channel Σ_r gz and Σ_r gz·(z − b), where z = a·acc + b (R3), ŷ its clips to the pre-activation
    and output ranges (R4: ``ranges`` = lo, hi, out lo, out hi), gz = factor · d loss / d ŷ · dŷ/dz
    (all float32)."""
    gacc = np.empty(acc.shape, _F)
    sums, moments = np.empty(acc.shape[1], _F), np.empty(acc.shape[1], _F)
    _l2_gradient(acc, target, index, np.asarray(a, _F), np.asarray(b, _F), np.asarray(ranges, _F),
                 nu if relative else 1.0, factor, gacc, sums, moments)
    return gacc, sums, moments


@njit(cache=True, error_model="numpy")
def _depthwise_l2(rows: np.ndarray, offset: float, index: np.ndarray, w: np.ndarray, target: np.ndarray,
                  a: np.ndarray, b: np.ndarray, ranges: np.ndarray, nu: float, factor: float, grad: np.ndarray,
                  sums: np.ndarray, moments: np.ndarray) -> None:
    taps, channels = w.shape
    n_rows = len(index)
    back = _F(offset)
    plo, phi, olo, ohi = ranges[0], ranges[1], ranges[2], ranges[3]
    one, zero, two, count, power, scale = _F(1.0), _F(0.0), _F(2.0), _F(n_rows), _F(nu), _F(factor)
    acc, gacc = np.empty(channels, _F), np.empty(channels, _F)
    grad[:] = 0.0
    sums[:] = 0.0
    moments[:] = 0.0
    for r in range(n_rows):
        x = rows[index[r]]
        y_row = target[index[r]]
        for c in range(channels):
            acc[c] = 0.0
        for k in range(taps):  # `_forward`'s sums
            for c in range(channels):
                acc[c] += (_F(x[k, c]) + back) * w[k, c]
        for c in range(channels):  # `_l2_gradient`'s
            z = a[c] * acc[c] + b[c]
            clipped = min(max(z, plo), phi)
            y = min(max(y_row[c], olo), ohi)
            g = scale * (two * (min(max(clipped, olo), ohi) - y) / count / power)
            g = g * (one if z >= plo and z <= phi and clipped >= olo and clipped <= ohi else zero)
            gacc[c] = g * a[c]
            sums[c] += g
            moments[c] += g * (z - b[c])
        for k in range(taps):  # `_backward`'s
            for c in range(channels):
                grad[k, c] += gacc[c] * (_F(x[k, c]) + back)


def depthwise_l2(rows: tuple[np.ndarray, int], index: np.ndarray, w: np.ndarray, target: np.ndarray, a: np.ndarray,
                 b: np.ndarray, ranges: np.ndarray, nu: float, relative: bool,
                 factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`depthwise_forward`, `l2_gradient` and `depthwise_backward` of a depthwise layer in one pass over its
    rows, each row read once (a third of the three's time at 960 channels): d loss / d w (C, K) float32,
    and the column sums of `l2_gradient`. Each channel takes the same operations in the same order as in
    those three: the same bits. (Cut into ranges of channels for two threads, its loops no longer
    vectorized: ten times slower.)"""
    source, offset = rows
    channels = source.shape[2]
    grad, sums, moments = np.empty(source.shape[1:], _F), np.empty(channels, _F), np.empty(channels, _F)
    _depthwise_l2(source, float(offset), index, np.ascontiguousarray(w.T, _F), target, np.asarray(a, _F),
                  np.asarray(b, _F), np.asarray(ranges, _F), nu if relative else 1.0, factor, grad, sums, moments)
    return np.ascontiguousarray(grad.T), sums, moments


# --------------------------------------------------------------- updates


@njit(cache=True, fastmath=True)
def _adam1(p: float, g: float, m: float, v: float, rate: float, ms: float, vs: float) -> tuple[float, float, float]:
    """One element of Adam's step (float32 arguments), returning p, m and v."""
    mi = _F(0.9) * m + _F(0.1) * g
    vi = _F(0.999) * v + _F(0.001) * g * g
    return p - rate * (mi * ms) / (np.sqrt(vi * vs) + _F(1e-8)), mi, vi


@njit(cache=True)
def _adam(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, lr: float, m_scale: float,
          v_scale: float) -> None:
    rate, ms, vs = _F(lr), _F(m_scale), _F(v_scale)
    for i in range(len(p)):
        p[i], m[i], v[i] = _adam1(p[i], g[i], m[i], v[i], rate, ms, vs)


def _corrections(t: int) -> tuple[float, float]:
    return 1.0 / (1.0 - 0.9 ** t), 1.0 / (1.0 - 0.999 ** t)


def adam_step(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, lr: float, t: int) -> None:
    """One Adam step (β₁ = 0.9, β₂ = 0.999, ε = 1e−8, bias-corrected for step ``t`` ≥ 1) on ``p`` in
    place, with its moments ``m`` and ``v``; all contiguous float32 of one shape, in one pass."""
    if not all(a.flags.c_contiguous and a.dtype == np.float32 for a in (p, m, v)):
        raise ValueError("adam_step updates contiguous float32 arrays in place")
    _adam(p.reshape(-1), np.ascontiguousarray(g, np.float32).reshape(-1), m.reshape(-1), v.reshape(-1), lr,
          *_corrections(t))


@njit(cache=True, error_model="numpy")
def _rounding_step(gw: np.ndarray, gate: np.ndarray, dh: np.ndarray, t: np.ndarray, powers: np.ndarray,
                   regularise: bool, coef: float, adam: bool, v: np.ndarray, m: np.ndarray, s: np.ndarray, lr: float,
                   m_scale: float, v_scale: float) -> None:
    c, one, two, zero = _F(coef), _F(1.0), _F(2.0), _F(0.0)
    rate, ms, vs = _F(lr), _F(m_scale), _F(v_scale)
    for i in range(len(gw)):
        g = gw[i] * gate[i]
        if regularise:
            sign = one if t[i] > zero else (-one if t[i] < zero else zero)
            g = g + c * powers[i] * sign * two * dh[i]
        if adam:
            v[i], m[i], s[i] = _adam1(v[i], g, m[i], s[i], rate, ms, vs)
        else:
            gw[i] = g


@njit(cache=True, error_model="numpy", parallel=True)
def _rounding_step_parts(gw: np.ndarray, gate: np.ndarray, dh: np.ndarray, t: np.ndarray, powers: np.ndarray,
                         regularise: bool, coef: float, adam: bool, v: np.ndarray, m: np.ndarray, s: np.ndarray,
                         lr: float, m_scale: float, v_scale: float, parts: int) -> None:
    for part in prange(parts):
        lo, hi = _range(len(gw), part, parts)
        if adam:
            _rounding_step(gw[lo:hi], gate[lo:hi], dh[lo:hi], t[lo:hi], powers[lo:hi], regularise, coef, adam,
                           v[lo:hi], m[lo:hi], s[lo:hi], lr, m_scale, v_scale)
        else:  # dV written over gw, V and the moments unread (the same array as gw: one slice of it)
            g = gw[lo:hi]
            _rounding_step(g, gate[lo:hi], dh[lo:hi], t[lo:hi], powers[lo:hi], regularise, coef, adam, g, g, g, lr,
                           m_scale, v_scale)


@njit(cache=True, error_model="numpy")
def _power(a: float, p: float) -> float:
    """a^p of float32 ``a`` and ``p`` as NumPy's float32 power gives it: its own passes for the exponents 2, 1/2
    and −1, else the C library's powf (which it calls)."""
    if p == 2.0:
        return a * a
    if p == 0.5:
        root: float = np.sqrt(a)
        return root
    if p == -1.0:
        inverse: float = _F(1.0) / a
        return inverse
    return math.pow(a, p)


@njit(cache=True, error_model="numpy")
def _powers(t: np.ndarray, power: float, out: np.ndarray, picked: np.ndarray, values: np.ndarray) -> None:
    one, p = _F(1.0), _F(power)
    n = 0
    for i in range(len(t)):  # |t| = 1 is 1; the others listed (without a branch), then raised
        a = abs(t[i])
        out[i] = one
        picked[n], values[n] = i, a
        n += a != one
    for j in range(n):
        out[picked[j]] = _power(values[j], p)


def regulariser_powers(t: np.ndarray, power: float) -> np.ndarray:
    """|t|^power (flat, float32) for the regulariser of `rounding_step`, t = 2h − 1 (`soft_weights`): what
    NumPy's ``np.abs(t) ** power`` gives, bit for bit (`_power`), without the call where |t| = 1. Those are the weights whose
    h is clipped, most of a layer's once the regulariser has pushed them there (40-80% of a wide
    layer's at finetune's learning rate): pow is most of the regulariser's cost."""
    flat = t.reshape(-1)
    out, values = np.empty(flat.shape, _F), np.empty(flat.shape, _F)
    _powers(flat, float(power), out, np.empty(flat.shape, np.int32 if len(flat) < 1 << 31 else np.int64), values)
    return out


def rounding_step(gw: np.ndarray, gate: np.ndarray, dh: np.ndarray, t: np.ndarray, reg: tuple[float, float] | None,
                  adam: tuple[np.ndarray, np.ndarray, np.ndarray, float, int] | None,
                  powers: np.ndarray | None = None) -> None:
    """dV = gw·gate (`soft_weights`), plus the regulariser's ``coef·|t|^power·sign(t)·2·dh`` (t = 2h − 1)
    where ``reg`` = (coef, power) is given; with ``adam`` = (V, m, v, lr, t), Adam's step on V in the
    same pass (as `adam_step`), else dV written over ``gw``. All contiguous float32 of V's shape.
    ``powers``: `regulariser_powers` of ``t``, where made already (on another thread, beside the products)."""
    if not all(a.flags.c_contiguous and a.dtype == np.float32 for a in (gw, gate, dh, t)):
        raise ValueError("rounding_step reads and writes contiguous float32 arrays")
    g, gt, d, tv = (a.reshape(-1) for a in (gw, gate, dh, t))
    coef, powers = (0.0, tv) if reg is None else (reg[0], regulariser_powers(tv, reg[1]) if powers is None else powers)
    if adam is None:
        args: tuple[Any, ...] = (g, gt, d, tv, powers, reg is not None, coef, False, g, g, g, 0.0, 1.0, 1.0)
    else:
        v, m, s, lr, step = adam
        args = (g, gt, d, tv, powers, reg is not None, coef, True, v.reshape(-1), m.reshape(-1), s.reshape(-1), lr,
                *_corrections(step))
    _by_weights("rounding step", _rounding_step, _rounding_step_parts, args)


def step_part(part: tuple[int, int], gw: np.ndarray, soft: tuple[np.ndarray, ...], powers: np.ndarray | None,
              reg: tuple[float, float] | None, adam: tuple[np.ndarray, np.ndarray, np.ndarray, float, int],
              base: np.ndarray, wmax: int) -> None:
    """The weights ``part`` = (lo, hi) of a step (flat indices, from `weight_parts`): `rounding_step` with Adam's
    step on V, then `soft_weights` of the new V into ``soft`` = (w̃, gate, dh/dV, 2h − 1), which the step read
    (the next step's), on the calling thread. Each weight is computed alone, by the instructions it takes in
    the whole pass (a part starts at a multiple of `_BLOCK`): the same bits as `rounding_step` and
    `soft_weights` over all the weights, whichever thread runs which part."""
    lo, hi = part
    w, gate, dh, t = (a.reshape(-1)[lo:hi] for a in soft)
    v, m, s, lr, step = adam
    v, m, s = (a.reshape(-1)[lo:hi] for a in (v, m, s))
    coef, power = (0.0, t) if reg is None else (reg[0], t if powers is None else powers[lo:hi])
    _rounding_step(gw.reshape(-1)[lo:hi], gate, dh, t, power, reg is not None, coef, True, v, m, s, lr,
                   *_corrections(step))
    with np.errstate(over="ignore"):
        e = np.exp(-v)
    _soft_weights(e, base.reshape(-1)[lo:hi], float(wmax), w, gate, dh, t)


def weight_parts(count: int, parts: int) -> list[tuple[int, int]]:
    """``count`` weights cut into ``parts`` ranges at multiples of `_BLOCK` (as the passes' threads cut them;
    a range may be empty)."""
    return [_range(count, part, parts) for part in range(parts)]


# ---------------------------------------------------------------- threads


_BLOCK = 1 << 12  # a range of the weights starts at a multiple of it


@njit(cache=True, inline="always")
def _range(count: int, part: int, parts: int) -> tuple[int, int]:
    """Part ``part`` of ``parts`` of ``count`` weights, cut at multiples of `_BLOCK`: a range's vectorized
    loop ends where the whole one's does (its last lanes, in the scalar loop, are the whole's), so
    each weight takes the same instructions on any number of threads (fastmath's Adam step may
    round differently in a vector lane than in the scalar loop)."""
    blocks = (count + _BLOCK - 1) // _BLOCK
    return min(count, part * blocks // parts * _BLOCK), min(count, (part + 1) * blocks // parts * _BLOCK)


PER_WEIGHT = 8  # a weight pass's work per weight, in `_parallel.WORK_PER_THREAD`'s multiply-adds (a division, a
#                 square root, a few clips: 2-3 ns on one core, as 8 multiply-adds)
_SMALLEST_PART = 1 << 14  # weights a parallel job takes at least


def _by_weights(name: str, serial: Callable[..., None], parallel: Callable[..., None], args: tuple[Any, ...]) -> None:
    """A pass over the weights (``args[0]`` as long as the others): ``serial(*args, 0, n)``, or on the threads
    `alls.runtime.kernels._parallel` chooses for its size, ``parallel(*args, parts)`` over ranges of them.
    Each weight is computed alone, from its own values: the same bits on any number of threads."""
    count = len(args[0])
    work = PER_WEIGHT * count
    parts = min(count // _SMALLEST_PART, 4 * _parallel.budget())  # four a thread
    if parts <= 1 or work < 2 * _parallel.WORK_PER_THREAD or _parallel.choose(work, parts) == 1:
        serial(*args)  # most layers, every step: not a microsecond more than the kernel
    else:
        _parallel.run((name, count), work, parts, parallel, *args, parts)
