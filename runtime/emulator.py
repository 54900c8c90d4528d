"""The integer emulator: a quantized graph run layer by layer on the integer kernels.

Tensors are unsigned integers in NHWC (4-D) or in ONNX's layout (other
ranks); every layer calls one kernel of `alls.runtime.kernels` with the
constants `alls.runtime.quantize` derived. Float appears only at the edges:
float inputs are quantized on entry and outputs dequantized on exit (raw
integer inputs are taken as they are, as a device stream takes them).

``keep_native`` layers run in float between a dequantization of their
inputs and a quantization of their output: the mixed target that confirms
which layers carry the error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from alls.graph import Graph, Layer, per_channel
from alls.runtime import kernels as K
from alls.runtime.native import run_layer
from alls.runtime.quantize import QLayer

__all__ = ["run_numeric", "accumulators", "to_nhwc", "to_onnx"]

_NHWC_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}


def to_nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def to_onnx(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4 else x


def _weights(q: QLayer, layer: Layer) -> K.ConvWeights:
    cached = q.info.get("_kernel_weights")
    if cached is None:
        if layer.kind == "deconv":
            cached = K.ConvWeights.from_conv_transpose(q.weights, q.weight_bits, layer.attrs.get("group", 1))
        elif layer.kind == "batch_norm":
            cached = K.ConvWeights(q.weights, q.weight_bits, q.weights.shape[0])
        else:
            cached = K.ConvWeights(q.weights, q.weight_bits, layer.attrs.get("group", 1))
        q.info["_kernel_weights"] = cached
    return cached


def _finish(q: QLayer, y: np.ndarray) -> np.ndarray:
    """The table activation after a requantization to the pre-activation, if the layer has one."""
    return K.lut(y, q.table) if q.pre is not None and q.table is not None else y


def _dense_input(layer: Layer, x: np.ndarray) -> np.ndarray:
    """A dense layer's input as (rows, C_in): a 4-D tensor flattens in ONNX (C, H, W) order."""
    if x.ndim == 4:
        return np.ascontiguousarray(to_onnx(x).reshape(x.shape[0], -1))
    if x.ndim > 2 and len(layer.output_shape) > 2:  # a sequence: the last axis is the features
        return np.ascontiguousarray(x.reshape(-1, x.shape[-1]))
    return np.ascontiguousarray(x.reshape(x.shape[0], -1))


def _call(layer: Layer, q: QLayer, x: np.ndarray, zx: int, acc_only: bool, bias=None):
    """The layer's kernel: requantized output, or (``acc_only``) its accumulators with ``bias``."""
    w = _weights(q, layer)
    a = layer.attrs
    if layer.kind == "fc":
        rows = _dense_input(layer, x)
        y = K.fc_acc(rows, w, bias, zero_point=zx) if acc_only else K.fc(rows, w, q.bias, q.rq, zero_point=zx)
        return y.reshape(*x.shape[:-1], y.shape[-1]) if x.ndim > 2 and len(layer.output_shape) > 2 else y
    if layer.kind == "batch_norm":
        return K.dw_acc(x, w, bias, zero_point=zx) if acc_only else K.dw(x, w, q.bias, q.rq, zero_point=zx)
    geometry = {"strides": tuple(a["strides"]), "pads": tuple(a["pads"]), "dilations": tuple(a["dilations"])}
    if layer.kind == "deconv":
        kh, kw = q.weights.shape[2:]
        full = [(x.shape[1 + i] - 1) * geometry["strides"][i] + (k - 1) * geometry["dilations"][i] + 1
                - geometry["pads"][i] - geometry["pads"][i + 2] for i, k in enumerate((kh, kw))]
        geometry["output_padding"] = tuple(int(o - f) for o, f in zip(layer.output_shape[2:], full))
        return (K.deconv_acc(x, w, bias, zero_point=zx, **geometry) if acc_only
                else K.deconv(x, w, q.bias, q.rq, zero_point=zx, **geometry))
    if layer.kind == "dw":
        return K.dw_acc(x, w, bias, zero_point=zx, **geometry) if acc_only else K.dw(x, w, q.bias, q.rq, zero_point=zx, **geometry)
    return K.conv_acc(x, w, bias, zero_point=zx, **geometry) if acc_only else K.conv(x, w, q.bias, q.rq, zero_point=zx, **geometry)


def accumulators(layer: Layer, q: QLayer, x: np.ndarray, zero_point: int) -> np.ndarray:
    """A weighted layer's accumulators without its bias (N6): for measuring, as bias correction does."""
    return _call(layer, q, x, zero_point, acc_only=True)


def _weighted(layer: Layer, q: QLayer, xs, enc):
    return _finish(q, _call(layer, q, xs[0], enc[layer.inputs[0]].zero_point, acc_only=False))


