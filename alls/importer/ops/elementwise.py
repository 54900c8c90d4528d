"""Elementwise arithmetic: Add, Sum, Sub, Mul, Div and Pow, of two tensors or of a tensor and a
constant; a constant per-channel one folds into the weighted layer before it."""

from __future__ import annotations

import numpy as np

from alls.graph import per_channel
from alls.importer.drafts import Draft, aliases_of
from alls.importer.ops.identity import identity
from alls.importer.ops.weighted import scale_outputs
from alls.importer.registry import handles


def _elementwise(imp, n, data_in, kind: str):
    const_in = [imp.resolve(i) for i in n.inputs if imp.resolve(i) in imp.consts]
    if len(data_in) == 2:
        shapes = [imp.shape(t) for t in data_in]
        imp.add(Draft(kind, [n.op], data_in, n.outputs[0], aliases_of(n), node_name=n.name,
                      attrs={"broadcast": shapes[0] != shapes[1]}))
        return None
    if len(data_in) != 1 or len(const_in) != 1:
        return "elementwise ops take two tensors, or one tensor and a constant"
    const = imp.consts[const_in[0]].astype(np.float32)
    if kind == "ew_sub" and imp.resolve(n.inputs[0]) in imp.consts:
        kind, const = "ew_rsub", const
    if kind in ("ew_add", "ew_sub"):
        producer = imp.single_consumer_producer(data_in[0], ("conv", "dw", "deconv", "fc"))
        channels = producer.params["bias"].shape[0] if producer is not None else 0
        if producer is not None and producer.activation is None and per_channel(const, channels, imp.shape(data_in[0])):
            sign = 1.0 if kind == "ew_add" else -1.0
            producer.params["bias"] = (producer.params["bias"] + sign * const.reshape(-1)[:channels]
                                       if const.size == channels else producer.params["bias"] + sign * float(const.reshape(-1)[0]))
            producer.params["bias"] = producer.params["bias"].astype(np.float32)
            imp.fold_into(producer, n)
            return None
    if kind == "ew_div":
        kind, const = "ew_mult", (1.0 / const).astype(np.float32)
    if kind == "ew_mult":  # a scale per output channel (or one for all) folds into the weights and bias
        producer = imp.single_consumer_producer(data_in[0], ("conv", "dw", "deconv", "fc"))
        channels = producer.params["bias"].shape[0] if producer is not None else 0
        if (producer is not None and producer.activation is None
                and (producer.kind != "fc" or len(imp.shape(data_in[0])) == 2)
                and per_channel(const, channels, imp.shape(data_in[0]))):
            scale = const.reshape(-1)[:channels] if const.size == channels else np.full(channels, const.reshape(-1)[0])
            scale_outputs(producer, scale.astype(np.float32))
            imp.fold_into(producer, n)
            return None
    if kind == "ew_rsub":
        kind = "ew_sub"
    draft = Draft(kind, [n.op], data_in, n.outputs[0], aliases_of(n), node_name=n.name,
                  attrs={"const_first": imp.resolve(n.inputs[0]) in imp.consts})
    draft.params["const"] = const
    imp.add(draft)


@handles("Add")
def add(imp, n, data_in):
    return _elementwise(imp, n, data_in, "ew_add")


@handles("Sum")
def sum(imp, n, data_in):  # Caffe2's residual add: a Sum of two is an Add, of one an Identity
    if len(n.inputs) == 1:
        return identity(imp, n, data_in)
    if len(n.inputs) != 2:
        return f"a Sum of {len(n.inputs)} inputs has no layer (of two it is an add)"
    return _elementwise(imp, n, data_in, "ew_add")


@handles("Sub")
def sub(imp, n, data_in):
    return _elementwise(imp, n, data_in, "ew_sub")


@handles("Mul")
def mul(imp, n, data_in):
    return _elementwise(imp, n, data_in, "ew_mult")


@handles("Div")
def div(imp, n, data_in):
    if len(data_in) == 2 or imp.resolve(n.inputs[0]) in imp.consts:
        return "division by a tensor has no layer"
    return _elementwise(imp, n, data_in, "ew_div")


@handles("Pow")
def pow(imp, n, data_in):  # YOLOv5's box decoding squares: (2·sigmoid(t))²
    exponent = imp.const_scalar(n.inputs[1] if len(n.inputs) > 1 else "", float("nan"))
    if len(data_in) != 1 or exponent not in (1.0, 2.0):
        return "only a power of 1 or 2 by a constant exponent is a layer (a product of the tensor with itself)"
    if exponent == 1.0:
        return identity(imp, n, data_in)
    imp.add(Draft("ew_mult", [n.op], [data_in[0], data_in[0]], n.outputs[0], aliases_of(n), node_name=n.name,
                  attrs={"broadcast": False}))
