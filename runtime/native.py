"""The float executor: a layer graph run in float32, layer by layer (NCHW).

This is the `native` target: the network as imported (batch norms folded,
activations fused), which must equal onnxruntime on the original model.
It is also what calibration observes, and, with changed parameters, the
`fp_optimized` target.

`run_float(graph, inputs, params=None, taps=None)` returns the outputs and
the tapped layers' tensors by layer name. ``params`` replaces the
parameters of some layers (``{layer name: {"weight": ..., "bias": ...}}``),
which is how float-domain changes such as equalization are run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np

from alls.graph import Graph, Layer

__all__ = ["run_float", "activation", "ACTIVATIONS", "LAYER_OPS"]

Array = np.ndarray


# -------------------------------------------------------------- activations


def _sigmoid(x: Array) -> Array:
    return (0.5 * (np.tanh(0.5 * x) + 1.0)).astype(x.dtype)  # stable for large |x|


ACTIVATIONS: dict[str, Callable[..., Array]] = {
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "clip": lambda x, min=-np.inf, max=np.inf: np.clip(x, min, max),
    "leaky_relu": lambda x, alpha=0.01: np.where(x >= 0, x, x * np.float32(alpha)),
    "elu": lambda x, alpha=1.0: np.where(x > 0, x, np.float32(alpha) * np.expm1(np.minimum(x, 0))),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "hard_sigmoid": lambda x, alpha=0.2, beta=0.5: np.clip(np.float32(alpha) * x + np.float32(beta), 0, 1),
    "hardswish": lambda x: x * np.clip(x / np.float32(6) + np.float32(0.5), 0, 1),
    "silu": lambda x: x * _sigmoid(x),
}


def activation(layer: Layer, x: Array, params: Mapping[str, Array] | None = None) -> Array:
    """Apply the layer's fused activation (or nothing) to ``x``."""
    name = layer.activation
    if name is None or name == "linear":
        return x
    if name == "prelu":
        slope = (params or layer.params)["prelu_slope"]
        slope = slope.reshape(1, -1, *([1] * (x.ndim - 2))) if slope.size > 1 and x.ndim >= 2 else slope
        return np.where(x >= 0, x, x * slope).astype(np.float32)
    fn = ACTIVATIONS[name]
    return fn(x, **dict(layer.activation_params)).astype(np.float32)


# --------------------------------------------------------------- conv math


def _pad(x: Array, pads: tuple[int, ...], value: float = 0.0) -> Array:
    top, left, bottom, right = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def _windows(x: Array, kernel, strides, dilations) -> Array:
    """(N, C, Ho, Wo, kh, kw) views of a padded NCHW tensor."""
    kh, kw = kernel
    dh, dw = dilations
    view = np.lib.stride_tricks.sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    return view[:, :, :: strides[0], :: strides[1], ::dh, ::dw]


def conv2d(x: Array, weight: Array, bias: Array, attrs: Mapping, group: int = 1) -> Array:
    """ONNX Conv in float32: any group, stride, dilation and explicit pads."""
    x = _pad(x, attrs["pads"])
    n, c = x.shape[:2]
    out_c, cg = weight.shape[:2]
    kernel = weight.shape[2:]
    if group == c and cg == 1 and out_c == c:
        return _depthwise(x, weight, bias, attrs)
    og = out_c // group
    pointwise = kernel == (1, 1) and tuple(attrs["strides"]) == (1, 1)
    if pointwise:
        ho, wo = x.shape[2:]
    else:
        win = _windows(x, kernel, attrs["strides"], attrs["dilations"])
        ho, wo = win.shape[2:4]
    out = np.empty((n, out_c, ho * wo), np.float32)
    for g in range(group):
        if pointwise:  # (N, C, H·W) as it lies
            cols = x[:, g * cg:(g + 1) * cg].reshape(n, cg, ho * wo)
        else:  # im2col as (N, C·KH·KW, Ho·Wo), so the product comes out in NCHW
            cols = win[:, g * cg:(g + 1) * cg].transpose(0, 1, 4, 5, 2, 3).reshape(n, -1, ho * wo)
        np.matmul(weight[g * og:(g + 1) * og].reshape(og, -1), cols, out=out[:, g * og:(g + 1) * og])
    out += bias.reshape(1, -1, 1)
    return out.reshape(n, out_c, ho, wo)


