"""slice and feature_splitter: ONNX Slice (any axes, steps, negative indices: YOLOv5's Focus)
and each part of an ONNX Split. Only codes move, so the encoding is kept (N32).

Both carry ``attrs["slices"]``: one ``(axis, start, stop, step)`` per sliced axis, in ONNX axes,
with the bounds already clamped as ONNX clamps them (the importer's
`alls.importer.ops.slicing.slice_bounds`): a stop of −1 with a negative step runs through index 0.
"""

from __future__ import annotations

import numpy as np

from alls.graph import Layer
from alls.runtime.ops.base import Op, QLayer, int_axis, kernel, quantize_passthrough, requantize_if

__all__ = ["OPS"]


def _index(slices, rank: int) -> tuple[slice, ...]:
    index = [slice(None)] * rank
    for axis, start, stop, step in slices:
        index[axis] = slice(start, stop if stop >= 0 else None, step)
    return tuple(index)


def _run(layer, xs, p):
    return np.ascontiguousarray(xs[0][_index(layer.attrs["slices"], xs[0].ndim)])


def _run_int(layer: Layer, q: QLayer, xs, enc):
    x = xs[0]
    slices = [(int_axis(a, x.ndim), start, stop, step) for a, start, stop, step in layer.attrs["slices"]]
    return requantize_if(kernel("slice")(x, slices), q, enc[layer.inputs[0]].zero_point)


OPS = (
    Op("slice", _run, quantize_passthrough, _run_int, keeps_encoding=True),
    Op("feature_splitter", _run, quantize_passthrough, _run_int, keeps_encoding=True),
)
