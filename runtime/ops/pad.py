"""pad: ONNX Pad in constant, reflect, edge or wrap mode. Only codes move; a constant pad writes
the code of its value in the input's encoding, which is exact for 0 (N1), so the encoding is
kept (N33)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alls.graph import Layer
from alls.runtime import numerics as nx
from alls.runtime.ops.base import Encodings, Op, Params, QLayer, int_axis, kernel, quantize_passthrough, requantize_if

__all__ = ["OPS"]


def _run(layer: Layer, xs: Sequence[np.ndarray], p: Params) -> np.ndarray:
    a = layer.attrs
    if a["mode"] == "constant":
        return np.pad(xs[0], a["pads"], mode="constant", constant_values=np.float32(a["value"]))
    return np.pad(xs[0], a["pads"], mode=a["mode"])


def _run_int(layer: Layer, q: QLayer, xs: Sequence[np.ndarray], enc: Encodings) -> np.ndarray:
    x, source = xs[0], enc[layer.inputs[0]]
    pads = [(0, 0)] * x.ndim
    for axis, pair in enumerate(layer.attrs["pads"]):
        pads[int_axis(axis, x.ndim)] = tuple(pair)
    value = int(np.clip(np.floor(layer.attrs["value"] / source.scale + 0.5) + source.zero_point, 0,
                        nx.activation_max(source.bits)))  # (N5) at quantization time: a constant
    y = kernel("pad")(x, pads, mode=layer.attrs["mode"], value=value)
    return requantize_if(y, q, source.zero_point)


OPS = (Op("pad", _run, quantize_passthrough, _run_int, keeps_encoding=True),)
