"""What the kinds that accumulate share (conv, dw, deconv, fc, batch_norm): the weights'
quantization per group (N2)-(N3), the bias (N10)-(N11), the requantization bounded by (N8),
and the integer run around each kind's kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from alls.graph import Layer
from alls.plan import Clipping, ClippingMode, LayerPlan
from alls.runtime import numerics as nx
from alls.runtime.ops.activation import clamp, finish, table, table_target
from alls.runtime.ops.base import Encoding, Encodings, Op, Params, QLayer, StatsByName

if TYPE_CHECKING:
    from alls.runtime.kernels import ConvWeights

__all__ = ["quantize_weights", "fan_in", "rebias", "quantize_weighted", "kernel_weights", "weighted_op"]

# pack(ConvWeights, q, layer): a layer's kernel weights, the class passed in so that the kernels
# (and Numba) load only when a layer first runs.
Pack = Callable[[type["ConvWeights"], QLayer, Layer], "ConvWeights"]


class Call(Protocol):
    """A weighted layer's kernel run: to requantized outputs, or (``acc_only``) to its accumulators with ``bias``."""

    def __call__(self, layer: Layer, q: QLayer, x: np.ndarray, zx: int, acc_only: bool,
                 bias: nx.Bias | None = None, /) -> np.ndarray: ...


