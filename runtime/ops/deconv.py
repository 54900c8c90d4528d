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
    """ONNX ConvTranspose in float32: scatter each input pixel's kernel, then crop the pads."""
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
