"""Quantization: from a plan and calibration statistics to integer layers.

`quantize(graph, plan, stats, params)` chooses every tensor's encoding
(scale, zero point, bits: NUMERICS.md (N1)) from its calibrated range, the
script's clipping and forced ranges; quantizes the weights per quantization
group (N2)-(N3) with the script's weights clipping; encodes the biases in
the script's bias mode (N10)-(N11); and derives every requantization,
clamp and lookup table through `alls.runtime.numerics`, the only module
that derives multipliers. Each layer kind's quantization lives in its
module of `alls.runtime.ops`; this module chooses the encodings and calls
them in order.

Choices the scheme leaves open, written down here:
- a range always contains 0 (so 0.0 is exact, (N1)); a range narrower than
  1e-6 becomes [0, 1e-6] and the layer is reported (an output branch the
  calibration never activated, ALS502);
- `percentile` clipping narrows the calibrated range only, `percentile_force`
  takes the percentiles as they are, `manual` takes the values given;
- a table activation (sigmoid, tanh, ...) reads a 16-bit pre-activation,
  so the table has 65,536 entries (per-channel PReLU tables read an 8-bit
  one when the output is 8-bit: 256 entries per channel);
- a 16-bit tensor's range reaches `calibration.RANGE_MARGIN` beyond the
  calibrated one (docs/accuracy.md); clipping and forced ranges are taken as given;
- constants of elementwise layers are quantized on their own 16-bit scale;
- a standalone batch norm runs as a 1x1 depthwise conv.
"""

from __future__ import annotations

from collections.abc import Mapping

from alls.diagnostics import AllsError, Diagnostic, Severity
from alls.graph import Graph, Layer
from alls.plan import Clipping, ClippingMode, LayerPlan, Plan
from alls.runtime.exec.calibration import Statistics, TensorStats
from alls.runtime.ops.base import activation_range, with_margin
from alls.runtime.ops import OPS
from alls.runtime.ops.base import MIN_RANGE, Encoding, Params, QLayer
from alls.runtime.ops.weighted import fan_in, quantize_weights, rebias

__all__ = ["Encoding", "QLayer", "quantize", "quantize_weights", "check_supported", "fan_in", "rebias", "MIN_RANGE"]


# ------------------------------------------------------------------ ranges


def _clipped(stats: TensorStats, clip: Clipping | None) -> tuple[float, float]:
    lo, hi = stats.min, stats.max
    if clip is None or clip.values is None:
        return lo, hi
    a, b = clip.values
    if clip.mode is ClippingMode.MANUAL:
        return a, b
    p_lo, p_hi = stats.percentile(a), stats.percentile(b)
    if clip.mode is ClippingMode.PERCENTILE_FORCE:
        return p_lo, p_hi
    return max(lo, p_lo), min(hi, p_hi)


def _output_range(layer: Layer, lp: LayerPlan, stats: Statistics) -> tuple[float, float]:
    if lp.force_range_out is not None:
        return lp.force_range_out
    if lp.activation_clipping is not None and lp.activation_clipping.values is not None:
        return _clipped(stats[layer.name].output, lp.activation_clipping)
    s = stats[layer.name].output
    return with_margin(s.min, s.max, lp.output_bits, activation_range(layer))


def _keeps_encoding(layer: Layer) -> bool:
    op = OPS.get(layer.kind)
    return op is not None and op.keeps_encoding and bool(layer.inputs)


def encodings(graph: Graph, plan: Plan, stats: Statistics) -> dict[str, Encoding]:
    """The encoding of every layer's output tensor; a forced input range overrides its producer's."""
    out: dict[str, Encoding] = {}
    for layer in graph:
        lp = plan[layer.name]
        if _keeps_encoding(layer) and lp.force_range_out is None:
            source = out[layer.inputs[0]]
            if source.bits == lp.output_bits:
                out[layer.name] = source
                continue
        fixed = OPS[layer.kind].encoding if layer.kind in OPS else None
        if fixed is not None:
            out[layer.name] = fixed(lp)
            continue
        out[layer.name] = Encoding.from_range(*_output_range(layer, lp, stats), lp.output_bits)
    for layer in graph:
        lp = plan[layer.name]
        if lp.force_range_in is not None and lp.force_range_index < len(layer.inputs):
            producer = layer.inputs[lp.force_range_index]
            out[producer] = Encoding.from_range(*lp.force_range_in, out[producer].bits)
    for layer in graph:  # identity layers follow their (possibly forced) producer
        if _keeps_encoding(layer) and out[layer.name].bits == out[layer.inputs[0]].bits \
                and plan[layer.name].force_range_out is None:
            out[layer.name] = out[layer.inputs[0]]
    return out


def check_supported(graph: Graph) -> None:
    """ALS510 naming every layer without a kernel, before anything runs."""
    unsupported = [layer for layer in graph if not layer.supported or
                   (layer.kind not in OPS and layer.kind != "input_layer")]
    if unsupported:
        raise AllsError([Diagnostic("ALS510", Severity.ERROR, f"no integer kernel for op `{layer.op}` (layer "
                                    f"`{layer.name}`)", help="`alls layers MODEL` marks the unsupported layers; "
                                    "export the model without them") for layer in unsupported])


def quantize(graph: Graph, plan: Plan, stats: Statistics, params: Mapping[str, Params] | None = None) -> tuple[dict[str, QLayer], list[Diagnostic]]:
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
        layers[layer.name] = OPS[layer.kind].quantize(layer, lp, stats, enc, params.get(layer.name, layer.params))
    for output in graph.outputs:
        s = stats[output.name].output
        if s.max - s.min < MIN_RANGE * 100:
            warnings.append(Diagnostic(
                "ALS502", Severity.WARNING,
                f"output `{output.short_name}` has a near-zero range on the calibration set ([{s.min:g}, {s.max:g}]): "
                "this branch is not activated by the calibration set", None, "",
                "is the calibration set representative? it should activate every output branch"))
    return layers, warnings
