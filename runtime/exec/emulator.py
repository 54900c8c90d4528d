"""The integer emulator: a quantized graph run layer by layer on the integer kernels.

Tensors are unsigned integers in NHWC (4-D) or in ONNX's layout (other
ranks); every layer runs its kind's integer run (`alls.runtime.ops`), which
calls the kernels of `alls.runtime.kernels` with the constants
`alls.runtime.exec.quantize` derived. Float appears only at the edges:
float inputs are quantized on entry and outputs dequantized on exit (raw
integer inputs are taken as they are, as a device stream takes them).

``keep_native`` layers run in float between a dequantization of their
inputs and a quantization of their output: the mixed target that confirms
which layers carry the error.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np

from alls.graph import Graph, Layer
from alls.runtime.exec.lifetimes import Readers
from alls.runtime.exec.native import run_layer
from alls.runtime.exec.pool import each
from alls.runtime.exec.recompute import Again, Recomputed, run_seconds
from alls.runtime.exec.stream import Source, Spill, Store, part_size
from alls.runtime.ops import OPS
from alls.runtime.ops.base import Encodings, Params, QLayer, to_nhwc, to_onnx

__all__ = ["run_numeric", "accumulators", "to_nhwc", "to_onnx"]


def accumulators(layer: Layer, q: QLayer, x: np.ndarray, zero_point: int) -> np.ndarray:
    """A weighted layer's accumulators without its bias (N6): for measuring, as bias correction does."""
    accumulate = OPS[layer.kind].accumulate
    if accumulate is None:
        raise TypeError(f"layer `{layer.name}` ({layer.kind}) has no accumulators")
    return accumulate(layer, q, x, zero_point)


def _native(layer: Layer, q: QLayer, xs: list[np.ndarray], enc: Encodings, params: Params) -> np.ndarray:
    """A layer kept in float: dequantize its inputs, run it, quantize its output."""
    floats = [enc[name].dequantize(to_onnx(x)) for name, x in zip(layer.inputs, xs)]
    y = run_layer(layer, floats, params)
    return to_nhwc(q.out.quantize(y))


# A layer whose inputs and output are larger runs over its images in parts of about this size. Parts
# this small keep a kernel's temporaries (the centred, padded inputs, the accumulators) within what the
# allocator takes back and hands out again, instead of fresh memory whose pages the system zeroes on
# every part: CenterFace at 320x320, 128 images on one thread, 4.6-5.0 s of CPU in parts of 8-16 MiB
# against 6.2-8.0 s in parts of 256 MiB.
CHUNK_BYTES = 1 << 23


def _in_parts(run: Callable[[list[np.ndarray]], np.ndarray], xs: list[np.ndarray], layer: Layer) -> np.ndarray:
    """``run(xs)``, over the images in parts when its inputs and output are large, so that a
    kernel's temporaries stay within about CHUNK_BYTES; every layer treats its images independently."""
    n = xs[0].shape[0]
    if n < 2:
        return run(xs)
    size = sum(x.nbytes for x in xs) + 4 * n * math.prod(d for d in layer.output_shape[1:] if isinstance(d, int))
    if size <= CHUNK_BYTES or any(x.shape[0] != n for x in xs):
        return run(xs)
    step = max(1, n * CHUNK_BYTES // size)
    first = run([x[:step] for x in xs])
    if first.shape[0] != step:  # the layer moves the image axis (a transpose): run it whole
        return run(xs)
    out = np.empty((n, *first.shape[1:]), first.dtype)
    out[:step] = first
    _rest(run, xs, out, step, threaded=False)
    return out


Stored = np.ndarray | Source | Spill | Recomputed  # what a store's run reads


def _rest(run: Callable[[list[np.ndarray]], np.ndarray], xs: Sequence[Stored],
          out: np.ndarray | Spill, step: int, threaded: bool) -> None:
    """``out[part] = run(xs[part])`` for the parts of ``step`` images after the first: ``threaded``, a part
    a thread on the free cores (`alls.runtime.exec.pool`), else one after another, each on every thread
    its kernels take.

    A run held in memory takes its parts in turn: two integer parts at once read and write twice the
    memory of one, and the integer kernels, which split a part's rows across the threads, went faster
    (CenterFace 320, 32 images, two threads: 691 ms a layer at a time against 853 ms a part a thread,
    which took 30-40% more CPU time). A run for a store (finetune's integer pass over every image, its
    large tensors spilled to disk) takes them a part a thread, so that one part's wait for the disk is
    another's time to compute; whole finetunes over 2048 CenterFace images took 222-263 s that way and
    241-243 s in turn, within the machine's run-to-run spread."""
    def part(start: int) -> None:
        out[start:start + step] = run([x[start:start + step] for x in xs])

    starts = range(step, len(out), step)
    for _ in (each(starts, part) if threaded else map(part, starts)):
        pass


def _streamed(run: Callable[[list[np.ndarray]], np.ndarray], xs: Sequence[Stored], layer: Layer,
              store: Store, again: Again | None = None) -> np.ndarray | Spill | Recomputed:
    """``run(xs)`` over parts of images read from arrays, `Source`, `Spill` or `Recomputed` inputs, its
    output allocated by ``store`` (in memory, or beyond its budget spilled, or given ``again`` computed
    again at every read: then only its first part is run here)."""
    n = xs[0].shape[0]
    if any(x.shape[0] != n for x in xs):
        return run([np.asarray(x) for x in xs])
    image = sum(x.nbytes for x in xs) // max(n, 1) + 4 * math.prod(d for d in layer.output_shape[1:]
                                                                   if isinstance(d, int))
    step = part_size(n, image, CHUNK_BYTES)
    first = run([x[:step] for x in xs])
    if first.shape[0] != step:  # the layer moves the image axis (a transpose): run it whole
        return run([np.asarray(x) for x in xs])
    out = store.allocate((n, *first.shape[1:]), first.dtype, again)
    if isinstance(out, Recomputed):
        return out
    out[:step] = first
    del first
    _rest(run, xs, out, step, threaded=True)
    return out


