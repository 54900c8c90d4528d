"""concat: tensors joined on one axis, each moved to the output's encoding (N25) as it is copied."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alls.graph import Layer
from alls.plan import LayerPlan
from alls.runtime.ops.base import Encodings, NHWC_AXIS, Op, Params, QLayer, StatsByName, kernel, rescale

__all__ = ["OPS"]


def _quantize(layer: Layer, lp: LayerPlan, stats: StatsByName, enc: Encodings, params: Params) -> QLayer:
    out = enc[layer.name]
    return QLayer(layer.name, layer.kind, out, rq=[rescale(enc[i], out) for i in layer.inputs])


def _run_int(layer: Layer, q: QLayer, xs: Sequence[np.ndarray], enc: Encodings) -> np.ndarray:
    axis = layer.attrs["axis"]
    rank = xs[0].ndim
    axis = NHWC_AXIS[axis % 4] if rank == 4 else axis % rank
    zero_points = [enc[name].zero_point for name in layer.inputs]
    return kernel("concat")(list(xs), q.rq, zero_points=zero_points, axis=axis)


OPS = (Op("concat", lambda layer, xs, p: np.concatenate(xs, axis=layer.attrs["axis"]), _quantize, _run_int),)
