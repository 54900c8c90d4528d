"""Quantization: from a plan and calibration statistics to integer layers.

`quantize(graph, plan, stats, params)` chooses every tensor's encoding
(scale, zero point, bits: NUMERICS.md (N1)) from its calibrated range, the
script's clipping and forced ranges; quantizes the weights per quantization
group (N2)-(N3) with the script's weights clipping; encodes the biases in
the script's bias mode (N10)-(N11); and derives every requantization,
clamp and lookup table through `alls.runtime.numerics`, the only module
that derives multipliers.

Choices the scheme leaves open, written down here:
- a range always contains 0 (so 0.0 is exact, (N1)); a range narrower than
  1e-6 becomes [0, 1e-6] and the layer is reported (an output branch the
  calibration never activated, ALS502);
- `percentile` clipping narrows the calibrated range only, `percentile_force`
  takes the percentiles as they are, `manual` takes the values given;
- a table activation (sigmoid, tanh, ...) reads a 16-bit pre-activation,
  so the table has 65,536 entries (per-channel PReLU tables read an 8-bit
  one when the output is 8-bit, 256 entries per channel);
- constants of elementwise layers are quantized on their own 16-bit scale;
- a standalone batch norm runs as a 1x1 depthwise conv.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alls.diagnostics import AllsError, Diagnostic, Severity
from alls.graph import Graph, Layer
from alls.plan import Clipping, LayerPlan, Plan
from alls.runtime import numerics as nx
from alls.runtime.calibration import TABLE_ACTIVATIONS, Statistics, activation_range, with_margin
from alls.runtime.native import activation as float_activation

__all__ = ["Encoding", "QLayer", "quantize", "quantize_weights", "check_supported", "fan_in", "rebias", "MIN_RANGE"]

MIN_RANGE = 1e-6
CONST_BITS = 16
TABLE_BITS = 16
_IDENTITY_KINDS = ("maxpool", "format_conversion", "output_layer")


@dataclass(frozen=True)
class Encoding:
    """r = scale·(q − zero_point), q an unsigned ``bits``-bit integer (N1)."""

    scale: float
    zero_point: int
    bits: int

    @classmethod
    def from_range(cls, lo: float, hi: float, bits: int) -> Encoding:
        lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
        if hi - lo < MIN_RANGE:
            hi = lo + MIN_RANGE
        top = nx.activation_max(bits)
        scale = (hi - lo) / top
        zero_point = min(max(int(math.floor(-lo / scale + 0.5)), 0), top)
        return cls(scale, zero_point, bits)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.bits == 8 else np.uint16)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Float to integer at the network's edge: clamp(Z + rhu(x / S)) (N5)."""
        q = np.floor(np.asarray(x, np.float64) / self.scale + 0.5) + self.zero_point
        return np.clip(q, 0, nx.activation_max(self.bits)).astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return (self.scale * (np.asarray(q, np.float64) - self.zero_point)).astype(np.float32)

    def as_dict(self) -> dict:
        return {"scale": self.scale, "zero_point": self.zero_point, "bits": self.bits}


@dataclass(eq=False)
class QLayer:
    """One layer's integer form: its output encoding and the constants its kernel needs.

    ``rq`` is a `Requant` (or an `AddRequant`, or one `Requant` per concat
    input); ``pre`` is the encoding of the pre-activation of a table
    activation, whose ``table`` maps it to ``out``.
    """

    name: str
    kind: str
    out: Encoding
    pre: Encoding | None = None
    weights: np.ndarray | None = None
    weight_bits: int | None = None
    weight_scale: np.ndarray | None = None
    bias: nx.Bias | None = None
    rq: Any = None
    table: np.ndarray | None = None
    const: np.ndarray | None = None
    const_encoding: Encoding | None = None
    info: dict = field(default_factory=dict)


# ------------------------------------------------------------------ ranges


def _clipped(stats, clip: Clipping | None) -> tuple[float, float]:
    lo, hi = stats.min, stats.max
    if clip is None or clip.values is None:
        return lo, hi
    a, b = clip.values
    if clip.mode == "manual":
        return a, b
    p_lo, p_hi = stats.percentile(a), stats.percentile(b)
    if clip.mode == "percentile_force":
        return p_lo, p_hi
    return max(lo, p_lo), min(hi, p_hi)


def _output_range(layer: Layer, lp: LayerPlan, stats: Statistics) -> tuple[float, float]:
    if lp.force_range_out is not None:
        return lp.force_range_out
    if lp.activation_clipping is not None and lp.activation_clipping.values is not None:
        return _clipped(stats[layer.name].output, lp.activation_clipping)
    s = stats[layer.name].output
    return with_margin(s.min, s.max, lp.output_bits, activation_range(layer))


