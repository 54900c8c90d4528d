"""Softmax (`softmax`) on any axis."""

from __future__ import annotations

from typing import TYPE_CHECKING

from alls.importer.drafts import Draft, aliases_of
from alls.importer.registry import handles

if TYPE_CHECKING:
    from alls.importer.drafts import Node
    from alls.importer.driver import Importer


@handles("Softmax")
def softmax(imp: Importer, n: Node, data_in: list[str]) -> str | None:
    axis = int(n.attrs.get("axis", 1 if imp.opset < 13 else -1))
    imp.add(Draft("softmax", ["Softmax"], data_in, n.outputs[0], aliases_of(n), node_name=n.name,
                  attrs={"axis": axis}))
    return None
