"""Resize and Upsample (`resize`): nearest or linear, to a constant size or scale."""

from __future__ import annotations

import numpy as np

from alls.importer.drafts import Draft, aliases_of
from alls.importer.registry import handles


@handles("Resize", "Upsample")
def resize(imp, n, data_in):
    mode = n.attrs.get("mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear"):
        return f"resize mode `{mode}` has no layer"
    in_shape, out_shape = imp.shape(data_in[0]), imp.shape(n.outputs[0])
    if not out_shape:
        sizes = scales = None
        for i in n.inputs[1:]:
            value = imp.consts.get(imp.resolve(i)) if i else None
            if value is not None and value.size == len(in_shape):
                sizes, scales = (value, scales) if value.dtype.kind in "iu" else (sizes, value)
        if sizes is not None:
            out_shape = tuple(int(v) for v in sizes)
        elif scales is not None:
            out_shape = tuple(int(np.floor(d * s)) for d, s in zip(in_shape, scales))
        else:
            return "the output size is not constant"
        imp.shapes[n.outputs[0]] = out_shape
    default_ctm = "half_pixel" if n.op == "Resize" and imp.opset >= 11 else "asymmetric"
    attrs = {"mode": "nearest" if mode == "nearest" else "bilinear",
             "coordinate_transformation_mode": n.attrs.get("coordinate_transformation_mode", default_ctm),
             "nearest_mode": n.attrs.get("nearest_mode", "round_prefer_floor")}
    imp.add(Draft("resize", [n.op], data_in, n.outputs[0], aliases_of(n), node_name=n.name, attrs=attrs))
