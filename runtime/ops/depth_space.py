"""depth_to_space and space_to_depth: ONNX DepthToSpace (DCR and CRD) and SpaceToDepth. Only
codes move, so the encoding is kept (N34)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alls.graph import Layer
from alls.runtime.ops.base import Encodings, Op, QLayer, kernel, quantize_passthrough, requantize_if

__all__ = ["depth_to_space", "space_to_depth", "OPS"]


def depth_to_space(x: np.ndarray, blocksize: int, mode: str) -> np.ndarray:
    """ONNX's definition, NCHW."""
    n, c, h, w = x.shape
    b = blocksize
    if mode == "DCR":
        y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return np.ascontiguousarray(y).reshape(n, c // (b * b), h * b, w * b)


def space_to_depth(x: np.ndarray, blocksize: int) -> np.ndarray:
    """ONNX's definition, NCHW."""
    n, c, h, w = x.shape
    b = blocksize
    y = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
    return np.ascontiguousarray(y).reshape(n, c * b * b, h // b, w // b)


def _d2s_int(layer: Layer, q: QLayer, xs: Sequence[np.ndarray], enc: Encodings) -> np.ndarray:
    a = layer.attrs
    y = kernel("depth_to_space")(xs[0], blocksize=a["blocksize"], mode=a["mode"])
    return requantize_if(y, q, enc[layer.inputs[0]].zero_point)


def _s2d_int(layer: Layer, q: QLayer, xs: Sequence[np.ndarray], enc: Encodings) -> np.ndarray:
    y = kernel("space_to_depth")(xs[0], blocksize=layer.attrs["blocksize"])
    return requantize_if(y, q, enc[layer.inputs[0]].zero_point)


OPS = (
    Op("depth_to_space", lambda layer, xs, p: depth_to_space(xs[0], layer.attrs["blocksize"], layer.attrs["mode"]),
       quantize_passthrough, _d2s_int, keeps_encoding=True),
    Op("space_to_depth", lambda layer, xs, p: space_to_depth(xs[0], layer.attrs["blocksize"]),
       quantize_passthrough, _s2d_int, keeps_encoding=True),
)
