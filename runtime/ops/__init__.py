"""The layer kinds of the runtime, one module each, in one table.

Each module holds one kind (or a family that shares its code: the elementwise ops, the
pools): its float run, its quantization and its integer run, as an `Op`. `OPS` maps each
kind to its `Op`; the float executor (`native`), the quantizer (`quantize`) and the
emulator (`emulator`) look every layer up here and nowhere else. Adding a kind is one new
module here, a line in `_MODULES`, its name in `alls.graph.KINDS`, and its tests.

    from alls.runtime.ops import OPS
    y = OPS[layer.kind].run(layer, xs, params)

Importing this package loads no Numba.
"""

from __future__ import annotations

from types import MappingProxyType

from alls.runtime.ops import (activation, batch_norm, concat, conv, deconv, depth_space, dw, eltwise, fc, matmul, output,
                              pad, pool, reduce, resize, slice, softmax, view)
from alls.runtime.ops.base import Encoding, Op, QLayer

__all__ = ["OPS", "Op", "Encoding", "QLayer"]

_MODULES = (conv, dw, deconv, fc, batch_norm, eltwise, concat, pool, resize, activation, softmax, view, output, slice, pad,
            depth_space, reduce, matmul)

OPS: MappingProxyType[str, Op] = MappingProxyType({op.kind: op for module in _MODULES for op in module.OPS})
