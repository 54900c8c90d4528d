"""Advice per layer, from the "Bad Accuracy" rules of Hailo's quantization guide.

Each rule reads the `LayerFacts` the analysis measured for one layer and
returns an `Advice` (or None): a stable key, the reason with the numbers
that triggered it, and the script lines that would apply it. The keys:

- ``calibration_range``: at least ``BEYOND_SHARE`` of the tensor's values
  lie beyond the range the calibration gave its encoding (fewer are outliers
  that no calibration set covers), and their clamping makes at least
  ``SATURATION_SHARE`` of its error (everything quantized, at this layer):
  calibrate on more, or more representative, images, or force the range to
  what these images reach.
- ``clip_activations``: a few outliers make the range (the 0.01..99.99
  percentile range is at most ``CLIP_RATIO`` of the full range), and
  clipping them helps: with only this tensor quantized, clipping it at those
  percentiles raises no output's SNR by less than 0 dB and the worst
  output's by ``CLIP_GAIN_DB`` or more (the analysis tries this on its most
  harmful layers). Clip the activations at those percentiles.
- ``equalize_channels``: the channel ranges spread widely (the median
  channel's range is at most ``SPREAD_RATIO`` of the widest, 2 bits lost):
  equalize the tensor with its readers, or, where equalization cannot reach
  it or has not helped, add a batch norm after the layer in the model, or
  write the layer's output at 16 bits.
- ``bias_correction``: a layer with a bias whose error has a mean per
  channel (a systematic bias: at least ``BIAS_SHARE`` of the error's power,
  and ``BIAS_STEPS`` of a step on its worst channel): bias correction (IBC);
  if it is on already, finetune.
- ``sigmoid_output``: an output conv without activation whose values look
  like logits (at least ``LOGIT_SHARE`` of them below ``LOGIT_FLOOR``, where a
  sigmoid is nearly 0): put the sigmoid in the model.
- ``finetune_4bit``: 4-bit weights: finetune (QFT) and weights clipping.
  Where the per-tensor weight scale, set by the widest output channel (after
  batch norm is folded), rounds every weight of at least ``ZEROED_SHARE`` of
  the output channels to zero, those channels write only their bias whatever
  the input: no algorithm brings them back, so keep the layer at 8-bit
  weights.
- ``output_16bit``: an output written at 8 bits whose rounding (step²/12)
  is at least ``ROUNDING_SHARE`` of its error when it alone is quantized:
  write that output at 16 bits.
- ``split_output_branch``: a 1x1 conv that writes an output and whose
  channels span ranges of different sizes (the median channel's range at most
  ``SPREAD_RATIO`` of the widest): one output branch carries values of
  different dynamic ranges, as YOLO's boxes, objectness and classes in one
  conv. The guide: split it into one conv per kind of value in the model (as
  YOLOv8's box and class branches are), and write the output at 16 bits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alls.plan import Activation

__all__ = ["ADVICE", "Advice", "LayerFacts", "advise", "CLIP_RATIO", "CLIP_GAIN_DB", "SPREAD_RATIO", "BIAS_SHARE",
           "BIAS_STEPS", "LOGIT_SHARE", "LOGIT_FLOOR", "ROUNDING_SHARE", "PERCENTILES", "BEYOND_SHARE",
           "SATURATION_SHARE", "ZEROED_SHARE"]

ADVICE = {
    "calibration_range": "values beyond the calibrated range are clamped: calibrate on more images, or force the range",
    "clip_activations": "a few outliers make the range: clip the activations",
    "equalize_channels": "channel ranges spread widely: equalize them, add a batch norm, or write 16 bits",
    "bias_correction": "a systematic error per channel: bias correction (IBC), or finetune",
    "sigmoid_output": "an output of logits without its sigmoid: put the sigmoid in the model",
    "finetune_4bit": "4-bit weights: finetune (QFT) with weights clipping",
    "output_16bit": "an 8-bit output whose rounding dominates its error: write it at 16 bits",
    "split_output_branch": "one output conv carries values of different ranges (YOLO): split it, write 16 bits",
}

BEYOND_SHARE = 1e-4
SATURATION_SHARE = 0.25
CLIP_RATIO = 0.75
CLIP_GAIN_DB = 1.0
SPREAD_RATIO = 0.25
BIAS_SHARE = 0.25
BIAS_STEPS = 0.25
BIASED = ("conv", "dw", "deconv", "fc", "batch_norm")  # the layers whose bias correction can move
LOGIT_SHARE = 0.5
LOGIT_FLOOR = -3.9  # sigmoid(-3.9) = 0.0198
ROUNDING_SHARE = 0.5
PERCENTILES = (0.01, 99.99)
ZEROED_SHARE = 0.1


@dataclass(frozen=True)
class Advice:
    """One piece of advice for one layer; ``lines`` may be empty when the fix is outside the script."""

    key: str
    layer: str
    reason: str
    lines: tuple[str, ...]
    figures: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "layer": self.layer, "reason": self.reason, "lines": list(self.lines),
                "figures": self.figures}


@dataclass(frozen=True)
class LayerFacts:
    """What the analysis measured of one layer (float values are the fp_optimized graph's)."""

    name: str
    kind: str
    activation: Activation | None
    scale: float  # the output encoding
    zero_point: int
    bits: int
    weight_bits: int | None
    low: float  # the float values: min, max, and the PERCENTILES
    high: float
    p_low: float
    p_high: float
    channel_low: np.ndarray
    channel_high: np.ndarray
    mse: float  # everything quantized, at this layer
    mean_error: np.ndarray  # per channel
    logit_share: float  # share of the values below LOGIT_FLOOR
    output: str | None = None  # the output layer it feeds, if any
    output_noise: float = 0.0  # that output's error power when this layer alone is quantized
    weight_error: float | None = None  # RMS of the weights' quantization error / RMS of the weights
    readers: tuple[str, ...] = ()  # the layers that read it; equalizable: they can absorb its scales
    equalizable: bool = False
    plan: dict[str, bool] = field(default_factory=dict)  # clipped, equalized, bias_corrected, finetuned, ...
    clip_trial: dict[str, tuple[float, float]] | None = None  # output -> SNR (dB) with only this tensor
    # quantized, at its encoding and clipped at the PERCENTILES; None when not tried
    beyond: float = 0.0  # the share of its float values outside the range its encoding holds
    saturation: float = 0.0  # the mean square of their distance to that range: the clamp's error power
    calibration_images: int = 0
    kernel: tuple[int, ...] = ()  # a conv's kernel size
    zeroed_channels: int = 0  # output channels whose nonzero float weights all round to integer 0
    channels: int = 0  # output channels of its weights (conv, dw, fc)

    @property
    def short_name(self) -> str:
        return self.name.rsplit("/", 1)[-1]


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _span(lo: float, hi: float) -> float:
    """The width of the range an encoding of [lo, hi] covers (it always contains 0)."""
    return max(hi, 0.0) - min(lo, 0.0)


def _range(f: LayerFacts) -> Advice | None:
    if f.beyond < BEYOND_SHARE or f.mse <= 0:
        return None
    share = f.saturation / f.mse
    if share < SATURATION_SHARE:
        return None
    lo, hi = f.scale * -f.zero_point, f.scale * ((1 << f.bits) - 1 - f.zero_point)
    wanted = (min(f.low, lo), max(f.high, hi))
    calibrated = f" on {f.calibration_images} images" if f.calibration_images else ""
    reason = (f"{100 * f.beyond:.2g}% of its values on these images lie outside [{lo:.4g}, {hi:.4g}], the range "
              f"calibrated{calibrated} for its encoding; they reach [{f.low:.4g}, {f.high:.4g}] and their clamping "
              f"is {min(share, 1):.0%} of its error: calibrate on more, or more representative, images "
              f"(calibset_size), or force its range")
    line = f"quantization_param({f.short_name}, force_range_out=[{_outward(wanted[0])}, {_outward(wanted[1])}])"
    return Advice("calibration_range", f.name, reason, (line,), {"beyond": f.beyond, "saturation_share": share})


def _outward(value: float) -> str:
    """A range end with 3 significant digits, rounded away from zero so that the range still holds it."""
    if value == 0:
        return "0"
    digits = 2 - math.floor(math.log10(abs(value)))
    scaled = abs(value) * 10.0 ** digits
    return f"{math.copysign(math.ceil(scaled - 1e-9) / 10.0 ** digits, value):g}"


def _clip(f: LayerFacts) -> Advice | None:
    trial = f.clip_trial
    if f.plan.get("clipped") or not trial:
        return None
    full, bulk = _span(f.low, f.high), _span(f.p_low, f.p_high)
    if full <= 0 or bulk > CLIP_RATIO * full:
        return None
    gains = {o: clipped - now for o, (now, clipped) in trial.items()}
    worst = min(trial, key=lambda o: trial[o][0])
    if min(gains.values()) < 0 or gains[worst] < CLIP_GAIN_DB:
        return None
    lo, hi = PERCENTILES
    now, clipped = trial[worst]
    reason = (f"{hi - lo:.2f}% of its values lie in [{f.p_low:.4g}, {f.p_high:.4g}], {bulk / full:.0%} of its range "
              f"[{f.low:.4g}, {f.high:.4g}]; with only this tensor quantized, clipping it at percentiles {lo} and "
              f"{hi} (a {full / bulk:.1f}x finer {f.bits}-bit step) raises every output, {_short(worst)} from "
              f"{now:.2f} to {clipped:.2f} dB")
    line = (f"pre_quantization_optimization(activation_clipping, layers=[{f.short_name}], mode=percentile, "
            f"clipping_values=[{lo}, {hi}])")
    return Advice("clip_activations", f.name, reason, (line,), {"range_ratio": bulk / full, "gain_db": gains[worst]})


def _spread(f: LayerFacts) -> Advice | None:
    ranges = np.maximum(f.channel_high, 0.0) - np.minimum(f.channel_low, 0.0)
    live = ranges[ranges > 0]
    if live.size < 2:
        return None
    widest, median = float(live.max()), float(np.median(live))
    ratio = median / widest
    if ratio > SPREAD_RATIO:
        return None
    levels = (1 << f.bits) - 1
    reason = (f"its median channel spans {ratio:.1%} of the range of its widest (channel "
              f"{int(np.argmax(ranges))}), so it is written with about {math.log2(max(levels * ratio, 1)):.1f} "
              f"of the {f.bits} bits")
    dead = int((ranges == 0).sum())
    if dead:
        reason += f"; {dead} channel{'s are' if dead > 1 else ' is'} never active"
    if f.equalizable and not f.plan.get("equalized"):
        layers = ", ".join(_short(n) for n in (f.name, *f.readers))
        return Advice("equalize_channels", f.name, reason + ": equalize it with its readers",
                      (f"pre_quantization_optimization(equalization, layers=[{layers}], policy=enabled)",),
                      {"median_to_widest": ratio})
    why = ("equalization is on and the spread remains" if f.equalizable else
           f"equalization cannot rescale it (it is read by {', '.join(_short(n) for n in f.readers) or 'no layer'})")
    mode = "a16_w4_a16" if f.weight_bits == 4 else "a8_w8_a16"
    return Advice("equalize_channels", f.name, f"{reason}; {why}: add a batch norm after this layer in the model, "
                  "or write its output at 16 bits", (f"quantization_param({f.short_name}, precision_mode={mode})",),
                  {"median_to_widest": ratio})


def _bias(f: LayerFacts) -> Advice | None:
    if f.kind not in BIASED or f.mse <= 0 or f.mean_error.size == 0:
        return None
    share = float(np.mean(f.mean_error.astype(np.float64) ** 2)) / f.mse
    c = int(np.argmax(np.abs(f.mean_error)))
    mean = float(f.mean_error[c])
    if share < BIAS_SHARE or abs(mean) < BIAS_STEPS * f.scale:
        return None
    reason = (f"its error has a mean per channel that carries {min(share, 1):.0%} of its power (channel {c}: "
              f"{mean:+.3g}, {mean / f.scale:+.2f} steps)")
    if f.zero_point:
        reason += f"; its zero point is {f.zero_point} of {(1 << f.bits) - 1}"
    if not f.plan.get("bias_corrected"):
        line = "post_quantization_optimization(bias_correction, policy=enabled)"
    elif not f.plan.get("finetuned"):
        reason += "; bias correction is on already"
        line = "post_quantization_optimization(finetune, policy=enabled)"
    else:
        return None
    return Advice("bias_correction", f.name, reason, (line,), {"bias_share": share, "channel": c})


def _sigmoid(f: LayerFacts) -> Advice | None:
    if f.output is None or f.activation not in (None, Activation.LINEAR) or f.logit_share < LOGIT_SHARE:
        return None
    full = _span(f.low, f.high)
    taken = (LOGIT_FLOOR - min(f.low, 0.0)) / full if full > 0 else 0.0
    if taken <= 0:
        return None
    reason = (f"it feeds {_short(f.output)} with no activation, and {f.logit_share:.0%} of its values are below "
              f"{LOGIT_FLOOR} (where a sigmoid is under 0.02); they take {taken:.0%} of its range "
              f"[{f.low:.4g}, {f.high:.4g}]: with the sigmoid in the model the {f.bits} bits go to the values that "
              "matter (remove the sigmoid from the post-processing)")
    return Advice("sigmoid_output", f.name, reason, (f"change_output_activation({f.short_name}, sigmoid)",),
                  {"logit_share": f.logit_share, "range_taken": taken})


def _four_bit(f: LayerFacts) -> Advice | None:
    if f.weight_bits != 4:
        return None
    lines = []
    if not f.plan.get("finetuned"):
        lines.append("post_quantization_optimization(finetune, policy=enabled)")
    if not f.plan.get("weights_clipped"):
        lines.append(f"pre_quantization_optimization(weights_clipping, layers=[{f.short_name}], mode=mmse)")
    zeroed = f.channels > 0 and f.zeroed_channels >= ZEROED_SHARE * f.channels
    if zeroed:
        lines.append(f"quantization_param({f.short_name}, precision_mode=a8_w8)")
    if not lines:
        return None
    error = f": their rounding error is {f.weight_error:.1%} of their RMS" if f.weight_error is not None else ""
    reason = (f"its weights are 4-bit (15 levels per scale){error}; Hailo's guide: layers with 4-bit weights need "
              "QFT and weights clipping")
    if zeroed:
        reason += (f"; its one weight scale, set by its widest output channel, rounds every weight of "
                   f"{f.zeroed_channels} of its {f.channels} output channels to 0: they write only their bias "
                   "whatever the input, which no finetune or clipping restores: keep it at 8-bit weights")
    return Advice("finetune_4bit", f.name, reason, tuple(lines),
                  {"weight_error": f.weight_error, "zeroed_channels": f.zeroed_channels, "channels": f.channels})


def _output_16(f: LayerFacts) -> Advice | None:
    if f.output is None or f.bits != 8 or f.output_noise <= 0:
        return None
    share = (f.scale ** 2 / 12) / f.output_noise
    if share < ROUNDING_SHARE:
        return None
    reason = (f"it writes {_short(f.output)} at 8 bits with a step of {f.scale:.3g}; that rounding alone (step²/12) "
              f"is {min(share, 1):.0%} of the error at the output when this layer alone is quantized: 16 bits make "
              "the step 257x finer")
    return Advice("output_16bit", f.name, reason, (f"quantization_param({_short(f.output)}, precision_mode=a16_w16)",),
                  {"rounding_share": share})


def _mixed_branch(f: LayerFacts) -> Advice | None:
    if f.output is None or f.kind != "conv" or tuple(f.kernel) != (1, 1):
        return None
    ranges = np.maximum(f.channel_high, 0.0) - np.minimum(f.channel_low, 0.0)
    live = ranges[ranges > 0]
    if live.size < 2:
        return None
    widest = float(live.max())
    ratio = float(np.median(live)) / widest
    if ratio > SPREAD_RATIO:
        return None
    wide = int((ranges > SPREAD_RATIO * widest).sum())
    reason = (f"it is a 1x1 conv writing {_short(f.output)}, and its channels span ranges of different sizes: "
              f"{wide} of {ranges.size} reach more than {SPREAD_RATIO:.0%} of the widest (channel "
              f"{int(np.argmax(ranges))}), the median {ratio:.1%}; one output branch carries values of different "
              "dynamic ranges (YOLO's boxes, objectness and classes in one conv). Hailo's guide: split it into one "
              "conv per kind of value in the model (box and class branches, as YOLOv8's head is), and write the "
              "output at 16 bits")
    lines = () if f.bits == 16 else (f"quantization_param({_short(f.output)}, precision_mode=a16_w16)",)
    return Advice("split_output_branch", f.name, reason, lines, {"median_to_widest": ratio, "wide_channels": wide})


RULES: tuple[Callable[[LayerFacts], Advice | None], ...] = (_range, _clip, _spread, _bias, _sigmoid, _four_bit,
                                                         _output_16, _mixed_branch)
assert len(RULES) == len(ADVICE)


def advise(facts: LayerFacts) -> list[Advice]:
    """Every rule that fires on one layer, in the order of `ADVICE`."""
    return [a for a in (rule(facts) for rule in RULES) if a is not None]