def _again(layer: Layer, q: QLayer, enc: Encodings, xs: Sequence[Stored], reads: int) -> Again:
    """How a store computes ``layer``'s output again (`alls.runtime.exec.recompute`): its integer run on a
    copy of ``q`` as it is now (the constants of its first compute), over a read's images in parts of
    `CHUNK_BYTES` one after another on the reading thread."""
    def freeze() -> Callable[[list[np.ndarray]], np.ndarray]:
        frozen = copy.deepcopy(q)
        run_int = OPS[layer.kind].run_int
        return lambda parts: _in_parts(lambda ys: run_int(layer, frozen, ys, enc), parts, layer)

    elements = math.prod(d for d in layer.output_shape[1:] if isinstance(d, int))
    inputs = sum(math.prod(x.shape[1:]) for x in xs)
    return Again(freeze, tuple(xs), run_seconds(layer.macs, elements, inputs), reads)


def run_numeric(graph: Graph, qlayers: Mapping[str, QLayer], inputs: Mapping[str, np.ndarray],
                raw: bool = False, keep_native: Iterable[str] = (), taps: Iterable[str] | str | None = None,
                params: Mapping[str, Params] | None = None,
                before: Callable[[Layer, QLayer, list[np.ndarray]], None] | None = None,
                raw_out: bool = False, store: Store | None = None
                ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Run the integer graph on NCHW ``inputs`` ({input layer name: array}).

    Float inputs are quantized with each input's encoding; with ``raw`` they
    are taken as integer codes. Returns the outputs and the tapped layers,
    dequantized (``raw_out``: as their integer codes), in ONNX layout. ``before(layer, qlayer, inputs)`` is called
    before each layer runs and may change its constants (bias correction, finetune); nothing changes a
    layer's constants after it ran (a store's `Recomputed` runs it again, on a copy of them).
    Large batches run layer by layer in parts of images (`_in_parts`); only
    the layers' outputs are held whole.

    With a ``store`` (`alls.runtime.exec.stream.Store`) the run is for its ``before`` hook: inputs
    may be `Source` objects read in parts, every layer's output is allocated by the store (beyond its
    budget spilled to disk or computed again at every read, so ``before`` may see `Spill` and
    `Recomputed` inputs), and no outputs or taps are returned.
    """
    enc = {name: q.out for name, q in qlayers.items()}
    native = {graph[n].name for n in keep_native}
    wanted = {layer.name for layer in graph} if taps == "all" else {graph[t].name for t in (taps or ())}
    params = params or {}
    # the layers' outputs: arrays, or with a store also `Source` inputs, `Spill` and `Recomputed` tensors
    values: MutableMapping[str, Any] = {} if store is None else store
    in_parts: Callable[[Callable[[list[np.ndarray]], np.ndarray], list[np.ndarray], Layer], Stored] = (
        _in_parts if store is None else (lambda run, xs, layer: _streamed(run, xs, layer, store)))
    # a tensor's full reads: one by each layer that reads it, one more by ``before`` (which may read its inputs)
    reads = Counter(name for layer in graph for name in layer.inputs)
    readers = Readers(graph, keep=wanted)
    outputs: dict[str, np.ndarray] = {}
    tapped: dict[str, np.ndarray] = {}
    leave = (lambda q, y: to_onnx(y)) if raw_out else (lambda q, y: q.out.dequantize(to_onnx(y)))
    for layer in graph:
        q = qlayers[layer.name]
        if layer.kind == "input_layer":
            x = inputs[layer.name]
            def enter(xs: list[np.ndarray], q: QLayer = q) -> np.ndarray:
                return to_nhwc(np.asarray(xs[0], q.out.dtype) if raw else q.out.quantize(xs[0]))

            y = in_parts(enter, [x], layer)
        else:
            xs = [values[name] for name in layer.inputs]
            if before is not None:
                before(layer, q, xs)
            if layer.name in native:
                y = in_parts(lambda xs: _native(layer, q, xs, enc, params.get(layer.name, layer.params)), xs, layer)  # noqa: B023 (called at once)
            elif store is not None:
                y = _streamed(lambda xs: OPS[layer.kind].run_int(layer, q, xs, enc), xs, layer, store,  # noqa: B023
                              _again(layer, q, enc, xs, reads[layer.name] * (1 if before is None else 2)))
            else:
                y = in_parts(lambda xs: OPS[layer.kind].run_int(layer, q, xs, enc), xs, layer)  # noqa: B023 (called at once)
            readers.release(layer, values)
        values[layer.name] = y
        if store is not None:
            continue
        if layer.name in wanted:
            tapped[layer.name] = leave(q, y)
        if layer.kind == "output_layer":
            outputs[layer.name] = leave(q, y)
    return outputs, tapped
