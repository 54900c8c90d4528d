"""Bounded constant folding: evaluate a node of constants, within limits.

The importer folds every node whose inputs are all constant (shape
subgraphs, weights computed at export) by running it through
`onnx.reference`. The graph says what runs, so folding is where a tiny
model can ask for unbounded work: a 166-byte ConstantOfShape for
gigabytes, a Loop of 10^15 iterations. `evaluate` bounds it:

- Loop, Scan and If (control flow) and the random generators are never
  folded; they stay nodes (and the importer reports them);
- the output size is inferred before the node runs; above
  ``max_fold_elements`` the import stops with ALS025; when it cannot be
  inferred, the node is not folded;
- the run has a time budget, ``max_fold_seconds`` (ALS026), enforced by an
  interval timer when the import runs on the main thread and the timer is
  free (elsewhere the size bound is the guard);
- the outputs are checked against ``max_fold_elements`` once more.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading

import numpy as np

from alls.limits import Limits, refuse

__all__ = ["NEVER_FOLDED", "evaluate"]

NEVER_FOLDED = frozenset({"Loop", "Scan", "If", "RandomNormal", "RandomUniform", "RandomNormalLike",
                          "RandomUniformLike", "Multinomial", "Bernoulli", "Dropout"})


class _OutOfTime(Exception):
    pass


def evaluate(model, feeds: dict[str, np.ndarray], label: str, limits: Limits) -> list[np.ndarray] | None:
    """The outputs of the one-node ``model`` on ``feeds``; None when it is not folded.

    Raises `alls.limits.LimitExceeded` (ALS025, ALS026) naming ``label``.
    Any other failure of `onnx.reference` is None: the node stays a node.
    """
    from onnx.reference import ReferenceEvaluator

    node = model.graph.node[0]
    if node.op_type in NEVER_FOLDED or any(a.type in (5, 10) for a in node.attribute):  # GRAPH(S) attributes
        return None
    elements = _inferred_elements(model, feeds)
    if elements is None:
        return None
    if elements > limits.max_fold_elements:
        raise refuse("max_fold_elements", elements, limits, f"folding {label}")
    try:
        with _deadline(limits.max_fold_seconds):
            results = ReferenceEvaluator(model).run(None, feeds)
    except _OutOfTime:
        raise refuse("max_fold_seconds", f"more than {limits.max_fold_seconds:g}", limits,
                     f"folding {label}") from None
    except Exception:  # onnx.reference raises whatever its kernels raise: not folded
        return None
    produced = sum(int(np.size(r)) for r in results)
    if produced > limits.max_fold_elements:
        raise refuse("max_fold_elements", produced, limits, f"folding {label}")
    return [np.asarray(r) for r in results]


def _inferred_elements(model, feeds: dict[str, np.ndarray]) -> int | None:
    """Elements of all outputs as ONNX shape inference predicts them from the constant inputs; None if unknown."""
    import onnx

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    graph = probe.graph
    for name, value in feeds.items():
        graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(value), name))
    try:
        inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=False, data_prop=True)
    except Exception:
        return None
    shapes = {vi.name: vi.type.tensor_type.shape for vi in list(inferred.graph.output) + list(inferred.graph.value_info)}
    total = 0
    for out in model.graph.node[0].output:
        if not out:
            continue
        shape = shapes.get(out)
        if shape is None or not all(d.HasField("dim_value") for d in shape.dim):
            return None
        total += math.prod(max(d.dim_value, 0) for d in shape.dim)
    return total


@contextlib.contextmanager
def _deadline(seconds: float):
    """Raise `_OutOfTime` in the block after ``seconds``, where a timer can be used without disturbing anyone:
    on the main thread, with no SIGALRM handler and no interval timer of the host's."""
    usable = (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
              and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
              and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0))
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise _OutOfTime()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
