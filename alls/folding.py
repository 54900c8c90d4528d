"""Constant folding: the nodes whose outputs are known before any image is seen.

A node folds when every input is a constant (initializers, Constant nodes, earlier folded nodes),
or when it only reads the *shape* of a tensor whose shape is static (Shape, Size). With a static
input shape, export-time shape arithmetic (Shape -> Gather -> Unsqueeze -> Concat -> Reshape,
ConstantOfShape, Expand, Range, Cast, Floor, Div ...) folds away entirely, so Reshape, Resize,
Expand and Slice see constant targets.

`fold_node` is the one place folding is decided: it is asked of each node as the importer reaches
it, after the layers before it have their shapes, so a chain that reads the shape of an earlier
computed reshape folds too. It is bounded: a node whose output would hold more than
`MAX_FOLDED_ELEMENTS` values (a ConstantOfShape or Expand to a huge shape) is not evaluated and
stays a node; the importer then reports it like any node it cannot make a layer of.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["MAX_FOLDED_ELEMENTS", "fold_node"]

MAX_FOLDED_ELEMENTS = 1 << 22  # 4M values (16 MiB of float32): far above any shape computation
_NOT_FOLDED = ("Dropout", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
               "Bernoulli")
_CONST_DTYPES = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
                 "value_ints": np.int64}


def fold_node(node, consts: dict, value_of: Callable[[str], np.ndarray | None],
              shape_of: Callable[[str], tuple | None], opset: int) -> bool:
    """Fold ``node`` (``op``, ``inputs``, ``outputs``, ``attrs``) into ``consts`` if its outputs are
    constant now; True when folded. ``value_of`` gives a tensor's constant value (or None),
    ``shape_of`` its static shape (or None)."""
    if node.op == "Constant":
        key, value = next(iter(node.attrs.items()))
        value = np.asarray(value, dtype=_CONST_DTYPES.get(key))
        if value.size > MAX_FOLDED_ELEMENTS:
            return False
        consts[node.outputs[0]] = value
        return True
    if node.op in ("Shape", "Size") and node.inputs:
        shape = shape_of(node.inputs[0])
        if not shape or not all(isinstance(d, (int, np.integer)) and d >= 0 for d in shape):
            return False
        dims = np.array(shape, dtype=np.int64)
        if node.op == "Size":
            consts[node.outputs[0]] = np.array(int(np.prod(dims)), dtype=np.int64)
        else:
            consts[node.outputs[0]] = dims[node.attrs.get("start", 0):node.attrs.get("end", None)]
        return True
    values = [value_of(i) if i else None for i in node.inputs]
    if not node.inputs or node.op in _NOT_FOLDED or any(v is None for i, v in zip(node.inputs, values) if i):
        return False
    if _grows_too_much(node, values):
        return False
    results = _evaluate(node, {i: v for i, v in zip(node.inputs, values) if i}, opset)
    if results is None or any(np.size(r) > MAX_FOLDED_ELEMENTS for r in results):
        return False
    for name, value in zip(node.outputs, results):
        consts[name] = np.asarray(value)
    return True


def _grows_too_much(node, values) -> bool:
    """Would the output of a node that can grow (to a shape it is given) pass the bound?"""
    try:
        if node.op == "ConstantOfShape":
            return float(np.prod(values[0].astype(np.float64))) > MAX_FOLDED_ELEMENTS
        if node.op == "Expand":
            shape = np.broadcast_shapes(tuple(values[0].shape), tuple(int(d) for d in values[1].reshape(-1)))
            return float(np.prod(shape, dtype=np.float64)) > MAX_FOLDED_ELEMENTS
        if node.op == "Range":
            start, limit, delta = (float(np.asarray(v).reshape(-1)[0]) for v in values[:3])
            return delta == 0 or abs((limit - start) / delta) > MAX_FOLDED_ELEMENTS
        if node.op == "Tile":
            return values[0].size * float(np.prod(values[1].astype(np.float64))) > MAX_FOLDED_ELEMENTS
    except (ValueError, TypeError, IndexError):
        return True  # a malformed shape: leave it to the layer, which reports it
    return sum(v.size for v in values if v is not None) > MAX_FOLDED_ELEMENTS


def _evaluate(node, inputs: dict, opset: int):
    """The node's outputs by `onnx.reference`; None when it cannot compute them (a custom op)."""
    import onnx
    from onnx.reference import ReferenceEvaluator

    try:  # onnx.reference raises whatever its kernels raise
        attrs = {k: onnx.numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v for k, v in node.attrs.items()}
        proto = onnx.helper.make_node(node.op, node.inputs, node.outputs, **attrs)
        vi = [onnx.helper.make_tensor_value_info(i, onnx.helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
              for i, v in inputs.items()]
        outputs = [onnx.helper.make_empty_tensor_value_info(o) for o in node.outputs]
        graph = onnx.helper.make_graph([proto], "fold", vi, outputs)
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", max(opset, 9))])
        return ReferenceEvaluator(model).run(None, inputs)
    except Exception:
        return None
