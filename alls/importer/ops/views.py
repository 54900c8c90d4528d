"""Views: Reshape, Flatten, Squeeze, Unsqueeze and Transpose (`format_conversion`)."""

from __future__ import annotations

from alls.importer.drafts import Draft, aliases_of
from alls.importer.registry import handles


@handles("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose")
def view(imp, n, data_in):
    if len(data_in) != 1:
        return "the target shape or axes are not constant"
    in_shape, out_shape = imp.shape(data_in[0]), imp.shape(n.outputs[0])
    squeeze_only = (len(in_shape) == 4 and in_shape[2:] == (1, 1) and out_shape == in_shape[:2])
    attrs = {"op": n.op, "squeeze_only": squeeze_only, "shape": out_shape}
    if n.op == "Transpose":
        attrs["perm"] = tuple(n.attrs.get("perm", ()))
    imp.add(Draft("format_conversion", [n.op], data_in, n.outputs[0], aliases_of(n), node_name=n.name,
                  attrs=attrs))
