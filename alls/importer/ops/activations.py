"""Activations: fused into the layer before them where nothing else reads it, else an
`activation` layer. Swish and HardSwish also come from the patterns pass (`alls.importer.patterns`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from alls.graph import ACTIVATION_KINDS
from alls.importer.drafts import Draft, aliases_of
from alls.importer.registry import handles

if TYPE_CHECKING:
    from alls.importer.drafts import Node
    from alls.importer.driver import Importer

# the kinds an activation fuses into
_FUSE_INTO = set(ACTIVATION_KINDS) - {"activation"}


def _activation(imp: Importer, n: Node, data_in: list[str], name: str,
                params: tuple[tuple[str, float], ...] = ()) -> str | None:
    draft = imp.single_consumer_producer(data_in[0], _FUSE_INTO)
    if draft is not None and draft.activation is None:
        draft.activation, draft.activation_params = name, params
        imp.fold_into(draft, n)
        return None
    new = Draft("activation", [n.op], data_in, n.outputs[0], aliases_of(n), node_name=n.name)
    new.activation, new.activation_params = name, params
    imp.add(new)
    return None


@handles("Relu")
def relu(imp: Importer, n: Node, data_in: list[str]) -> str | None:
    return _activation(imp, n, data_in, "relu")


@handles("Clip")
def clip(imp: Importer, n: Node, data_in: list[str]) -> str | None:
    if len(data_in) != 1:
        return "the bounds are not constant"
    lo = n.attrs.get("min", imp.const_scalar(n.inputs[1] if len(n.inputs) > 1 else "", -np.inf))
    hi = n.attrs.get("max", imp.const_scalar(n.inputs[2] if len(n.inputs) > 2 else "", np.inf))
    if lo == 0 and hi == 6:
        return _activation(imp, n, data_in, "relu6")
    if lo == 0 and hi == np.inf:
        return _activation(imp, n, data_in, "relu")
    return _activation(imp, n, data_in, "clip", (("min", float(lo)), ("max", float(hi))))


@handles("LeakyRelu")
def leaky_relu(imp: Importer, n: Node, data_in: list[str]) -> str | None:
    return _activation(imp, n, data_in, "leaky_relu", (("alpha", float(n.attrs.get("alpha", 0.01))),))


@handles("PRelu")
def prelu(imp: Importer, n: Node, data_in: list[str]) -> str | None:
    slope = imp.consts.get(imp.resolve(n.inputs[1]))
    if slope is None:
        return "the slope is not constant"
    result = _activation(imp, n, data_in, "prelu")
    owner = imp.producer[imp.resolve(n.outputs[0])]
    owner.params["prelu_slope"] = np.asarray(slope, dtype=np.float32).reshape(-1)
    return result


@handles("Sigmoid")
def sigmoid(imp: Importer, n: Node, data_in: list[str]) -> str | None:
    return _activation(imp, n, data_in, "sigmoid")


@handles("Tanh")
def tanh(imp: Importer, n: Node, data_in: list[str]) -> str | None:
    return _activation(imp, n, data_in, "tanh")


@handles("Elu")
def elu(imp: Importer, n: Node, data_in: list[str]) -> str | None:
    return _activation(imp, n, data_in, "elu", (("alpha", float(n.attrs.get("alpha", 1.0))),))


@handles("HardSigmoid")
def hard_sigmoid(imp: Importer, n: Node, data_in: list[str]) -> str | None:
    params = (("alpha", float(n.attrs.get("alpha", 0.2))), ("beta", float(n.attrs.get("beta", 0.5))))
    return _activation(imp, n, data_in, "hard_sigmoid", params)


@handles("HardSwish")
def hard_swish(imp: Importer, n: Node, data_in: list[str]) -> str | None:
    return _activation(imp, n, data_in, "hardswish")


@handles("Swish")
def swish(imp: Importer, n: Node, data_in: list[str]) -> str | None:  # made by the patterns pass from x * Sigmoid(x)
    return _activation(imp, n, data_in, "silu")