def _operands(layer: Layer, q: QLayer, xs, enc):
    """The two operands (tensors, or a tensor and the quantized constant) and their zero points."""
    a, za = xs[0], enc[layer.inputs[0]].zero_point
    if len(xs) == 2:
        b, zb = xs[1], enc[layer.inputs[1]].zero_point
        if a.shape != b.shape:
            full = np.broadcast_shapes(a.shape, b.shape)
            a, b = np.ascontiguousarray(np.broadcast_to(a, full)), np.ascontiguousarray(np.broadcast_to(b, full))
        return (a, za), (b, zb)
    const = q.const
    onnx_shape = to_onnx(a).shape
    if per_channel(const, onnx_shape[1] if len(onnx_shape) > 1 else 1, onnx_shape):
        b = np.ascontiguousarray(np.broadcast_to(const.reshape(-1), (a.shape[-1],)))  # one value per channel
    else:  # a full constant tensor in ONNX layout
        b = to_nhwc(np.ascontiguousarray(np.broadcast_to(const, onnx_shape)))
    pair = ((a, za), (b, q.const_encoding.zero_point))
    return pair[::-1] if layer.attrs.get("const_first") else pair


def _elementwise(layer: Layer, q: QLayer, xs, enc):
    (a, za), (b, zb) = _operands(layer, q, xs, enc)
    kernel = {"ew_add": K.ew_add, "ew_sub": K.ew_sub, "ew_mult": K.ew_mult}[layer.kind]
    return _finish(q, kernel(a, b, q.rq, zero_points=(za, zb)))


def _concat(layer: Layer, q: QLayer, xs, enc):
    axis = layer.attrs["axis"]
    rank = xs[0].ndim
    axis = _NHWC_AXIS[axis % 4] if rank == 4 else axis % rank
    zero_points = [enc[name].zero_point for name in layer.inputs]
    return K.concat(list(xs), q.rq, zero_points=zero_points, axis=axis)


def _requantize(x: np.ndarray, q: QLayer, zero_point: int) -> np.ndarray:
    return x if q.rq is None else K.requantize(x, q.rq, zero_point=zero_point)


def _pool(layer: Layer, q: QLayer, xs, enc):
    x, zx = xs[0], enc[layer.inputs[0]].zero_point
    a = layer.attrs
    if layer.kind == "maxpool":
        y = K.global_maxpool(x) if a.get("global") else K.maxpool(
            x, kernel_shape=a["kernel_shape"], strides=a["strides"], pads=a["pads"], dilations=a["dilations"],
            ceil_mode=bool(a.get("ceil_mode")))
        return _requantize(y, q, zx)
    if a.get("global"):
        return K.global_avgpool(x, q.rq, zero_point=zx)
    return K.avgpool(x, q.rq, zero_point=zx, kernel_shape=a["kernel_shape"], strides=a["strides"], pads=a["pads"],
                     dilations=a["dilations"], ceil_mode=bool(a.get("ceil_mode")),
                     count_include_pad=bool(a.get("count_include_pad")))


def _resize(layer: Layer, q: QLayer, xs, enc):
    x, zx = xs[0], enc[layer.inputs[0]].zero_point
    a = layer.attrs
    size = tuple(layer.output_shape[2:])
    if a.get("mode") == "nearest":
        y = K.resize_nearest(x, size=size, mode=a["coordinate_transformation_mode"], nearest_mode=a["nearest_mode"])
        return _requantize(y, q, zx)
    return K.resize_bilinear(x, q.rq, zero_point=zx, size=size, mode=a["coordinate_transformation_mode"])


def _activation(layer: Layer, q: QLayer, xs, enc):
    if q.table is not None:
        return K.lut(xs[0], q.table)
    return K.requantize(xs[0], q.rq, zero_point=enc[layer.inputs[0]].zero_point)


def _view(layer: Layer, q: QLayer, xs, enc):
    x = to_onnx(xs[0])
    if layer.attrs.get("op") == "Transpose" and layer.attrs.get("perm"):
        y = x.transpose(layer.attrs["perm"])
    else:
        y = x.reshape((x.shape[0], *layer.output_shape[1:]))
    return _requantize(to_nhwc(np.ascontiguousarray(y)), q, enc[layer.inputs[0]].zero_point)


def _softmax(layer: Layer, q: QLayer, xs, enc):
    """exp(-S·(max − q)) from a Q15 table, normalized by an exact integer division, rounded half up."""
    x = to_onnx(xs[0]).astype(np.int64)
    axis = layer.attrs["axis"]
    e = q.table[x.max(axis=axis, keepdims=True) - x]
    total = e.sum(axis=axis, keepdims=True)
    top = (1 << q.out.bits) - 1
    y = (2 * e * top + total) // (2 * total)
    return to_nhwc(np.ascontiguousarray(y.astype(q.out.dtype)))


