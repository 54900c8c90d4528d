"""Shared Numba kernels: requantization (N13), centring and padding (N7), and the size rules.

Every kernel is ``@njit(cache=True)``. The ``_``-prefixed functions are helpers that Numba
inlines into the kernels that call them. `njit` here is Numba's, typed so that a compiled kernel
keeps its Python signature for mypy; the kernel modules take it from here.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any, TypeVar, cast

import numba
import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from alls.runtime.numerics import Requant, accumulator_dtype, multiplier_bits

_Kernel = TypeVar("_Kernel", bound=Callable[..., Any])
# requant_tables: (M int32, off uint64, sub int64, n uint64) per channel.
Tables = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def njit(**options: Any) -> Callable[[_Kernel], _Kernel]:
    """`numba.njit` with ``options`` (``cache``, ``parallel``, ``inline``...). Numba types the
    compiled kernel as its `Dispatcher`, which says nothing of the arguments; to mypy the kernel
    keeps the signature of the Python function it compiles. Kernels release the GIL (``nogil``), so
    that Python threads running different images' kernels run at once (`alls.runtime.exec.pool`)."""
    options.setdefault("nogil", True)
    return cast(Callable[[_Kernel], _Kernel], numba.njit(**options))


@njit(cache=True, inline="always")
def _rhu(x: np.int64, n: np.int64) -> np.int64:
    """RHU(x, n) = (x + ⌊2^n/2⌋) >> n (N4), int64, arithmetic shift: ties toward +∞."""
    rounded: np.int64 = (x + ((np.int64(1) << n) >> 1)) >> n
    return rounded


@njit(cache=True, inline="always")
def _requant1(v: int, m: np.int64, n: np.int64, zo: np.int64, lo: np.int64, hi: np.int64) -> np.int64:
    """(N13) for one int64 value: clamp(Z + RHU(v·M, n), lo, hi); |v·M| < 2^62 (N15)."""
    y: np.int64 = zo + _rhu(np.int64(v) * m, n)
    return min(max(y, lo), hi)


_BIAS = 1 << 62  # for the unsigned form of RHU (N4a)
INT32_IDENTITY = (-(2**31), 2**31 - 1)  # clamp bounds that keep an int32 accumulator as it is


@njit(cache=True, inline="always")
def _requant_row(v: np.ndarray, mult: np.ndarray, off: np.ndarray, sub: np.ndarray, sh: np.ndarray, lo: np.int64,
                 hi: np.int64, out: np.ndarray) -> None:
    """(N13) over one row, in the unsigned form of RHU (N4a).

    out[c] = clamp(((v[c]·M[c] + off[c]) >>> n[c]) − sub[c], lo, hi), where the tables from
    ``requant_tables`` hold off = 2^62 + ⌊2^n/2⌋ − z_in·M and sub = 2^(62−n) − Z_y. So this is
    clamp(Z_y + RHU((v − z_in)·M, n), lo, hi). The uint64 sum is the true value, because
    |(v − z_in)·M| < 2^62 (N15). A variable logical shift of uint64 vectorizes on AVX2 and an
    arithmetic shift does not. With M int32, an int32 v makes v·M one 32×32→64 multiply.
    """
    for c in range(v.shape[0]):
        u = np.uint64(np.int64(v[c]) * np.int64(mult[c])) + off[c]
        out[c] = min(max(np.int64(u >> sh[c]) - sub[c], lo), hi)


@njit(cache=True)
def requantize_rows(v: np.ndarray, mult: np.ndarray, off: np.ndarray, sub: np.ndarray, sh: np.ndarray,
                    lo: np.int64,
                    hi: np.int64, out: np.ndarray, col0: np.int64) -> None:
    """out[r, col0 + c] = clamp(Z_y + RHU((v[r, c] − z_in)·M[c], n[c]), lo, hi)   (N13), (N25).

    v: (R, C) int32/int64 accumulators, or uint8/uint16 activations to rescale; tables from
    ``requant_tables`` (C,); out: (R, C_out) uint8/uint16 (or int32 for the identity),
    columns col0..col0+C written.
    """
    cols = v.shape[1]
    for r in range(v.shape[0]):
        _requant_row(v[r], mult, off, sub, sh, lo, hi, out[r, col0:col0 + cols])


