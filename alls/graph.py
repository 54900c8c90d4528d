"""The layer graph: a network as Hailo's parser names it.

A `Graph` is a tuple of `Layer` in topological order. Each layer has a
Hailo-style name ``<net>/<kind><n>`` (``digits/conv1``, ``dw1``, ``fc1``,
``ew_add1``, ``input_layer1``, ``output_layer1``, ...), ``n`` counting each
kind from 1 in topological order; the ONNX node names and output tensor
names it came from are its aliases. An activation that follows a layer is
fused into it (``activation="relu6"``), a batch norm after a conv or dense
layer is folded into its weights, and Identity/Dropout vanish.

Shapes are ONNX's (NCHW, batch first). Parameters are read-only arrays.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alls.diagnostics import Diagnostic
from alls.values import Activation

# The input shapes a model is imported with: one shape for its one input, or {input name: shape}.
InputShapes = dict[str, Sequence[int]] | Sequence[int]

if TYPE_CHECKING:
    import os

    import onnx

    # A model as the importer takes it: an .onnx path or a loaded `onnx.ModelProto`.
    ModelSource = str | os.PathLike[str] | onnx.ModelProto

__all__ = ["Layer", "Graph", "KINDS", "WEIGHTED_KINDS", "ACTIVATION_KINDS", "per_channel"]

# Every kind of layer, in the order `alls layers` documents them; the runtime has one module per
# kind (`alls.runtime.ops`), and a test keeps the two lists the same.
KINDS = (
    "input_layer", "output_layer", "conv", "dw", "deconv", "fc", "batch_norm",
    "ew_add", "ew_sub", "ew_mult", "concat", "maxpool", "avgpool", "resize",
    "activation", "softmax", "format_conversion", "slice", "feature_splitter", "pad", "depth_to_space",
    "space_to_depth", "reduce_max", "reduce_mean", "reduce_sum", "matmul",
)
# The one definition of "weighted": a layer with a weight tensor that the script's weight commands
# quantize. A standalone batch norm also accumulates (a 1x1 depthwise conv of its scales) but has
# no weights a script addresses.
WEIGHTED_KINDS = ("conv", "dw", "deconv", "fc")
# The kinds whose layers carry an activation: an activation node fuses into the layer before it
# where that layer is of one of the others, and is an `activation` layer of its own elsewhere.
ACTIVATION_KINDS = ("conv", "dw", "deconv", "fc", "batch_norm", "ew_add", "ew_sub", "ew_mult", "activation")


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer of the graph.

    ``inputs`` names the layers it reads, in operand order; ``tensors`` are
    the ONNX tensors it produces. ``params`` holds its arrays (``weight``,
    ``bias``, ``const``, ...), ``attrs`` its attributes (``strides``, ``pads``,
    ``group``, ``mode``, ...). ``macs`` counts multiply-accumulates per image.
    """

    name: str
    kind: str
    op: str
    inputs: tuple[str, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    aliases: tuple[str, ...] = ()
    tensors: tuple[str, ...] = ()
    activation: Activation | None = None
    activation_params: tuple[tuple[str, float], ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    macs: int = 0
    supported: bool = True
    end_node: str = ""  # the ONNX node to name as an end node to end the network at this layer

    def __post_init__(self) -> None:
        if self.activation is not None and not isinstance(self.activation, Activation):
            object.__setattr__(self, "activation", Activation(self.activation))  # the importer's name, typed

    @property
    def short_name(self) -> str:
        """The name without the network scope: ``conv3``."""
        return self.name.rsplit("/", 1)[-1]

    @property
    def weight_shape(self) -> tuple[int, ...] | None:
        weight = self.params.get("weight")
        return tuple(weight.shape) if weight is not None else None

    @property
    def has_weights(self) -> bool:
        return self.kind in WEIGHTED_KINDS

    @property
    def output_channels(self) -> int | None:
        return self.output_shape[1] if len(self.output_shape) >= 2 else None


@dataclass(frozen=True, eq=False)
class Graph:
    """A network: its layers in topological order, and what import found.

    ``diagnostics`` lists the ALS4xx findings of the import (unsupported
    ops, shapes it could not infer); the layers they name are still in the
    graph, marked ``supported=False``.
    """

    name: str
    layers: tuple[Layer, ...]
    diagnostics: tuple[Diagnostic, ...] = ()
    opset: int = 0
    tie_numbered: frozenset[str] = frozenset()  # layers whose number a tie between parallel branches decided
    order_disputed: frozenset[str] = frozenset()  # layers whose number comparing names as strings decided
    start_nodes: tuple[str, ...] = ()  # the cut it was imported with (alls.cut), empty: the whole graph
    end_nodes: tuple[str, ...] = ()
    _index: dict[str, Layer] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        index = self._index
        for layer in self.layers:
            index[layer.name] = layer
        for layer in self.layers:
            index.setdefault(layer.short_name, layer)
        for layer in self.layers:  # an ONNX name never hides a layer's own short name
            for alias in layer.aliases:
                index.setdefault(alias, layer)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def get(self, name: str) -> Layer | None:
        """The layer called ``name``: full name, short name, or ONNX alias."""
        return self._index.get(name)

    def __getitem__(self, name: str) -> Layer:
        layer = self.get(name)
        if layer is None:
            raise KeyError(name)
        return layer

    @property
    def inputs(self) -> tuple[Layer, ...]:
        return tuple(layer for layer in self.layers if layer.kind == "input_layer")

    @property
    def outputs(self) -> tuple[Layer, ...]:
        return tuple(layer for layer in self.layers if layer.kind == "output_layer")

    def consumers(self, name: str) -> tuple[Layer, ...]:
        """The layers that read layer ``name``."""
        return tuple(layer for layer in self.layers if name in layer.inputs)


def per_channel(const: Any, channels: int, shape: tuple[int, ...]) -> bool:
    """Is ``const`` a scalar, or one value per channel of an NC[HW] tensor?"""
    if const.size == 1:
        return True
    if const.size != channels or len(shape) < 2:
        return False
    squeezed = [d for d in const.shape if d != 1]
    if len(shape) == 2:
        return bool(const.shape[-1] == channels)
    return squeezed == [channels] and const.ndim >= len(shape) - 1 and const.shape[-(len(shape) - 1)] == channels
