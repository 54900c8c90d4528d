"""conv: ONNX Conv (any group but depthwise), in float and as the integer conv kernel (N21)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from alls.graph import Layer
from alls.plan import Activation
from alls.runtime import numerics as nx
from alls.runtime.ops.base import Params, QLayer, kernel
from alls.runtime.ops.weighted import kernel_weights, weighted_op

if TYPE_CHECKING:
    from alls.runtime.kernels import ConvWeights

__all__ = ["conv2d", "depthwise", "is_depthwise", "pad2d", "windows", "geometry", "direct", "fusable", "run_activated", "prepare",
           "OPS"]

Array = np.ndarray

# Below this many column values over the whole batch (256 KiB of float32: the columns stay in the cache),
# a conv runs as one `_small_conv`, not image by image
SMALL_COLUMNS = 1 << 16


def pad2d(x: Array, pads: tuple[int, ...], value: float = 0.0) -> Array:
    top, left, bottom, right = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def windows(x: Array, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]) -> Array:
    """(N, C, Ho, Wo, kh, kw) views of a padded NCHW tensor."""
    kh, kw = kernel
    dh, dw = dilations
    view = np.lib.stride_tricks.sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    return view[:, :, :: strides[0], :: strides[1], ::dh, ::dw]


def conv2d(x: Array, weight: Array, bias: Array, attrs: Mapping[str, Any], group: int = 1,
           activation: tuple[int, float, float] | None = None) -> Array:
    """ONNX Conv in float32: any group, stride, dilation and explicit pads.

    A conv of one group is the direct convolution of `alls.runtime.kernels.floatconv` (no im2col
    columns), except a 1x1 conv without pads: a small one of stride 1 whose planes are whole blocks
    runs the micro-kernel on its input in place (`in_place`), any other `direct` leaves to BLAS: one product per
    image, (C_out, C) by the input as it lies (strided: its every sh-th row and sw-th column),
    which comes out in NCHW. A grouped conv is a BLAS product per image and group over the columns
    Numba's `im2col` fills. A depthwise conv is `depthwise` (`floatdw.depthwise`).

    ``activation`` (`fusable`'s number and constants), for any but a depthwise conv, is applied as
    the direct conv stores its outputs, or in the pass that adds the bias to a BLAS product's
    (`floatconv.bias_activate`, while the image's outputs are in the cache).
    """
    if x.dtype != np.float32 or not x.flags.c_contiguous:
        x = np.ascontiguousarray(x, np.float32)
    if is_depthwise(x.shape, weight.shape, group):
        if activation is not None:
            raise ValueError("a depthwise conv takes its activation by name (`depthwise`)")
        return depthwise(x, weight, bias, attrs)
    fused = activation or _LINEAR
    if direct(x.shape, weight.shape, attrs, group):  # the arrays as they are: `floatconv.packed` keeps their layout
        out: Array = _kernels().conv(x, weight, bias, _pair(attrs["strides"]), _pair(attrs["dilations"]),
                                     _four(attrs["pads"]), activation=fused)
        return out
    from alls.runtime.kernels.floatconv import bias_activate

    n, c, h, w = x.shape
    out_c, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = attrs["strides"], attrs["dilations"]
    top, left, bottom, right = attrs["pads"]
    ho = (h + top + bottom - (kh - 1) * dh - 1) // sh + 1
    wo = (w + left + right - (kw - 1) * dw - 1) // sw + 1
    code, act = fused[0], np.array(fused[1:], np.float32)
    pointwise = (kh, kw) == (1, 1) and not any(attrs["pads"])
    if pointwise and group == 1 and (sh, sw) == (1, 1) and in_place(x.shape):
        return _in_place(x, weight, bias, code, act)
    weight = np.ascontiguousarray(weight, np.float32).reshape(out_c, -1)
    bias = np.ascontiguousarray(bias, np.float32).reshape(-1)
    if n * weight.shape[1] * group * ho * wo <= SMALL_COLUMNS:
        out = _small_conv(x, weight, attrs, group, (kh, kw), (ho, wo))
        bias_activate(out, bias, code, act)
        return out.reshape(n, out_c, ho, wo)
    out = np.empty((n, out_c, ho * wo), np.float32)
    og, k = out_c // group, weight.shape[1]
    if pointwise:
        cols = (x if (sh, sw) == (1, 1) else np.ascontiguousarray(x[:, :, ::sh, ::sw])).reshape(n, c, ho * wo)
    else:
        from alls.runtime.kernels.floating import im2col

        buffer = np.empty((c * kh * kw, ho * wo), np.float32)
    for i in range(n):
        if not pointwise:
            im2col(x, i, buffer, kh, kw, sh, sw, dh, dw, top, left, ho, wo)
        image = cols[i] if pointwise else buffer
        for g in range(group):
            np.matmul(weight[g * og:(g + 1) * og], image[g * k:(g + 1) * k], out=out[i, g * og:(g + 1) * og])
        bias_activate(out[i:i + 1], bias, code, act)  # while the image's outputs are in the cache
    return out.reshape(n, out_c, ho, wo)


_LINEAR = (0, 0.0, 0.0)  # no activation in the conv kernels' store
_floatconv: list[ModuleType] = []


def _kernels() -> ModuleType:
    """`alls.runtime.kernels.floatconv`, imported on the first float conv (it compiles kernels), then kept
    at hand: an import statement a call costs more than a small layer's arithmetic."""
    if not _floatconv:
        from alls.runtime.kernels import floatconv

        _floatconv.append(floatconv)
    return _floatconv[0]


def _pair(value: Sequence[int]) -> tuple[int, int]:
    return value if type(value) is tuple else (int(value[0]), int(value[1]))


def _four(value: Sequence[int]) -> tuple[int, int, int, int]:
    return value if type(value) is tuple else (int(value[0]), int(value[1]), int(value[2]), int(value[3]))


def in_place(shape: tuple[int, ...]) -> bool:
    """Whether a 1x1 conv (one group, stride 1, no pads) of an input of ``shape`` runs in place
    (`floatfold.pointwise`: the micro-kernel on the input as it lies) rather than as BLAS products:
    a small layer (at most `SMALL_COLUMNS` input values) whose planes are whole blocks of the
    micro-kernel. There the products are a few dozen multiply-adds an output, which the per-image
    BLAS calls and the separate bias pass cost more than (the digits CNN's conv2, 8 images of 8x8x16
    to 32 channels: 11.2 us the BLAS products alone, 7.5 the whole layer in place)."""
    n, c, h, w = shape
    return n * c * h * w <= SMALL_COLUMNS and h * w % _kernels().LANES == 0


def _in_place(x: Array, weight: Array, bias: Array, code: int, act: Array) -> Array:
    """`floatfold.pointwise` of ``x`` (float32, C order) with ``weight`` (C_out, C, 1, 1) and ``bias``
    as they are (float32 in C order: read on every call, so values changed in place are run)."""
    fc = _kernels()
    n, c, h, w = x.shape
    key = (c, h * w)
    toff = _offsets.get(key)
    if toff is None:
        if len(_offsets) > 256:
            _offsets.clear()  # (no iteration: another thread's run may be adding to it)
        toff = _offsets[key] = fc.floatfold.pointwise_offsets(c, h * w)
    if not (_plain(weight) and _plain(bias)):
        weight, bias = np.ascontiguousarray(weight, np.float32), np.ascontiguousarray(bias, np.float32)
    out = np.empty((n, weight.shape[0], h, w), np.float32)
    fc.floatfold.pointwise(x, weight.reshape(weight.shape[0], c), bias.reshape(-1), toff, out, code, act)
    return out


_offsets: dict[tuple[int, int], Array] = {}


def _small_conv(x: Array, weight: Array, attrs: Mapping[str, Any], group: int, kernel: tuple[int, int],
                out_hw: tuple[int, int]) -> Array:
    """`conv2d`'s products, (N, C_out, Ho·Wo), for a layer whose columns over the whole batch are small:
    one `im2col_batch` call (none for a 1x1 conv without pads) and one stacked BLAS product per group
    (NumPy's matmul runs the same product per image as `conv2d`'s loop: the same bits), instead of a
    few calls per image; the caller adds the bias."""
    n, c = x.shape[0], x.shape[1]
    (kh, kw), (ho, wo), (sh, sw), (dh, dw) = kernel, out_hw, attrs["strides"], attrs["dilations"]
    top, left = attrs["pads"][0], attrs["pads"][1]
    out_c, k = weight.shape[0], weight.shape[1]
    if (kh, kw) == (1, 1) and not any(attrs["pads"]):
        cols = (x if (sh, sw) == (1, 1) else np.ascontiguousarray(x[:, :, ::sh, ::sw])).reshape(n, c, ho * wo)
    else:
        from alls.runtime.kernels.floating import im2col_batch

        cols = np.empty((n, c * kh * kw, ho * wo), np.float32)
        im2col_batch(x, cols, kh, kw, sh, sw, dh, dw, top, left, ho, wo)
    out = np.empty((n, out_c, ho * wo), np.float32)
    og = out_c // group
    for g in range(group):
        np.matmul(weight[g * og:(g + 1) * og], cols[:, g * k:(g + 1) * k], out=out[:, g * og:(g + 1) * og])
    return out


def depthwise(x: Array, weight: Array, bias: Array, attrs: Mapping[str, Any], act: str = "") -> Array:
    """A depthwise conv (`is_depthwise`) as a sum over the kernel taps (`floatdw.depthwise`), then the
    activation ``act`` (a name of `floatdw.ACT_CODES`, applied as the outputs are written; "": none)."""
    from alls.runtime.kernels.floatdw import ACT_CODES, NONE, depthwise as kernel_dw

    if x.dtype != np.float32 or not x.flags.c_contiguous:
        x = np.ascontiguousarray(x, np.float32)
    h, w = x.shape[2], x.shape[3]
    kh, kw = weight.shape[2], weight.shape[3]
    (sh, sw), (dh, dw) = attrs["strides"], attrs["dilations"]
    top, left, bottom, right = attrs["pads"]
    ho = (h + top + bottom - (kh - 1) * dh - 1) // sh + 1
    wo = (w + left + right - (kw - 1) * dw - 1) // sw + 1
    if weight.dtype == np.float32 and weight.flags.c_contiguous:
        taps = weight.reshape(weight.shape[0], kh, kw)  # a view: (C, 1, KH, KW) as (C, KH, KW)
    else:
        taps = np.ascontiguousarray(weight[:, 0], np.float32)
    if bias.dtype != np.float32 or not bias.flags.c_contiguous:
        bias = np.ascontiguousarray(bias, np.float32)
    return kernel_dw(x, taps, bias, (sh, sw), (dh, dw), (top, left, bottom, right), (ho, wo),
                     ACT_CODES[act] if act else NONE)


def run(layer: Layer, xs: Sequence[np.ndarray], p: Params) -> np.ndarray:
    return conv2d(xs[0], p["weight"], p["bias"], layer.attrs, layer.attrs.get("group", 1))


def fusable(layer: Layer) -> tuple[int, float, float] | None:
    """The layer's activation as the conv kernels apply it as they write (its number and two
    constants, `alls.runtime.kernels.floatconv.EPILOGUES`), or None when it has none they fuse."""
    key = (layer.activation, layer.activation_params)
    found = _fusable.get(key, _UNKNOWN)
    if found is _UNKNOWN:
        from alls.runtime.kernels.floatconv import fused_activation

        found = _fusable[key] = fused_activation(layer.activation, dict(layer.activation_params))
    return found  # type: ignore[return-value]


_UNKNOWN = object()
_fusable: dict[tuple[object, ...], object] = {}  # by activation and its parameters: a few entries


def is_depthwise(x_shape: tuple[int, ...], w_shape: tuple[int, ...], group: int) -> bool:
    """Whether a conv of these shapes is depthwise: one input channel a group, one output a channel."""
    return group == x_shape[1] and w_shape[1] == 1 and w_shape[0] == x_shape[1]


def direct(x_shape: tuple[int, ...], w_shape: tuple[int, ...], attrs: Mapping[str, Any], group: int) -> bool:
    """Whether `conv2d` runs a (non-depthwise) conv of these shapes as the direct conv: one group, and
    not a 1x1 conv without pads. A 1x1 conv is a plain matrix product, which BLAS runs at 25-35
    GMAC/s on one core against the direct conv's 10-25; with the bias and the activation added in
    one pass after it (`floatconv.bias_activate`) it was the faster on each of the 46 1x1 shapes of
    CenterFace and YOLOv8n, by 1.07x to 10x (tests/bench/bench_floatconv.py, docs/performance.md)."""
    kh, kw = w_shape[2], w_shape[3]
    return group == 1 and ((kh, kw) != (1, 1) or any(attrs["pads"]))


def run_activated(layer: Layer, xs: Sequence[np.ndarray], p: Params) -> np.ndarray | None:
    """The float run with the layer's activation applied as the outputs are written (`conv2d`), or
    None for a depthwise conv or an activation `fusable` does not take (the executor applies it)."""
    fused = fusable(layer)
    if fused is None:
        return None
    group = layer.attrs.get("group", 1)
    return None if is_depthwise(xs[0].shape, p["weight"].shape, group) else \
        conv2d(xs[0], p["weight"], p["bias"], layer.attrs, group, fused)


def prepare(layer: Layer, p: Params) -> Callable[[list[Array]], Array] | None:
    """`Op.prepare`: the conv bound to its weights and geometry, its activation applied as it writes
    (None for a depthwise conv, an activation `fusable` does not take, or weights that are not
    float32 in C order, which `conv2d` copies on every run). The direct conv keeps its packed weights
    and plans (`floatconv.prepare`); a 1x1 conv of one group without pads or strides is its one BLAS
    product of `_small_conv` and `floatconv.bias_activate` while its columns are small; any other
    runs `conv2d` as it is."""
    weight, bias, attrs = p["weight"], p["bias"], layer.attrs
    fused = _LINEAR if layer.activation in (None, Activation.LINEAR) else fusable(layer)
    group = attrs.get("group", 1)
    if fused is None or not (_plain(weight) and _plain(bias) and bias.ndim == 1) or weight.ndim != 4 or \
            is_depthwise((0, weight.shape[1] * group), weight.shape, group):
        return None
    if direct((), weight.shape, attrs, group):
        run = _kernels().prepare(weight, bias, _pair(attrs["strides"]), _pair(attrs["dilations"]),
                                 _four(attrs["pads"]), fused)
        return lambda xs: run(xs[0])
    if group != 1 or tuple(attrs["strides"]) != (1, 1) or weight.shape[2:] != (1, 1):
        return lambda xs: conv2d(xs[0], weight, bias, attrs, group, fused)
    return _pointwise(weight, bias, attrs, fused)


def _pointwise(weight: Array, bias: Array, attrs: Mapping[str, Any], fused: tuple[int, float, float]
               ) -> Callable[[list[Array]], Array]:
    """A prepared 1x1 conv of one group, stride 1 and no pads: `_small_conv`'s one product."""
    from alls.runtime.kernels.floatconv import bias_activate

    matrix = weight.reshape(weight.shape[0], -1)  # a view: values changed in place are read
    code, act = fused[0], np.array(fused[1:], np.float32)

    def call(xs: list[Array]) -> Array:
        x = xs[0]
        if x.dtype != np.float32 or not x.flags.c_contiguous or x.ndim != 4:
            return conv2d(x, weight, bias, attrs, 1, fused)
        n, c, h, w = x.shape
        if n * c * h * w > SMALL_COLUMNS:
            return conv2d(x, weight, bias, attrs, 1, fused)
        if in_place(x.shape):
            return _in_place(x, weight, bias, code, act)
        out = np.empty((n, matrix.shape[0], h * w), np.float32)
        np.matmul(matrix, x.reshape(n, c, h * w), out=out)
        bias_activate(out, bias, code, act)
        return out.reshape(n, matrix.shape[0], h, w)

    return call


def _plain(a: object) -> bool:
    return isinstance(a, np.ndarray) and a.dtype == np.float32 and a.flags.c_contiguous


def geometry(layer: Layer) -> dict[str, tuple[int, ...]]:
    a = layer.attrs
    return {"strides": tuple(a["strides"]), "pads": tuple(a["pads"]), "dilations": tuple(a["dilations"])}


def pack(ConvWeights: type[ConvWeights], q: QLayer, layer: Layer) -> ConvWeights:
    weights, bits = q.weight_codes()
    return ConvWeights(weights, bits, layer.attrs.get("group", 1))


def _call(layer: Layer, q: QLayer, x: np.ndarray, zx: int, acc_only: bool, bias: nx.Bias | None = None
          ) -> np.ndarray:
    w = kernel_weights(q, layer, pack)
    if acc_only:
        return kernel("conv_acc")(x, w, bias, zero_point=zx, **geometry(layer))
    return kernel("conv")(x, w, q.bias, q.rq, zero_point=zx, **geometry(layer))


OPS = (replace(weighted_op("conv", run, _call, run_activated), prepare=prepare),)