def requant_tables(rq: Requant | None, channels: int, z_in: int = 0) -> Tables:
    """(M int32, off uint64, sub int64, n uint64) per channel for ``_requant_row`` (N4a).

    ``None`` gives the identity (M = 1, n = 0, Z = 0), which leaves an accumulator unchanged.
    """
    if rq is None:
        m, n, zo = np.ones(channels, dtype=np.int64), np.zeros(channels, dtype=np.int64), 0
    else:
        cache: dict[tuple[int, int], Tables] = rq.__dict__.setdefault("_tables", {})
        if (channels, z_in) in cache:
            return cache[channels, z_in]
        (m, n), zo = rq.per_channel(channels), rq.zero_point
    off = (np.int64(_BIAS) + ((np.int64(1) << n) >> 1) - np.int64(z_in) * m).view(np.uint64)
    tables: Tables = (m.astype(np.int32), off, (np.int64(_BIAS) >> n) - np.int64(zo), n.view(np.uint64))
    if rq is not None:
        cache[channels, z_in] = tables
    return tables


@njit(cache=True)
def quantize_codes(x: np.ndarray, scale: float, zero_point: int, top: int, out: np.ndarray) -> None:
    """``out = clamp(⌊x / scale + ½⌋ + zero_point, 0, top)`` element by element, in float64 (N5): the
    network's edge, one pass instead of NumPy's five float64 temporaries. NaN gives 0."""
    flat, codes = x.reshape(-1), out.reshape(-1)
    for k in range(flat.size):
        v = np.floor(np.float64(flat[k]) / scale + 0.5) + zero_point
        if not v >= 0:
            v = 0.0
        elif v > top:
            v = top
        codes[k] = v


def quantize(x: ArrayLike, scale: float, zero_point: int, bits: int) -> np.ndarray:
    """Float (or integer) values to activation codes at the network's edge (N5), `quantize_codes`:
    uint8 for 8 bits, uint16 for 16, the shape of ``x``."""
    data = np.ascontiguousarray(x)
    if data.dtype not in (np.float32, np.float64):
        data = data.astype(np.float64)
    codes = np.empty(data.shape, np.uint8 if bits == 8 else np.uint16)
    quantize_codes(data, float(scale), int(zero_point), (1 << bits) - 1, codes)
    return codes


@njit(cache=True)
def centre_pad(x: np.ndarray, z: np.int64, top: np.int64, left: np.int64, stride_h: np.int64, stride_w: np.int64,
               groups: np.int64, group_stride: np.int64, out: np.ndarray) -> None:
    """out[n, top + i·s_h, left + j·s_w, g·gs + ci] = x[n, i, j, g·gi + ci] − z; the rest stays 0.

    (N7): a padded (or, for deconv, inserted) position holds q − Z = 0. x: (N, H, W, C)
    uint8/uint16; out: (N, H', W', groups·gs) int16/int32, zero-filled by the caller.
    Positions that fall outside out (negative pads) are cropped. One thread: a copy is bound by
    memory, not arithmetic, and a serial kernel compiles in a fraction of a parallel one's time.
    """
    n_b, h_in, w_in, ch = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    group_in = ch // groups
    for row in range(n_b * h_in):
        n, i = row // h_in, row % h_in
        oi = top + i * stride_h
        if oi < 0 or oi >= out_h:
            continue
        for j in range(w_in):
            oj = left + j * stride_w
            if oj < 0 or oj >= out_w:
                continue
            src = x[n, i, j]
            dst = out[n, oi, oj]
            for g in range(groups):
                s = src[g * group_in:(g + 1) * group_in]
                d = dst[g * group_stride:g * group_stride + group_in]
                for ci in range(group_in):
                    d[ci] = s[ci] - z


