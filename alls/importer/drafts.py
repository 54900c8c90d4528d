"""The importer's plain data: an ONNX node as read (`Node`) and a layer under construction (`Draft`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Node:
    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)  # of the nodes a pattern rewrite merged into it


@dataclass
class Draft:
    """A layer under construction (names are given at the end)."""

    kind: str
    ops: list[str]
    inputs: list[str]  # tensor names
    output: str  # tensor name
    aliases: list[str]
    params: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)
    activation: str | None = None
    activation_params: tuple = ()
    supported: bool = True
    node_name: str = ""
    last_node: str = ""  # the ONNX node whose output the layer's output is, after fusions


def aliases_of(n: Node) -> list[str]:
    """The names a layer made of ``n`` answers to: the node's, its outputs', and those merged into it."""
    return [n.name] + [o for o in n.outputs if o] + n.aliases


def scalar(value) -> float | None:
    """The one number of a constant of any rank (``[[3.]]`` included), or None."""
    if value is None or np.size(value) != 1:
        return None
    return float(np.asarray(value).reshape(-1)[0])


def proto_node(n: Node):
    """``n`` as an ONNX node again; a tensor attribute (ConstantOfShape's ``value``) read as an array
    goes back as a tensor, not as a list of floats."""
    import onnx

    attrs = {k: onnx.numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v for k, v in n.attrs.items()}
    return onnx.helper.make_node(n.op, n.inputs, n.outputs, **attrs)
