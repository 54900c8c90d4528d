"""maxpool and avgpool (windowed or global): in float with ONNX's pads, ceil_mode and
count_include_pad; in integers a max that keeps the encoding, or a sum requantized (N27)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from alls.graph import Layer
from alls.plan import Activation, LayerPlan
from alls.runtime import numerics as nx
from alls.runtime.ops.activation import clamp
from alls.runtime.ops.base import Encodings, Op, Params, QLayer, StatsByName, kernel, quantize_max, requantize_if

__all__ = ["pool2d", "OPS"]

Array = np.ndarray
Pair = Sequence[int]  # a (height, width) pair: kernel, strides, dilations, output size
# Planes of up to this many values are max-pooled globally by one compiled call (NumPy's reduction over
# two axes costs more than their work; above it, NumPy's vectorized maximum is faster). A global average
# pool is always the compiled call: its pairwise sum vectorizes as NumPy's does.
SMALL_PLANE = 128


def pool2d(x: Array, attrs: Mapping[str, Any], kind: str, out_hw: tuple[int, int]) -> Array:
    """Max or average pooling with ONNX's pads, ceil_mode and count_include_pad.

    A float32 max pool or global average pool, and a global max pool of small float32 planes, is
    one Numba call (`floating.maxpool`, `floating.global_pool`: the same values as the NumPy forms
    here). Otherwise a window is reduced tap by tap over strided views of the whole batch: a max
    over the kernel's columns, then over its rows (a max is exact in any order); a sum
    row by row, each row's taps left to right, divided by the count of cells inside.
    """
    if attrs.get("global"):
        if x.dtype == np.float32 and x.ndim == 4 and (kind == "avgpool" or x.shape[2] * x.shape[3] <= SMALL_PLANE):
            from alls.runtime.kernels.floating import global_pool

            return global_pool(np.ascontiguousarray(x), kind == "avgpool")
        return _global(x, kind)
    (kh, kw), strides, dilations = attrs["kernel_shape"], attrs["strides"], attrs["dilations"]
    top, left, bottom, right = attrs["pads"]
    ho, wo = out_hw
    if kind == "maxpool" and x.dtype == np.float32 and x.ndim == 4:  # one compiled call, not a pass a tap
        from alls.runtime.kernels.floating import maxpool

        return maxpool(np.ascontiguousarray(x), kh, kw, strides[0], strides[1], dilations[0], dilations[1], top,
                       left, ho, wo)
    # extra padding at the end so that ceil_mode windows exist; those cells are never counted
    need_h = (ho - 1) * strides[0] + (kh - 1) * dilations[0] + 1
    need_w = (wo - 1) * strides[1] + (kw - 1) * dilations[1] + 1
    extra_h = max(0, need_h - (x.shape[2] + top + bottom))
    extra_w = max(0, need_w - (x.shape[3] + left + right))
    fill = -np.inf if kind == "maxpool" else 0.0
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom + extra_h), (left, right + extra_w)), constant_values=fill) \
        if top or left or bottom + extra_h or right + extra_w else x
    if kind == "maxpool":
        return _max_taps(padded, (kh, kw), strides, dilations, out_hw)
    total = _sum_taps(padded, (kh, kw), strides, dilations, out_hw)
    inside = np.zeros((1, 1) + padded.shape[2:], np.float32)
    h_end = x.shape[2] + top + (bottom if attrs.get("count_include_pad") else 0)
    w_end = x.shape[3] + left + (right if attrs.get("count_include_pad") else 0)
    h_start, w_start = (0, 0) if attrs.get("count_include_pad") else (top, left)
    inside[:, :, h_start:h_end, w_start:w_end] = 1
    count = _sum_taps(inside, (kh, kw), strides, dilations, out_hw)
    mean: Array = (total / np.maximum(count, 1)).astype(np.float32)
    return mean


def _prepare(layer: Layer, p: Params) -> Callable[[list[Array]], Array] | None:
    """`Op.prepare`: `pool2d` with the layer's geometry bound; a float32 max pool or global average
    pool calls its compiled kernel straight. None for a pool with an activation (the executor applies it)."""
    if layer.activation not in (None, Activation.LINEAR):
        return None
    attrs, kind = layer.attrs, layer.kind
    out_hw: Any = tuple(layer.output_shape[2:])  # as the unprepared run passes it
    if attrs.get("global") and kind == "avgpool":
        from alls.runtime.kernels.floating import global_pool

        def mean(xs: list[Array]) -> Array:
            x = xs[0]
            return global_pool(np.ascontiguousarray(x), True) if x.dtype == np.float32 and x.ndim == 4 else \
                pool2d(x, attrs, kind, out_hw)
        return mean
    if attrs.get("global") or kind != "maxpool":
        return lambda xs: pool2d(xs[0], attrs, kind, out_hw)
    from alls.runtime.kernels.floating import maxpool

    (kh, kw), (sh, sw), (dh, dw) = attrs["kernel_shape"], attrs["strides"], attrs["dilations"]
    top, left = attrs["pads"][0], attrs["pads"][1]
    ho, wo = out_hw

    def largest(xs: list[Array]) -> Array:
        x = xs[0]
        return maxpool(np.ascontiguousarray(x), kh, kw, sh, sw, dh, dw, top, left, ho, wo) \
            if x.dtype == np.float32 and x.ndim == 4 else pool2d(x, attrs, kind, out_hw)
    return largest


def _global(x: Array, kind: str) -> Array:
    """A global pool: NumPy's ``max``/``mean`` over the plane, without their Python wrappers (the same
    reduction, then the same division by the count)."""
    if kind == "maxpool":
        pooled: Array = np.maximum.reduce(x, axis=(2, 3), keepdims=True)
        return pooled
    total: Array = np.add.reduce(x, axis=(2, 3), keepdims=True)
    if total.dtype != x.dtype or total.dtype.kind != "f":
        mean: Array = x.mean(axis=(2, 3), keepdims=True)
        return mean
    np.true_divide(total, x.shape[2] * x.shape[3], out=total)
    return total


def _tap(x: Array, a: int, b: int, strides: Pair, dilations: Pair, out_hw: Pair) -> Array:
    """The cells tap (a, b) of every window reads: (N, C, Ho, Wo), a strided view."""
    (sh, sw), (dh, dw), (ho, wo) = strides, dilations, out_hw
    return x[:, :, a * dh: a * dh + (ho - 1) * sh + 1: sh, b * dw: b * dw + (wo - 1) * sw + 1: sw]


def _max_taps(x: Array, kernel: Pair, strides: Pair, dilations: Pair, out_hw: Pair) -> Array:
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, strides, dilations, out_hw
    rows = x[:, :, : (ho - 1) * sh + (kh - 1) * dh + 1]
    across = rows[:, :, :, 0: (wo - 1) * sw + 1: sw].copy()  # max over the kernel's columns, every row
    for b in range(1, kw):
        np.maximum(across, rows[:, :, :, b * dw: b * dw + (wo - 1) * sw + 1: sw], out=across)
    out: Array = across[:, :, 0: (ho - 1) * sh + 1: sh].copy()
    for a in range(1, kh):
        np.maximum(out, across[:, :, a * dh: a * dh + (ho - 1) * sh + 1: sh], out=out)
    return out


def _sum_taps(x: Array, kernel: Pair, strides: Pair, dilations: Pair, out_hw: Pair) -> Array:
    out = np.zeros(x.shape[:2] + tuple(out_hw), np.float32)
    for a in range(kernel[0]):
        for b in range(kernel[1]):
            out += _tap(x, a, b, strides, dilations, out_hw)
    return out


def _quantize(layer: Layer, lp: LayerPlan, stats: StatsByName, enc: Encodings, params: Params) -> QLayer:
    x, out = enc[layer.inputs[0]], enc[layer.name]
    lo, hi = clamp(layer, out)
    if layer.kind == "maxpool":
        return quantize_max(layer, x, out, lo, hi)
    if layer.attrs.get("global"):
        count = int(np.prod(layer.input_shapes[0][2:]))
        rq = nx.requant([x.scale / (out.scale * count)], count * nx.activation_max(x.bits), out.zero_point,
                        out.bits, lo, hi)
    else:
        kh, kw = layer.attrs["kernel_shape"]
        rq = nx.avgpool_requant(kh * kw, x.scale, out.scale, out.zero_point, x.bits, out.bits, lo, hi)
    return QLayer(layer.name, layer.kind, out, rq=rq)


def _run_int(layer: Layer, q: QLayer, xs: Sequence[np.ndarray], enc: Encodings) -> np.ndarray:
    x, zx = xs[0], enc[layer.inputs[0]].zero_point
    a = layer.attrs
    if layer.kind == "maxpool":
        y = kernel("global_maxpool")(x) if a.get("global") else kernel("maxpool")(
            x, kernel_shape=a["kernel_shape"], strides=a["strides"], pads=a["pads"], dilations=a["dilations"],
            ceil_mode=bool(a.get("ceil_mode")))
        return requantize_if(y, q, zx)
    if a.get("global"):
        return kernel("global_avgpool")(x, q.rq, zero_point=zx)
    return kernel("avgpool")(x, q.rq, zero_point=zx, kernel_shape=a["kernel_shape"], strides=a["strides"],
                             pads=a["pads"], dilations=a["dilations"], ceil_mode=bool(a.get("ceil_mode")),
                             count_include_pad=bool(a.get("count_include_pad")))


OPS = (
    Op("maxpool", lambda layer, xs, p: pool2d(xs[0], layer.attrs, "maxpool", tuple(layer.output_shape[2:])),
       _quantize, _run_int, keeps_encoding=True, prepare=_prepare),
    Op("avgpool", lambda layer, xs, p: pool2d(xs[0], layer.attrs, "avgpool", tuple(layer.output_shape[2:])),
       _quantize, _run_int, prepare=_prepare),
)
