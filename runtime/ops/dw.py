"""dw: a depthwise ONNX Conv (group = C_in), in float and as the integer depthwise kernel (N21)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alls.graph import Layer
from alls.plan import Activation
from alls.runtime import numerics as nx
from alls.runtime.ops import conv
from alls.runtime.ops.base import Params, QLayer, kernel
from alls.runtime.ops.weighted import kernel_weights, weighted_op

__all__ = ["OPS"]

# The activations the float depthwise kernel applies as it writes (`alls.runtime.kernels.floatdw.ACT_CODES`)
_FUSED = frozenset((Activation.RELU, Activation.RELU6, Activation.HARDSWISH))


def _run_activated(layer: Layer, xs: Sequence[np.ndarray], p: Params) -> np.ndarray | None:
    """The float run with the layer's activation applied as the outputs are written (one of `_FUSED`),
    or None for another activation or a layer that is no plain depthwise conv (a channel multiplier):
    the executor applies it then."""
    x, weight = xs[0], p["weight"]
    if layer.activation not in _FUSED or x.ndim != 4 or not conv.is_depthwise(x.shape, weight.shape, x.shape[1]):
        return None
    assert layer.activation is not None
    return conv.depthwise(x, weight, p["bias"], layer.attrs, layer.activation.value)


def _call(layer: Layer, q: QLayer, x: np.ndarray, zx: int, acc_only: bool, bias: nx.Bias | None = None
          ) -> np.ndarray:
    w = kernel_weights(q, layer, conv.pack)
    if acc_only:
        return kernel("dw_acc")(x, w, bias, zero_point=zx, **conv.geometry(layer))
    return kernel("dw")(x, w, q.bias, q.rq, zero_point=zx, **conv.geometry(layer))


OPS = (weighted_op("dw", conv.run, _call, _run_activated),)
