"""matmul: the product of two activation tensors, ONNX MatMul with no constant operand (attention's
Q·Kᵀ and ·V in YOLO11's C2PSA and YOLOv10's PSA).

Both operands keep the encodings their producers gave them (unsigned 8- or 16-bit codes with zero
points, calibrated as any tensor is); the product is one exact sum of centred codes and one
requantization to the output's encoding, μ = S_a·S_b/S_y with V = K·A_a·A_b (N37). The batch axes
(all but the last two) broadcast as ONNX's do; axis 0, the images, is the same in both operands
(the importer refuses other forms with ALS416).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alls.diagnostics import AllsError
from alls.graph import Layer
from alls.plan import LayerPlan
from alls.runtime import numerics as nx
from alls.runtime.ops.activation import clamp, finish, table, table_target
from alls.runtime.ops.base import Encodings, Op, Params, QLayer, StatsByName, kernel, to_nhwc, to_onnx

__all__ = ["OPS", "bound"]


def _run(layer: Layer, xs: Sequence[np.ndarray], p: Params) -> np.ndarray:
    y: np.ndarray = np.matmul(xs[0], xs[1])
    return y


def bound(inner: int, bits_a: int, bits_b: int) -> int:
    """V = K·A_a·A_b (N37), which bounds every partial sum of the product."""
    return int(inner) * nx.activation_max(bits_a) * nx.activation_max(bits_b)


def _quantize(layer: Layer, lp: LayerPlan, stats: StatsByName, enc: Encodings, params: Params) -> QLayer:
    a, b, out = enc[layer.inputs[0]], enc[layer.inputs[1]], enc[layer.name]
    inner = int(layer.input_shapes[0][-1])
    v = bound(inner, a.bits, b.bits)
    if v >= nx.INT64_VALUE_LIMIT:
        raise AllsError.of("ALS417", f"layer `{layer.name}` multiplies {a.bits}-bit by {b.bits}-bit codes over "
                           f"K = {inner}: its sums reach {v:.3g}, beyond the 2^47 that int64 carries exactly (N37)",
                           "quantize one of its inputs at 8 bits (`quantization_param(LAYER, precision_mode=a8_w8)` "
                           "on its producer); `alls explain ALS417`")
    pre = table_target(layer, lp, stats, out)
    target = pre or out
    lo, hi = (0, nx.activation_max(target.bits)) if pre else clamp(layer, out)
    rq = nx.requant([a.scale * b.scale / target.scale], v, target.zero_point, target.bits, lo, hi)
    lut = table(layer, pre, out, params) if pre else None
    return QLayer(layer.name, layer.kind, out, pre, rq=rq, table=lut)


def _operands(layer: Layer, xs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Both operands in ONNX order, their batch axes broadcast to one shape."""
    a, b = to_onnx(xs[0]), to_onnx(xs[1])
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    if a.shape[:-2] != batch:
        a = np.broadcast_to(a, (*batch, *a.shape[-2:]))
    if b.shape[:-2] != batch:
        b = np.broadcast_to(b, (*batch, *b.shape[-2:]))
    return a, b


def _run_int(layer: Layer, q: QLayer, xs: Sequence[np.ndarray], enc: Encodings) -> np.ndarray:
    a, b = _operands(layer, xs)
    zero_points = (enc[layer.inputs[0]].zero_point, enc[layer.inputs[1]].zero_point)
    return finish(q, to_nhwc(kernel("matmul", layer.name)(a, b, q.rq, zero_points=zero_points)))


OPS = (Op("matmul", _run, _quantize, _run_int),)
