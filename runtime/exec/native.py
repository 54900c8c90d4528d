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
run is its layers' work and little else. With it are kept the layers prepared
once (`Op.prepare`: the kernel and what it needs bound, packed weights and a plan
per input shape), each with the parameter mapping and arrays it was made for: a
run whose parameters are other arrays (``params``, or a layer's own replaced)
prepares the layer again, and the prepared calls read the arrays, so values
changed in place are run. A run with ``observe`` takes the unprepared path.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain
from operator import is_

import numpy as np

from alls.graph import Graph, Layer
from alls.plan import Activation
from alls.runtime.exec.pool import each
from alls.runtime.exec.stream import blocks
from alls.runtime.ops import OPS
from alls.runtime.ops.activation import ACTIVATIONS, activate_in_place, activation

__all__ = ["run_float", "run_layer", "part_images", "activation", "ACTIVATIONS", "PART_BYTES"]

Array = np.ndarray


def run_layer(layer: Layer, xs: list[Array], params: Mapping[str, Array] | None = None,
              observe: Callable[[Layer, Array, Array], None] | None = None, spare: tuple[int, ...] = ()) -> Array:
    """One layer in float32, its fused activation included.

    ``observe(layer, before, after)`` sees the tensor before and after the
    fused activation (calibration needs both for table activations).
    ``spare``: the positions of the inputs whose memory the layer may write
    its result into (nobody reads them afterwards), for the kinds whose
    `Op.overwrites`; by default none. Without ``observe``, a kind that
    applies the activation as it writes its outputs (`Op.run_activated`:
    the conv) runs so, each output written once.
    """
    p = _params(layer, params)
    op = OPS.get(layer.kind)
    if op is None or not layer.supported:
        from alls.diagnostics import AllsError

        raise AllsError.of("ALS510", f"no kernel for op `{layer.op}` (layer `{layer.name}`)",
                           "`alls layers MODEL` marks the unsupported layers")
    if observe is None and op.run_activated is not None and layer.activation not in (None, Activation.LINEAR):
        fused = op.run_activated(layer, xs, p)  # the activation applied as the outputs are written
        if fused is not None:
            return fused
    before = op.run(layer, xs, p, spare) if spare and op.overwrites else op.run(layer, xs, p)
    if type(before) is not np.ndarray or before.dtype != np.float32:
        before = np.asarray(before, dtype=np.float32)
    if layer.kind == "output_layer" or layer.activation in (None, Activation.LINEAR):
        after = before
    elif observe is None and _owns(before, _kept(xs, spare), p) and activate_in_place(layer, before):
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


def _params(layer: Layer, params: Mapping[str, Array] | None) -> Mapping[str, Array]:
    return params if params is not None else layer.params


def _kept(xs: list[Array], spare: tuple[int, ...]) -> list[Array]:
    """The inputs a layer must leave as they are: all but the ``spare`` ones."""
    return [x for i, x in enumerate(xs) if i not in spare] if spare else xs


@dataclass(frozen=True)
class _Step:
    """One layer of a run: what it reads, what is dropped after it, where its tensor goes."""

    layer: Layer
    inputs: tuple[str, ...]
    drop: tuple[str, ...]  # the tensors this layer reads last (and nobody taps)
    tapped: bool
    output: bool
    offer: tuple[int, ...] = ()  # the positions of the dropped inputs, when the layer's kind overwrites
    watch: bool = False  # the tensor is offered to a later layer: whether it is memory of its own is kept
    prepare: Prepare | None = None  # the kind's `Op.prepare`, where it has one
    passes: bool = False  # an output layer without activation: its input is its tensor (`_plain`)
    row: Row = field(init=False, repr=False, compare=False)  # what `_plain` reads, in one tuple

    def __post_init__(self) -> None:
        flow = _PREPARED if self.prepare is not None else _PASSES if self.passes else _GENERAL
        object.__setattr__(self, "row", (self.layer, self.layer.params, self.layer.name, self.inputs, self.drop,
                                         self.watch, self.output, flow))


# How `_plain` runs a step: its prepared call, its input as it is (`_Step.passes`), or `run_layer`
_GENERAL, _PREPARED, _PASSES = 0, 1, 2
Row = tuple[Layer, Mapping[str, Array], str, tuple[str, ...], tuple[str, ...], bool, bool, int]


Prepare = Callable[[Layer, Mapping[str, Array]], Callable[[list[Array]], Array] | None]
# A layer prepared for some parameters (`Op.prepare`): the mapping and its values, by identity, and the call
Prepared = tuple[Mapping[str, Array], tuple[Array, ...], Callable[[list[Array]], Array] | None]


# the steps, the graph's input layer where it has one, and each step's prepared layer
Schedule = tuple[tuple[_Step, ...], str | None, list[Prepared | None]]
_schedules: weakref.WeakKeyDictionary[Graph, dict[frozenset[str], Schedule]] = weakref.WeakKeyDictionary()
_schedules_lock = threading.Lock()
_last: tuple[Callable[[], Graph | None], frozenset[str], Schedule] = (lambda: None, frozenset(), ((), None, []))


def _schedule(graph: Graph, wanted: frozenset[str]) -> Schedule:
    """The steps of a run of ``graph`` tapping ``wanted``, made on the first run and kept with the graph,
    and the name of its one input layer (None when it has none or several)."""
    global _last
    last = _last
    if last[0]() is graph and last[1] == wanted:  # the same graph and taps as the last run: no lock, no lookup
        return last[2]
    found = _scheduled(graph, wanted)
    _last = (weakref.ref(graph), wanted, found)
    return found


def _scheduled(graph: Graph, wanted: frozenset[str]) -> Schedule:
    with _schedules_lock:
        kept = _schedules.setdefault(graph, {})
        found = kept.get(wanted)
        if found is None:
            last = {name: i for i, layer in enumerate(graph) for name in layer.inputs}
            drops = [tuple(name for name in dict.fromkeys(layer.inputs) if last[name] == i and name not in wanted)
                     for i, layer in enumerate(graph)]
            offers = [_offers(layer, drop) for layer, drop in zip(graph, drops)]
            offered = {layer.inputs[k] for layer, offer in zip(graph, offers) for k in offer}
            steps = tuple(
                _Step(layer, tuple(layer.inputs), drop, layer.name in wanted, layer.kind == "output_layer", offer,
                      layer.name in offered, _preparer(layer), _passes(layer))
                for layer, drop, offer in zip(graph, drops, offers))
            inputs = graph.inputs
            found = kept[wanted] = steps, inputs[0].name if len(inputs) == 1 else None, [None] * len(steps)
        return found


def _passes(layer: Layer) -> bool:
    """Whether ``layer`` gives its one input as it is (`run_layer` of a float32 array): an output layer
    without activation."""
    return layer.kind == "output_layer" and layer.activation in (None, Activation.LINEAR) and \
        len(layer.inputs) == 1 and layer.supported and "output_layer" in OPS


def _preparer(layer: Layer) -> Prepare | None:
    op = OPS.get(layer.kind)
    return op.prepare if op is not None and layer.supported and not op.overwrites and layer.inputs else None


def _prepared(step: _Step, kept: list[Prepared | None], k: int,
              p: Mapping[str, Array]) -> Callable[[list[Array]], Array] | None:
    """Step ``k``'s layer prepared for the parameters ``p`` (None: its kind takes the unprepared path for
    them), kept while ``p`` is the same mapping of the same arrays and made again otherwise: the
    prepared call reads the arrays, so values changed in place are run."""
    entry = kept[k]
    if entry is None or entry[0] is not p or len(entry[1]) != len(p) or not all(map(is_, entry[1], p.values())):
        assert step.prepare is not None
        entry = kept[k] = p, tuple(p.values()), step.prepare(step.layer, p)
    return entry[2]


# ------------------------------------------------------- reuse of dead tensors
#
# A layer whose kind overwrites (`Op.overwrites`: the elementwise kinds) may write its result into an
# input that no later layer reads, instead of fresh memory (which costs a page fault a page). The
# schedule offers the inputs a layer reads last and nobody taps; a run gives one only when the tensor
# is memory of its own (made by its layer, no view of an input, a parameter or a feed) and no other
# tensor the run or its caller holds (live tensors, taps, outputs, feeds) shares its memory. A run
# with ``observe`` overwrites nothing: the observer may keep what it sees.


def _offers(layer: Layer, drop: tuple[str, ...]) -> tuple[int, ...]:
    op = OPS.get(layer.kind)
    if op is None or not op.overwrites or not layer.supported:
        return ()
    return tuple(k for k, name in enumerate(layer.inputs) if name in drop)


def _spare(step: _Step, xs: list[Array], values: Mapping[str, Array], held: list[Array],
           fresh: set[str]) -> tuple[int, ...]:
    """Of the inputs ``step`` offers, those its layer may overwrite: memory of their own (``fresh``)
    that no other tensor of the run (``values``) nor anything the caller gets or gave (``held``) shares."""
    return tuple(k for k in step.offer if step.inputs[k] in fresh and not any(
        v is not xs[k] and np.may_share_memory(xs[k], v) for v in chain(values.values(), held)))


def run_float(graph: Graph, inputs: Mapping[str, Array] | Array, params: Mapping[str, Mapping[str, Array]] | None = None,
              taps: Iterable[str] | str | None = None,
              observe: Callable[[Layer, Array, Array], None] | None = None,
              watch: Callable[[Layer, Array], None] | None = None) -> tuple[dict[str, Array], dict[str, Array]]:
    """Run ``graph`` in float32 on NCHW ``inputs`` (one array, or {input layer or ONNX name: array}).

    Returns ``(outputs, tapped)``: the output layers' tensors by output layer
    name, and the tensors of the ``taps`` layers ("all" for every layer).
    ``observe`` is called for every layer (inputs included) with the tensor
    before and after its activation; the run then makes both (no activation
    applied as a conv writes its outputs) and overwrites nothing. ``watch``
    is called for every layer with its output only, as the run makes it: the
    run stays as fast as without it, and may later write another layer's
    result into that memory, so a watcher copies what it keeps.
    """
    if not _threads:
        from alls.runtime.kernels._parallel import UNASKED, scoped as _scoped, set_budget as _set_budget

        _threads.append((_scoped, _set_budget, UNASKED))
    scoped, budget, unasked = _threads[0]
    plain = observe is None and watch is None and not taps
    if scoped() is not None:
        return _in_parts(graph, inputs, params) if plain else _run(graph, inputs, params, taps, observe, watch)
    # outside a runtime call: Numba's count, asked once for the run by the first kernel call that needs it
    # (`_parallel.UNASKED`: none does on a small network), not per kernel call
    outer = budget(unasked)
    try:
        return _in_parts(graph, inputs, params) if plain else _run(graph, inputs, params, taps, observe, watch)
    finally:
        budget(outer)


# ------------------------------------------------------------- a batch in parts
#
# A tensor above glibc's mmap threshold (at most 32 MiB) is fresh memory on every allocation, each of
# its pages zeroed by the system on first touch; one within it comes back to the allocator when it
# dies and is handed out again to the next layers. A plain run (no taps, no observer, no watcher: only
# the outputs come back) therefore takes a large batch a few images at a time, as many as keep its
# largest layer output within `PART_BYTES`, and joins the outputs. Every layer treats its images
# apart, so the outputs are the whole batch's to float32 rounding: the same bits but where BLAS sums
# a dense layer's product in an order that follows the batch's size, as it does between any two
# batch sizes (1e-6 relative on the digits CNN's logits). CenterFace at 320x320, one thread, 8 images:
# 25.4-26.8 ms an image in parts, 29.5-36.3 ms as one batch.

PART_BYTES = 1 << 23
_largest: weakref.WeakKeyDictionary[Graph, int | None] = weakref.WeakKeyDictionary()


def _largest_output(graph: Graph) -> int | None:
    """Bytes of an image's largest layer output (float32), worked out once a graph; None where a
    layer's size is not fixed (a free height or width)."""
    largest = _largest.get(graph, -1)  # (one lookup: a weak key costs a reference made and dropped)
    if largest != -1:
        return largest
    largest = 1
    for layer in graph:
        dims = layer.output_shape[1:]
        if not all(isinstance(d, int) for d in dims):
            largest = None
            break
        largest = max(largest or 1, 4 * int(np.prod(dims)))
    _largest[graph] = largest
    return largest


def part_images(graph: Graph) -> int | None:
    """Images whose largest layer output stays within `PART_BYTES` (at least 1), or None where a
    layer's size is not fixed."""
    largest = _largest_output(graph)
    return None if largest is None else max(1, PART_BYTES // largest)


def _in_parts(graph: Graph, inputs: Mapping[str, Array] | Array,
              params: Mapping[str, Mapping[str, Array]] | None) -> tuple[dict[str, Array], dict[str, Array]]:
    """A plain run, over parts of `PART_BYTES` of the largest output (`stream.blocks`) when the batch
    is larger; the outputs joined (the whole batch at once where an output does not keep the image axis)."""
    largest = _largest_output(graph)
    if isinstance(inputs, np.ndarray):
        n = len(inputs) if inputs.ndim else 0
        if not params and largest is not None and n * largest <= PART_BYTES:  # `_run`'s plain run, straight
            steps, only, kept = _schedule(graph, _UNTAPPED)
            if only is not None:
                return _plain(steps, kept, _feeds(graph, inputs, only)), {}
    else:
        counts = {len(x) if x.ndim else 0 for x in map(np.asarray, inputs.values())}
        n = counts.pop() if len(counts) == 1 else 0
    if largest is None or n * largest <= PART_BYTES:
        return _run(graph, inputs, params, None, None, None)
    feeds = _feeds(graph, inputs, graph.inputs[0].name if len(graph.inputs) == 1 else None)

    def run(part: slice) -> dict[str, Array]:
        return _run(graph, {k: x[part] for k, x in feeds.items()}, params, None, None, None)[0]

    slices = list(blocks(n, largest, PART_BYTES))
    first = run(slices[0])
    if any(y.ndim == 0 or len(y) != slices[0].stop for y in first.values()):
        return _run(graph, feeds, params, None, None, None)
    parts = [first, *each(slices[1:], run)]  # the rest on the free cores, a part a thread
    return {name: np.concatenate([part[name] for part in parts]) for name in first}, {}


# `_parallel`'s scope, its budget's setter and its unasked budget, imported on the first run (Numba is loaded
# then), then at hand
_threads: list[tuple[Callable[[], int | None], Callable[[int | None], int | None], int]] = []
_UNTAPPED: frozenset[str] = frozenset()  # a run's taps when it has none (made once)


def _run(graph: Graph, inputs: Mapping[str, Array] | Array, params: Mapping[str, Mapping[str, Array]] | None,
         taps: Iterable[str] | str | None, observe: Callable[[Layer, Array, Array], None] | None,
         watch: Callable[[Layer, Array], None] | None) -> tuple[dict[str, Array], dict[str, Array]]:
    if taps == "all":
        wanted = frozenset(layer.name for layer in graph)
    else:
        wanted = frozenset(graph[t].name for t in (taps or ())) if taps else _UNTAPPED
    steps, first, kept = _schedule(graph, wanted)
    feeds = _feeds(graph, inputs, first)
    if observe is None and watch is None and not wanted and not params:
        return _plain(steps, kept, feeds), {}
    params = params or {}
    values: dict[str, Array] = {}
    outputs: dict[str, Array] = {}
    tapped: dict[str, Array] = {}
    held: list[Array] = list(feeds.values())  # what the caller holds
    fresh: set[str] = set()  # tensors of their own memory
    for k, step in enumerate(steps):
        layer = step.layer
        name = layer.name
        if step.prepare is not None and observe is None:  # the layer as prepared: its kernel calls alone
            p = params.get(name) if params else None
            if p is None:
                p = layer.params
            run = _prepared(step, kept, k, p)
            if run is not None:
                y = values[name] = run([values[n] for n in step.inputs])
                if step.watch:
                    fresh.add(name)  # a prepared call's output is memory of its own
                for n in step.drop:
                    del values[n]
                if watch is not None:
                    watch(layer, y)
                if step.tapped or step.output:
                    _hand(step, y, tapped, outputs, held)
                continue
        if step.inputs:
            xs = list(map(values.__getitem__, step.inputs))
            spare = _spare(step, xs, values, held, fresh) if step.offer and observe is None else ()
            y = run_layer(layer, xs, params.get(name), observe, spare)
            if step.watch and _owns(y, _kept(xs, spare), _params(layer, params.get(name))):
                fresh.add(name)
            for n in step.drop:
                del values[n]
        elif layer.kind == "input_layer":
            y = feeds[name]
            if observe is not None:
                observe(layer, y, y)
        else:
            y = run_layer(layer, [], params.get(name), observe)
        values[name] = y
        if watch is not None:
            watch(layer, y)
        if step.tapped or step.output:
            _hand(step, y, tapped, outputs, held)
    return outputs, tapped


def _plain(steps: tuple[_Step, ...], kept: list[Prepared | None], feeds: dict[str, Array]) -> dict[str, Array]:
    """`_run` of a plain run (no taps, observer, watcher or replaced parameters): the same steps, with
    only what such a run needs looked at, since on a small network the executor's own work a layer
    is as much as a layer's kernel (`_prepared`'s test inline: a call a layer less). Returns the outputs."""
    values: dict[str, Array] = dict(feeds)
    outputs: dict[str, Array] = {}
    held: list[Array] = list(feeds.values())
    fresh: set[str] = set()
    for k, step in enumerate(steps):
        layer, p, name, inputs, drop, watch, output, flow = step.row  # (p: the frozen layer's own mapping)
        if flow == _PREPARED:
            entry = kept[k]
            if entry is not None and entry[0] is p and len(entry[1]) == len(p) and all(map(is_, entry[1], p.values())):
                run = entry[2]
            else:
                run = _prepared(step, kept, k, p)
            if run is not None:
                y = values[name] = run([values[inputs[0]]] if len(inputs) == 1 else [values[n] for n in inputs])
                if watch:
                    fresh.add(name)
                for n in drop:
                    del values[n]
                if output:
                    outputs[name] = y
                    held.append(y)
                continue
        elif flow == _PASSES:  # an output layer: its input as it is
            y = values[inputs[0]]
            if type(y) is np.ndarray and y.dtype == np.float32:
                for n in drop:
                    del values[n]
                values[name] = outputs[name] = y
                held.append(y)
                continue
        if not step.inputs:
            y = values[layer.name] if layer.kind == "input_layer" else run_layer(layer, [])
        else:
            xs = list(map(values.__getitem__, step.inputs))
            spare = _spare(step, xs, values, held, fresh) if step.offer else ()
            y = run_layer(layer, xs, None, None, spare)
            if step.watch and _owns(y, _kept(xs, spare), layer.params):
                fresh.add(layer.name)
            for n in step.drop:
                del values[n]
        values[layer.name] = y
        if step.output:
            outputs[layer.name] = y
            held.append(y)
    return outputs


def _hand(step: _Step, y: Array, tapped: dict[str, Array], outputs: dict[str, Array], held: list[Array]) -> None:
    """A tapped or output layer's tensor to the caller (which then holds it)."""
    if step.tapped:
        tapped[step.layer.name] = y
    if step.output:
        outputs[step.layer.name] = y
    held.append(y)


def _feeds(graph: Graph, inputs: Mapping[str, Array] | Array, first: str | None) -> dict[str, Array]:
    """The inputs by input layer name; ``first``: the graph's one input layer, None if it has several."""
    if isinstance(inputs, np.ndarray) and first is not None:
        return {first: inputs if inputs.dtype == np.float32 else inputs.astype(np.float32)}
    layers = graph.inputs
    if isinstance(inputs, np.ndarray):
        raise ValueError(f"the model has {len(layers)} inputs; pass a dict {{name: array}}")
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
