"""Import an ONNX model as a layer `Graph` (opsets 9 to 21).

The import runs in four passes over plain data:

1. *constants*: initializers, Constant nodes, and every node whose inputs
   are all constant (shape subgraphs: Shape of a static tensor, Gather,
   Slice, Cast, Concat, Unsqueeze, ...) evaluated once with `onnx.reference`
   (`alls.folding`; asked again of each node in pass 3, once the layers
   before it have their shapes);
2. *patterns*: HardSwish written as ``x * HardSigmoid(x)`` or
   ``x * Clip(x + 3, 0, 6) / 6`` and SiLU written as ``x * Sigmoid(x)`` become
   one activation node each (`patterns`);
3. *layers*: each remaining node goes to the handler of its op (`registry.HANDLERS`,
   one module per op family in `ops/`) and becomes a layer, is folded into the layer
   before it (BatchNormalization into a conv or dense layer, an activation
   into the layer it follows, a constant bias Add into a dense layer), or
   vanishes (Identity, Dropout);
4. *names*: Hailo-style names counted per kind in topological order.

An op it cannot handle becomes a layer marked unsupported, with an ALS401
diagnostic naming the node, the op and the layer; the rest still loads.

`load` reads, checks and cuts the model; `driver` runs the passes; `drafts` holds the data they
share; `layers` checks and counts the finished layers.
"""

from __future__ import annotations

from alls.importer.load import load_model
from alls.importer.ops import HANDLERS
from alls.importer.ops.slicing import slice_bounds as _slice_bounds  # noqa: F401  (tests/test_ops.py)

__all__ = ["HANDLERS", "load_model"]
