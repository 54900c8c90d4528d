"""The float executor: a layer graph run in float32, layer by layer (NCHW).

This is the `native` target: the network as imported (batch norms folded,
activations fused), which must equal onnxruntime on the original model.
It is also what calibration observes, and, with changed parameters, the
`fp_optimized` target. Each layer kind's float run lives in its module of
`alls.runtime.ops`.

`run_float(graph, inputs, params=None, taps=None)` returns the outputs and
the tapped layers' tensors by layer name. ``params`` replaces the
parameters of some layers (``{layer name: {"weight": ..., "bias": ...}}``),
which is how float-domain changes such as equalization are run.

What a run does per layer is worked out once per graph and set of tapped layers
(`_schedule`: each layer's inputs, the tensors no later layer reads, whether it
is tapped or an output) and kept while the graph lives, so that a small network's
run is its layers' work and little else; nothing of it depends on the
parameters, which are read on every run.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from alls.graph import Graph, Layer
from alls.plan import Activation
from alls.runtime.ops import OPS
from alls.runtime.ops.activation import ACTIVATIONS, activate_in_place, activation

__all__ = ["run_float", "run_layer", "activation", "ACTIVATIONS"]

Array = np.ndarray


def run_layer(layer: Layer, xs: list[Array], params: Mapping[str, Array] | None = None,
              observe: Callable[[Layer, Array, Array], None] | None = None) -> Array:
    """One layer in float32, its fused activation included.

    ``observe(layer, before, after)`` sees the tensor before and after the
    fused activation (calibration needs both for table activations).
    """
    p = params if params is not None else layer.params
    op = OPS.get(layer.kind)
    if op is None or not layer.supported:
        from alls.diagnostics import AllsError

        raise AllsError.of("ALS510", f"no kernel for op `{layer.op}` (layer `{layer.name}`)",
                           "`alls layers MODEL` marks the unsupported layers")
    if observe is None and op.run_fused is not None and op.fuses_activation(layer):
        return op.run_fused(layer, xs, p)  # nobody sees the tensor before its activation: one pass
    before = op.run(layer, xs, p)
    if type(before) is not np.ndarray or before.dtype != np.float32:
        before = np.asarray(before, dtype=np.float32)
    if layer.kind == "output_layer" or layer.activation in (None, Activation.LINEAR):
        after = before
    elif observe is None and _owns(before, xs, p) and activate_in_place(layer, before):
        return before  # nobody sees the tensor before its activation: it becomes the output
    else:
        after = np.asarray(activation(layer, before, p), dtype=np.float32)
    if observe is not None:
        observe(layer, before, after)
    return after


def _owns(y: Array, xs: list[Array], params: Mapping[str, Array]) -> bool:
    """Whether ``y`` is memory of its own, no view of an input or a parameter (which may be changed)."""
    return not any(np.may_share_memory(y, x) for x in xs) and \
        not any(isinstance(v, np.ndarray) and np.may_share_memory(y, v) for v in params.values())


@dataclass(frozen=True)
class _Step:
    """One layer of a run: what it reads, what is dropped after it, where its tensor goes."""

    layer: Layer
    inputs: tuple[str, ...]
    drop: tuple[str, ...]  # the tensors this layer reads last (and nobody taps)
    tapped: bool
    output: bool


_schedules: weakref.WeakKeyDictionary[Graph, dict[frozenset[str], tuple[_Step, ...]]] = weakref.WeakKeyDictionary()
_schedules_lock = threading.Lock()


def _schedule(graph: Graph, wanted: frozenset[str]) -> tuple[_Step, ...]:
    """The steps of a run of ``graph`` tapping ``wanted``, made on the first run and kept with the graph."""
    with _schedules_lock:
        kept = _schedules.setdefault(graph, {})
        steps = kept.get(wanted)
        if steps is None:
            last = {name: i for i, layer in enumerate(graph) for name in layer.inputs}
            steps = kept[wanted] = tuple(
                _Step(layer, tuple(layer.inputs),
                      tuple(name for name in dict.fromkeys(layer.inputs) if last[name] == i and name not in wanted),
                      layer.name in wanted, layer.kind == "output_layer")
                for i, layer in enumerate(graph))
        return steps


def run_float(graph: Graph, inputs: Mapping[str, Array] | Array, params: Mapping[str, Mapping[str, Array]] | None = None,
              taps: Iterable[str] | str | None = None,
              observe: Callable[[Layer, Array, Array], None] | None = None) -> tuple[dict[str, Array], dict[str, Array]]:
    """Run ``graph`` in float32 on NCHW ``inputs`` (one array, or {input layer or ONNX name: array}).

    Returns ``(outputs, tapped)``: the output layers' tensors by output layer
    name, and the tensors of the ``taps`` layers ("all" for every layer).
    ``observe`` is called for every layer (inputs included) with the tensor
    before and after its activation.
    """
    from alls.runtime.kernels._parallel import scoped, set_budget

    if scoped() is None:  # outside a runtime call: Numba's count, asked once for the run, not per kernel call
        import numba

        outer = set_budget(numba.get_num_threads())
        try:
            return run_float(graph, inputs, params, taps, observe)
        finally:
            set_budget(outer)
    feeds = _feeds(graph, inputs)
    params = params or {}
    if taps == "all":
        wanted = frozenset(layer.name for layer in graph)
    else:
        wanted = frozenset(graph[t].name for t in (taps or ()))
    values: dict[str, Array] = {}
    outputs: dict[str, Array] = {}
    tapped: dict[str, Array] = {}
    for step in _schedule(graph, wanted):
        layer = step.layer
        name = layer.name
        if step.inputs:
            y = run_layer(layer, [values[n] for n in step.inputs], params.get(name), observe)
            for n in step.drop:
                del values[n]
        elif layer.kind == "input_layer":
            y = feeds[name]
            if observe is not None:
                observe(layer, y, y)
        else:
            y = run_layer(layer, [], params.get(name), observe)
        values[name] = y
        if step.tapped:
            tapped[name] = y
        if step.output:
            outputs[name] = y
    return outputs, tapped


def _feeds(graph: Graph, inputs: Mapping[str, Array] | Array) -> dict[str, Array]:
    layers = graph.inputs
    if isinstance(inputs, np.ndarray):
        if len(layers) != 1:
            raise ValueError(f"the model has {len(layers)} inputs; pass a dict {{name: array}}")
        return {layers[0].name: inputs.astype(np.float32, copy=False)}
    feeds: dict[str, Array] = {}
    for key, value in inputs.items():
        layer = graph.get(key)
        if layer is None or layer.kind != "input_layer":
            raise KeyError(f"`{key}` is not an input of `{graph.name}`")
        feeds[layer.name] = np.asarray(value, dtype=np.float32)
    missing = [layer.name for layer in layers if layer.name not in feeds]
    if missing:
        raise KeyError(f"no data for the input{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    return feeds