def centred(x: np.ndarray, zero_point: int, pads: Sequence[int], dtype: DTypeLike, *,
            stride: Sequence[int] = (1, 1), groups: int = 1,
            group_stride: int | None = None) -> np.ndarray:
    """The centred, padded copy of an NHWC activation (N7): zeros at padded positions.

    ``pads`` = (top, left, bottom, right); ``stride`` inserts stride−1 zero rows/columns
    between pixels (deconv); ``group_stride`` ≥ C/groups spaces the channel groups apart
    (the fast path pads each group to an even count).
    """
    n_b, h, w, c = x.shape
    gs = c // groups if group_stride is None else group_stride
    top, left, bottom, right = (int(p) for p in pads)
    out_h = top + (h - 1) * stride[0] + 1 + bottom
    out_w = left + (w - 1) * stride[1] + 1 + right
    out = np.zeros((n_b, max(out_h, 0), max(out_w, 0), groups * gs), dtype=dtype)
    centre_pad(x, np.int64(zero_point), np.int64(top), np.int64(left), np.int64(stride[0]), np.int64(stride[1]),
               np.int64(groups), np.int64(gs), out)
    return out


def as_activation(x: ArrayLike, name: str = "input") -> np.ndarray:
    """A C-contiguous uint8/uint16 array (the only activation dtypes, N1)."""
    x = np.ascontiguousarray(x)
    if x.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"{name} must be uint8 or uint16, not {x.dtype}")
    return x


def act_bits(x: np.ndarray) -> int:
    return 8 if x.dtype == np.uint8 else 16


def conv_out_size(size: int, kernel: int, stride: int, dilation: int, pad_begin: int, pad_end: int,
                  ceil_mode: bool = False) -> int:
    """⌊(L + p_b + p_e − d(K−1) − 1)/s⌋ + 1 (ceil with ceil_mode; a last window that would start
    in the end padding is dropped, as ONNX and PyTorch do)."""
    span = size + pad_begin + pad_end - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def check_requant(rq: Requant, bound: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The per-channel (M, n) of ``rq``, after checking it was derived for a bound ≥ V (N14)."""
    if multiplier_bits(rq.bound) > multiplier_bits(bound):
        raise ValueError(f"requantization derived for |v| ≤ {rq.bound}, but this layer's bound is {bound}")
    return rq.per_channel(channels)


def requantize(v: np.ndarray, rq: Requant, *, zero_point: int = 0, bound: int | None = None,
               out: np.ndarray | None = None, col0: int = 0) -> np.ndarray:
    """(N13) on the last axis: y = clamp(Z + RHU((v − z)·M[c], n[c]), lo, hi).

    v: int32/int64 accumulators (``zero_point`` 0), or uint8/uint16 activations centred by
    ``zero_point``. ``bound`` is V; by default the dtype's own range is assumed (int32:
    2^31 − 1, uint: 2^a − 1, int64: the Requant's own bound).
    """
    v = np.ascontiguousarray(v)
    if v.dtype.kind not in "iu" or v.dtype.itemsize > 8:
        raise TypeError(f"cannot requantize {v.dtype}")
    if bound is None:
        bound = {np.dtype(np.int32): 2**31 - 1, np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}.get(
            v.dtype, rq.bound)
    accumulator_dtype(bound)
    channels = v.shape[-1] if v.ndim else 1
    check_requant(rq, bound, channels)
    v2 = v.reshape(-1, channels)
    if out is None:
        out = np.empty(v.shape, dtype=rq.out_dtype())
    out2 = out.reshape(-1, out.shape[-1])
    requantize_rows(v2, *requant_tables(rq, channels, zero_point), np.int64(rq.lo), np.int64(rq.hi), out2,
                    np.int64(col0))
    return out
