"""Conv, depthwise conv, deconv (ConvTranspose) and dense: NUMERICS.md §3, §5, §7.

Activations are NHWC uint8/uint16. Weights are a :class:`ConvWeights`, which holds the
integer weights in ONNX conv layout and packs them once per kernel layout. Each op comes in
two forms: ``*_acc`` returns the accumulators (N6) (int32 or int64, chosen by the bound (N8)
and (N9)), and the plain form requantizes them with (N13).

Two accumulation paths compute the same exact sum (N6):

- the **fast path** (8-bit activations, weights of at most 8 bits, an int32 bound): int16
  centred inputs times int8 weight pairs, through the ``vpmaddwd``-style micro-kernel in
  ``_simd.py``, over blocks of 4 pixels × 16 output channels (a dense layer runs as the conv of
  its rows side by side, so one parallel kernel, compiled once, serves both);
- the **general path** (everything else): direct loops with the innermost loop over
  contiguous output channels. Numba widens each product to int64, and the store narrows it
  to the accumulator dtype. Under the bound (N8) that narrowing is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike
from numba import prange

from alls.runtime.kernels import _parallel
from alls.runtime.kernels._common import (INT32_IDENTITY, Tables, _requant_row, act_bits, as_activation, centred,
                                          check_requant, njit, requant_tables, requantize)
from alls.runtime.kernels._simd import LANES, depthwise_kernel, pair_kernel
from alls.runtime.numerics import Bias, Requant, accumulator_dtype, value_bound, weight_max

__all__ = ["ConvWeights", "conv", "conv_acc", "dw", "dw_acc", "deconv", "deconv_acc", "fc", "fc_acc"]

_MK4 = pair_kernel(4)
_MK1 = pair_kernel(1)
_DW4 = depthwise_kernel(4)
_DW1 = depthwise_kernel(1)


# --- kernels ---------------------------------------------------------------------------------

@njit(cache=True, parallel=True)
def conv_fast(xq: np.ndarray, wp: np.ndarray, toff: np.ndarray, bias: np.ndarray, stride_h: np.int64,
              stride_w: np.int64, parts: np.int64, mult: np.ndarray, off: np.ndarray, sub: np.ndarray,
              sh: np.ndarray, lo: np.int64, hi: np.int64, out: np.ndarray) -> None:
    """Fast conv (N6)/(N21), exact in int32, with the requantization (N13) fused.

    Overflow: every partial sum is at most V = K·255·127 + |B| (a8_w8) or K·255·7 + |B| (a8_w4)
    (N8), and the dispatcher calls this kernel only when V ≤ 2^31 − 1: K ≤ 66,311 or
    K ≤ 1,203,072 with B = 0 (3·3·2048 = 18,432 gives 5.97e8). Rounding: RHU (N4a), once.

    xq: (N, Hp, Wp, G·Cgp) int16, centred and padded (N7), Cgp even;
    wp: (G, NB, T, Cgp/2, 16, 2) int8 pairs; toff: (T,) int64 offset of each tap
    (kh·d_h·Wp + kw·d_w)·G·Cgp; bias: (G·NB·16,) int32; mult/off/sub/sh: (C_out,) tables of
    ``requant_tables`` (N4a); out: (N, OH, OW, C_out) uint8/uint16, or int32 with the identity
    tables to return the accumulators. The parallel jobs are the output rows, each split into
    ``parts`` ranges of 16-channel blocks (1 when there are rows enough for the threads). Each job
    accumulates blocks of 4 pixels × 16 channels into an int32 scratch row, which is then
    requantized. Every output is the same sum in the same order whatever ``parts``.
    """
    n_b, hp, wpix, cx = xq.shape
    groups, nb, taps, ncp = wp.shape[0], wp.shape[1], wp.shape[2], wp.shape[3]
    out_h, out_w, c_out = out.shape[1], out.shape[2], out.shape[3]
    co, og, gw = groups * nb * LANES, c_out // groups, nb * LANES
    cgp = cx // groups
    blocks = groups * nb
    xf, wf = xq.reshape(-1), wp.reshape(-1)
    for job in prange(n_b * out_h * parts):
        row, part = job // parts, job % parts
        n, oh = row // out_h, row % out_h
        k0, k1 = part * blocks // parts, (part + 1) * blocks // parts
        scratch = np.empty((out_w, co), dtype=np.int32)
        for ow in range(out_w):
            scratch[ow, k0 * LANES:k1 * LANES] = bias[k0 * LANES:k1 * LANES]
        sf = scratch.reshape(-1)
        x_row = (n * hp + oh * stride_h) * wpix * cx
        step = stride_w * cx
        for gb in range(k0, k1):
            g = gb // nb
            wb = gb * taps * ncp * 2 * LANES
            x0 = x_row + g * cgp
            a0 = gb * LANES
            ow = 0
            while ow + 4 <= out_w:
                xb = x0 + ow * step
                ab = a0 + ow * co
                _MK4(xf, (xb, xb + step, xb + 2 * step, xb + 3 * step), toff, ncp, wf, wb,
                     sf, (ab, ab + co, ab + 2 * co, ab + 3 * co))
                ow += 4
            while ow < out_w:
                _MK1(xf, (x0 + ow * step,), toff, ncp, wf, wb, sf, (a0 + ow * co,))
                ow += 1
        if parts == 1:
            for ow in range(out_w):
                for g in range(groups):
                    c0, c1 = g * og, (g + 1) * og
                    _requant_row(scratch[ow, g * gw:g * gw + og], mult[c0:c1], off[c0:c1], sub[c0:c1], sh[c0:c1],
                                 lo, hi, out[n, oh, ow, c0:c1])
        else:
            for ow in range(out_w):
                for gb in range(k0, k1):
                    g, j0 = gb // nb, (gb % nb) * LANES
                    j1 = min(j0 + LANES, og)
                    c0 = g * og
                    if j0 < j1:
                        _requant_row(scratch[ow, g * gw + j0:g * gw + j1], mult[c0 + j0:c0 + j1],
                                     off[c0 + j0:c0 + j1], sub[c0 + j0:c0 + j1], sh[c0 + j0:c0 + j1], lo, hi,
                                     out[n, oh, ow, c0 + j0:c0 + j1])


@njit(cache=True)
def conv_general(xq: np.ndarray, w: np.ndarray, bias: np.ndarray, stride_h: np.int64, stride_w: np.int64,
                 dil_h: np.int64, dil_w: np.int64, acc: np.ndarray) -> None:
    """General conv accumulation (N6)/(N21) for any dtypes, exact under (N8)/(N9).

    Overflow: the dispatcher picks ``acc`` int32 when V = K·A·W + |B| ≤ 2^31 − 1 (a16_w8:
    K ≤ 258; a8_w16: K ≤ 257), and int64 when V < 2^47 (a16_w16: K ≤ 65,539; one term
    65,535·32,767 = 2,147,385,345 already fills int32).

    xq: (N, Hp, Wp, C) int16/int32, centred and padded (N7); w: (G, KH, KW, Cg, Og) int16;
    bias: (G·Og,) acc dtype; acc: (N, OH, OW, G·Og) int32/int64, out. Each product is int64
    and the store narrows it to the accumulator dtype, which is exact because every partial sum
    obeys (N8). The innermost loop runs over contiguous output channels.
    """
    n_b = xq.shape[0]
    groups, k_h, k_w, cg, og = w.shape
    out_h, out_w = acc.shape[1], acc.shape[2]
    for row in range(n_b * out_h):
        n, oh = row // out_h, row % out_h
        for ow in range(out_w):
            a = acc[n, oh, ow]
            a[:] = bias
            for g in range(groups):
                ag = a[g * og:(g + 1) * og]
                for kh in range(k_h):
                    ih = oh * stride_h + kh * dil_h
                    for kw in range(k_w):
                        xr = xq[n, ih, ow * stride_w + kw * dil_w, g * cg:(g + 1) * cg]
                        for ci in range(cg):
                            xv = xr[ci]
                            if xv != 0:  # padding and Z_x contribute nothing (N7)
                                wr = w[g, kh, kw, ci]
                                for c in range(og):
                                    ag[c] += xv * wr[c]


@njit(cache=True)
def depthwise(xq: np.ndarray, w: np.ndarray, bias: np.ndarray, stride_h: np.int64, stride_w: np.int64,
              dil_h: np.int64, dil_w: np.int64, acc: np.ndarray) -> None:
    """Depthwise accumulation (N6)/(N21), with G = C: acc[n,i,j,c] = B[c] + Σ_{u,v} xq·w[u,v,c].

    Overflow: K = KH·KW, so int32 holds V = 9·65,535·127 + |B| ≈ 7.5e7 for a16_w8 3×3; a16_w16
    3×3 (V ≈ 1.9e10) gets an int64 ``acc`` from the dispatcher (N9).

    xq: (N, Hp, Wp, C) int16/int32, centred and padded, channels already repeated for a
    channel multiplier; w: (KH, KW, C) int16; bias: (C,) acc dtype; acc: (N, OH, OW, C)
    int32/int64, out. Vectorized over contiguous channels. Exact under (N8) with K = KH·KW.
    """
    n_b = xq.shape[0]
    k_h, k_w, ch = w.shape
    out_h, out_w = acc.shape[1], acc.shape[2]
    for row in range(n_b * out_h):
        n, oh = row // out_h, row % out_h
        for ow in range(out_w):
            a = acc[n, oh, ow]
            a[:] = bias
            for kh in range(k_h):
                for kw in range(k_w):
                    xr = xq[n, oh * stride_h + kh * dil_h, ow * stride_w + kw * dil_w]
                    wr = w[kh, kw]
                    for c in range(ch):
                        a[c] += xr[c] * wr[c]


@njit(cache=True, parallel=True)
def depthwise_fast(xq: np.ndarray, w: np.ndarray, toff: np.ndarray, bias: np.ndarray, stride_h: np.int64,
                   stride_w: np.int64, mult: np.ndarray, off: np.ndarray,
                   sub: np.ndarray, sh: np.ndarray, lo: np.int64, hi: np.int64, out: np.ndarray) -> None:
    """Fast depthwise (N6)/(N21), exact in int32 with 16-bit products (|x·w| ≤ 255·127 = 32,385),
    with the requantization (N13) fused.

    Overflow: each product fits int16 (32,385 < 2^15); the sum of K = KH·KW of them plus |B|
    is V ≤ 2^31 − 1, checked by the dispatcher (K ≤ 66,311). Rounding: RHU (N4a), once.

    xq: (N, Hp, Wp, Cp) int16 centred and padded, Cp a multiple of 16; w: (T, Cp) int16;
    toff: (T,) int64 offset of each tap, (kh·d_h·Wp + kw·d_w)·Cp; bias: (Cp,) int32;
    tables (C,) from ``requant_tables``; out: (N, OH, OW, C) uint8/uint16, or int32 with the
    identity tables. Blocks of 4 pixels × 16 channels go into an int32 scratch row; rows run
    in parallel.
    """
    n_b, hp, wpix, cp = xq.shape
    out_h, out_w, ch = out.shape[1], out.shape[2], out.shape[3]
    xf, wf = xq.reshape(-1), w.reshape(-1)
    for row in prange(n_b * out_h):
        n, oh = row // out_h, row % out_h
        scratch = np.empty((out_w, cp), dtype=np.int32)
        for ow in range(out_w):
            scratch[ow, :] = bias
        sf = scratch.reshape(-1)
        x0 = (n * hp + oh * stride_h) * wpix * cp
        step = stride_w * cp
        for c0 in range(0, cp, LANES):
            ow = 0
            while ow + 4 <= out_w:
                xb = x0 + ow * step + c0
                ab = ow * cp + c0
                _DW4(xf, (xb, xb + step, xb + 2 * step, xb + 3 * step), toff, wf, cp, c0, sf,
                     (ab, ab + cp, ab + 2 * cp, ab + 3 * cp))
                ow += 4
            while ow < out_w:
                _DW1(xf, (x0 + ow * step + c0,), toff, wf, cp, c0, sf, (ow * cp + c0,))
                ow += 1
        for ow in range(out_w):
            _requant_row(scratch[ow, :ch], mult, off, sub, sh, lo, hi, out[n, oh, ow])


# --- weights ---------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class ConvWeights:
    """Integer weights q_w (N2) in ONNX conv layout ``(C_out, C_in/group, KH, KW)``.

    A 2-D array is a dense layer's ``(C_out, C_in)``. ``bits`` (4, 8 or 16) sets the bound
    (N8), not the values. Values must lie within ±(2^(b−1) − 1). The kernel layouts are packed
    on first use and cached.
    """

    values: np.ndarray
    bits: int
    group: int = 1

    def __post_init__(self) -> None:
        v = np.asarray(self.values)
        if v.ndim == 2:
            v = v[:, :, None, None]
        if v.ndim != 4 or v.dtype.kind not in "iu":
            raise TypeError(f"weights must be a 2-D or 4-D integer array, not {v.dtype} {v.shape}")
        limit = weight_max(self.bits)
        if v.size and int(np.max(np.abs(v.astype(np.int64)))) > limit:
            raise ValueError(f"{self.bits}-bit weights must lie within ±{limit}")
        if self.group < 1 or v.shape[0] % self.group:
            raise ValueError(f"group {self.group} does not divide {v.shape[0]} output channels")
        v = np.array(v, dtype=np.int8 if self.bits <= 8 else np.int16)
        v.setflags(write=False)
        object.__setattr__(self, "values", v)

    @classmethod
    def from_conv_transpose(cls, values: np.ndarray, bits: int, group: int = 1) -> ConvWeights:
        """The conv equivalent of ConvTranspose weights ``(C_in, C_out/group, KH, KW)`` (N22):
        per group, transposed to ``(C_out/group, C_in/group)`` and flipped in both axes."""
        ci, og, kh, kw = values.shape
        w = np.asarray(values).reshape(group, ci // group, og, kh, kw)[:, :, :, ::-1, ::-1]
        return cls(w.transpose(0, 2, 1, 3, 4).reshape(group * og, ci // group, kh, kw), bits, group)

    @property
    def out_channels(self) -> int:
        return int(self.values.shape[0])

    @property
    def kernel_shape(self) -> tuple[int, int]:
        return self.values.shape[2], self.values.shape[3]

    @property
    def fan_in(self) -> int:
        """K of (N8): C_in/group · KH · KW."""
        return int(np.prod(self.values.shape[1:]))

    @cached_property
    def pairs(self) -> np.ndarray:
        """Fast-path layout ``(G, NB, KH·KW, Cgp/2, 16, 2)`` int8, zero-padded: Cgp even, 16·NB ≥ Og."""
        co, cg, kh, kw = self.values.shape
        g = self.group
        og = co // g
        nb, cgp = -(-og // LANES), cg + cg % 2
        w = np.zeros((g, nb * LANES, cgp, kh, kw), dtype=np.int8)
        w[:, :og, :cg] = self.values.reshape(g, og, cg, kh, kw)
        w = w.reshape(g, nb, LANES, cgp // 2, 2, kh * kw).transpose(0, 1, 5, 3, 2, 4)
        return np.ascontiguousarray(w)

    @cached_property
    def general(self) -> np.ndarray:
        """General-path layout ``(G, KH, KW, Cg, Og)`` int16."""
        co, cg, kh, kw = self.values.shape
        w = self.values.astype(np.int16).reshape(self.group, co // self.group, cg, kh, kw)
        return np.ascontiguousarray(w.transpose(0, 3, 4, 2, 1))

    @cached_property
    def taps(self) -> np.ndarray:
        """Depthwise layout ``(KH, KW, C_out)`` int16 (one input channel per group)."""
        return np.ascontiguousarray(self.values[:, 0].astype(np.int16).transpose(1, 2, 0))

    @cached_property
    def taps_padded(self) -> np.ndarray:
        """Fast depthwise layout ``(KH·KW, Cp)`` int16, Cp = C_out rounded up to 16, zero-padded."""
        co, _, kh, kw = self.values.shape
        w = np.zeros((kh * kw, -(-co // LANES) * LANES), dtype=np.int16)
        w[:, :co] = self.taps.reshape(kh * kw, co)
        return w


# --- dispatch --------------------------------------------------------------------------------

def _bias_acc(bias: Bias | None, channels: int) -> tuple[np.ndarray, int]:
    """(B, max|B|): B = m << e (N10) as int64, one per output channel."""
    if bias is None:
        return np.zeros(channels, dtype=np.int64), 0
    b = bias.accumulator()
    if b.shape != (channels,):
        raise ValueError(f"{b.size} bias values for {channels} output channels")
    return b, bias.max_abs()


def _check_geometry(strides: Sequence[int], pads: Sequence[int], dilations: Sequence[int]) -> None:
    if len(strides) != 2 or len(dilations) != 2 or len(pads) != 4:
        raise ValueError("2-D convs take 2 strides, 2 dilations and 4 pads (top, left, bottom, right)")
    if min(strides) < 1 or min(dilations) < 1:
        raise ValueError("strides and dilations must be >= 1")


def _out_size(xq: np.ndarray, kernel: tuple[int, int], strides: Sequence[int], dilations: Sequence[int]
              ) -> tuple[int, int]:
    """The output rows and columns of a stride-s, dilation-d window over the padded ``xq``."""
    out_h = (xq.shape[1] - dilations[0] * (kernel[0] - 1) - 1) // strides[0] + 1
    out_w = (xq.shape[2] - dilations[1] * (kernel[1] - 1) - 1) // strides[1] + 1
    if out_h < 1 or out_w < 1:
        raise ValueError("the kernel is larger than the padded input")
    return out_h, out_w


def _fused_out(rq: Requant | None, bound: int, shape: tuple[int, ...]
               ) -> tuple[Tables, np.int64, np.int64, np.ndarray]:
    """(tables, lo, hi, out) for a fast kernel: requantize with ``rq``, or keep the int32 accumulators."""
    if rq is None:
        lo, hi = INT32_IDENTITY
        return requant_tables(None, shape[-1]), np.int64(lo), np.int64(hi), np.empty(shape, dtype=np.int32)
    check_requant(rq, bound, shape[-1])
    return requant_tables(rq, shape[-1]), np.int64(rq.lo), np.int64(rq.hi), np.empty(shape, dtype=rq.out_dtype())


def _run_conv(x: ArrayLike, weights: ConvWeights, bias: Bias | None, rq: Requant | None, zero_point: int,
              strides: Sequence[int], pads: Sequence[int], dilations: Sequence[int],
              insert: Sequence[int] = (1, 1)) -> np.ndarray:
    """The conv (N21) of ``x`` (stride-dilated by ``insert``): accumulators (N6) when ``rq`` is
    None, else requantized (N13). Picks the accumulator width from the bound (N8)/(N9)."""
    x = as_activation(x)
    _check_geometry(strides, pads, dilations)
    g = weights.group
    co, cg, k_h, k_w = weights.values.shape
    if x.ndim != 4 or x.shape[3] != cg * g:
        raise ValueError(f"input {x.shape} does not have {cg * g} channels (NHWC)")
    a = act_bits(x)
    b, b_max = _bias_acc(bias, co)
    bound = value_bound(weights.fan_in, a, weights.bits, b_max)
    acc_t = accumulator_dtype(bound)
    (sh, sw), (dh, dw_) = strides, dilations
    if a == 8 and weights.bits <= 8 and acc_t == np.int32:
        wp = weights.pairs
        nb, cgp = wp.shape[1], 2 * wp.shape[3]
        xq = centred(x, zero_point, pads, np.int16, stride=insert, groups=g, group_stride=cgp)
        out_h, out_w = _out_size(xq, (k_h, k_w), strides, dilations)
        toff = np.array([(kh * dh * xq.shape[2] + kw * dw_) * xq.shape[3] for kh in range(k_h) for kw in range(k_w)],
                        dtype=np.int64)
        bias_p = np.zeros((g, nb * LANES), dtype=np.int32)
        bias_p[:, :co // g] = b.reshape(g, co // g)
        tables, lo, hi, out = _fused_out(rq, bound, (x.shape[0], out_h, out_w, co))
        rows, blocks = x.shape[0] * out_h, g * nb
        work = rows * out_w * co * weights.fan_in
        parts = _parallel.split(work, rows, blocks)
        _parallel.run(("conv", xq.shape, wp.shape, out.shape, parts), work, rows * parts, conv_fast, xq, wp, toff,
                      bias_p.reshape(-1), np.int64(sh), np.int64(sw), np.int64(parts), *tables, lo, hi, out)
        return out
    xq = centred(x, zero_point, pads, np.int16 if a == 8 else np.int32, stride=insert)
    out_h, out_w = _out_size(xq, (k_h, k_w), strides, dilations)
    acc = np.empty((x.shape[0], out_h, out_w, co), dtype=acc_t)
    conv_general(xq, weights.general, b.astype(acc_t), np.int64(sh), np.int64(sw), np.int64(dh), np.int64(dw_), acc)
    return acc if rq is None else requantize(acc, rq, bound=bound)


def conv_acc(x: ArrayLike, weights: ConvWeights, bias: Bias | None = None, *, zero_point: int,
             strides: Sequence[int] = (1, 1), pads: Sequence[int] = (0, 0, 0, 0),
             dilations: Sequence[int] = (1, 1)) -> np.ndarray:
    """Conv accumulators (N6)/(N21): NHWC uint8/uint16 in, NHWC int32/int64 out (width by (N9))."""
    return _run_conv(x, weights, bias, None, zero_point, strides, pads, dilations)


def conv(x: ArrayLike, weights: ConvWeights, bias: Bias | None, rq: Requant, *, zero_point: int,
         strides: Sequence[int] = (1, 1),
         pads: Sequence[int] = (0, 0, 0, 0), dilations: Sequence[int] = (1, 1)) -> np.ndarray:
    """Conv (N21), any group/stride/dilation/pads, requantized per channel (N13): NHWC in and out.

    ``zero_point`` is Z_x; pads are (top, left, bottom, right). Rounding: RHU (N4) once.
    """
    return _run_conv(x, weights, bias, rq, zero_point, strides, pads, dilations)


def _run_depthwise(x: ArrayLike, weights: ConvWeights, bias: Bias | None, rq: Requant | None, zero_point: int,
                   strides: Sequence[int], pads: Sequence[int], dilations: Sequence[int]) -> np.ndarray:
    x = as_activation(x)
    _check_geometry(strides, pads, dilations)
    co, cg, k_h, k_w = weights.values.shape
    if x.ndim != 4 or cg != 1 or weights.group != x.shape[3] or co % x.shape[3]:
        raise ValueError(f"depthwise weights {weights.values.shape} (group {weights.group}) "
                         f"do not fit input {x.shape}")
    mult = co // x.shape[3]
    if mult > 1:  # channel multiplier: output channel c reads input channel c // mult
        x = np.repeat(x, mult, axis=3)
    a = act_bits(x)
    b, b_max = _bias_acc(bias, co)
    bound = value_bound(k_h * k_w, a, weights.bits, b_max)
    acc_t = accumulator_dtype(bound)
    (sh, sw), (dh, dw_) = strides, dilations
    if a == 8 and weights.bits <= 8 and acc_t == np.int32:
        wt = weights.taps_padded
        cp = wt.shape[1]
        xq = centred(x, zero_point, pads, np.int16, group_stride=cp)
        out_h, out_w = _out_size(xq, (k_h, k_w), strides, dilations)
        toff = np.array([(kh * dh * xq.shape[2] + kw * dw_) * cp for kh in range(k_h) for kw in range(k_w)],
                        dtype=np.int64)
        bias_p = np.zeros(cp, dtype=np.int32)
        bias_p[:co] = b
        tables, lo, hi, out = _fused_out(rq, bound, (x.shape[0], out_h, out_w, co))
        rows = x.shape[0] * out_h
        _parallel.run(("dw", xq.shape, wt.shape, out.shape), rows * out_w * cp * k_h * k_w, rows, depthwise_fast,
                      xq, wt, toff, bias_p, np.int64(sh), np.int64(sw), *tables, lo, hi, out)
        return out
    xq = centred(x, zero_point, pads, np.int16 if a == 8 else np.int32)
    out_h, out_w = _out_size(xq, (k_h, k_w), strides, dilations)
    acc = np.empty((x.shape[0], out_h, out_w, co), dtype=acc_t)
    depthwise(xq, weights.taps, b.astype(acc_t), np.int64(sh), np.int64(sw), np.int64(dh), np.int64(dw_), acc)
    return acc if rq is None else requantize(acc, rq, bound=bound)


def dw_acc(x: ArrayLike, weights: ConvWeights, bias: Bias | None = None, *, zero_point: int,
           strides: Sequence[int] = (1, 1),
           pads: Sequence[int] = (0, 0, 0, 0), dilations: Sequence[int] = (1, 1)) -> np.ndarray:
    """Depthwise accumulators (N6), K = KH·KW; weights ``(C_out, 1, KH, KW)`` with group = C_in."""
    return _run_depthwise(x, weights, bias, None, zero_point, strides, pads, dilations)


def dw(x: ArrayLike, weights: ConvWeights, bias: Bias | None, rq: Requant, *, zero_point: int,
       strides: Sequence[int] = (1, 1),
       pads: Sequence[int] = (0, 0, 0, 0), dilations: Sequence[int] = (1, 1)) -> np.ndarray:
    """Depthwise conv (N21) with its own kernel (vectorized over channels), requantized (N13)."""
    return _run_depthwise(x, weights, bias, rq, zero_point, strides, pads, dilations)


def _deconv_args(weights: ConvWeights, strides: Sequence[int], pads: Sequence[int], dilations: Sequence[int],
                 output_padding: Sequence[int]) -> tuple[tuple[int, int, int, int], tuple[int, ...]]:
    _check_geometry(strides, pads, dilations)
    k_h, k_w = weights.kernel_shape
    (dh, dw_), (oph, opw) = dilations, output_padding
    if not (0 <= oph < max(strides[0], dilations[0]) and 0 <= opw < max(strides[1], dilations[1])):
        raise ValueError("output_padding must be smaller than the stride or the dilation")
    top, left, bottom, right = pads
    conv_pads = (dh * (k_h - 1) - top, dw_ * (k_w - 1) - left,
                 dh * (k_h - 1) - bottom + oph, dw_ * (k_w - 1) - right + opw)
    return conv_pads, tuple(strides)


def deconv_acc(x: ArrayLike, weights: ConvWeights, bias: Bias | None = None, *, zero_point: int,
               strides: Sequence[int] = (1, 1),
               pads: Sequence[int] = (0, 0, 0, 0), dilations: Sequence[int] = (1, 1),
               output_padding: Sequence[int] = (0, 0)) -> np.ndarray:
    """ConvTranspose accumulators (N22). ``weights`` from ``ConvWeights.from_conv_transpose``.

    Computed as a stride-1 conv of the stride-dilated input (``Z_x`` between pixels, so 0 after
    centring) with pads d(K−1) − p_begin and d(K−1) − p_end + output_padding. Output
    ``s(H−1) + op + d(K−1) + 1 − p_t − p_b`` rows.
    """
    conv_pads, insert = _deconv_args(weights, strides, pads, dilations, output_padding)
    return _run_conv(x, weights, bias, None, zero_point, (1, 1), conv_pads, dilations, insert)


def deconv(x: ArrayLike, weights: ConvWeights, bias: Bias | None, rq: Requant, *, zero_point: int,
           strides: Sequence[int] = (1, 1),
           pads: Sequence[int] = (0, 0, 0, 0), dilations: Sequence[int] = (1, 1),
               output_padding: Sequence[int] = (0, 0)) -> np.ndarray:
    """ConvTranspose (N22) with groups, strides, pads, dilations, output_padding; requantized (N13)."""
    conv_pads, insert = _deconv_args(weights, strides, pads, dilations, output_padding)
    return _run_conv(x, weights, bias, rq, zero_point, (1, 1), conv_pads, dilations, insert)


def _run_dense(x: ArrayLike, weights: ConvWeights, bias: Bias | None, rq: Requant | None, zero_point: int
               ) -> np.ndarray:
    """A dense layer as the conv of a 1 x R image (its R rows side by side): the fast conv's blocks of
    4 pixels x 16 channels are then 4 rows x 16 channels, and one kernel serves both."""
    x = as_activation(x)
    co, k = weights.values.shape[:2]
    if x.ndim != 2 or x.shape[1] != k or weights.kernel_shape != (1, 1) or weights.group != 1:
        raise ValueError(f"dense input {x.shape} does not fit weights {weights.values.shape[:2]}")
    image = x[None, None] if len(x) else x[:, None, None, :]
    out = _run_conv(image, weights, bias, rq, zero_point, (1, 1), (0, 0, 0, 0), (1, 1))
    return out.reshape(x.shape[0], co)


def fc_acc(x: ArrayLike, weights: ConvWeights, bias: Bias | None = None, *, zero_point: int) -> np.ndarray:
    """Dense accumulators (N6): x (N, C_in) uint8/uint16, weights (C_out, C_in) → (N, C_out)."""
    return _run_dense(x, weights, bias, None, zero_point)


def fc(x: ArrayLike, weights: ConvWeights, bias: Bias | None, rq: Requant, *, zero_point: int) -> np.ndarray:
    """Dense layer (Gemm, weights (C_out, C_in)), requantized per channel (N13)."""
    return _run_dense(x, weights, bias, rq, zero_point)
