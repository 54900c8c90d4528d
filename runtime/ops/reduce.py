"""reduce_max, reduce_mean and reduce_sum over any axes (ONNX ReduceMax, ReduceMean, ReduceSum).

A max keeps the input's encoding (N35); a sum or mean is an exact sum of the centred codes and
one requantization, the mean's 1/κ folded into the multiplier (N36).
``attrs["axes"]`` are ONNX axes (non-negative), ``attrs["keepdims"]`` ONNX's flag.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import math

import numpy as np

from alls.graph import Layer
from alls.plan import LayerPlan
from alls.runtime import numerics as nx
from alls.runtime.ops.activation import clamp
from alls.runtime.ops.base import (Encodings, Op, Params, QLayer, StatsByName, int_axis, kernel, quantize_max,
    requantize_if, to_onnx)

__all__ = ["OPS"]

_FLOAT: dict[str, Callable[..., np.ndarray]] = {"reduce_max": np.max, "reduce_mean": np.mean, "reduce_sum": np.sum}


def _run(layer: Layer, xs: Sequence[np.ndarray], p: Params) -> np.ndarray:
    a = layer.attrs
    y: np.ndarray = _FLOAT[layer.kind](xs[0], axis=tuple(a["axes"]), keepdims=bool(a["keepdims"])).astype(np.float32)
    return y


def _count(layer: Layer) -> int:
    return math.prod(layer.input_shapes[0][a] for a in layer.attrs["axes"])


def _quantize(layer: Layer, lp: LayerPlan, stats: StatsByName, enc: Encodings, params: Params) -> QLayer:
    x, out = enc[layer.inputs[0]], enc[layer.name]
    lo, hi = clamp(layer, out)
    if layer.kind == "reduce_max":
        return quantize_max(layer, x, out, lo, hi)
    count = _count(layer)
    divisor = count if layer.kind == "reduce_mean" else 1
    rq = nx.requant([x.scale / (out.scale * divisor)], count * nx.activation_max(x.bits), out.zero_point,
                    out.bits, lo, hi)
    return QLayer(layer.name, layer.kind, out, rq=rq)


def _layout(layer: Layer, y: np.ndarray) -> np.ndarray:
    """The kept-dims NHWC result in the layout of the output's rank."""
    if len(layer.output_shape) == y.ndim:
        return y
    return np.ascontiguousarray(to_onnx(y).reshape((y.shape[0], *layer.output_shape[1:])))


def _run_int(layer: Layer, q: QLayer, xs: Sequence[np.ndarray], enc: Encodings) -> np.ndarray:
    x, zx = xs[0], enc[layer.inputs[0]].zero_point
    axes = [int_axis(a, x.ndim) for a in layer.attrs["axes"]]
    if layer.kind == "reduce_max":
        return _layout(layer, requantize_if(kernel("reduce_max")(x, axes=axes), q, zx))
    return _layout(layer, kernel("reduce_sum")(x, q.rq, zero_point=zx, axes=axes))


OPS = (
    Op("reduce_max", _run, _quantize, _run_int, keeps_encoding=True),
    Op("reduce_mean", _run, _quantize, _run_int),
    Op("reduce_sum", _run, _quantize, _run_int),
)
