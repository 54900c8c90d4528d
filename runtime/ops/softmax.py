"""softmax on one axis: in integers exp(-S·(max − q)) from a Q15 table, normalized by an exact
integer division; the output encoding is fixed to [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alls.graph import Layer
from alls.plan import LayerPlan
from alls.runtime import numerics as nx
from alls.runtime.ops.base import Encoding, Encodings, Op, Params, QLayer, StatsByName, to_nhwc, to_onnx

__all__ = ["OPS"]


def _run(layer: Layer, xs: Sequence[np.ndarray], p: Params) -> np.ndarray:
    x = xs[0]
    e = np.exp(x - x.max(axis=layer.attrs["axis"], keepdims=True))
    y: np.ndarray = e / e.sum(axis=layer.attrs["axis"], keepdims=True)
    return y


def _encoding(lp: LayerPlan) -> Encoding:
    return Encoding(1.0 / nx.activation_max(lp.output_bits), 0, lp.output_bits)


def _quantize(layer: Layer, lp: LayerPlan, stats: StatsByName, enc: Encodings, params: Params) -> QLayer:
    x = enc[layer.inputs[0]]
    # exp(-S·d) for d = q_max - q in 0..2^a - 1, in Q15 (quantization time: float allowed)
    d = np.arange(nx.activation_max(x.bits) + 1, dtype=np.float64)
    table = np.floor(np.exp(-x.scale * d) * (1 << 15) + 0.5).astype(np.int64)
    return QLayer(layer.name, layer.kind, enc[layer.name], table=table)


def _run_int(layer: Layer, q: QLayer, xs: Sequence[np.ndarray], enc: Encodings) -> np.ndarray:
    """exp(-S·(max − q)) from a Q15 table, normalized by an exact integer division, rounded half up."""
    x = to_onnx(xs[0]).astype(np.int64)
    axis = layer.attrs["axis"]
    assert q.table is not None, "a softmax layer is quantized with its exp table"
    e = q.table[x.max(axis=axis, keepdims=True) - x]
    total = e.sum(axis=axis, keepdims=True)
    top = (1 << q.out.bits) - 1
    y = (2 * e * top + total) // (2 * total)
    return to_nhwc(np.ascontiguousarray(y.astype(q.out.dtype)))


OPS = (Op("softmax", _run, _quantize, _run_int, encoding=_encoding),)
