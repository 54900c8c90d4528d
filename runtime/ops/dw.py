"""dw: a depthwise ONNX Conv (group = C_in), in float and as the integer depthwise kernel (N21)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alls.graph import Layer
from alls.plan import Activation
from alls.runtime import numerics as nx
from alls.runtime.ops import conv
from alls.runtime.ops.activation import activation
from alls.runtime.ops.base import Params, QLayer, kernel
from alls.runtime.ops.weighted import kernel_weights, weighted_op

__all__ = ["OPS"]

# The activations the float depthwise kernel applies in its store (`alls.runtime.kernels.floatdw.ACT_CODES`)
_FUSED = frozenset((Activation.RELU, Activation.RELU6, Activation.HARDSWISH))


def _run_fused(layer: Layer, xs: Sequence[np.ndarray], p: Params) -> np.ndarray:
    """The float run with the layer's activation (one of `_FUSED`) in the kernel's store; a layer
    that is no plain depthwise conv (a channel multiplier) runs, then is activated."""
    x, weight = xs[0], p["weight"]
    assert layer.activation is not None, "fuses_activation: the layer has one of _FUSED"
    if x.ndim != 4 or weight.shape[0] != x.shape[1] or weight.shape[1] != 1:
        y: np.ndarray = activation(layer, conv.run(layer, xs, p), p)
        return y
    return conv.conv2d(x, weight, p["bias"], layer.attrs, x.shape[1], act=layer.activation.value)


def _call(layer: Layer, q: QLayer, x: np.ndarray, zx: int, acc_only: bool, bias: nx.Bias | None = None
          ) -> np.ndarray:
    w = kernel_weights(q, layer, conv.pack)
    if acc_only:
        return kernel("dw_acc")(x, w, bias, zero_point=zx, **conv.geometry(layer))
    return kernel("dw")(x, w, q.bias, q.rq, zero_point=zx, **conv.geometry(layer))


OPS = (weighted_op("dw", conv.run, _call, _run_fused, _FUSED),)
