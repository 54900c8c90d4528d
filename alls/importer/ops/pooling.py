"""Pooling: MaxPool, AveragePool and their global forms (`maxpool`, `avgpool`)."""

from __future__ import annotations

from alls.importer.drafts import Draft, aliases_of
from alls.importer.ops.weighted import conv_attrs
from alls.importer.registry import handles


def _pool(imp, n, data_in, kind, is_global=False):
    in_shape = imp.shape(data_in[0])
    if is_global:
        attrs = {"global": True, "kernel_shape": tuple(in_shape[2:]), "strides": (1, 1), "pads": (0, 0, 0, 0)}
    else:
        attrs = conv_attrs(n, tuple(n.attrs["kernel_shape"]), in_shape)
        attrs["ceil_mode"] = int(n.attrs.get("ceil_mode", 0))
        attrs["count_include_pad"] = int(n.attrs.get("count_include_pad", 0))
    imp.add(Draft(kind, [n.op], data_in, n.outputs[0], aliases_of(n), node_name=n.name, attrs=attrs))


@handles("MaxPool")
def max_pool(imp, n, data_in):
    if len(n.outputs) > 1 and n.outputs[1]:
        return "MaxPool with an indices output has no layer"
    return _pool(imp, n, data_in, "maxpool")


@handles("AveragePool")
def average_pool(imp, n, data_in):
    return _pool(imp, n, data_in, "avgpool")


@handles("GlobalAveragePool")
def global_average_pool(imp, n, data_in):
    return _pool(imp, n, data_in, "avgpool", is_global=True)


@handles("GlobalMaxPool")
def global_max_pool(imp, n, data_in):
    return _pool(imp, n, data_in, "maxpool", is_global=True)