def _depthwise(x: Array, weight: Array, bias: Array, attrs: Mapping) -> Array:
    """Depthwise conv as a sum over the kernel taps (x is already padded)."""
    kh, kw = weight.shape[2:]
    (sh, sw), (dh, dw) = attrs["strides"], attrs["dilations"]
    n, c, h, w = x.shape
    ho, wo = (h - (kh - 1) * dh - 1) // sh + 1, (w - (kw - 1) * dw - 1) // sw + 1
    from alls.runtime.float_kernels import depthwise

    return depthwise(np.ascontiguousarray(x, np.float32), np.ascontiguousarray(weight[:, 0], np.float32),
                     np.ascontiguousarray(bias, np.float32), sh, sw, dh, dw, ho, wo)


def deconv2d(x: Array, weight: Array, bias: Array, attrs: Mapping, out_hw: tuple[int, int]) -> Array:
    """ONNX ConvTranspose in float32: scatter each input pixel's kernel, then crop the pads."""
    group = attrs.get("group", 1)
    n, c, h, w = x.shape
    cg, og, kh, kw = weight.shape[0] // group, weight.shape[1], weight.shape[2], weight.shape[3]
    (sh, sw), (dh, dw) = attrs["strides"], attrs["dilations"]
    top, left = attrs["pads"][0], attrs["pads"][1]
    full_h = (h - 1) * sh + (kh - 1) * dh + 1 + max(0, out_hw[0] + top - ((h - 1) * sh + (kh - 1) * dh + 1))
    full_w = (w - 1) * sw + (kw - 1) * dw + 1 + max(0, out_hw[1] + left - ((w - 1) * sw + (kw - 1) * dw + 1))
    full = np.zeros((n, og * group, full_h, full_w), np.float32)
    for g in range(group):
        xs = x[:, g * cg:(g + 1) * cg].transpose(0, 2, 3, 1).reshape(n * h * w, cg)
        ws = weight[g * cg:(g + 1) * cg].reshape(cg, og * kh * kw)
        cols = (xs @ ws).reshape(n, h, w, og, kh, kw)
        for i in range(kh):
            for j in range(kw):
                full[:, g * og:(g + 1) * og, i * dh: i * dh + (h - 1) * sh + 1: sh,
                     j * dw: j * dw + (w - 1) * sw + 1: sw] += cols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    out = full[:, :, top: top + out_hw[0], left: left + out_hw[1]]
    return out + bias.reshape(1, -1, 1, 1)


def pool2d(x: Array, attrs: Mapping, kind: str, out_hw: tuple[int, int]) -> Array:
    """Max or average pooling with ONNX's pads, ceil_mode and count_include_pad."""
    if attrs.get("global"):
        return x.max(axis=(2, 3), keepdims=True) if kind == "maxpool" else x.mean(axis=(2, 3), keepdims=True)
    kernel, strides, dilations = attrs["kernel_shape"], attrs["strides"], attrs["dilations"]
    top, left, bottom, right = attrs["pads"]
    ho, wo = out_hw
    # extra padding at the end so that ceil_mode windows exist; those cells are never counted
    need_h = (ho - 1) * strides[0] + (kernel[0] - 1) * dilations[0] + 1
    need_w = (wo - 1) * strides[1] + (kernel[1] - 1) * dilations[1] + 1
    extra_h = max(0, need_h - (x.shape[2] + top + bottom))
    extra_w = max(0, need_w - (x.shape[3] + left + right))
    fill = -np.inf if kind == "maxpool" else 0.0
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom + extra_h), (left, right + extra_w)), constant_values=fill)
    win = _windows(padded, kernel, strides, dilations)[:, :, :ho, :wo]
    if kind == "maxpool":
        return win.max(axis=(4, 5))
    inside = np.zeros((1, 1) + padded.shape[2:], np.float32)
    h_end = x.shape[2] + top + (bottom if attrs.get("count_include_pad") else 0)
    w_end = x.shape[3] + left + (right if attrs.get("count_include_pad") else 0)
    h_start, w_start = (0, 0) if attrs.get("count_include_pad") else (top, left)
    inside[:, :, h_start:h_end, w_start:w_end] = 1
    count = _windows(inside, kernel, strides, dilations)[:, :, :ho, :wo].sum(axis=(4, 5))
    return (win.sum(axis=(4, 5)) / np.maximum(count, 1)).astype(np.float32)


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


