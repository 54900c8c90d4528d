"""Constant folding: the nodes whose outputs are known before any image is seen.

A node folds when every input is a constant (initializers, Constant nodes, earlier folded nodes),
or when it only reads the *shape* of a tensor whose shape is static (Shape, Size). With a static
input shape, export-time shape arithmetic (Shape -> Gather -> Unsqueeze -> Concat -> Reshape,
ConstantOfShape, Expand, Range, Cast, Floor, Div ...) folds away entirely, so Reshape, Resize,
Expand and Slice see constant targets.

`fold_node` is the one place folding is decided: it is asked of each node as the importer reaches
it, after the layers before it have their shapes, so a chain that reads the shape of an earlier
computed reshape folds too.

It is bounded, because the graph says what runs and a tiny model can ask for unbounded work (a
166-byte ConstantOfShape for gigabytes, a Loop of 10^15 trips), by the `alls.Limits` it is given:

- Loop, Scan, If and the random generators are never folded; they stay nodes, and the importer
  reports them like any node it cannot make a layer of;
- the output size is worked out before the node runs (from the shape it is given for
  ConstantOfShape, Expand, Range and Tile; by ONNX shape inference for the ops whose output can
  outgrow their inputs); above ``max_fold_elements`` the node is not run and stays a node, and the
  importer records ALS025 (an error) naming it; a node whose size cannot be worked out is not folded;
- the run has a time budget, ``max_fold_seconds`` (ALS026, recorded the same way), kept by an interval timer when the
  import runs on the main thread and the host has no SIGALRM of its own;
- the outputs are checked against ``max_fold_elements`` once more.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import numpy as np
from numpy.typing import NDArray

from alls.limits import DEFAULT, Limits, refuse

if TYPE_CHECKING:
    import onnx

__all__ = ["MAX_FOLDED_ELEMENTS", "NEVER_FOLDED", "fold_node"]

MAX_FOLDED_ELEMENTS = 1 << 22  # 4M values (16 MiB of float32): a Constant node larger than this stays a node
NEVER_FOLDED = ("Dropout", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                "Bernoulli", "Loop", "Scan", "If", "SequenceMap")
_NOT_FOLDED = NEVER_FOLDED
# Ops whose output can hold more elements than all their inputs together: sized by shape inference first.
_GROWING = {"Resize", "Upsample", "Pad", "OneHot", "EyeLike", "MatMul", "Gemm", "Einsum", "ConvTranspose", "Conv",
            "Gather", "GatherElements", "GatherND", "Col2Im", "CenterCropPad", "Trilu", "DepthToSpace",
            "SpaceToDepth", "MatMulInteger", "QLinearMatMul", "DFT", "STFT", "MelWeightMatrix", "BlackmanWindow",
            "HannWindow", "HammingWindow"}
_CONST_DTYPES = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
                 "value_ints": np.int64}


class FoldNode(Protocol):
    """What folding reads of a node (the importer's nodes)."""

    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any]


Array = NDArray[Any]


def fold_node(node: FoldNode, consts: dict[str, Array], value_of: Callable[[str], Array | None],
              shape_of: Callable[[str], tuple[int, ...] | None], opset: int, limits: Limits = DEFAULT) -> bool:
    """Fold ``node`` (``op``, ``inputs``, ``outputs``, ``attrs``) into ``consts`` if its outputs are
    constant now; True when folded. ``value_of`` gives a tensor's constant value (or None),
    ``shape_of`` its static shape (or None). Raises `alls.limits.LimitExceeded` (ALS025, ALS026)
    naming the node when folding it would pass ``limits``."""
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
    if any(_is_graph(v) for v in node.attrs.values()):
        return False  # a subgraph attribute: control flow, never folded
    feeds = {i: v for i, v in zip(node.inputs, values) if i and v is not None}  # every named one is (above)
    label = f"node `{node.name}` ({node.op})" if getattr(node, "name", "") else f"a {node.op} node"
    size = _output_size(node, values, feeds, opset)
    if size is None:
        return False  # a malformed shape, or one inference cannot tell: the layer pass reports the node
    if size > limits.max_fold_elements:
        raise refuse("max_fold_elements", int(size), limits, f"folding {label}")
    results = _evaluate(node, feeds, opset, limits, label)
    if results is None:
        return False
    produced = sum(int(np.size(r)) for r in results)
    if produced > limits.max_fold_elements:
        raise refuse("max_fold_elements", produced, limits, f"folding {label}")
    for name, value in zip(node.outputs, results):
        consts[name] = np.asarray(value)
    return True


