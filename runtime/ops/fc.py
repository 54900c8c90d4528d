"""fc: a dense layer (Gemm, or MatMul by a constant), in float and as the integer dense kernel (N6)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from alls.graph import Layer
from alls.plan import Activation
from alls.runtime import numerics as nx
from alls.runtime.ops.base import Params, QLayer, kernel, to_onnx
from alls.runtime.ops.conv import pack
from alls.runtime.ops.weighted import kernel_weights, weighted_op

__all__ = ["OPS"]


def _run(layer: Layer, xs: Sequence[np.ndarray], p: Params) -> np.ndarray:
    x = xs[0]
    if len(layer.output_shape) == 2 or x.shape[-1] != p["weight"].shape[1]:
        x = x.reshape(x.shape[0], -1)
    y: np.ndarray = x @ p["weight"].T
    bias = p["bias"]
    if bias.dtype == y.dtype and bias.ndim == 1 and bias.shape[0] == y.shape[-1]:
        y += bias  # the same sum, into the product's own memory
        return y
    summed: np.ndarray = y + bias
    return summed


def _prepare(layer: Layer, p: Params) -> Callable[[list[np.ndarray]], np.ndarray] | None:
    """`Op.prepare`: `_run` bound to the layer's weights (read on every call), or None for a layer
    with an activation (the executor applies it) or parameters that are not arrays."""
    weight, bias = p["weight"], p["bias"]
    if layer.activation not in (None, Activation.LINEAR) or not isinstance(weight, np.ndarray) or \
            not isinstance(bias, np.ndarray) or weight.ndim != 2:
        return None
    flat, transposed = len(layer.output_shape) == 2, weight.T
    same = bias.ndim == 1 and bias.shape[0] == weight.shape[0]

    def call(xs: list[np.ndarray]) -> np.ndarray:
        x = xs[0]
        if flat or x.shape[-1] != transposed.shape[0]:
            x = x.reshape(x.shape[0], -1)
        y: np.ndarray = x @ transposed
        if same and bias.dtype == y.dtype:
            y += bias
            return y
        summed: np.ndarray = y + bias
        return summed

    return call


def _dense_input(layer: Layer, x: np.ndarray) -> np.ndarray:
    """A dense layer's input as (rows, C_in): a 4-D tensor flattens in ONNX (C, H, W) order."""
    if x.ndim == 4:
        return np.ascontiguousarray(to_onnx(x).reshape(x.shape[0], -1))
    if x.ndim > 2 and len(layer.output_shape) > 2:  # a sequence: the last axis is the features
        return np.ascontiguousarray(x.reshape(-1, x.shape[-1]))
    return np.ascontiguousarray(x.reshape(x.shape[0], -1))


def _call(layer: Layer, q: QLayer, x: np.ndarray, zx: int, acc_only: bool, bias: nx.Bias | None = None
          ) -> np.ndarray:
    w = kernel_weights(q, layer, pack)
    rows = _dense_input(layer, x)
    y = kernel("fc_acc")(rows, w, bias, zero_point=zx) if acc_only else kernel("fc")(rows, w, q.bias, q.rq,
                                                                                     zero_point=zx)
    return y.reshape(*x.shape[:-1], y.shape[-1]) if x.ndim > 2 and len(layer.output_shape) > 2 else y


OPS = (replace(weighted_op("fc", _run, _call), prepare=_prepare),)