def _output(layer: Layer, q: QLayer, xs, enc):
    return _requantize(xs[0], q, enc[layer.inputs[0]].zero_point)


_RUN = {
    "conv": _weighted, "dw": _weighted, "deconv": _weighted, "fc": _weighted, "batch_norm": _weighted,
    "ew_add": _elementwise, "ew_sub": _elementwise, "ew_mult": _elementwise, "concat": _concat,
    "maxpool": _pool, "avgpool": _pool, "resize": _resize, "activation": _activation,
    "format_conversion": _view, "softmax": _softmax, "output_layer": _output,
}


def _native(layer: Layer, q: QLayer, xs, enc, params) -> np.ndarray:
    """A layer kept in float: dequantize its inputs, run it, quantize its output."""
    floats = [enc[name].dequantize(to_onnx(x)) for name, x in zip(layer.inputs, xs)]
    y = run_layer(layer, floats, params)
    return to_nhwc(q.out.quantize(y))


CHUNK_BYTES = 1 << 28  # a layer whose inputs are larger runs over its images in parts of about this size


def _in_parts(run: Callable[[list[np.ndarray]], np.ndarray], xs: list[np.ndarray], layer: Layer) -> np.ndarray:
    """``run(xs)``, over the images in parts when its inputs and output are large, so that a
    kernel's temporaries stay within about CHUNK_BYTES; every layer treats its images independently."""
    n = xs[0].shape[0]
    if n < 2:
        return run(xs)
    size = sum(x.nbytes for x in xs) + 4 * n * math.prod(d for d in layer.output_shape[1:] if isinstance(d, int))
    if size <= CHUNK_BYTES or any(x.shape[0] != n for x in xs):
        return run(xs)
    step = max(1, n * CHUNK_BYTES // size)
    first = run([x[:step] for x in xs])
    if first.shape[0] != step:  # the layer moves the image axis (a transpose): run it whole
        return run(xs)
    out = np.empty((n, *first.shape[1:]), first.dtype)
    out[:step] = first
    for start in range(step, n, step):
        out[start:start + step] = run([x[start:start + step] for x in xs])
    return out


def run_numeric(graph: Graph, qlayers: Mapping[str, QLayer], inputs: Mapping[str, np.ndarray],
                raw: bool = False, keep_native: Iterable[str] = (), taps: Iterable[str] | str | None = None,
                params: Mapping[str, Mapping] | None = None,
                before: Callable[[Layer, QLayer, list[np.ndarray]], None] | None = None,
                raw_out: bool = False) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Run the integer graph on NCHW ``inputs`` ({input layer name: array}).

    Float inputs are quantized with each input's encoding; with ``raw`` they
    are taken as integer codes. Returns the outputs and the tapped layers,
    dequantized (``raw_out``: as their integer codes), in ONNX layout. ``before(layer, qlayer, inputs)`` is called
    before each layer runs and may change its constants (bias correction).
    Large batches run layer by layer in parts of images (`_in_parts`); only
    the layers' outputs are held whole.
    """
    enc = {name: q.out for name, q in qlayers.items()}
    native = {graph[n].name for n in keep_native}
    wanted = {layer.name for layer in graph} if taps == "all" else {graph[t].name for t in (taps or ())}
    params = params or {}
    values: dict[str, np.ndarray] = {}
    readers: dict[str, int] = {}
    for layer in graph:
        for name in layer.inputs:
            readers[name] = readers.get(name, 0) + 1
    outputs, tapped = {}, {}
    leave = (lambda q, y: to_onnx(y)) if raw_out else (lambda q, y: q.out.dequantize(to_onnx(y)))
    for layer in graph:
        q = qlayers[layer.name]
        if layer.kind == "input_layer":
            x = inputs[layer.name]
            def enter(xs, q=q):
                return to_nhwc(np.asarray(xs[0], q.out.dtype) if raw else q.out.quantize(xs[0]))

            y = _in_parts(enter, [x], layer)
        else:
            xs = [values[name] for name in layer.inputs]
            if before is not None:
                before(layer, q, xs)
            if layer.name in native:
                y = _in_parts(lambda xs: _native(layer, q, xs, enc, params.get(layer.name, layer.params)), xs, layer)
            else:
                y = _in_parts(lambda xs: _RUN[layer.kind](layer, q, xs, enc), xs, layer)
            for name in layer.inputs:
                readers[name] -= 1
                if readers[name] == 0 and name not in wanted:
                    values.pop(name, None)
        values[layer.name] = y
        if layer.name in wanted:
            tapped[layer.name] = leave(q, y)
        if layer.kind == "output_layer":
            outputs[layer.name] = leave(q, y)
    return outputs, tapped