def encodings(graph: Graph, plan: Plan, stats: Statistics) -> dict[str, Encoding]:
    """The encoding of every layer's output tensor; a forced input range overrides its producer's."""
    out: dict[str, Encoding] = {}
    for layer in graph:
        lp = plan[layer.name]
        if layer.kind in _IDENTITY_KINDS and layer.inputs and lp.force_range_out is None:
            source = out[layer.inputs[0]]
            if source.bits == lp.output_bits:
                out[layer.name] = source
                continue
        if layer.kind == "softmax":
            out[layer.name] = Encoding(1.0 / nx.activation_max(lp.output_bits), 0, lp.output_bits)
            continue
        out[layer.name] = Encoding.from_range(*_output_range(layer, lp, stats), lp.output_bits)
    for layer in graph:
        lp = plan[layer.name]
        if lp.force_range_in is not None and lp.force_range_index < len(layer.inputs):
            producer = layer.inputs[lp.force_range_index]
            out[producer] = Encoding.from_range(*lp.force_range_in, out[producer].bits)
    for layer in graph:  # identity layers follow their (possibly forced) producer
        if layer.kind in _IDENTITY_KINDS and layer.inputs and out[layer.name].bits == out[layer.inputs[0]].bits \
                and plan[layer.name].force_range_out is None:
            out[layer.name] = out[layer.inputs[0]]
    return out


# ----------------------------------------------------------------- weights


