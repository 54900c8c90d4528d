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

The factors also pass, channel by channel and exactly, through the layers
between P and its readers that commute with a positive per-channel scale
(`THROUGH`): average and max pooling, resize, a homogeneous activation, a
product with a tensor the factors do not reach or with a constant (a
squeeze-excite gate: x/s · g = (x · g)/s, the gate's own input being a pooled
copy of x whose first conv absorbs s), a sum of tensors that all carry the
factors (PP-OCR's x + x · gate), and a sum with a constant (the constant becomes
one value per channel, c_i / s_i). Anything else that reads the tensor (a
concat, a residual add from another writer, an output, a layer whose
activation is not positive-homogeneous) leaves it alone, and `survey` says
why. ReLU6, hard-swish, hard-sigmoid, sigmoid, tanh, SiLU are not
positive-homogeneous: relu6(z/s) = relu6(z)/s only where z never reaches
6·min(s, 1), and a per-channel scale would move their breakpoints to 6/s_i,
±3/s_i per channel, which one activation per layer cannot express; a writer
with one of them is never equalized (Meller et al. 2019 restrict the
factorization to ReLU, PReLU and linear layers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from alls.diagnostics import Diagnostic, Severity
from alls.graph import Graph, Layer, per_channel
from alls.plan import Activation, EqualizationTarget, Plan

__all__ = ["equalize", "Pair", "Skip", "pairs", "survey", "skipped_note", "HOMOGENEOUS", "THROUGH"]

HOMOGENEOUS = (None, Activation.LINEAR, Activation.RELU, Activation.LEAKY_RELU, Activation.PRELU)
WRITERS = ("conv", "dw", "deconv", "fc")
READERS = ("conv", "dw", "fc")
THROUGH = ("avgpool", "maxpool", "resize", "activation", "ew_add", "ew_sub", "ew_mult")
_MAX_FACTOR = 1e4

Weights = dict[str, np.ndarray]  # one layer's float parameters, as equalization rescales them


@dataclass(frozen=True)
class Pair:
    """One equalizable tensor: its writer, every layer with weights that reads it (directly or
    ``through`` layers that pass the factors channel by channel)."""

    writer: str
    readers: tuple[str, ...]
    through: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skip:
    """A writer whose tensor reaches layers with weights but cannot be equalized: ``layer`` stops it."""

    writer: str
    layer: str
    reason: str


def pairs(graph: Graph, plan: Plan | None = None) -> list[Pair]:
    """Every tensor that can be equalized (and, with a plan, whose layers all ask for it)."""
    return survey(graph, plan)[0]


def survey(graph: Graph, plan: Plan | None = None) -> tuple[list[Pair], list[Skip]]:
    """The tensors that can be equalized, and those read by layers with weights that cannot, with why.

    With a plan, only writers (and readers) it equalizes count, either way.
    """
    found, skipped = [], []
    for layer in graph:
        if layer.kind not in WRITERS or not layer.supported or not _candidate(graph, layer):
            continue
        if plan is not None and not plan[layer.name].equalization:
            continue
        result = _region(graph, layer)
        if isinstance(result, Skip):
            skipped.append(result)
        elif plan is None or all(plan[n].equalization for n in result.readers):
            found.append(result)
    return found, skipped


def skipped_note(graph: Graph, plan: Plan) -> list[Diagnostic]:
    """ALS525: the tensors the plan equalizes that equalization cannot reach, grouped by why."""
    reasons: dict[str, list[str]] = {}
    for skip in survey(graph, plan)[1]:
        where = "" if skip.layer == skip.writer else f" at `{graph[skip.layer].short_name}`"
        reasons.setdefault(skip.reason, []).append(f"`{graph[skip.writer].short_name}`{where}")
    if not reasons:
        return []
    count = sum(len(v) for v in reasons.values())
    parts = "; ".join(f"{', '.join(names[:8])}{' and more' if len(names) > 8 else ''} ({len(names)}): {why}"
                      for why, names in reasons.items())
    return [Diagnostic("ALS525", Severity.INFO, f"equalization left {count} tensor{'s' * (count != 1)} read by "
                       f"layers with weights as they were: {parts}", None, "",
                       "per-channel factors would change what those layers compute; `alls explain ALS525`")]


def _candidate(graph: Graph, writer: Layer) -> bool:
    """Does a layer with weights read the writer's tensor, directly or through `THROUGH` layers?"""
    seen, frontier = set(), [writer.name]
    while frontier:
        for c in graph.consumers(frontier.pop()):
            if c.kind in READERS:
                return True
            if c.kind in THROUGH and c.name not in seen:
                seen.add(c.name)
                frontier.append(c.name)
    return False


def _region(graph: Graph, writer: Layer) -> Pair | Skip:
    """The writer's readers and the layers between, or the first layer that stops the factors."""
    if writer.activation not in HOMOGENEOUS:
        return Skip(writer.name, writer.name, f"its activation, {writer.activation}, is not positive-homogeneous")
    scaled, readers, through, frontier = {writer.name}, [], [], [writer]
    while frontier:
        for c in graph.consumers(frontier.pop().name):
            if c.name in scaled or c.name in readers:
                continue
            if c.kind in READERS and len(c.inputs) == 1 and c.supported:
                readers.append(c.name)
                continue
            why = _stops(c, writer)
            if why:
                return Skip(writer.name, c.name, why)
            scaled.add(c.name)
            through.append(c.name)
            frontier.append(c)
    for name in through:
        inside = [i in scaled for i in graph[name].inputs]
        if graph[name].kind in ("ew_add", "ew_sub") and not all(inside):
            return Skip(writer.name, name, "it adds a tensor the factors do not reach (a residual from another writer)")
        if graph[name].kind == "ew_mult" and len(inside) > 1 and all(inside):
            return Skip(writer.name, name, "it multiplies the tensor by itself")
    return Pair(writer.name, tuple(readers), tuple(through))


def _stops(layer: Layer, writer: Layer) -> str:
    """Why per-channel factors cannot pass ``layer`` exactly ("" when they can)."""
    if layer.kind == "output_layer":
        return "it is a network output"
    if layer.kind == "concat":
        return "a concat joins it with tensors the factors do not reach"
    if not layer.supported or layer.kind not in THROUGH:
        return f"a {layer.kind} layer reads it and does not pass per-channel factors"
    if layer.activation not in HOMOGENEOUS:
        return f"{layer.activation} (after the tensor) is not positive-homogeneous"
    if layer.output_channels != writer.output_channels:
        return "it changes the channel count"
    const = layer.params.get("const")
    if layer.kind in ("ew_add", "ew_sub") and const is not None and not per_channel(
            np.asarray(const), _channels(writer), layer.output_shape):
        return "it adds a constant that is not one value per channel"
    return ""


def _channels(writer: Layer) -> int:
    """A writer's output channel count (a weighted layer's output has a channel axis)."""
    channels = writer.output_channels
    assert channels is not None, f"`{writer.name}` has no channel axis"
    return channels


def _out_ranges(layer: Layer, p: Weights) -> np.ndarray:
    """max |w| of every output channel of a writer."""
    w = p["weight"]
    if layer.kind == "deconv":
        g = layer.attrs.get("group", 1)
        ci, og = w.shape[:2]
        grouped: np.ndarray = np.abs(w.reshape(g, ci // g, og, -1)).max(axis=(1, 3)).reshape(-1)
        return grouped
    ranges: np.ndarray = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    return ranges


def _in_view(reader: Layer, p: Weights, channels: int) -> np.ndarray:
    """The reader's weights as (channels, -1): input channel i's weights in row i (a view or a copy)."""
    w = p["weight"]
    if reader.kind == "dw":
        return w.reshape(channels, -1)
    if reader.kind == "fc":  # after a flatten, channel i is a run of H·W columns
        runs: np.ndarray = w.reshape(w.shape[0], channels, -1).transpose(1, 0, 2).reshape(channels, -1)
        return runs
    group = reader.attrs.get("group", 1)
    og = w.shape[0] // group
    rows: np.ndarray = w.reshape(group, og, w.shape[1], -1).transpose(0, 2, 1, 3).reshape(channels, -1)
    return rows


def _scale_reader(reader: Layer, p: Weights, s: np.ndarray) -> None:
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


def _scale_writer(layer: Layer, p: Weights, s: np.ndarray) -> None:
    w = p["weight"]
    if layer.kind == "deconv":
        g = layer.attrs.get("group", 1)
        ci, og = w.shape[:2]
        per = s.reshape(g, 1, og, 1, 1)
        p["weight"] = (w.reshape(g, ci // g, og, *w.shape[2:]) / per).reshape(w.shape).astype(np.float32)
    else:
        p["weight"] = (w / s.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)
    p["bias"] = (p["bias"] / s).astype(np.float32)  # a PReLU slope commutes with a positive scale

def _scale_through(layer: Layer, p: Weights, s: np.ndarray) -> None:
    """A sum with a constant: the constant becomes one value per channel, divided by the factors."""
    if layer.kind in ("ew_add", "ew_sub") and "const" in p:
        const = np.asarray(p["const"], np.float32).reshape(-1)
        shape = (-1,) if len(layer.output_shape) == 2 else (-1, *[1] * (len(layer.output_shape) - 2))
        p["const"] = (np.broadcast_to(const, s.shape) / s).reshape(shape).astype(np.float32)


def equalize(graph: Graph, plan: Plan | None = None, target: EqualizationTarget | str = EqualizationTarget.WEIGHTS,
             activation_ranges: Mapping[str, np.ndarray] | None = None, rounds: int = 20,
             tolerance: float = 1e-3) -> tuple[dict[str, Weights], list[dict[str, Any]]]:
    """Equalized copies of the parameters of the layers it changes, and a report per tensor.

    ``activation_ranges`` ({writer name: per-channel max |x|}) is needed for
    ``target="activation"``; it is scaled along as the factors change.
    """
    params: dict[str, Weights] = {}
    by_activation = EqualizationTarget(target) is EqualizationTarget.ACTIVATION

    def p(name: str) -> Weights:
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
            channels = _channels(writer)
            if by_activation and pair.writer in ranges:
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
            for t in pair.through:
                _scale_through(graph[t], p(t), s)
            if pair.writer in ranges:
                ranges[pair.writer] = ranges[pair.writer] / s
            total[pair.writer] *= s
            largest = max(largest, float(np.abs(np.log(s)).max(initial=0.0)))
        if largest < tolerance:
            break
    report = [{"writer": pair.writer, "readers": list(pair.readers), "through": list(pair.through),
               "factor_min": float(total[pair.writer].min()), "factor_max": float(total[pair.writer].max()),
               "balance_before": before[pair.writer], "balance_after": _balance(graph, p, pair)} for pair in found]
    return params, report


def _balance(graph: Graph, p: Callable[[str], Weights], pair: Pair) -> float:
    """Σ_i (r1_i / R1)(r2_i / R2): the precision measure CLE maximises (1.0 is perfect)."""
    writer = graph[pair.writer]
    r1 = _out_ranges(writer, p(pair.writer))
    r2 = np.max([np.abs(_in_view(graph[r], p(r), _channels(writer))).max(axis=1) for r in pair.readers], axis=0)
    return float(np.mean((r1 / max(r1.max(), 1e-30)) * (r2 / max(r2.max(), 1e-30))))
