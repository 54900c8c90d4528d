"""format_conversion: Reshape, Flatten, Squeeze, Unsqueeze and Transpose. Only the order of
the elements changes (in ONNX order), so the encoding is kept."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alls.graph import Layer
from alls.runtime.ops.base import Encodings, Op, Params, QLayer, quantize_passthrough, requantize_if, to_nhwc, to_onnx

__all__ = ["OPS"]


def _batch(shape: tuple[int, ...], n: int) -> tuple[int, ...]:
    return (n, *shape[1:]) if shape else shape


def _run(layer: Layer, xs: Sequence[np.ndarray], p: Params) -> np.ndarray:
    x = xs[0]
    if layer.attrs.get("op") == "Transpose" and layer.attrs.get("perm"):
        return np.ascontiguousarray(x.transpose(layer.attrs["perm"]))
    return x.reshape(_batch(tuple(layer.output_shape), x.shape[0]))


def _run_int(layer: Layer, q: QLayer, xs: Sequence[np.ndarray], enc: Encodings) -> np.ndarray:
    x = to_onnx(xs[0])
    if layer.attrs.get("op") == "Transpose" and layer.attrs.get("perm"):
        y = x.transpose(layer.attrs["perm"])
    else:
        y = x.reshape((x.shape[0], *layer.output_shape[1:]))
    return requantize_if(to_nhwc(np.ascontiguousarray(y)), q, enc[layer.inputs[0]].zero_point)


OPS = (Op("format_conversion", _run, quantize_passthrough, _run_int, keeps_encoding=True),)
