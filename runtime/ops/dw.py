"""dw: a depthwise ONNX Conv (group = C_in), in float and as the integer depthwise kernel (N21)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

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


def _prepare(layer: Layer, p: Params) -> Callable[[list[np.ndarray]], np.ndarray] | None:
    """`Op.prepare`: the depthwise kernel bound to the layer's weights, geometry and activation
    (`floatdw.prepare`), or None for another activation, a channel multiplier or weights that are
    not float32 in C order (`conv.depthwise` copies those on every run)."""
    weight, bias, attrs = p["weight"], p["bias"], layer.attrs
    linear = layer.activation in (None, Activation.LINEAR)
    if not (linear or layer.activation in _FUSED) or weight.ndim != 4 or weight.shape[1] != 1 or \
            weight.shape[0] != attrs.get("group", 1) or not (conv._plain(weight) and conv._plain(bias)):
        return None
    from alls.runtime.kernels.floatdw import ACT_CODES, NONE, prepare

    code = NONE if layer.activation is None or linear else ACT_CODES[layer.activation.value]
    run = prepare(weight.reshape(weight.shape[0], weight.shape[2], weight.shape[3]), bias.reshape(-1),
                  conv._pair(attrs["strides"]), conv._pair(attrs["dilations"]), conv._four(attrs["pads"]), code)
    return lambda xs: run(xs[0])


def _call(layer: Layer, q: QLayer, x: np.ndarray, zx: int, acc_only: bool, bias: nx.Bias | None = None
          ) -> np.ndarray:
    w = kernel_weights(q, layer, conv.pack)
    if acc_only:
        return kernel("dw_acc")(x, w, bias, zero_point=zx, **conv.geometry(layer))
    return kernel("dw")(x, w, q.bias, q.rq, zero_point=zx, **conv.geometry(layer))


OPS = (replace(weighted_op("dw", conv.run, _call, _run_activated), prepare=_prepare),)