def _out_channel_view(weight: np.ndarray, kind: str, group: int) -> np.ndarray:
    """The weights as (C_out, everything else), whatever the layer's layout."""
    if kind == "deconv":  # (C_in, C_out/g, kh, kw)
        ci, og = weight.shape[:2]
        w = weight.reshape(group, ci // group, og, -1).transpose(0, 2, 1, 3)
        rows: np.ndarray = w.reshape(group * og, -1)
        return rows
    return weight.reshape(weight.shape[0], -1)


def _mmse_threshold(w: np.ndarray, bits: int) -> float:
    """The clipping threshold that minimises the quantization MSE of ``w`` (a grid search)."""
    top = float(np.abs(w).max())
    if top == 0:
        return 0.0
    wmax = nx.weight_max(bits)
    best, best_err = top, math.inf
    for ratio in np.linspace(0.3, 1.0, 71):
        t = top * ratio
        s = t / wmax
        err = float(np.mean((np.clip(np.floor(w / s + 0.5), -wmax, wmax) * s - w) ** 2))
        if err < best_err:
            best, best_err = t, err
    return best


def _threshold(w: np.ndarray, bits: int, clip: Clipping | None) -> float:
    magnitude = np.abs(w)
    if clip is None or clip.mode is ClippingMode.DISABLED or (clip.mode is ClippingMode.MMSE_IF4B and bits != 4):
        return float(magnitude.max(initial=0.0))
    if clip.mode in (ClippingMode.MMSE, ClippingMode.MMSE_IF4B):
        return _mmse_threshold(w, bits)
    assert clip.values is not None, f"`{clip.mode}` clipping has its values (the checker asks for them)"
    if clip.mode is ClippingMode.MANUAL:
        return float(max(abs(clip.values[0]), abs(clip.values[1])))
    return float(np.percentile(magnitude, clip.values[1]))  # percentile: the upper percentile of |w|


def quantize_weights(weight: np.ndarray, kind: str, group: int, bits: int, groups: int,
                     clip: Clipping | None) -> tuple[np.ndarray, np.ndarray]:
    """Integer weights (N2) and the scale of every output channel (one per quantization group (N3))."""
    by_channel = _out_channel_view(weight, kind, group)
    channels = by_channel.shape[0]
    group_of = nx.channel_groups(channels, groups if channels % groups == 0 else 1)
    wmax = nx.weight_max(bits)
    scales = np.empty(channels, np.float64)
    for g in np.unique(group_of):
        t = _threshold(by_channel[group_of == g], bits, clip)
        scales[group_of == g] = t / wmax if t > 0 else 1.0
    if kind == "deconv":
        ci, og = weight.shape[:2]
        per = scales.reshape(group, og)[:, None, :].repeat(ci // group, axis=1).reshape(ci, og)
        per = per.reshape(ci, og, *([1] * (weight.ndim - 2)))
    else:
        per = scales.reshape(-1, *([1] * (weight.ndim - 1)))
    q = np.clip(np.floor(weight / per + 0.5), -wmax, wmax)
    return q.astype(np.int8 if bits <= 8 else np.int16), scales


def fan_in(layer: Layer, weights: np.ndarray) -> int:
    """K of (N8): C_in/group·KH·KW for a conv (and a deconv's conv equivalent), C_in for a dense layer."""
    if layer.kind == "deconv":
        return int((weights.shape[0] // layer.attrs.get("group", 1)) * weights.shape[2] * weights.shape[3])
    return int(np.prod(weights.shape[1:]))


def rebias(q: QLayer, layer: Layer, x: Encoding, bias: nx.Bias) -> None:
    """Give a weighted layer a new bias (and its current weight scales) and re-derive its
    requantization, whose bound (N8) grows with the bias; the clamp stays as it was."""
    acc_scale = x.scale * np.asarray(q.weight_scale, np.float64)
    old, target = q.rq, q.pre or q.out
    weights, weight_bits = q.weight_codes()
    bound = nx.value_bound(fan_in(layer, weights), x.bits, weight_bits, bias.max_abs())
    q.bias = bias
    q.rq = nx.requant(acc_scale / target.scale, bound, old.zero_point, old.bits, old.lo, old.hi)


def quantize_weighted(layer: Layer, lp: LayerPlan, stats: StatsByName, enc: Encodings, params: Params) -> QLayer:
    x = enc[layer.inputs[0]]
    out = enc[layer.name]
    if layer.kind == "batch_norm":
        weight, bias = params["scale"].reshape(-1, 1, 1, 1), params["shift"]
    else:
        weight, bias = params["weight"], params["bias"]
    group = layer.attrs.get("group", 1) if layer.kind != "batch_norm" else weight.shape[0]
    bits, bias_mode = lp.weight_bits, lp.bias_mode
    assert bits is not None and bias_mode is not None, "the plan gives a layer that accumulates both (the resolver)"
    q, w_scale = quantize_weights(weight, layer.kind, group, bits, lp.quantization_groups, lp.weights_clipping)
    acc_scale = x.scale * w_scale
    mantissa = nx.BIAS_MANTISSA_BITS[bias_mode]
    b = nx.quantize_bias(bias, acc_scale, mantissa)
    bound = nx.value_bound(fan_in(layer, q), x.bits, bits, b.max_abs())
    pre = table_target(layer, lp, stats, out)
    target = pre or out
    lo, hi = (0, nx.activation_max(target.bits)) if pre else clamp(layer, out)
    rq = nx.requant(acc_scale / target.scale, bound, target.zero_point, target.bits, lo, hi)
    lut = table(layer, pre, out, params) if pre else None
    lost = np.abs(b.error(bias, acc_scale))
    return QLayer(layer.name, layer.kind, out, pre, q, bits, w_scale, b, rq, lut,
                  info={"bias_error_max": float(lost.max(initial=0.0)), "bias_exponent": b.exponent})


def kernel_weights(q: QLayer, layer: Layer, pack: Pack) -> ConvWeights:
    """The kernel's packed weights (`ConvWeights`), made once per layer by ``pack(ConvWeights, q, layer)``."""
    cached = q.info.get("_kernel_weights")
    if cached is None:
        from alls.runtime.kernels import ConvWeights

        cached = pack(ConvWeights, q, layer)
        q.info["_kernel_weights"] = cached
    packed: ConvWeights = cached
    return packed


def weighted_op(kind: str, run: Callable[..., np.ndarray], call: Call,
                run_activated: Callable[..., np.ndarray | None] | None = None) -> Op:
    """An `Op` for a kind that accumulates: ``call(layer, q, x, zero_point, acc_only, bias)`` runs its
    kernel, to requantized outputs or (``acc_only``) to its accumulators with ``bias``;
    ``run_activated`` as `Op` says."""
    def run_int(layer: Layer, q: QLayer, xs: Sequence[np.ndarray], enc: Encodings) -> np.ndarray:
        return finish(q, call(layer, q, xs[0], enc[layer.inputs[0]].zero_point, False))

    def accumulate(layer: Layer, q: QLayer, x: np.ndarray, zero_point: int, bias: nx.Bias | None = None
                   ) -> np.ndarray:
        return call(layer, q, x, zero_point, True, bias)

    return Op(kind, run, quantize_weighted, run_int, accumulate=accumulate, run_activated=run_activated)