def _out_channel_view(weight: np.ndarray, kind: str, group: int) -> np.ndarray:
    """The weights as (C_out, everything else), whatever the layer's layout."""
    if kind == "deconv":  # (C_in, C_out/g, kh, kw)
        ci, og = weight.shape[:2]
        w = weight.reshape(group, ci // group, og, -1).transpose(0, 2, 1, 3)
        return w.reshape(group * og, -1)
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
    if clip is None or clip.mode == "disabled" or (clip.mode == "mmse_if4b" and bits != 4):
        return float(magnitude.max(initial=0.0))
    if clip.mode in ("mmse", "mmse_if4b"):
        return _mmse_threshold(w, bits)
    if clip.mode == "manual":
        return max(abs(clip.values[0]), abs(clip.values[1]))
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


# ------------------------------------------------------------------ layers



def _target(layer: Layer, lp: LayerPlan, stats: Statistics, out: Encoding) -> Encoding | None:
    """The pre-activation encoding of a table activation, or None when the activation is a clamp."""
    if layer.activation not in TABLE_ACTIVATIONS:
        return None
    before = stats[layer.name].before
    bits = 8 if layer.activation == "prelu" and out.bits == 8 else TABLE_BITS  # per-channel tables: 256 or 2^16 each
    return Encoding.from_range(*with_margin(before.min, before.max, bits), bits)


def _clamp(layer: Layer, enc: Encoding) -> tuple[int, int]:
    name = layer.activation if layer.activation not in TABLE_ACTIVATIONS else None
    return nx.activation_bounds(name, enc.bits, enc.scale, enc.zero_point, dict(layer.activation_params))


def _table(layer: Layer, pre: Encoding, out: Encoding, params) -> np.ndarray:
    """(N20) from the layer's own float activation (the one the native target runs)."""
    def fn(r, channel=None):
        x = np.asarray(r, np.float32)
        if layer.activation == "prelu":
            slope = params["prelu_slope"]
            s = float(slope[channel] if slope.size > 1 else slope[0])
            return np.where(x >= 0, x, x * s)
        return float_activation(layer, x, params).astype(np.float64)

    if layer.activation == "prelu" and params["prelu_slope"].size > 1:
        rows = [nx.build_lut(lambda r, c=c: fn(r, c), pre.bits, pre.scale, pre.zero_point, out.bits, out.scale,
                             out.zero_point) for c in range(params["prelu_slope"].size)]
        return np.stack(rows)
    return nx.build_lut(fn, pre.bits, pre.scale, pre.zero_point, out.bits, out.scale, out.zero_point)


def fan_in(layer: Layer, weights: np.ndarray) -> int:
    """K of (N8): C_in/group·KH·KW for a conv (and a deconv's conv equivalent), C_in for a dense layer."""
    if layer.kind == "deconv":
        return (weights.shape[0] // layer.attrs.get("group", 1)) * weights.shape[2] * weights.shape[3]
    return int(np.prod(weights.shape[1:]))


def rebias(q: QLayer, layer: Layer, x: Encoding, bias: nx.Bias) -> None:
    """Give a weighted layer a new bias (and its current weight scales) and re-derive its
    requantization, whose bound (N8) grows with the bias; the clamp stays as it was."""
    acc_scale = x.scale * np.asarray(q.weight_scale, np.float64)
    old, target = q.rq, q.pre or q.out
    bound = nx.value_bound(fan_in(layer, q.weights), x.bits, q.weight_bits, bias.max_abs())
    q.bias = bias
    q.rq = nx.requant(acc_scale / target.scale, bound, old.zero_point, old.bits, old.lo, old.hi)


def _weighted(layer: Layer, lp: LayerPlan, stats, enc, params) -> QLayer:
    x = enc[layer.inputs[0]]
    out = enc[layer.name]
    if layer.kind == "batch_norm":
        weight, bias = params["scale"].reshape(-1, 1, 1, 1), params["shift"]
    else:
        weight, bias = params["weight"], params["bias"]
    group = layer.attrs.get("group", 1) if layer.kind != "batch_norm" else weight.shape[0]
    bits = lp.weight_bits or (16 if x.bits == 16 else 8)  # a standalone batch norm follows its input
    q, w_scale = quantize_weights(weight, layer.kind, group, bits, lp.quantization_groups, lp.weights_clipping)
    acc_scale = x.scale * w_scale
    mantissa = nx.BIAS_MANTISSA_BITS[lp.bias_mode or "double_scale_initialization"]
    b = nx.quantize_bias(bias, acc_scale, mantissa)
    bound = nx.value_bound(fan_in(layer, q), x.bits, bits, b.max_abs())
    pre = _target(layer, lp, stats, out)
    target = pre or out
    lo, hi = (0, nx.activation_max(target.bits)) if pre else _clamp(layer, out)
    rq = nx.requant(acc_scale / target.scale, bound, target.zero_point, target.bits, lo, hi)
    table = _table(layer, pre, out, params) if pre else None
    lost = np.abs(b.error(bias, acc_scale))
    return QLayer(layer.name, layer.kind, out, pre, q, bits, w_scale, b, rq, table,
                  info={"bias_error_max": float(lost.max(initial=0.0)), "bias_exponent": b.exponent})


def _elementwise(layer: Layer, lp: LayerPlan, stats, enc, params) -> QLayer:
    out = enc[layer.name]
    pre = _target(layer, lp, stats, out)
    target = pre or out
    lo, hi = (0, nx.activation_max(target.bits)) if pre else _clamp(layer, out)
    a = enc[layer.inputs[0]]
    const, const_enc = None, None
    if len(layer.inputs) == 2:
        b = enc[layer.inputs[1]]
    else:
        c = np.asarray(params["const"], np.float32)
        const_enc = Encoding.from_range(float(c.min()), float(c.max()), CONST_BITS)
        const, b = const_enc.quantize(c), const_enc
    if layer.kind == "ew_mult":
        rq = nx.mul_requant(a.scale, b.scale, target.scale, target.zero_point, a.bits, b.bits, target.bits, lo, hi)
    else:
        subtract = layer.kind == "ew_sub"
        first, second = (b, a) if layer.attrs.get("const_first") and const is not None else (a, b)
        rq = nx.add_requant(first.scale, second.scale, target.scale, target.zero_point, first.bits, second.bits,
                            target.bits, lo, hi, subtract=subtract)
    table = _table(layer, pre, out, params) if pre else None
    return QLayer(layer.name, layer.kind, out, pre, rq=rq, table=table, const=const, const_encoding=const_enc)


def _rescale(source: Encoding, out: Encoding, lo: int | None = None, hi: int | None = None) -> nx.Requant:
    """(N25): a tensor moved to another encoding."""
    return nx.requant([source.scale / out.scale], nx.activation_max(source.bits), out.zero_point, out.bits, lo, hi)


def _concat(layer, lp, stats, enc, params) -> QLayer:
    out = enc[layer.name]
    return QLayer(layer.name, layer.kind, out, rq=[_rescale(enc[i], out) for i in layer.inputs])


def _pool(layer, lp, stats, enc, params) -> QLayer:
    x, out = enc[layer.inputs[0]], enc[layer.name]
    lo, hi = _clamp(layer, out)
    if layer.kind == "maxpool":
        rq = None if x == out and (lo, hi) == (0, nx.activation_max(out.bits)) else _rescale(x, out, lo, hi)
        return QLayer(layer.name, layer.kind, out, rq=rq)
    if layer.attrs.get("global"):
        count = int(np.prod(layer.input_shapes[0][2:]))
        rq = nx.requant([x.scale / (out.scale * count)], count * nx.activation_max(x.bits), out.zero_point,
                        out.bits, lo, hi)
    else:
        kh, kw = layer.attrs["kernel_shape"]
        rq = nx.avgpool_requant(kh * kw, x.scale, out.scale, out.zero_point, x.bits, out.bits, lo, hi)
    return QLayer(layer.name, layer.kind, out, rq=rq)


def _resize(layer, lp, stats, enc, params) -> QLayer:
    x, out = enc[layer.inputs[0]], enc[layer.name]
    if layer.attrs.get("mode") == "nearest":
        return QLayer(layer.name, layer.kind, out, rq=None if x == out else _rescale(x, out))
    return QLayer(layer.name, layer.kind, out, rq=nx.bilinear_requant(x.scale, out.scale, out.zero_point, x.bits,
                                                                      out.bits))


def _activation_layer(layer, lp, stats, enc, params) -> QLayer:
    x, out = enc[layer.inputs[0]], enc[layer.name]
    if layer.activation in TABLE_ACTIVATIONS:
        return QLayer(layer.name, layer.kind, out, pre=x, table=_table(layer, x, out, params))
    lo, hi = _clamp(layer, out)
    return QLayer(layer.name, layer.kind, out, rq=_rescale(x, out, lo, hi))


def _passthrough(layer, lp, stats, enc, params) -> QLayer:
    x, out = enc[layer.inputs[0]], enc[layer.name]
    return QLayer(layer.name, layer.kind, out, rq=None if x == out else _rescale(x, out))


def _softmax(layer, lp, stats, enc, params) -> QLayer:
    x = enc[layer.inputs[0]]
    # exp(-S·d) for d = q_max - q in 0..2^a - 1, in Q15 (quantization time: float allowed)
    d = np.arange(nx.activation_max(x.bits) + 1, dtype=np.float64)
    table = np.floor(np.exp(-x.scale * d) * (1 << 15) + 0.5).astype(np.int64)
    return QLayer(layer.name, layer.kind, enc[layer.name], table=table)


_QUANTIZERS = {
    "conv": _weighted, "dw": _weighted, "deconv": _weighted, "fc": _weighted, "batch_norm": _weighted,
    "ew_add": _elementwise, "ew_sub": _elementwise, "ew_mult": _elementwise,
    "concat": _concat, "maxpool": _pool, "avgpool": _pool, "resize": _resize,
    "activation": _activation_layer, "format_conversion": _passthrough, "output_layer": _passthrough,
    "softmax": _softmax,
}


def check_supported(graph: Graph) -> None:
    """ALS510 naming every layer without a kernel, before anything runs."""
    unsupported = [layer for layer in graph if not layer.supported or
                   (layer.kind not in _QUANTIZERS and layer.kind != "input_layer")]
    if unsupported:
        raise AllsError([Diagnostic("ALS510", Severity.ERROR, f"no integer kernel for op `{layer.op}` (layer "
                                    f"`{layer.name}`)", help="`alls layers MODEL` marks the unsupported layers; "
                                    "export the model without them") for layer in unsupported])


def quantize(graph: Graph, plan: Plan, stats: Statistics, params: dict | None = None) -> tuple[dict[str, QLayer], list[Diagnostic]]:
    """Every layer's `QLayer`, and the warnings found (ALS502: an output never activated)."""
    params = params or {}
    check_supported(graph)
    enc = encodings(graph, plan, stats)
    layers: dict[str, QLayer] = {}
    warnings: list[Diagnostic] = []
    for layer in graph:
        lp = plan[layer.name]
        if layer.kind == "input_layer":
            layers[layer.name] = QLayer(layer.name, layer.kind, enc[layer.name])
            continue
        layers[layer.name] = _QUANTIZERS[layer.kind](layer, lp, stats, enc, params.get(layer.name, layer.params))
    for output in graph.outputs:
        s = stats[output.name].output
        if s.max - s.min < MIN_RANGE * 100:
            warnings.append(Diagnostic(
                "ALS502", Severity.WARNING,
                f"output `{output.short_name}` has a near-zero range on the calibration set ([{s.min:g}, {s.max:g}]): "
                "this branch is not activated by the calibration set", None, "",
                "is the calibration set representative? it should activate every output branch"))
    return layers, warnings
