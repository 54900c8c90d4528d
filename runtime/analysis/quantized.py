"""What the analysis reads of a quantized model (`Quantized`), and the facts of one layer's weights and plan.

`alls.runtime.analysis.analyze` takes any object with this shape (`QuantizedModel` is one), so the
analysis depends on no session class; the three functions below read a layer's plan flags, its
weights' rounding error and the output channels whose weights all round to zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import numpy as np

from alls.graph import Graph, Layer
from alls.plan import Clipping, ClippingMode, Plan
from alls.runtime.exec.quantize import QLayer

__all__ = ["Quantized", "plan_flags", "weight_error", "zeroed_channels"]


class _Run(Protocol):
    """What a model's ``run`` returns: the outputs and the tapped layers, by name."""

    @property
    def outputs(self) -> dict[str, np.ndarray]: ...

    @property
    def taps(self) -> dict[str, np.ndarray]: ...


class _Report(Protocol):
    @property
    def calibration_images(self) -> int: ...


class Quantized(Protocol):
    """What the analysis reads of a quantized model (`QuantizedModel`): its graph, plan, quantized layers,
    parameters and report, its feeds and its three targets."""

    @property
    def graph(self) -> Graph: ...

    @property
    def plan(self) -> Plan: ...

    @property
    def layers(self) -> Mapping[str, QLayer]: ...

    @property
    def params(self) -> Mapping[str, Mapping[str, np.ndarray]]: ...

    @property
    def report(self) -> _Report: ...

    def feeds(self, x: Any, layout: str = ...) -> dict[str, np.ndarray]: ...

    def run(self, x: Any, target: str = ..., keep_native: Iterable[str] = ...,
            taps: Iterable[str] | str | None = ..., layout: str = ...) -> _Run: ...


def plan_flags(qmodel: Quantized, name: str) -> dict[str, bool]:
    """Which of the plan's changes apply to layer ``name``: clipping, equalization, bias correction, finetune."""
    lp = qmodel.plan[name]
    active: Callable[[Clipping | None], bool] = (
        lambda clip: clip is not None and clip.mode is not ClippingMode.DISABLED)
    return {"clipped": active(lp.activation_clipping) or lp.force_range_out is not None,
            "weights_clipped": active(lp.weights_clipping), "equalized": bool(lp.equalization),
            "bias_corrected": bool(lp.bias_correction), "finetuned": bool(lp.finetune)}


def weight_error(qmodel: Quantized, layer: Layer) -> float | None:
    """RMS of the weights' rounding error over RMS of the weights (conv, dw, fc)."""
    q = qmodel.layers[layer.name]
    weight = qmodel.params.get(layer.name, layer.params).get("weight")
    if layer.kind not in ("conv", "dw", "fc") or q.weights is None or weight is None:
        return None
    scale = q.weight_scale
    assert scale is not None  # quantized weights come with their scales
    restored = q.weights.astype(np.float64) * scale.reshape(-1, *([1] * (q.weights.ndim - 1)))
    rms = float(np.sqrt(np.mean(np.square(weight, dtype=np.float64))))
    return float(np.sqrt(np.mean((restored - weight) ** 2))) / rms if rms > 0 else None


def zeroed_channels(qmodel: Quantized, layer: Layer) -> tuple[int, int]:
    """(output channels whose nonzero float weights all round to integer 0, output channels): conv, dw, fc."""
    q = qmodel.layers[layer.name]
    weight = qmodel.params.get(layer.name, layer.params).get("weight")
    if layer.kind not in ("conv", "dw", "fc") or q.weights is None or weight is None or weight.shape != q.weights.shape:
        return 0, 0
    codes = q.weights.reshape(q.weights.shape[0], -1)
    floats = np.asarray(weight).reshape(weight.shape[0], -1)
    return int(np.sum(~codes.any(axis=1) & floats.any(axis=1))), codes.shape[0]
