"""Partly quantized runs: chosen layers on their integer kernels, every other layer in float.

Tensors travel between layers in float. A layer run in integers reads its
inputs quantized with their producers' encodings (as the integer graph
stores them), runs its kernel with its own constants, and hands on its
output dequantized; a float layer runs as the `fp_optimized` target does
(the float graph the integer constants were derived from), and its output
stays float. So:

- no layer in integers is the float graph: the outputs equal native;
- every layer in integers is the integer graph: the outputs equal the
  `numeric` target (dequantizing and quantizing again with the same
  encoding gives back the same codes);
- one layer in integers is Hailo's "only this layer quantized": its
  weights, bias, requantization and output encoding, and the quantization
  of the tensors it reads (a tensor's rounding therefore counts for its
  producer and for each of its readers).

Unlike ``QuantizedModel.run(keep_native=...)``, which writes a float layer's
output at its integer encoding, a float layer here keeps its output in
float for the float layers and the outputs that read it. Output layers
always pass their input on unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from typing import Protocol

import numpy as np

from alls.graph import Graph, Layer
from alls.runtime.exec.lifetimes import Readers
from alls.runtime.exec.emulator import run_numeric
from alls.runtime.exec.native import run_float, run_layer
from alls.runtime.exec.quantize import QLayer
from alls.runtime.ops.base import Params

__all__ = ["float_taps", "integer_layer", "run_partial", "isolated_outputs", "outputs_with", "compute_layers"]

Tensors = dict[str, np.ndarray]


class QuantizedNetwork(Protocol):
    """What a partly quantized run reads of a quantized model (`QuantizedModel`): its float graph,
    the float parameters its integer constants were derived from, and its integer layers."""

    @property
    def graph(self) -> Graph: ...

    @property
    def params(self) -> Mapping[str, Params]: ...

    @property
    def layers(self) -> Mapping[str, QLayer]: ...


def compute_layers(graph: Graph) -> list[Layer]:
    """The layers that can be quantized on their own: all but the input and output layers."""
    return [layer for layer in graph if layer.kind not in ("input_layer", "output_layer")]


def float_taps(qmodel: QuantizedNetwork, feeds: Mapping[str, np.ndarray]) -> Tensors:
    """Every layer's float tensor (NCHW) on the fp_optimized graph, from normalized NCHW ``feeds``."""
    return run_float(qmodel.graph, feeds, qmodel.params, "all")[1]


def _stand_in(layer: Layer) -> Layer:
    """``layer`` as an input of a one-layer graph (same name and shape)."""
    return dataclasses.replace(layer, kind="input_layer", inputs=(), input_shapes=())


def integer_layer(qmodel: QuantizedNetwork, layer: Layer, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """``layer`` on its integer kernel: ``inputs`` (float NCHW, by producer name) quantized with
    their producers' encodings, the output dequantized (NCHW)."""
    producers = [qmodel.graph[name] for name in dict.fromkeys(layer.inputs)]
    graph = Graph(qmodel.graph.name, (*(_stand_in(p) for p in producers), layer))
    qlayers = {p.name: QLayer(p.name, "input_layer", qmodel.layers[p.name].out) for p in producers}
    qlayers[layer.name] = qmodel.layers[layer.name]
    _, tapped = run_numeric(graph, qlayers, {p.name: inputs[p.name] for p in producers}, taps=[layer.name])
    return tapped[layer.name]


def _float_layer(qmodel: QuantizedNetwork, layer: Layer, values: Mapping[str, np.ndarray]) -> np.ndarray:
    return run_layer(layer, [values[name] for name in layer.inputs], qmodel.params.get(layer.name))


def run_partial(qmodel: QuantizedNetwork, feeds: Mapping[str, np.ndarray], quantized: Collection[str]) -> Tensors:
    """The outputs (NCHW, by output layer name) with the ``quantized`` layers (full names) in integers."""
    readers = Readers(qmodel.graph)
    values: Tensors = {}
    outputs: Tensors = {}
    for layer in qmodel.graph:
        if layer.kind == "input_layer":
            values[layer.name] = feeds[layer.name]
            continue
        if layer.name in quantized:
            values[layer.name] = integer_layer(qmodel, layer, values)
        else:
            values[layer.name] = _float_layer(qmodel, layer, values)
        readers.release(layer, values)
        if layer.kind == "output_layer":
            outputs[layer.name] = values.pop(layer.name)
    return outputs


def isolated_outputs(qmodel: QuantizedNetwork, taps: Mapping[str, np.ndarray], layer: Layer) -> Tensors:
    """The outputs with only ``layer`` in integers, from the float ``taps`` of every layer."""
    return outputs_with(qmodel, taps, layer, integer_layer(qmodel, layer, taps))


def outputs_with(qmodel: QuantizedNetwork, taps: Mapping[str, np.ndarray], layer: Layer, value: np.ndarray) -> Tensors:
    """The float outputs when ``layer``'s tensor is ``value`` instead of its float ``taps``.

    Only the layers downstream of ``layer`` run again; the rest keep their float tensors.
    """
    changed: Tensors = {layer.name: value}
    outputs = {}
    for later in _downstream(qmodel.graph, layer):
        values = {name: changed.get(name, taps[name]) for name in later.inputs}
        changed[later.name] = _float_layer(qmodel, later, values)
    for output in qmodel.graph.outputs:
        outputs[output.name] = changed.get(output.name, taps[output.name])
    return outputs


def _downstream(graph: Graph, layer: Layer) -> Iterable[Layer]:
    """The layers that read ``layer``'s output, directly or not, in topological order."""
    reached = {layer.name}
    for later in graph:
        if any(name in reached for name in later.inputs):
            reached.add(later.name)
            yield later
