"""conv: ONNX Conv (any group but depthwise), in float and as the integer conv kernel (N21)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from alls.graph import Layer
from alls.runtime import numerics as nx
from alls.runtime.ops.base import Params, QLayer, kernel
from alls.runtime.ops.weighted import kernel_weights, weighted_op

if TYPE_CHECKING:
    from alls.runtime.kernels import ConvWeights

__all__ = ["conv2d", "pad2d", "windows", "geometry", "OPS"]

Array = np.ndarray


def pad2d(x: Array, pads: tuple[int, ...], value: float = 0.0) -> Array:
    top, left, bottom, right = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def windows(x: Array, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]) -> Array:
    """(N, C, Ho, Wo, kh, kw) views of a padded NCHW tensor."""
    kh, kw = kernel
    dh, dw = dilations
    view = np.lib.stride_tricks.sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    return view[:, :, :: strides[0], :: strides[1], ::dh, ::dw]


def conv2d(x: Array, weight: Array, bias: Array, attrs: Mapping[str, Any], group: int = 1) -> Array:
    """ONNX Conv in float32: any group, stride, dilation and explicit pads."""
    x = pad2d(x, attrs["pads"])
    n, c = x.shape[:2]
    out_c, cg = weight.shape[:2]
    kernel = weight.shape[2:]
    if group == c and cg == 1 and out_c == c:
        return _depthwise(x, weight, bias, attrs)
    og = out_c // group
    pointwise = kernel == (1, 1) and tuple(attrs["strides"]) == (1, 1)
    if pointwise:
        ho, wo = x.shape[2:]
    else:
        win = windows(x, kernel, attrs["strides"], attrs["dilations"])
        ho, wo = win.shape[2:4]
    out = np.empty((n, out_c, ho * wo), np.float32)
    for g in range(group):
        if pointwise:  # (N, C, H·W) as it lies
            cols = x[:, g * cg:(g + 1) * cg].reshape(n, cg, ho * wo)
        else:  # im2col as (N, C·KH·KW, Ho·Wo), so the product comes out in NCHW
            cols = win[:, g * cg:(g + 1) * cg].transpose(0, 1, 4, 5, 2, 3).reshape(n, -1, ho * wo)
        np.matmul(weight[g * og:(g + 1) * og].reshape(og, -1), cols, out=out[:, g * og:(g + 1) * og])
    out += bias.reshape(1, -1, 1)
    return out.reshape(n, out_c, ho, wo)


def _depthwise(x: Array, weight: Array, bias: Array, attrs: Mapping[str, Any]) -> Array:
    """Depthwise conv as a sum over the kernel taps (x is already padded)."""
    kh, kw = weight.shape[2:]
    (sh, sw), (dh, dw) = attrs["strides"], attrs["dilations"]
    n, c, h, w = x.shape
    ho, wo = (h - (kh - 1) * dh - 1) // sh + 1, (w - (kw - 1) * dw - 1) // sw + 1
    from alls.runtime.kernels.floating import depthwise

    return depthwise(np.ascontiguousarray(x, np.float32), np.ascontiguousarray(weight[:, 0], np.float32),
                     np.ascontiguousarray(bias, np.float32), sh, sw, dh, dw, ho, wo)


def run(layer: Layer, xs: Sequence[np.ndarray], p: Params) -> np.ndarray:
    return conv2d(xs[0], p["weight"], p["bias"], layer.attrs, layer.attrs.get("group", 1))


def geometry(layer: Layer) -> dict[str, tuple[int, ...]]:
    a = layer.attrs
    return {"strides": tuple(a["strides"]), "pads": tuple(a["pads"]), "dilations": tuple(a["dilations"])}


def pack(ConvWeights: type[ConvWeights], q: QLayer, layer: Layer) -> ConvWeights:
    weights, bits = q.weight_codes()
    return ConvWeights(weights, bits, layer.attrs.get("group", 1))


def _call(layer: Layer, q: QLayer, x: np.ndarray, zx: int, acc_only: bool, bias: nx.Bias | None = None
          ) -> np.ndarray:
    w = kernel_weights(q, layer, pack)
    if acc_only:
        return kernel("conv_acc")(x, w, bias, zero_point=zx, **geometry(layer))
    return kernel("conv")(x, w, q.bias, q.rq, zero_point=zx, **geometry(layer))


OPS = (weighted_op("conv", run, _call),)
