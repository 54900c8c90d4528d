"""Cross-layer equalization: an exact float transform that balances channel ranges.

For a tensor written by a layer P (conv, depthwise, deconv or dense, with an
activation that commutes with a positive scale: none, ReLU, leaky ReLU, PReLU)
and read only by layers with weights C_1..C_k, output channel i of P is
divided by s_i and input channel i of every C_j is multiplied by s_i. The
network computes the same function (f(x/s) = f(x)/s for those activations),
but the ranges move. With r1_i the range of P's output channel i and r2_i the
largest range of input channel i over the readers (Meller et al. 2019; Nagel
et al. 2019),

    s_i = sqrt(r1_i / r2_i)      so both become sqrt(r1_i · r2_i)

``target="weights"`` takes r1 from P's weights; ``target="activation"``
from the calibrated range of the tensor itself (each range relative to its
tensor's largest). A tensor read by several layers shares one factor; a
tensor read by anything else (an add, a concat, an output) is left alone, so
residual and concat structure is respected. A depthwise layer is both a
reader (it absorbs s_i into its channel i) and a writer, so conv -> dw -> conv
triples equalize through their two tensors. Passes repeat until the factors
settle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alls.graph import Graph, Layer
from alls.plan import Plan

__all__ = ["equalize", "Pair", "pairs", "HOMOGENEOUS"]

HOMOGENEOUS = (None, "linear", "relu", "leaky_relu", "prelu")
WRITERS = ("conv", "dw", "deconv", "fc")
READERS = ("conv", "dw", "fc")
_MAX_FACTOR = 1e4


@dataclass(frozen=True)
class Pair:
    """One equalizable tensor: its writer and every layer that reads it."""

    writer: str
    readers: tuple[str, ...]


def pairs(graph: Graph, plan: Plan | None = None) -> list[Pair]:
    """Every tensor that can be equalized (and, with a plan, whose layers all ask for it)."""
    out = []
    for layer in graph:
        if layer.kind not in WRITERS or layer.activation not in HOMOGENEOUS or not layer.supported:
            continue
        readers = graph.consumers(layer.name)
        if not readers or any(r.kind not in READERS or not r.supported or len(r.inputs) != 1 for r in readers):
            continue
        if plan is not None and not all(plan[n].equalization for n in (layer.name, *(r.name for r in readers))):
            continue
        out.append(Pair(layer.name, tuple(r.name for r in readers)))
    return out


def _out_ranges(layer: Layer, p) -> np.ndarray:
    """max |w| of every output channel of a writer."""
    w = p["weight"]
    if layer.kind == "deconv":
        g = layer.attrs.get("group", 1)
        ci, og = w.shape[:2]
        return np.abs(w.reshape(g, ci // g, og, -1)).max(axis=(1, 3)).reshape(-1)
    return np.abs(w.reshape(w.shape[0], -1)).max(axis=1)


def _in_view(reader: Layer, p, channels: int) -> np.ndarray:
    """The reader's weights as (channels, -1): input channel i's weights in row i (a view or a copy)."""
    w = p["weight"]
    if reader.kind == "dw":
        return w.reshape(channels, -1)
    if reader.kind == "fc":  # after a flatten, channel i is a run of H·W columns
        return w.reshape(w.shape[0], channels, -1).transpose(1, 0, 2).reshape(channels, -1)
    group = reader.attrs.get("group", 1)
    og = w.shape[0] // group
    return w.reshape(group, og, w.shape[1], -1).transpose(0, 2, 1, 3).reshape(channels, -1)


def _scale_reader(reader: Layer, p, s: np.ndarray) -> None:
    w = p["weight"]
    channels = s.size
    if reader.kind == "dw":
        p["weight"] = (w * s.reshape(-1, 1, 1, 1)).astype(np.float32)
    elif reader.kind == "fc":
        per = np.repeat(s, w.shape[1] // channels)
        p["weight"] = (w * per.reshape(1, -1)).astype(np.float32)
    else:
        group = reader.attrs.get("group", 1)
        og, cg = w.shape[0] // group, w.shape[1]
        per = s.reshape(group, 1, cg, 1, 1)
        p["weight"] = (w.reshape(group, og, cg, *w.shape[2:]) * per).reshape(w.shape).astype(np.float32)


def _scale_writer(layer: Layer, p, s: np.ndarray) -> None:
    w = p["weight"]
    if layer.kind == "deconv":
        g = layer.attrs.get("group", 1)
        ci, og = w.shape[:2]
        per = s.reshape(g, 1, og, 1, 1)
        p["weight"] = (w.reshape(g, ci // g, og, *w.shape[2:]) / per).reshape(w.shape).astype(np.float32)
    else:
        p["weight"] = (w / s.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)
    p["bias"] = (p["bias"] / s).astype(np.float32)  # a PReLU slope commutes with a positive scale

def equalize(graph: Graph, plan: Plan | None = None, target: str = "weights", activation_ranges=None,
             rounds: int = 20, tolerance: float = 1e-3) -> tuple[dict[str, dict], list[dict]]:
    """Equalized copies of the parameters of the layers it changes, and a report per tensor.

    ``activation_ranges`` ({writer name: per-channel max |x|}) is needed for
    ``target="activation"``; it is scaled along as the factors change.
    """
    params: dict[str, dict] = {}

    def p(name: str) -> dict:
        if name not in params:
            params[name] = {k: np.array(v, dtype=np.float32) for k, v in graph[name].params.items()}
        return params[name]

    found = pairs(graph, plan)
    ranges = {k: np.asarray(v, np.float64).copy() for k, v in (activation_ranges or {}).items()}
    total = {pair.writer: np.ones(graph[pair.writer].output_channels or 1) for pair in found}
    before = {pair.writer: _balance(graph, p, pair) for pair in found}
    for _ in range(rounds):
        largest = 0.0
        for pair in found:
            writer = graph[pair.writer]
            channels = writer.output_channels
            if target == "activation" and pair.writer in ranges:
                r1 = ranges[pair.writer] / max(ranges[pair.writer].max(), 1e-30)
            else:
                r1 = _out_ranges(writer, p(pair.writer))
                r1 = r1 / max(r1.max(), 1e-30)
            r2 = np.max([np.abs(_in_view(graph[r], p(r), channels)).max(axis=1) for r in pair.readers], axis=0)
            r2 = r2 / max(r2.max(), 1e-30)
            with np.errstate(divide="ignore", invalid="ignore"):
                s = np.sqrt(r1 / r2)
            s = np.where(np.isfinite(s) & (s > 0), np.clip(s, 1 / _MAX_FACTOR, _MAX_FACTOR), 1.0)
            _scale_writer(writer, p(pair.writer), s)
            for r in pair.readers:
                _scale_reader(graph[r], p(r), s)
            if pair.writer in ranges:
                ranges[pair.writer] = ranges[pair.writer] / s
            total[pair.writer] *= s
            largest = max(largest, float(np.abs(np.log(s)).max(initial=0.0)))
        if largest < tolerance:
            break
    report = [{"writer": pair.writer, "readers": list(pair.readers),
               "factor_min": float(total[pair.writer].min()), "factor_max": float(total[pair.writer].max()),
               "balance_before": before[pair.writer], "balance_after": _balance(graph, p, pair)} for pair in found]
    return params, report


def _balance(graph: Graph, p, pair: Pair) -> float:
    """Σ_i (r1_i / R1)(r2_i / R2): the precision measure CLE maximises (1.0 is perfect)."""
    writer = graph[pair.writer]
    r1 = _out_ranges(writer, p(pair.writer))
    r2 = np.max([np.abs(_in_view(graph[r], p(r), writer.output_channels)).max(axis=1) for r in pair.readers], axis=0)
    return float(np.mean((r1 / max(r1.max(), 1e-30)) * (r2 / max(r2.max(), 1e-30))))