def _output_size(node: FoldNode, values: list[Any], feeds: dict[str, Array], opset: int) -> float | None:
    """Elements the node's outputs will hold, worked out before it runs; None when that cannot be told.
    ``values`` are the inputs' arrays (None for an absent optional input), as `fold_node` read them."""
    try:
        if node.op == "ConstantOfShape":
            return float(np.prod(values[0].astype(np.float64)))
        if node.op == "Expand":
            shape = np.broadcast_shapes(tuple(values[0].shape), tuple(int(d) for d in values[1].reshape(-1)))
            return float(np.prod(shape, dtype=np.float64))
        if node.op == "Range":
            start, limit, delta = (float(np.asarray(v).reshape(-1)[0]) for v in values[:3])
            return math.inf if delta == 0 else max(0.0, math.ceil((limit - start) / delta))
        if node.op == "Tile":
            return float(values[0].size * float(np.prod(values[1].astype(np.float64))))
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if node.op in _GROWING:
        return _inferred_size(node, feeds, opset)
    return float(sum(v.size for v in values if v is not None))


def _one_node_model(node: FoldNode, inputs: dict[str, Array], opset: int) -> onnx.ModelProto:
    import onnx

    attrs = {k: onnx.numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v for k, v in node.attrs.items()}
    proto = onnx.helper.make_node(node.op, node.inputs, node.outputs, **attrs)
    vi = [onnx.helper.make_tensor_value_info(i, onnx.helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
          for i, v in inputs.items()]
    outputs = [onnx.helper.make_empty_tensor_value_info(o) for o in node.outputs]
    graph = onnx.helper.make_graph([proto], "fold", vi, outputs)
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", max(opset, 9))])


def _inferred_size(node: FoldNode, feeds: dict[str, Array], opset: int) -> float | None:
    """Elements of the outputs as ONNX shape inference predicts them from the constant inputs."""
    import onnx

    try:
        model = _one_node_model(node, feeds, opset)
        for name, value in feeds.items():
            model.graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(value), name))
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # inference raises what its op checks raise
        return None
    shapes = {vi.name: vi.type.tensor_type.shape for vi in [*inferred.graph.output, *inferred.graph.value_info]}
    total = 0.0
    for out in filter(None, node.outputs):
        shape = shapes.get(out)
        if shape is None or not all(d.HasField("dim_value") for d in shape.dim):
            return None
        total += float(np.prod([max(d.dim_value, 0) for d in shape.dim], dtype=np.float64))
    return total


def _is_graph(value: object) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_is_graph(v) for v in value)
    return type(value).__name__ == "GraphProto"


class _OutOfTime(BaseException):  # not an Exception: onnx.reference's own handlers must not swallow it
    pass


def _evaluate(node: FoldNode, inputs: dict[str, Array], opset: int, limits: Limits = DEFAULT,
              label: str = "") -> list[Any] | None:
    """The node's outputs by `onnx.reference`, within the time budget; None when it cannot compute them (a
    custom op)."""
    from onnx.reference import ReferenceEvaluator

    try:  # onnx.reference raises whatever its kernels raise
        model = _one_node_model(node, inputs, opset)
        with _deadline(limits.max_fold_seconds):
            return list(ReferenceEvaluator(model).run(None, inputs))  # a list (all outputs, in order)
    except _OutOfTime:
        raise refuse("max_fold_seconds", f"more than {limits.max_fold_seconds:g}", limits,
                     f"folding {label or node.op}") from None
    except Exception:
        return None


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise `_OutOfTime` in the block after ``seconds``, where a timer disturbs no one: on the main
    thread, with no SIGALRM handler and no interval timer of the host's."""
    usable = (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
              and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
              and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0))
    if not usable:
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> NoReturn:
        raise _OutOfTime()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
