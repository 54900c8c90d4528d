"""Iterative bias correction (IBC; Finkelstein, Almog, Grobman 2019).

Quantization adds an error with a non-zero mean per channel, and it builds up
layer after layer. IBC walks the integer network in topological order over
the calibration images; before each layer it corrects, it measures the mean
of every channel of the layer's linear output (its accumulators, in real
units) on the integer path, with every earlier layer already corrected,
against the float network's mean on the same images, and moves the bias by
the difference:

    Δ_c = mean(S_acc,c · acc_c) − mean(y_c),     B_c ← B_c − Δ_c / S_acc,c

The new bias is encoded in the layer's bias format (NUMERICS.md (N10)-(N11)),
so a correction smaller than half a bias step is lost; the report says, per
layer, how much of the correction the format held and how many channels lost
theirs (the fix is `bias_mode=double_scale_initialization`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from alls.graph import Graph, Layer
from alls.plan import Plan
from alls.runtime import numerics as nx
from alls.runtime.calibration import Statistics
from alls.runtime.quantize import QLayer, rebias

__all__ = ["bias_correction"]


def _channel_means(acc: np.ndarray) -> np.ndarray:
    """The mean of every channel (the last axis) of accumulators, exactly, as float64."""
    flat = acc.reshape(-1, acc.shape[-1]).astype(np.int64)
    return flat.sum(axis=0).astype(np.float64) / flat.shape[0]


def bias_correction(graph: Graph, plan: Plan, layers: Mapping[str, QLayer], stats: Statistics,
                    feeds: Mapping[str, np.ndarray], params: Mapping[str, Mapping] | None = None) -> list[dict]:
    """Correct the biases of the layers the plan asks for, in place; return the report per layer.

    ``feeds`` are the calibration images (NCHW, normalized) whose float
    statistics ``stats`` holds.
    """
    from alls.runtime.emulator import accumulators, run_numeric

    params = params or {}
    report: list[dict] = []
    enc = {name: q.out for name, q in layers.items()}

    def before(layer: Layer, q: QLayer, xs) -> None:
        if q.bias is None or not plan[layer.name].bias_correction:
            return
        target = stats[layer.name].channel_mean
        if target is None:
            return
        x_enc = enc[layer.inputs[0]]
        acc_scale = x_enc.scale * np.asarray(q.weight_scale, np.float64)
        measured = (_channel_means(accumulators(layer, q, xs[0], x_enc.zero_point)) + q.bias.accumulator()) * acc_scale
        delta = measured - target
        old = q.bias
        wanted = old.accumulator() * acc_scale - delta
        new = nx.quantize_bias(wanted, acc_scale, old.mantissa_bits)
        moved = (new.accumulator() - old.accumulator()) * acc_scale
        residual = delta + moved  # the mean error left: measured + moved - target
        step = (2.0 ** new.exponent) * acc_scale
        lost = (np.abs(delta) >= 1e-12) & (np.abs(delta) < step / 2)
        rebias(q, layer, x_enc, new)
        before_error = float(np.mean(np.abs(delta)))
        after_error = float(np.mean(np.abs(residual)))
        report.append({
            "layer": layer.name, "channels": int(delta.size), "mean_error_before": before_error,
            "mean_error_after": after_error,
            "removed": 1.0 - after_error / before_error if before_error > 0 else 1.0,
            "channels_lost": int(lost.sum()), "bias_step": float(np.median(step)),
            "bias_mode": plan[layer.name].bias_mode,
        })

    run_numeric(graph, layers, feeds, params=params, before=before)
    return report