def resize2d(x: Array, attrs: Mapping, out_hw: tuple[int, int]) -> Array:
    """ONNX Resize on H and W: nearest (with its nearest_mode) or bilinear."""
    ctm = attrs.get("coordinate_transformation_mode", "half_pixel")
    h, w = x.shape[2:]
    ys, xs = _source_coords(out_hw[0], h, ctm), _source_coords(out_hw[1], w, ctm)
    if attrs.get("mode") == "nearest":
        mode = attrs.get("nearest_mode", "round_prefer_floor")
        return x[:, :, _nearest(ys, mode, h)][:, :, :, _nearest(xs, mode, w)]
    ys, xs = np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1)
    y0, x0 = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy = (ys - y0).astype(np.float32).reshape(1, 1, -1, 1)
    fx = (xs - x0).astype(np.float32).reshape(1, 1, 1, -1)
    top = x[:, :, y0][:, :, :, x0] * (1 - fx) + x[:, :, y0][:, :, :, x1] * fx
    bottom = x[:, :, y1][:, :, :, x0] * (1 - fx) + x[:, :, y1][:, :, :, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


# ------------------------------------------------------------------ layers


def _batch(shape: tuple[int, ...], n: int) -> tuple[int, ...]:
    return (n, *shape[1:]) if shape else shape


def _conv(layer, xs, p):
    return conv2d(xs[0], p["weight"], p["bias"], layer.attrs, layer.attrs.get("group", 1))


def _deconv(layer, xs, p):
    return deconv2d(xs[0], p["weight"], p["bias"], layer.attrs, tuple(layer.output_shape[2:]))


def _fc(layer, xs, p):
    x = xs[0]
    if len(layer.output_shape) == 2 or x.shape[-1] != p["weight"].shape[1]:
        x = x.reshape(x.shape[0], -1)
    return x @ p["weight"].T + p["bias"]


def _elementwise(op):
    def run(layer, xs, p):
        if len(xs) == 2:
            return op(xs[0], xs[1])
        const = p["const"]
        return op(const, xs[0]) if layer.attrs.get("const_first") else op(xs[0], const)
    return run


def _view(layer, xs, p):
    x = xs[0]
    if layer.attrs.get("op") == "Transpose" and layer.attrs.get("perm"):
        return np.ascontiguousarray(x.transpose(layer.attrs["perm"]))
    return x.reshape(_batch(tuple(layer.output_shape), x.shape[0]))


def _softmax(layer, xs, p):
    x = xs[0]
    e = np.exp(x - x.max(axis=layer.attrs["axis"], keepdims=True))
    return e / e.sum(axis=layer.attrs["axis"], keepdims=True)


def _batch_norm(layer, xs, p):
    shape = (1, -1) + (1,) * (xs[0].ndim - 2)
    return xs[0] * p["scale"].reshape(shape) + p["shift"].reshape(shape)


LAYER_OPS: dict[str, Callable] = {
    "conv": _conv,
    "dw": _conv,
    "deconv": _deconv,
    "fc": _fc,
    "batch_norm": _batch_norm,
    "ew_add": _elementwise(np.add),
    "ew_sub": _elementwise(np.subtract),
    "ew_mult": _elementwise(np.multiply),
    "concat": lambda layer, xs, p: np.concatenate(xs, axis=layer.attrs["axis"]),
    "maxpool": lambda layer, xs, p: pool2d(xs[0], layer.attrs, "maxpool", tuple(layer.output_shape[2:])),
    "avgpool": lambda layer, xs, p: pool2d(xs[0], layer.attrs, "avgpool", tuple(layer.output_shape[2:])),
    "resize": lambda layer, xs, p: resize2d(xs[0], layer.attrs, tuple(layer.output_shape[2:])),
    "softmax": _softmax,
    "format_conversion": _view,
    "activation": lambda layer, xs, p: xs[0],
    "output_layer": lambda layer, xs, p: xs[0],
}


def run_layer(layer: Layer, xs: list[Array], params: Mapping[str, Array] | None = None,
              observe: Callable[[Layer, Array, Array], None] | None = None) -> Array:
    """One layer in float32, its fused activation included.

    ``observe(layer, before, after)`` sees the tensor before and after the
    fused activation (calibration needs both for table activations).
    """
    p = params if params is not None else layer.params
    op = LAYER_OPS.get(layer.kind)
    if op is None or not layer.supported:
        from alls.diagnostics import AllsError

        raise AllsError.of("ALS510", f"no kernel for op `{layer.op}` (layer `{layer.name}`)",
                           "`alls layers MODEL` marks the unsupported layers")
    before = np.asarray(op(layer, xs, p), dtype=np.float32)
    after = before if layer.kind == "output_layer" else np.asarray(activation(layer, before, p), dtype=np.float32)
    if observe is not None:
        observe(layer, before, after)
    return after


def run_float(graph: Graph, inputs: Mapping[str, Array] | Array, params: Mapping[str, Mapping[str, Array]] | None = None,
              taps: Iterable[str] | str | None = None,
              observe: Callable[[Layer, Array, Array], None] | None = None) -> tuple[dict[str, Array], dict[str, Array]]:
    """Run ``graph`` in float32 on NCHW ``inputs`` (one array, or {input layer or ONNX name: array}).

    Returns ``(outputs, tapped)``: the output layers' tensors by output layer
    name, and the tensors of the ``taps`` layers ("all" for every layer).
    ``observe`` is called for every layer (inputs included) with the tensor
    before and after its activation.
    """
    feeds = _feeds(graph, inputs)
    params = params or {}
    wanted = {layer.name for layer in graph} if taps == "all" else {graph[t].name for t in (taps or ())}
    readers: dict[str, int] = {}
    for layer in graph:
        for name in layer.inputs:
            readers[name] = readers.get(name, 0) + 1
    values: dict[str, Array] = {}
    outputs: dict[str, Array] = {}
    tapped: dict[str, Array] = {}
    for layer in graph:
        if layer.kind == "input_layer":
            y = feeds[layer.name]
            if observe is not None:
                observe(layer, y, y)
        else:
            y = run_layer(layer, [values[name] for name in layer.inputs], params.get(layer.name), observe)
            for name in layer.inputs:  # free what no later layer reads
                readers[name] -= 1
                if readers[name] == 0 and name not in wanted:
                    values.pop(name, None)
        values[layer.name] = y
        if layer.name in wanted:
            tapped[layer.name] = y
        if layer.kind == "output_layer":
            outputs[layer.name] = y
    return outputs, tapped


def _feeds(graph: Graph, inputs) -> dict[str, Array]:
    layers = graph.inputs
    if isinstance(inputs, np.ndarray):
        if len(layers) != 1:
            raise ValueError(f"the model has {len(layers)} inputs; pass a dict {{name: array}}")
        return {layers[0].name: inputs.astype(np.float32, copy=False)}
    feeds = {}
    for key, value in inputs.items():
        layer = graph.get(key)
        if layer is None or layer.kind != "input_layer":
            raise KeyError(f"`{key}` is not an input of `{graph.name}`")
        feeds[layer.name] = np.asarray(value, dtype=np.float32)
    missing = [layer.name for layer in layers if layer.name not in feeds]
    if missing:
        raise KeyError(f"no data for the input{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    return feeds
