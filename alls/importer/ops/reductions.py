"""Reductions: ReduceMax, ReduceMean and ReduceSum over any axes but the batch."""

from __future__ import annotations

from alls.importer.ops.identity import identity
from alls.importer.registry import handles


def _reduce(imp, n, data_in, kind: str):
    shape = imp.shape(data_in[0]) if len(data_in) == 1 else ()
    axes = imp.const_ints(n, 1, "axes")
    if len(data_in) != 1 or axes is False:
        return "the axes are not constant"
    if not shape:
        return "the input shape is unknown"
    if not axes and n.attrs.get("noop_with_empty_axes", 0):
        return identity(imp, n, data_in)
    axes = sorted({a % len(shape) for a in axes} if axes else range(len(shape)))
    if 0 in axes:
        return "a reduction over the batch axis has no layer"
    keepdims = int(n.attrs.get("keepdims", 1))
    out = tuple(1 if i in axes else d for i, d in enumerate(shape) if keepdims or i not in axes)
    imp.moved(n, data_in, kind, out, {"axes": tuple(axes), "keepdims": keepdims})


@handles("ReduceMax")
def reduce_max(imp, n, data_in):
    return _reduce(imp, n, data_in, "reduce_max")


@handles("ReduceMean")
def reduce_mean(imp, n, data_in):
    return _reduce(imp, n, data_in, "reduce_mean")


@handles("ReduceSum")
def reduce_sum(imp, n, data_in):
    return _reduce(imp, n, data_in, "reduce_sum")
