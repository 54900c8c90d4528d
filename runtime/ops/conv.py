"""conv: ONNX Conv (any group but depthwise), in float and as the integer conv kernel (N21)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from alls.runtime.ops.base import kernel
from alls.runtime.ops.weighted import kernel_weights, weighted_op

__all__ = ["conv2d", "pad2d", "windows", "geometry", "OPS"]

Array = np.ndarray


def pad2d(x: Array, pads: tuple[int, ...], value: float = 0.0) -> Array:
    top, left, bottom, right = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def windows(x: Array, kernel, strides, dilations) -> Array:
    """(N, C, Ho, Wo, kh, kw) views of a padded NCHW tensor."""
    kh, kw = kernel
    dh, dw = dilations
    view = np.lib.stride_tricks.sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    return view[:, :, :: strides[0], :: strides[1], ::dh, ::dw]


def conv2d(x: Array, weight: Array, bias: Array, attrs: Mapping, group: int = 1) -> Array:
    """ONNX Conv in float32: any group, stride, dilation and explicit pads.

    One BLAS product per group over the whole batch, (C_out/g, C/g·KH·KW) by the columns
    (N, C/g·KH·KW, Ho·Wo), so that it comes out in NCHW; a 1x1 conv without pads multiplies the
    input as it lies (strided: its every sh-th row and sw-th column), the others read Numba's
    `im2col`, which pads as it copies. A depthwise conv is Numba's `depthwise`.
    """
    x = np.ascontiguousarray(x, np.float32)
    n, c, h, w = x.shape
    out_c, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = attrs["strides"], attrs["dilations"]
    top, left, bottom, right = attrs["pads"]
    ho = (h + top + bottom - (kh - 1) * dh - 1) // sh + 1
    wo = (w + left + right - (kw - 1) * dw - 1) // sw + 1
    if group == c and cg == 1 and out_c == c:
        return _depthwise(pad2d(x, attrs["pads"]), weight, bias, attrs, ho, wo)
    if (kh, kw) == (1, 1) and not any(attrs["pads"]):
        cols = (x if (sh, sw) == (1, 1) else np.ascontiguousarray(x[:, :, ::sh, ::sw])).reshape(n, c, ho * wo)
    else:
        from alls.runtime.kernels.floating import im2col

        cols = im2col(x, kh, kw, sh, sw, dh, dw, top, left, ho, wo)
    weight = np.ascontiguousarray(weight, np.float32).reshape(out_c, -1)
    out = np.empty((n, out_c, ho * wo), np.float32)
    og, k = out_c // group, weight.shape[1]
    for g in range(group):
        np.matmul(weight[g * og:(g + 1) * og], cols[:, g * k:(g + 1) * k], out=out[:, g * og:(g + 1) * og])
    out += np.asarray(bias, np.float32).reshape(1, -1, 1)
    return out.reshape(n, out_c, ho, wo)


def _depthwise(x: Array, weight: Array, bias: Array, attrs: Mapping, ho: int, wo: int) -> Array:
    """Depthwise conv as a sum over the kernel taps (x is already padded)."""
    (sh, sw), (dh, dw) = attrs["strides"], attrs["dilations"]
    from alls.runtime.kernels.floating import depthwise

    return depthwise(np.ascontiguousarray(x, np.float32), np.ascontiguousarray(weight[:, 0], np.float32),
                     np.ascontiguousarray(bias, np.float32), sh, sw, dh, dw, ho, wo)


def run(layer, xs, p):
    return conv2d(xs[0], p["weight"], p["bias"], layer.attrs, layer.attrs.get("group", 1))


def geometry(layer) -> dict:
    a = layer.attrs
    return {"strides": tuple(a["strides"]), "pads": tuple(a["pads"]), "dilations": tuple(a["dilations"])}


def pack(ConvWeights, q, layer):
    return ConvWeights(q.weights, q.weight_bits, layer.attrs.get("group", 1))


def _call(layer, q, x, zx, acc_only, bias=None):
    w = kernel_weights(q, layer, pack)
    if acc_only:
        return kernel("conv_acc")(x, w, bias, zero_point=zx, **geometry(layer))
    return kernel("conv")(x, w, q.bias, q.rq, zero_point=zx, **geometry(layer))


OPS = (weighted_op("conv", run, _call),)
