"""dw: a depthwise ONNX Conv (group = C_in), in float and as the integer depthwise kernel (N21)."""

from __future__ import annotations

import numpy as np

from alls.graph import Layer
from alls.runtime import numerics as nx
from alls.runtime.ops import conv
from alls.runtime.ops.base import QLayer, kernel
from alls.runtime.ops.weighted import kernel_weights, weighted_op

__all__ = ["OPS"]


def _call(layer: Layer, q: QLayer, x: np.ndarray, zx: int, acc_only: bool, bias: nx.Bias | None = None
          ) -> np.ndarray:
    w = kernel_weights(q, layer, conv.pack)
    if acc_only:
        return kernel("dw_acc")(x, w, bias, zero_point=zx, **conv.geometry(layer))
    return kernel("dw")(x, w, q.bias, q.rq, zero_point=zx, **conv.geometry(layer))


OPS = (weighted_op("dw", conv.run, _call),)
