"""Numba kernels of the reconstruction's training step (`alls.runtime.algorithms.reconstruct`).

A step reads the rows of a batch of images (`gather`: converted to float32 once, exact for
|x| < 2^24; a depthwise layer's are laid out ``(R, K, C)``, transposed once a layer, so that every
pass runs along the channels), and makes three passes besides the products:

- `soft_weights`, over the weights: h(V) and dh/dV (R2), w̃ (R1), and the gate ``dh`` where the
  clip of (R1) lets the gradient through (0 elsewhere);
- `l2_gradient`, over the outputs ``(R, C)``, for a layer with no table activation and the l2 or
  l2rel loss: z (R3) → ŷ (R4) → the slope → d loss / d acc, with the column sums the bias and the
  scales learn from;
- `rounding_step`, over the weights again once the weight gradient is known: dV with the
  regulariser of (R5), and Adam's update of V in the same pass.

They follow NumPy's float32 arithmetic operation by operation (the same roundings in the same
order; sums over the rows in row order, as NumPy reduces a column), so the step learns what the
NumPy formulas learn (exp is NumPy's): only ``pow`` (the regulariser's) may differ from NumPy's in
the last bit. The depthwise products sum the taps (forward) and the rows (backward) in order, one
channel a lane. Each kernel runs on one thread: a step's work (256 rows) is well below what a second thread pays for
(`alls.runtime.kernels._parallel.WORK_PER_THREAD`).
"""

from __future__ import annotations

import numpy as np

from alls.runtime.kernels._common import njit

__all__ = ["gather", "depthwise_forward", "depthwise_backward", "soft_weights", "l2_gradient", "rounding_step",
           "adam_step", "ZETA", "GAMMA"]

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


@njit(cache=True)
def _gather_transposed(rows: np.ndarray, index: np.ndarray, out: np.ndarray) -> None:
    _, channels, taps = rows.shape
    for r in range(len(index)):
        source = rows[index[r]]
        for c in range(channels):
            for k in range(taps):
                out[r, k, c] = _F(source[c, k])


def gather(rows: np.ndarray, index: np.ndarray, transpose: bool) -> np.ndarray:
    """The rows ``index`` of integer rows (N, A, B) in float32: (R, A, B), or ``transpose``d, (R, B, A)
    (a depthwise layer's rows (N, C, K) read one tap of every channel at a time)."""
    _, a, b = rows.shape
    index = np.ascontiguousarray(index, np.int64)
    if transpose:
        out = np.empty((len(index), b, a), _F)
        _gather_transposed(rows, index, out)
    else:
        out = np.empty((len(index), a, b), _F)
        _gather(rows, index, out)
    return out


# -------------------------------------------------------------- depthwise


