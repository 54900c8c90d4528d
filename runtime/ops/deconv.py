"""deconv: ONNX ConvTranspose, in float (a scatter of each pixel's kernel) and as the integer
deconv kernel (N22)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from alls.graph import Layer
from alls.runtime import numerics as nx
from alls.runtime.ops import conv
from alls.runtime.ops.base import Params, QLayer, kernel
from alls.runtime.ops.weighted import kernel_weights, weighted_op

if TYPE_CHECKING:
    from alls.runtime.kernels import ConvWeights

__all__ = ["deconv2d", "OPS"]

Array = np.ndarray


def deconv2d(x: Array, weight: Array, bias: Array, attrs: Mapping[str, Any], out_hw: tuple[int, int]) -> Array:
    """ONNX ConvTranspose in float32.

    When the kernel's taps do not overlap (each stride at least the dilated kernel: the 2x2 stride-2
    upsampling of segmentation heads), one BLAS product per image and group, (C_out·kh·kw, C) by the
    image as it lies, then one pass that puts each product where it lands, with the bias
    (`alls.runtime.kernels.floatmove.scatter_taps`). Otherwise each tap's products are added into the
    full output, then the pads cropped.
    """
    (sh, sw), (dh, dw) = attrs["strides"], attrs["dilations"]
    kh, kw = weight.shape[2], weight.shape[3]
    if sh >= (kh - 1) * dh + 1 and sw >= (kw - 1) * dw + 1:
        return _apart(x, weight, bias, attrs, out_hw)
    return _overlapping(x, weight, bias, attrs, out_hw)


def _apart(x: Array, weight: Array, bias: Array, attrs: Mapping[str, Any], out_hw: tuple[int, int]) -> Array:
    """A deconv whose taps do not overlap: a product per image and group, then one scatter."""
    from alls.runtime.kernels.floatmove import scatter_taps

    group = attrs.get("group", 1)
    x = np.ascontiguousarray(x, np.float32)
    n, c, h, w = x.shape
    cg, og, kh, kw = c // group, weight.shape[1], weight.shape[2], weight.shape[3]
    rows = og * kh * kw
    # (C_out·kh·kw, C/group) per group: row (o, i, j) holds the weights from each input channel
    wt = np.ascontiguousarray(np.asarray(weight, np.float32).reshape(group, cg, rows).transpose(0, 2, 1))
    row_tap, row_at = _taps(out_hw[0], h, attrs["strides"][0], attrs["dilations"][0], kh, attrs["pads"][0])
    col_tap, col_at = _taps(out_hw[1], w, attrs["strides"][1], attrs["dilations"][1], kw, attrs["pads"][1])
    col_at = np.where(col_tap < 0, -1, col_tap * (h * w) + col_at)
    row_at = row_at * w
    cols = np.empty((group * rows, h * w), np.float32)
    out = np.empty((n, og * group, *out_hw), np.float32)
    bias = np.ascontiguousarray(bias, np.float32).reshape(-1)
    for i in range(n):
        image = x[i].reshape(c, h * w)
        for g in range(group):
            np.matmul(wt[g], image[g * cg:(g + 1) * cg], out=cols[g * rows:(g + 1) * rows])
        scatter_taps(cols, bias, row_tap, row_at, col_at, kh, kw, out[i])
    return out


def _taps(size: int, length: int, stride: int, dilation: int, k: int, pad: int) -> tuple[Array, Array]:
    """Along one axis of a deconv whose taps do not overlap: for each output position, its tap and
    its input position (-1, 0 where no tap reaches it: the bias only)."""
    full = np.arange(size, dtype=np.int64) + pad
    at, offset = full // stride, full % stride
    tap = offset // dilation
    hit = (offset % dilation == 0) & (tap < k) & (at < length)
    return np.where(hit, tap, -1), np.where(hit, at, 0)


def _overlapping(x: Array, weight: Array, bias: Array, attrs: Mapping[str, Any], out_hw: tuple[int, int]) -> Array:
    """Any deconv: scatter each input pixel's kernel, then crop the pads."""
    group = attrs.get("group", 1)
    n, c, h, w = x.shape
    cg, og, kh, kw = weight.shape[0] // group, weight.shape[1], weight.shape[2], weight.shape[3]
    (sh, sw), (dh, dw) = attrs["strides"], attrs["dilations"]
    top, left = attrs["pads"][0], attrs["pads"][1]
    full_h = (h - 1) * sh + (kh - 1) * dh + 1 + max(0, out_hw[0] + top - ((h - 1) * sh + (kh - 1) * dh + 1))
    full_w = (w - 1) * sw + (kw - 1) * dw + 1 + max(0, out_hw[1] + left - ((w - 1) * sw + (kw - 1) * dw + 1))
    full = np.zeros((n, og * group, full_h, full_w), np.float32)
    for g in range(group):
        xs = x[:, g * cg:(g + 1) * cg].transpose(0, 2, 3, 1).reshape(n * h * w, cg)
        ws = weight[g * cg:(g + 1) * cg].reshape(cg, og * kh * kw)
        cols = (xs @ ws).reshape(n, h, w, og, kh, kw)
        for i in range(kh):
            for j in range(kw):
                full[:, g * og:(g + 1) * og, i * dh: i * dh + (h - 1) * sh + 1: sh,
                     j * dw: j * dw + (w - 1) * sw + 1: sw] += cols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    out = full[:, :, top: top + out_hw[0], left: left + out_hw[1]]
    y: Array = out + bias.reshape(1, -1, 1, 1)
    return y


def _run(layer: Layer, xs: Sequence[np.ndarray], p: Params) -> np.ndarray:
    h, w = layer.output_shape[2:]
    return deconv2d(xs[0], p["weight"], p["bias"], layer.attrs, (h, w))


def _pack(ConvWeights: type[ConvWeights], q: QLayer, layer: Layer) -> ConvWeights:
    weights, bits = q.weight_codes()
    return ConvWeights.from_conv_transpose(weights, bits, layer.attrs.get("group", 1))


def _call(layer: Layer, q: QLayer, x: np.ndarray, zx: int, acc_only: bool, bias: nx.Bias | None = None
          ) -> np.ndarray:
    w = kernel_weights(q, layer, _pack)
    geometry = conv.geometry(layer)
    kh, kw = q.weight_codes()[0].shape[2:]
    full = [(x.shape[1 + i] - 1) * geometry["strides"][i] + (k - 1) * geometry["dilations"][i] + 1
            - geometry["pads"][i] - geometry["pads"][i + 2] for i, k in enumerate((kh, kw))]
    geometry["output_padding"] = tuple(int(o - f) for o, f in zip(layer.output_shape[2:], full))
    if acc_only:
        return kernel("deconv_acc")(x, w, bias, zero_point=zx, **geometry)
    return kernel("deconv")(x, w, q.bias, q.rq, zero_point=zx, **geometry)


OPS = (weighted_op("deconv", _run, _call),)
