"""Ops that vanish: Identity, and Dropout at inference; their output names their input."""

from __future__ import annotations

from alls.importer.registry import handles


@handles("Identity")
def identity(imp, n, data_in):
    source = imp.resolve(n.inputs[0])
    imp.alias_of[n.outputs[0]] = source
    imp.consumers[source] += imp.consumers[n.outputs[0]] - 1


@handles("Dropout")
def dropout(imp, n, data_in):
    training = imp.resolve(n.inputs[2]) if len(n.inputs) > 2 and n.inputs[2] else ""
    if training and (training not in imp.consts or bool(imp.consts[training])):
        return "Dropout in training mode (or with a computed `training_mode`) drops at random; it has no layer"
    if len(n.outputs) > 1 and n.outputs[1] and imp.consumers[n.outputs[1]]:
        return "the mask output of Dropout has no layer"
    return identity(imp, n, data_in)
