"""Validate an ONNX graph before anything reads it.

The importer trusts what it reads: a tensor has one producer, produced
before it is read; a weight's data fill its declared shape. A model from
anywhere need not keep these promises, and breaking them used to surface
as a `KeyError`, a `ZeroDivisionError` or an endless loop deep inside the
import. `validate` checks them all first, on the protobuf alone (no array
is made before its declared size is checked), and raises one `AllsError`
that names every offending node or tensor:

- ALS440 nodes in a cycle, or out of order (a tensor read before the node
  that makes it);
- ALS441 an input (or graph output) that no node, graph input or
  initializer provides;
- ALS442 two producers for one tensor;
- ALS443 a node that reads its own output;
- ALS444 a zero or negative dimension (an empty tensor is allowed only as
  a 1-D placeholder, as ONNX uses for Resize's ``roi``);
- ALS445 a tensor whose data do not fill its declared shape;
- ALS446 NaN or Inf in a floating-point weight;
- and the limits on declared tensors: ALS023 (elements of one tensor, or a
  dimension beyond int64) and ALS024 (bytes of all constants).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from alls.diagnostics import AllsError, Diagnostic, Severity
from alls.graph import InputShapes
from alls.limits import Limits, exceeded

if TYPE_CHECKING:
    import onnx

__all__ = ["validate", "check_input_shapes"]

E = Severity.ERROR
_INT64_MAX = (1 << 63) - 1
_MAX_REPORTED = 20


def validate(proto: onnx.ModelProto, limits: Limits, folder: str | None = None) -> None:
    """Raise `AllsError` naming every problem of ``proto`` (an `onnx.ModelProto`); None when sound.

    Weights stored outside the model (external data) are read from ``folder``
    (the model file's), only after their declared sizes passed, and only
    from files inside that folder.
    """
    graph = proto.graph
    found = list(_constants(graph, limits))
    found += _structure(graph)
    if not found:
        found = _external(proto, folder)
    if found:
        raise AllsError(found[:_MAX_REPORTED])


def _external(proto: onnx.ModelProto, folder: str | None) -> list[Diagnostic]:
    """Load the external data of ``proto`` from ``folder``, then check them as the inline ones."""
    import os

    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    external = [t for t in proto.graph.initializer if t.data_location == 1]
    if not external:
        return []
    if folder is None:
        return [Diagnostic("ALS402", E, f"initializer `{external[0].name}` lives in an external file that was not "
                           "loaded", help="pass the model's path, or load it with onnx.load (which reads them)")]
    root = os.path.realpath(folder)
    for t in external:
        location = {e.key: e.value for e in t.external_data}.get("location", "")
        real = os.path.realpath(os.path.join(root, location))
        if os.path.isabs(location) or os.path.commonpath([root, real]) != root or not os.path.isfile(real):
            return [Diagnostic("ALS402", E, f"initializer `{t.name}` points to `{location}`, which is not a file "
                               "beside the model", help="keep the external data files in the model's folder")]
    try:
        load_external_data_for_model(proto, root)
    except Exception as exc:  # a short file, a bad offset: onnx raises what its reader raises
        return [Diagnostic("ALS402", E, f"the model's external data cannot be read: {exc}",
                           help="check that the data files beside the model are complete")]
    found = []
    for t in proto.graph.initializer:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        stored, elements = _stored_elements(t, itemsize), math.prod(t.dims)
        if stored is not None and stored != elements:
            found.append(Diagnostic("ALS445", E, f"initializer `{t.name}` declares {elements:,} elements but its "
                                    f"external data hold {stored:,}", help="the model's data file is damaged"))
        elif t.data_type in _FLOAT_TYPES and not _finite(t):
            found.append(Diagnostic("ALS446", E, f"initializer `{t.name}` holds NaN or Inf",
                                    help="the model's weights are damaged, or the training diverged"))
    return found


def check_input_shapes(input_shapes: InputShapes | None, limits: Limits) -> None:
    """An ``input_shapes`` override (a shape, or ``{name: shape}``) with sound dimensions, or `AllsError`."""
    if input_shapes is None:
        return
    shapes = input_shapes.items() if isinstance(input_shapes, dict) else [("", input_shapes)]
    for name, shape in shapes:
        if not isinstance(name, str):
            raise TypeError(f"input_shapes keys are input names (str), not {type(name).__name__}")
        try:
            dims = [d for d in shape]
        except TypeError:
            raise TypeError(f"an input shape is a sequence of ints, not {type(shape).__name__}") from None
        if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims):
            raise TypeError(f"an input shape is a sequence of ints, not {shape!r}")
        subject = f"the shape given for input `{name}`" if name else "the input shape given"
        problem = _dims_problem([int(d) for d in dims], subject, limits)
        if problem is not None:
            raise AllsError([problem])


def _dims_problem(dims: list[int], subject: str, limits: Limits, empty_ok: bool = False) -> Diagnostic | None:
    if any(d < 0 for d in dims) or (not empty_ok and any(d == 0 for d in dims)):
        return Diagnostic("ALS444", E, f"{subject} has a zero or negative dimension: {tuple(dims)}",
                          help="every dimension of a tensor must be at least 1")
    if any(d > _INT64_MAX for d in dims):
        return exceeded("max_tensor_elements", "a dimension beyond int64 in", limits, subject)
    elements = math.prod(dims)
    if elements > limits.max_tensor_elements:
        return exceeded("max_tensor_elements", elements, limits, subject)
    return None


# ------------------------------------------------------------------ constants


def _tensors(graph: onnx.GraphProto) -> Iterator[tuple[str, onnx.TensorProto]]:
    """(what, TensorProto) of every initializer and Constant-node tensor of the main graph."""
    for t in graph.initializer:
        yield f"initializer `{t.name}`", t
    for n in graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.HasField("t"):
                    yield f"node `{n.name or n.output[0]}` (Constant)", a.t


def _constants(graph: onnx.GraphProto, limits: Limits) -> Iterator[Diagnostic]:
    import onnx

    total = 0
    for what, t in _tensors(graph):
        dims = list(t.dims)
        problem = _dims_problem(dims, what, limits, empty_ok=len(dims) == 1)
        if problem is not None:
            yield problem
            continue
        try:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        except Exception:  # an unknown element type: onnx.numpy_helper would refuse it too
            yield Diagnostic("ALS445", E, f"{what} has an unknown element type {t.data_type}",
                             help="re-export the model with a standard ONNX tensor type")
            continue
        elements = math.prod(dims)
        total += elements * itemsize
        stored = _stored_elements(t, itemsize)
        if stored is not None and stored != elements:
            yield Diagnostic("ALS445", E, f"{what} declares shape {tuple(dims)} ({elements:,} elements) but holds "
                             f"{stored:,}", help="the model is damaged or was edited; re-export it")
            continue
        if stored is not None and t.data_type in _FLOAT_TYPES and not _finite(t):
            yield Diagnostic("ALS446", E, f"{what} holds NaN or Inf",
                             help="a trained network's weights are finite: the model is damaged, or the training "
                                  "diverged; re-export it")
    if total > limits.max_constant_bytes:
        yield exceeded("max_constant_bytes", total, limits, "the model's constants")


_FLOAT_TYPES = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


def _stored_elements(t: onnx.TensorProto, itemsize: int) -> float | None:
    """How many elements ``t`` holds in the proto; None when its data live elsewhere (external, sparse)."""
    if t.data_location == 1:  # EXTERNAL
        info = {e.key: e.value for e in t.external_data}
        return int(info["length"]) // itemsize if "length" in info and info["length"].isdigit() else None
    if t.HasField("raw_data"):
        if not itemsize:
            return None
        whole, rest = divmod(len(t.raw_data), itemsize)
        return whole if not rest else len(t.raw_data) / itemsize  # a fraction never equals the declared count
    for field in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data"):
        values = getattr(t, field)
        if len(values):
            return len(values) // 2 if t.data_type in (14, 15) else len(values)  # complex: two values each
    return 0


def _finite(t: onnx.TensorProto) -> bool:
    """No NaN or Inf in ``t`` (whose stored size matches its shape); external data are checked once loaded."""
    import onnx

    if t.data_location == 1:
        return True
    try:
        return bool(np.isfinite(onnx.numpy_helper.to_array(t)).all())
    except (ValueError, TypeError):  # data onnx cannot lay out: reported as a mismatch by the caller's check
        return True


# ------------------------------------------------------------------ structure


def _structure(graph: onnx.GraphProto) -> list[Diagnostic]:
    """Self-loops, duplicate producers, undefined inputs and cycles of the main graph's nodes."""
    provided = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    producer: dict[str, str] = {}
    found: list[Diagnostic] = []
    for index, n in enumerate(graph.node):
        label = _label(n, index)
        for out in filter(None, n.output):
            if out in n.input:
                found.append(Diagnostic("ALS443", E, f"{label} reads its own output `{out}`",
                                        help="a tensor cannot be computed from itself; the model is damaged"))
            elif out in producer or out in provided:
                first = producer.get(out, "a graph input or initializer")
                found.append(Diagnostic("ALS442", E, f"{label} writes `{out}`, which {first} already provides",
                                        help="each tensor has one producer; rename one of the outputs"))
            producer.setdefault(out, label)
    if found:
        return found
    available = set(provided)
    for index, n in enumerate(graph.node):
        label = _label(n, index)
        for tensor in filter(None, n.input):
            if tensor not in available:
                if tensor in producer:
                    found.append(_order_problem(graph, label, tensor, producer[tensor]))
                else:
                    found.append(Diagnostic("ALS441", E, f"{label} reads `{tensor}`, which nothing provides",
                                            help="no node, graph input or initializer has that name: the model "
                                                 "is incomplete"))
        available.update(filter(None, n.output))
    for out in graph.output:
        if out.name not in available:
            found.append(Diagnostic("ALS441", E, f"graph output `{out.name}` is provided by nothing",
                                    help="no node, graph input or initializer has that name"))
    return found


def _label(n: onnx.NodeProto, index: int) -> str:
    return f"node `{n.name}` ({n.op_type})" if n.name else f"node {index} ({n.op_type})"


def _order_problem(graph: onnx.GraphProto, label: str, tensor: str, maker: str) -> Diagnostic:
    cycle = _cycle_through(graph, tensor)
    if cycle:
        return Diagnostic("ALS440", E, f"{label} is in a cycle: " + " -> ".join(f"`{t}`" for t in cycle),
                          help="a network's graph has no cycles; the model is damaged")
    return Diagnostic("ALS440", E, f"{label} reads `{tensor}` before {maker} produces it",
                      help="ONNX nodes are stored in topological order; re-export the model "
                           "(or sort it with onnx's tools)")


def _cycle_through(graph: onnx.GraphProto, start: str) -> list[str]:
    """Tensors on a cycle through ``start`` (depth-first, iterative), or [] if none."""
    reads: dict[str, list[str]] = {}
    for n in graph.node:
        for out in filter(None, n.output):
            reads[out] = [i for i in n.input if i]
    path, stack, seen = [start], [iter(reads.get(start, ()))], {start}
    while stack:
        nxt = next(stack[-1], None)
        if nxt is None:
            stack.pop()
            path.pop()
        elif nxt == start:
            return path + [start]
        elif nxt not in seen:
            seen.add(nxt)
            path.append(nxt)
            stack.append(iter(reads.get(nxt, ())))
    return []
