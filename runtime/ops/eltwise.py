"""ew_add, ew_sub, ew_mult: two tensors, or a tensor and a constant, added (N23), subtracted
(N23) or multiplied (N24). A constant is quantized on its own 16-bit scale."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from alls.graph import Layer, per_channel
from alls.plan import LayerPlan
from alls.runtime import numerics as nx
from alls.runtime.ops.activation import clamp, finish, table, table_target
from alls.runtime.ops.base import (CONST_BITS, Encoding, Encodings, Op, Params, QLayer, StatsByName, kernel,
    to_nhwc, to_onnx)

__all__ = ["OPS"]

Operand = tuple[np.ndarray, int]  # a tensor and its zero point


def _float(op: np.ufunc) -> Callable[..., np.ndarray]:
    """The float run of one ufunc: one pass, written into a ``spare`` input of the result's shape when
    there is one (the same bits: a ufunc's loop is chosen by its operands, not by where it writes)."""
    def run(layer: Layer, xs: Sequence[np.ndarray], p: Params, spare: Sequence[int] = ()) -> np.ndarray:
        if len(xs) == 2:
            a, b = xs[0], xs[1]
        else:
            a, b = (p["const"], xs[0]) if layer.attrs.get("const_first") else (xs[0], p["const"])
        into = _into(a, b, [xs[k] for k in spare])
        y: np.ndarray = op(a, b) if into is None else op(a, b, out=into)
        return y
    return run


def _into(a: np.ndarray, b: np.ndarray, spare: Sequence[np.ndarray]) -> np.ndarray | None:
    """The spare tensor that can hold ``a`` op ``b``: float32 operands, and the result's shape and layout."""
    if not spare or np.result_type(a, b) != np.float32:
        return None
    shape = np.broadcast_shapes(np.shape(a), np.shape(b))
    return next((x for x in spare if x.shape == shape and x.dtype == np.float32 and x.flags.c_contiguous
                 and x.flags.writeable), None)


def _quantize(layer: Layer, lp: LayerPlan, stats: StatsByName, enc: Encodings, params: Params) -> QLayer:
    out = enc[layer.name]
    pre = table_target(layer, lp, stats, out)
    target = pre or out
    lo, hi = (0, nx.activation_max(target.bits)) if pre else clamp(layer, out)
    a = enc[layer.inputs[0]]
    const, const_enc = None, None
    if len(layer.inputs) == 2:
        b = enc[layer.inputs[1]]
    else:
        c = np.asarray(params["const"], np.float32)
        const_enc = Encoding.from_range(float(c.min()), float(c.max()), CONST_BITS)
        const, b = const_enc.quantize(c), const_enc
    rq: nx.Requant | nx.AddRequant
    if layer.kind == "ew_mult":
        rq = nx.mul_requant(a.scale, b.scale, target.scale, target.zero_point, a.bits, b.bits, target.bits, lo, hi)
    else:
        subtract = layer.kind == "ew_sub"
        first, second = (b, a) if layer.attrs.get("const_first") and const is not None else (a, b)
        rq = nx.add_requant(first.scale, second.scale, target.scale, target.zero_point, first.bits, second.bits,
                            target.bits, lo, hi, subtract=subtract)
    lut = table(layer, pre, out, params) if pre else None
    return QLayer(layer.name, layer.kind, out, pre, rq=rq, table=lut, const=const, const_encoding=const_enc)


def _operands(layer: Layer, q: QLayer, xs: Sequence[np.ndarray], enc: Encodings) -> tuple[Operand, Operand]:
    """The two operands (tensors, or a tensor and the quantized constant) and their zero points."""
    a, za = xs[0], enc[layer.inputs[0]].zero_point
    if len(xs) == 2:
        b, zb = xs[1], enc[layer.inputs[1]].zero_point
        if a.shape != b.shape:
            full = np.broadcast_shapes(a.shape, b.shape)
            a, b = np.ascontiguousarray(np.broadcast_to(a, full)), np.ascontiguousarray(np.broadcast_to(b, full))
        return (a, za), (b, zb)
    const, const_encoding = q.const, q.const_encoding
    assert const is not None and const_encoding is not None, "a one-input eltwise layer has its constant"
    onnx_shape = to_onnx(a).shape
    if per_channel(const, onnx_shape[1] if len(onnx_shape) > 1 else 1, onnx_shape):
        b = np.ascontiguousarray(np.broadcast_to(const.reshape(-1), (a.shape[-1],)))  # one value per channel
    else:  # a full constant tensor in ONNX layout
        b = to_nhwc(np.ascontiguousarray(np.broadcast_to(const, onnx_shape)))
    pair = ((a, za), (b, const_encoding.zero_point))
    return (pair[1], pair[0]) if layer.attrs.get("const_first") else pair


def _run_int(layer: Layer, q: QLayer, xs: Sequence[np.ndarray], enc: Encodings) -> np.ndarray:
    (a, za), (b, zb) = _operands(layer, q, xs, enc)
    return finish(q, kernel(layer.kind)(a, b, q.rq, zero_points=(za, zb)))


OPS = (
    Op("ew_add", _float(np.add), _quantize, _run_int, overwrites=True),
    Op("ew_sub", _float(np.subtract), _quantize, _run_int, overwrites=True),
    Op("ew_mult", _float(np.multiply), _quantize, _run_int, overwrites=True),
)
