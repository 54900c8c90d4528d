"""fc: a dense layer (Gemm, or MatMul by a constant), in float and as the integer dense kernel (N6)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alls.graph import Layer
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


OPS = (weighted_op("fc", _run, _call),)
