"""Softmax (`softmax`) on any axis."""

from __future__ import annotations

from alls.importer.drafts import Draft, aliases_of
from alls.importer.registry import handles


@handles("Softmax")
def softmax(imp, n, data_in):
    axis = int(n.attrs.get("axis", 1 if imp.opset < 13 else -1))
    imp.add(Draft("softmax", ["Softmax"], data_in, n.outputs[0], aliases_of(n), node_name=n.name,
                  attrs={"axis": axis}))
