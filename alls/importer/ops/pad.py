"""Pad (`pad`): constant, reflect, edge or wrap, on any axes but the batch."""

from __future__ import annotations

from alls.importer.registry import handles


@handles("Pad")
def pad(imp, n, data_in):
    shape = imp.shape(data_in[0]) if len(data_in) == 1 else ()
    pads, axes = imp.const_ints(n, 1, "pads"), imp.const_ints(n, 3, "axes")
    if len(data_in) != 1 or not pads or axes is False:
        return "the pads or the value are not constant"
    if not shape:
        return "the input shape is unknown"
    axes = [a % len(shape) for a in axes] if axes else list(range(len(shape)))
    per = [(0, 0)] * len(shape)
    for i, axis in enumerate(axes):
        per[axis] = (pads[i], pads[i + len(axes)])
    mode = n.attrs.get("mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        return f"pad mode `{mode}` has no layer"
    if per[0] != (0, 0) or min(min(p) for p in per) < 0:
        return "a pad of the batch axis, or a negative pad (a crop), has no layer"
    value = n.attrs.get("value", imp.const_scalar(n.inputs[2] if len(n.inputs) > 2 else "", 0.0))
    out = tuple(d + b + a for d, (b, a) in zip(shape, per))
    imp.moved(n, data_in, "pad", out, {"pads": tuple(per), "mode": mode, "value": float(value)})