@njit(cache=True, error_model="numpy")
def _forward(x: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    n_rows, taps, channels = x.shape
    for r in range(n_rows):
        for c in range(channels):
            out[r, c] = 0.0
        for k in range(taps):
            for c in range(channels):
                out[r, c] += x[r, k, c] * w[k, c]


@njit(cache=True, error_model="numpy")
def _backward(x: np.ndarray, grad: np.ndarray, out: np.ndarray) -> None:
    n_rows, taps, channels = x.shape
    out[:] = 0.0
    for r in range(n_rows):
        for k in range(taps):
            for c in range(channels):
                out[k, c] += grad[r, c] * x[r, k, c]


def depthwise_forward(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """acc[r, c] = Σ_k x[r, k, c]·w[c, k] (taps in order), float32 (R, C), for `gather`'s (R, K, C) rows."""
    out = np.empty((x.shape[0], x.shape[2]), _F)
    _forward(x, np.ascontiguousarray(w.T, _F), out)
    return out


def depthwise_backward(x: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """d/dw of Σ grad·acc: out[c, k] = Σ_r grad[r, c]·x[r, k, c] (rows in order), float32 (C, K)."""
    out = np.empty((x.shape[1], x.shape[2]), _F)
    _backward(x, np.ascontiguousarray(grad, _F), out)
    return np.ascontiguousarray(out.T)


# ---------------------------------------------------------------- weights


@njit(cache=True, error_model="numpy")
def _soft_weights(e: np.ndarray, base: np.ndarray, wmax: float, w: np.ndarray, gate: np.ndarray, dh: np.ndarray,
                  h: np.ndarray) -> None:
    one, zero, span, low, top = _F(1.0), _F(0.0), _F(ZETA - GAMMA), _F(GAMMA), _F(wmax)
    for i in range(len(e)):
        s = one / (one + e[i])
        raw = s * span + low
        inside = raw > zero and raw < one
        hi = min(max(raw, zero), one)
        slope = span * s * (one - s) if inside else zero
        tilde = base[i] + hi
        w[i] = min(max(tilde, -top), top)
        gate[i] = slope if tilde > -top and tilde < top else zero
        dh[i], h[i] = slope, hi


def soft_weights(v: np.ndarray, base: np.ndarray, wmax: int, w: np.ndarray, gate: np.ndarray, dh: np.ndarray,
                 h: np.ndarray) -> None:
    """Into ``w``, ``gate``, ``dh``, ``h`` (contiguous float32, V's shape): w̃ = clip(B + h(V), −W, W)
    (R1), dh/dV (0 where h is clipped, R2), the gate (dh where w̃ is not clipped, else 0), h(V).
    exp(−V) is NumPy's (vectorized; a logit far below zero gives inf, and h its limit 0)."""
    with np.errstate(over="ignore"):
        e = np.exp(-v.reshape(-1))
    _soft_weights(e, base.reshape(-1), float(wmax), w.reshape(-1), gate.reshape(-1), dh.reshape(-1),
                  h.reshape(-1))


# ---------------------------------------------------------------- outputs


@njit(cache=True, error_model="numpy")
def _l2_gradient(acc: np.ndarray, target: np.ndarray, index: np.ndarray, a: np.ndarray, b: np.ndarray,
                 ranges: np.ndarray, nu: float, relative: bool, factor: float, gacc: np.ndarray, sums: np.ndarray,
                 moments: np.ndarray) -> None:
    n_rows, channels = acc.shape
    plo, phi, olo, ohi = ranges[0], ranges[1], ranges[2], ranges[3]
    two, count, power, scale = _F(2.0), _F(n_rows), _F(nu), _F(factor)
    sums[:] = 0.0
    moments[:] = 0.0
    for r in range(n_rows):
        y_row = target[index[r]]
        for c in range(channels):
            z = a[c] * acc[r, c] + b[c]
            clipped = min(max(z, plo), phi)
            yh = min(max(clipped, olo), ohi)
            y = min(max(y_row[c], olo), ohi)
            g = two * (yh - y) / count
            if relative:
                g = g / power
            g = scale * g
            if not (z >= plo and z <= phi and clipped >= olo and clipped <= ohi):
                g = g * _F(0.0)
            gacc[r, c] = g * a[c]
            sums[c] += g
            moments[c] += g * (z - b[c])


def l2_gradient(acc: np.ndarray, target: np.ndarray, index: np.ndarray, a: np.ndarray, b: np.ndarray,
                ranges: tuple[float, float, float, float], nu: float, relative: bool,
                factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the l2 (``relative``: l2rel, over ``nu``) loss of a layer with no table activation, from the
    products ``acc`` (R, C) and the target rows ``target[index]``: d loss / d acc (R, C), and per
    channel Σ_r gz and Σ_r gz·(z − b), where z = a·acc + b (R3), ŷ its clips to the pre-activation
    and output ranges (R4), gz = factor · d loss / d ŷ · dŷ/dz (all float32)."""
    gacc = np.empty(acc.shape, _F)
    sums, moments = np.empty(acc.shape[1], _F), np.empty(acc.shape[1], _F)
    _l2_gradient(acc, target, np.ascontiguousarray(index, np.int64), np.ascontiguousarray(a, _F),
                 np.ascontiguousarray(b, _F), np.array(ranges, _F), nu, relative, factor, gacc, sums, moments)
    return gacc, sums, moments


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
def _rounding_step(gw: np.ndarray, gate: np.ndarray, dh: np.ndarray, h: np.ndarray, regularise: bool, coef: float,
                   power: float, adam: bool, v: np.ndarray, m: np.ndarray, s: np.ndarray, lr: float, m_scale: float,
                   v_scale: float) -> None:
    c, e, one, two, zero = _F(coef), _F(power), _F(1.0), _F(2.0), _F(0.0)
    rate, ms, vs = _F(lr), _F(m_scale), _F(v_scale)
    for i in range(len(gw)):
        g = gw[i] * gate[i]
        if regularise:
            t = two * h[i] - one
            sign = one if t > zero else (-one if t < zero else zero)
            g = g + c * np.abs(t) ** e * sign * two * dh[i]
        if adam:
            v[i], m[i], s[i] = _adam1(v[i], g, m[i], s[i], rate, ms, vs)
        else:
            gw[i] = g


def rounding_step(gw: np.ndarray, gate: np.ndarray, dh: np.ndarray, h: np.ndarray, reg: tuple[float, float] | None,
                  adam: tuple[np.ndarray, np.ndarray, np.ndarray, float, int] | None) -> None:
    """dV = gw·gate (`soft_weights`), plus the regulariser's ``coef·|2h − 1|^power·sign(2h − 1)·2·dh``
    where ``reg`` = (coef, power) is given; with ``adam`` = (V, m, v, lr, t), Adam's step on V in the
    same pass (as `adam_step`), else dV written over ``gw``. All contiguous float32 of V's shape."""
    coef, power = reg if reg is not None else (0.0, 1.0)
    if not all(a.flags.c_contiguous and a.dtype == np.float32 for a in (gw, gate, dh, h)):
        raise ValueError("rounding_step reads and writes contiguous float32 arrays")
    g, gt, d, hv = (a.reshape(-1) for a in (gw, gate, dh, h))
    if adam is None:
        _rounding_step(g, gt, d, hv, reg is not None, coef, power, False, g, g, g, 0.0, 1.0, 1.0)
        return
    v, m, s, lr, t = adam
    m_scale, v_scale = _corrections(t)
    _rounding_step(g, gt, d, hv, reg is not None, coef, power, True, v.reshape(-1), m.reshape(-1), s.reshape(-1), lr,
                   m_scale, v_scale)
