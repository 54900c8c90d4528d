"""The op handlers, one module per ONNX op family; importing them fills `HANDLERS`.

A new family is a new module here, listed in `FAMILIES`; a new op of a family is one function in
its module, registered with `alls.importer.registry.handles` (docs/ops.md, "Adding an ONNX op").
"""

from __future__ import annotations

from alls.importer.ops import (activations, depth_space, elementwise, identity, normalization, pad, pooling,
                               reductions, resize, slicing, softmax, views, weighted)
from alls.importer.registry import HANDLERS

__all__ = ["FAMILIES", "HANDLERS"]

FAMILIES = (identity, weighted, normalization, activations, elementwise, pooling, resize, softmax, views, slicing,
            pad, depth_space, reductions)
