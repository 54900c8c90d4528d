"""resize: ONNX Resize/Upsample on H and W, nearest (any nearest_mode) or bilinear, with every
coordinate_transformation_mode YOLO necks use. Nearest keeps the encoding; bilinear is (N28)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from alls.graph import Layer
from alls.plan import LayerPlan
from alls.runtime import numerics as nx
from alls.runtime.ops.base import Encodings, Op, Params, QLayer, StatsByName, kernel, requantize_if, rescale

__all__ = ["resize2d", "OPS"]

Array = np.ndarray


def _source_coords(out_size: int, in_size: int, mode: str) -> Array:
    """ONNX Resize: the input coordinate of each output index (scale = out / in)."""
    i = np.arange(out_size, dtype=np.float64)
    scale = out_size / in_size
    if mode == "half_pixel":
        return (i + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (i + 0.5) / scale - 0.5 if out_size > 1 else np.zeros_like(i)
    if mode == "align_corners":
        return i * (in_size - 1) / (out_size - 1) if out_size > 1 else np.zeros_like(i)
    if mode == "asymmetric":
        return i / scale
    raise ValueError(f"coordinate_transformation_mode `{mode}` is not supported")


def _nearest(coords: Array, mode: str, size: int) -> Array:
    if mode == "round_prefer_floor":
        idx = np.where(coords - np.floor(coords) == 0.5, np.floor(coords), np.round(coords))
    elif mode == "round_prefer_ceil":
        idx = np.where(coords - np.floor(coords) == 0.5, np.ceil(coords), np.round(coords))
    elif mode == "floor":
        idx = np.floor(coords)
    elif mode == "ceil":
        idx = np.ceil(coords)
    else:
        raise ValueError(f"nearest_mode `{mode}` is not supported")
    return np.clip(idx, 0, size - 1).astype(np.int64)


def resize2d(x: Array, attrs: Mapping[str, Any], out_hw: tuple[int, int]) -> Array:
    """ONNX Resize on H and W: nearest (with its nearest_mode: each output row gathered once, in one
    pass, `alls.runtime.kernels.floatmove.gather_nearest`) or bilinear."""
    ctm = attrs.get("coordinate_transformation_mode", "half_pixel")
    h, w = x.shape[2:]
    ys, xs = _source_coords(out_hw[0], h, ctm), _source_coords(out_hw[1], w, ctm)
    if attrs.get("mode") == "nearest":
        from alls.runtime.kernels.floatmove import gather_nearest

        mode = attrs.get("nearest_mode", "round_prefer_floor")
        out = np.empty((*x.shape[:2], *out_hw), np.float32)
        gather_nearest(np.ascontiguousarray(x, np.float32), _nearest(ys, mode, h), _nearest(xs, mode, w), out)
        return out
    ys, xs = np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1)
    y0, x0 = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy = (ys - y0).astype(np.float32).reshape(1, 1, -1, 1)
    fx = (xs - x0).astype(np.float32).reshape(1, 1, 1, -1)
    top = x[:, :, y0][:, :, :, x0] * (1 - fx) + x[:, :, y0][:, :, :, x1] * fx
    bottom = x[:, :, y1][:, :, :, x0] * (1 - fx) + x[:, :, y1][:, :, :, x1] * fx
    y: Array = (top * (1 - fy) + bottom * fy).astype(np.float32)
    return y


def _quantize(layer: Layer, lp: LayerPlan, stats: StatsByName, enc: Encodings, params: Params) -> QLayer:
    x, out = enc[layer.inputs[0]], enc[layer.name]
    if layer.attrs.get("mode") == "nearest":
        return QLayer(layer.name, layer.kind, out, rq=None if x == out else rescale(x, out))
    return QLayer(layer.name, layer.kind, out, rq=nx.bilinear_requant(x.scale, out.scale, out.zero_point, x.bits,
                                                                      out.bits))


def _run_int(layer: Layer, q: QLayer, xs: Sequence[np.ndarray], enc: Encodings) -> np.ndarray:
    x, zx = xs[0], enc[layer.inputs[0]].zero_point
    a = layer.attrs
    size = tuple(layer.output_shape[2:])
    if a.get("mode") == "nearest":
        y = kernel("resize_nearest")(x, size=size, mode=a["coordinate_transformation_mode"],
                                     nearest_mode=a["nearest_mode"])
        return requantize_if(y, q, zx)
    return kernel("resize_bilinear")(x, q.rq, zero_point=zx, size=size, mode=a["coordinate_transformation_mode"])


OPS = (Op("resize", lambda layer, xs, p: resize2d(xs[0], layer.attrs, tuple(layer.output_shape[2:])),
          _quantize, _run_int),)
