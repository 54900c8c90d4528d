"""post_quantization_optimization(finetune | adaround): layer-wise reconstruction of the integer layers.

Both algorithms walk the integer network in topological order over their images and, before each
layer the plan flags, train it against the float network, then write what they learned into its
integer constants; the layer then runs on the existing kernels, bit-exactly, and the next layer is
trained on the outputs of the layers already trained ("asymmetric reconstruction": the quantized
upstream as input, the float layer's output as target). The model of one layer, its objective
and its schedule are in `alls.runtime.algorithms.reconstruct`; the rows it trains on in `alls.runtime.algorithms.patches`.

**adaround** learns the rounding only (AdaRound, Nagel et al. 2020): every weight rounds up or
down, ``w̃ = s·clip(⌊w/s⌋ + h(V), −W, W)``, with the rectified sigmoid h, the regulariser
``weight·Σ(1 − |2h − 1|^β)`` switched on after the ``warmup`` share of the steps, β annealed
linearly over ``b_range`` (from its high end to its low end; [2, 20] when not given), Adam at
``learning_rate`` on V. The loss is the reconstruction error summed over the output channels and
averaged over positions, relative to the target's mean square (the paper's MSE on a layer whose
outputs have unit mean square, the scale its λ = 0.01 was chosen for). ``mode`` is already in the
plan (train_4bit: only the 4-bit layers are flagged).

**finetune** is a layer-wise QFT: it learns the rounding as adaround does, and jointly the bias
and, with ``train_scales``, one weight-scale factor per quantization group (so every trained
point is a scale the integer layer can hold: the multiplier is re-derived from it). Its rounding
regulariser has adaround's weight, warm-up and β range as the plan holds them (the finetune
command has no keywords for them: adaround's keywords set them, its defaults otherwise). Beyond adaround:
- the loss of a layer is ``def_loss_type`` (l2rel by default), or, for a layer named in
  ``loss_layer_names`` (or the weighted layer that feeds a named output, pool or other layer
  without weights; every weighted producer of a layer with several inputs), the type and factor
  given for it; the factor weights its reconstruction against the regulariser. Types: l2
  (squared error in real units), l2rel (relative to the target's mean square), l1 (relative to
  its root mean square), cosine and ce (softmax cross-entropy over the channels, as KL against
  the float layer's softmax), the last two scaled by the channel count.
- ``warmup_epochs`` is a linear learning-rate warm-up; ``optimizer`` is adam or sgd (momentum 0.9).
- ``learning_rate`` is Hailo's rate for end-to-end float training (1e-4 by default); here each
  parameter is in its quantization unit (V in logits, the bias in output steps, the scale factor
  in half weight steps), and Adam runs at ``100 × learning_rate`` (1e-2 by default, the rate at
  which the logits settle in finetune's default 1024 steps).
- after rounding, the bias absorbs the mean change the rounding made to the layer's linear output
  (over the training rows).
- ``meta_arch`` steers the detection loss of end-to-end training and has no effect here (the
  run reports it); ``layers_to_freeze`` is in the plan (those layers are not flagged).
- a dense layer over a sequence (a 3-D output) is not trained (the run reports it).

Common to both: a layer starts as quantization and bias correction left it (the runner corrects
a finetuned layer as the flow without finetune would, since the guide's QFT includes it); a layer
flagged for both runs finetune. A quarter of a layer's images (``dataset_size`` of them, the first
of the images given; at least one) is held out, the same images for every layer: the layer ends
at the checkpoint whose loss on them is lowest, its start included, and stops once it gets worse there
(`alls.runtime.algorithms.reconstruct`); the report gives that held-out loss before and after, per layer.
After training, the whole network's outputs on those images, trained (as the integer pass left
them) and as it started (run again), are compared with the float network's (kept from the target
pass), and it goes back to its start where it is further from them (`alls.runtime.algorithms.heldout`;
the report then has every layer not kept, and the verdict says which network won). An
epoch is one pass over the other images, ``batch_size`` images per step, so a layer trains at most
``epochs × ⌈(dataset_size − held out) / batch_size⌉`` steps. Finetune's ``epochs``, when the
script does not set it, is what makes `FINETUNE_STEPS` steps (the guide's 4 epochs of 2048
images), at least 4: with 64 images that is 171 epochs, with 1024 images 11, and the last
epoch stops at `FINETUNE_STEPS` steps (`finetune_steps`; at least the 4 epochs' steps). To keep a step cheap, each image
contributes 64 output positions (fewer beyond 1024 images: a layer trains on at most 65,536
rows), drawn once per layer (every position of a smaller map), and only those positions' input
patches are gathered (im2col on the sampled positions only); the float targets are gathered at
the same positions in one streamed float pass (on the fp_optimized network: the layers as
equalization left them); a step is a few compiled passes
(`alls.runtime.kernels.training`: the soft weights, the loss gradient, the update with Adam, and a
depthwise layer's products) besides a dense layer's two BLAS matrix products. The integer pass holds the
images as their integer codes and each layer's output whole, and runs every layer over its
images in parts (`alls.runtime.exec.emulator`). The runner refuses a job
whose memory estimate (`estimate_memory`) exceeds the machine's (ALS507) and a dataset_size
above the images given (ALS508) before calibration. A layer whose best held-out checkpoint is
its start keeps what it had. After
training, the integer weights ``⌊w/s⌋ + [h ≥ ½]`` (within ±(2^(b−1) − 1)), the bias
re-encoded in the layer's bias mode (NUMERICS.md (N11)) and the requantization rebuilt for the
new scales and bias bound (N8), (N16) are written into the layer, all derived by
`alls.runtime.numerics`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass, replace
from functools import reduce

import numpy as np
from numpy.typing import DTypeLike

from alls.graph import Graph, Layer
from alls.plan import LossType, Plan
from alls.records import Record
from alls.runtime import numerics as nx
from alls.progress import Progress
from alls.runtime.exec.calibration import normalize
from alls.runtime.exec.lifetimes import Readers
from alls.runtime.exec.native import activation as float_activation
from alls.runtime.exec.native import part_images, run_float
from alls.runtime.exec.pool import aside, each
from alls.runtime.algorithms.patches import (Positions, Rows, from_groups, gather_rows, join_rows, sample_positions,
                                  to_groups)
from alls.runtime.exec.quantize import Encoding, QLayer, rebias
from alls.runtime.kernels.targets import gather_positions
from alls.runtime.ops.base import Params
from alls.runtime.exec.stream import DEFAULT_MEMORY_LIMIT, Source, Spill, Store, blocks, is_streamed, part_size
from alls.runtime.algorithms.heldout import Errors, HeldOut, Verdict, snapshot
from alls.runtime.algorithms.finetune_settings import (FINETUNE_LR_FACTOR, FINETUNE_STEPS, configs, finetune_epochs,
                                                    finetune_steps, images_needed, positions_per_image,
                                                    untrained)
from alls.runtime.algorithms.reconstruct import Config, Outcome, Problem, held_out, held_out_images, train

__all__ = ["optimize", "configs", "images_needed", "untrained", "estimate_memory", "finetune_epochs", "finetune_steps",
           "FINETUNE_LR_FACTOR", "FINETUNE_STEPS", "Trained"]

_MOST_IMAGES = 64  # images in a batch of the float pass, at most (`float_batch`)
_PART_BYTES = 1 << 26  # a spilled layer input is read for its rows this many bytes at a time


def memory_shares(memory_limit: int) -> tuple[int, int]:
    """Bytes of the integer pass's live tensors and of the float targets held in memory (the rest
    spills): half and an eighth of the limit, leaving the rest to the layer being trained (its rows)
    and to the held-out check (`HELD_SHARE`)."""
    return memory_limit // 2, memory_limit // 8


HELD_SHARE = 32  # the held-out check keeps the float outputs of its images within 1/32 of the limit
BESIDE_SHARE = 16  # its run of the start network, beside the training, holds its tensors within 1/16


def _normalizer(plan: Plan, name: str) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: normalize(x, plan, name)


class _Normalized:
    """Images held whole, normalized a slice at a time as the integer pass reads them."""

    def __init__(self, images: np.ndarray, plan: Plan, name: str):
        self.images, self.plan, self.name = images, plan, name
        self.shape, self.nbytes = images.shape, 4 * images.size

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: int | slice) -> np.ndarray:
        return normalize(self.images[key], self.plan, self.name)

    def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
        return np.asarray(self[:], dtype)


def _live_bytes(graph: Graph, plan: Plan) -> int:
    """Bytes per image the integer pass holds at its peak: the live tensors (integer codes, a layer's
    inputs until their last reader has run) and the dequantized outputs it returns."""
    def size(layer: Layer) -> int:
        return int(np.prod([d if isinstance(d, int) else 1 for d in layer.output_shape[1:]]))

    readers = Readers(graph)
    live: dict[str, int] = {}
    outputs = peak = 0
    for layer in graph:
        out = size(layer) * (1 if plan[layer.name].output_bits <= 8 else 2)
        peak = max(peak, sum(live.values()) + out + outputs)
        readers.release(layer, live)
        live[layer.name] = out
        if layer.kind == "output_layer":
            outputs += 4 * size(layer)
    return peak


def estimate_memory(graph: Graph, plan: Plan, memory_limit: int | None = None) -> int:
    """Bytes the reconstruction holds at its peak, roughly: the images (the runner's float copy and
    their integer codes), the integer pass over every image (`_live_bytes`, each layer run in parts
    of about `CHUNK_BYTES`), the float targets, the float outputs of the held-out images, and the
    rows of the largest layer (three copies while it trains), and beside them the start network's run
    on the held-out images (`_beside`). With a ``memory_limit`` the images, the live tensors, the
    targets and the held-out outputs beyond their shares of it (`memory_shares`, `HELD_SHARE`) are on
    disk, and the start network's run takes its images a block within `BESIDE_SHARE` at a time."""
    from alls.runtime.exec.emulator import CHUNK_BYTES

    chosen = configs(graph, plan)
    if not chosen:
        return 0
    images = max(config.images for _, config in chosen.values())
    inputs = sum(int(np.prod(layer.output_shape[1:])) for layer in graph.inputs) * 6
    targets = rows = 0
    for name, (_, config) in chosen.items():
        layer = graph[name]
        h, w = (layer.output_shape[2:] if len(layer.output_shape) == 4 else (1, 1))
        count = config.images * min(positions_per_image(config.images), h * w)
        targets += 4 * count * layer.output_shape[1]
        weight = layer.params.get("weight")
        taps = int(weight.size // layer.output_shape[1]) if weight is not None else 1
        width = 2 if max(plan[layer.name].input_bits, default=8) <= 8 else 4
        rows = max(rows, width * count * taps * layer.attrs.get("group", 1))
    outputs = 4 * held_out(images) * sum(int(np.prod(layer.output_shape[1:])) for layer in graph.outputs)
    held = images * (inputs + _live_bytes(graph, plan)) + targets + outputs
    beside = held_out(images) * (inputs + _live_bytes(graph, plan))  # the start network's check (`_beside`)
    if memory_limit is not None:
        held = min(held, sum(memory_shares(memory_limit)) + memory_limit // HELD_SHARE)
        beside = min(beside, memory_limit // BESIDE_SHARE)
    return held + beside + 4 * CHUNK_BYTES + 3 * rows


# ------------------------------------------------------------------ targets


def _targets(graph: Graph, plan: Plan, positions: Mapping[str, Positions], images: Mapping[str, np.ndarray],
             params: Mapping[str, Params], store: Store, held: HeldOut) -> dict[str, np.ndarray | Spill]:
    """The float network's output of every chosen layer at its sampled positions, streamed in batches
    (`float_batch` images, each normalized as it is read); held by ``store`` (spilled to disk beyond its
    budget). The same pass gives ``held`` the float outputs of the held-out images."""
    out = {}
    for name, pos in positions.items():  # each held before the next is allocated, so the budget counts it
        out[name] = store[name] = store.allocate((len(pos), graph[name].output_shape[1]), np.float32)
    count = max(pos.images for pos in positions.values())
    size = float_batch(graph)

    def batch(start: int) -> None:
        _target_batch(graph, plan, (positions, out), images, params, held, slice(start, start + size))

    for _ in each(range(0, count, size), batch):  # the batches on the free cores, a batch a thread; rows apart
        pass
    return out


def _target_batch(graph: Graph, plan: Plan, targeted: tuple[Mapping[str, Positions], Mapping[str, np.ndarray | Spill]],
                  images: Mapping[str, np.ndarray], params: Mapping[str, Params], held: HeldOut, batch: slice) -> None:
    """One batch of the float pass (images ``batch``): its rows of every chosen layer's targets, and the
    float outputs of its held-out images. The watcher is the batch's own and writes only its rows."""
    outputs = run_float(graph, {k: normalize(v[batch], plan, k) for k, v in images.items()}, params,
                        watch=_watcher(*targeted, batch))[0]
    held.record(batch.start, outputs)


def _watcher(positions: Mapping[str, Positions], targets: Mapping[str, np.ndarray | Spill],
             batch: slice) -> Callable[[Layer, np.ndarray], None]:
    """What keeps a chosen layer's outputs of the images ``batch`` at its sampled positions, as the run makes them."""
    start = batch.start

    def watch(layer: Layer, y: np.ndarray) -> None:
        pos = positions.get(layer.name)
        if pos is None or start >= pos.images:
            return
        rows = slice(start * pos.per_image, min(batch.stop, pos.images) * pos.per_image)
        _gather(y, pos, rows, start, targets[layer.name])

    return watch


def _gather(y: np.ndarray, pos: Positions, rows: slice, start: int, target: np.ndarray | Spill) -> None:
    """``target[rows] = y[n − start, :, i, j]`` at the positions ``rows`` (``y[n − start]`` for a dense
    layer's output), gathered straight into an array, or once into a copy written to a `Spill`."""
    if y.ndim != 4:
        target[rows] = y[pos.n[rows] - start]
        return
    into = target[rows] if isinstance(target, np.ndarray) else np.empty((rows.stop - rows.start, y.shape[1]), np.float32)
    gather_positions(y, pos.n[rows], pos.i[rows], pos.j[rows], start, into)
    if not isinstance(target, np.ndarray):
        target[rows] = into


def float_batch(graph: Graph) -> int:
    """Images per batch of the float pass: `native.part_images` (as many as keep its largest layer
    output within 8 MiB, memory the allocator reuses rather than fresh pages the system zeroes), at
    most `_MOST_IMAGES`; 16 where a layer's size is not fixed."""
    per = part_images(graph)
    return 16 if per is None else min(_MOST_IMAGES, per)


def _rows(layer: Layer, x: np.ndarray, x_enc: Encoding, positions: Positions, kernel: tuple[int, int]) -> Rows:
    """`gather_rows` of an input held whole, or of a spilled one read a part of its images at a time."""
    if not is_streamed(x):
        return gather_rows(layer, x, x_enc.zero_point, x_enc.bits, positions, kernel)
    per = positions.per_image
    parts = []
    image = x.nbytes // max(len(x), 1)
    for block in blocks(positions.images, image, _PART_BYTES):
        rows = slice(block.start * per, block.stop * per)
        part = Positions(positions.n[rows] - block.start, positions.i[rows], positions.j[rows], per)
        parts.append(gather_rows(layer, x[block], x_enc.zero_point, x_enc.bits, part, kernel))
    return join_rows(parts)


# ----------------------------------------------------------------- problems


def _ranges(q: QLayer) -> tuple[tuple[float, float], tuple[float, float]]:
    """(R4)'s ranges in real units: the clamp (or the table's input range), and the output range."""
    def real(enc: Encoding, lo: int, hi: int) -> tuple[float, float]:
        return enc.scale * (lo - enc.zero_point), enc.scale * (hi - enc.zero_point)

    if q.pre is not None:
        return real(q.pre, 0, nx.activation_max(q.pre.bits)), real(q.out, 0, nx.activation_max(q.out.bits))
    return real(q.out, q.rq.lo, q.rq.hi), (-np.inf, np.inf)


def _problem(layer: Layer, q: QLayer, x: np.ndarray, x_enc: Encoding, positions: Positions,
             target: np.ndarray, params: Params, groups: int) -> Problem:
    weight = np.asarray(params["weight"], np.float64)
    codes, bits = q.weight_codes()
    kernel = (int(codes.shape[2]), int(codes.shape[3])) if layer.kind != "fc" else (1, 1)
    rows = _rows(layer, x, x_enc, positions, kernel)
    weight_scale, old_bias = _scale_and_bias(q)
    channels = weight_scale.size
    acc_scale = x_enc.scale * weight_scale
    pre_range, out_range = _ranges(q)
    table = q.pre is not None
    return Problem(
        rows=rows, per_image=positions.per_image, target=target, weight=to_groups(weight, layer),
        scale=np.asarray(weight_scale, np.float64),
        group_of=nx.channel_groups(channels, groups if channels % groups == 0 else 1),
        wmax=nx.weight_max(bits), x_scale=x_enc.scale, bias=old_bias.accumulator() * acc_scale,
        unit=(q.pre or q.out).scale, pre_range=pre_range, out_range=out_range,
        activation=(lambda a: float_activation(layer, a, params)) if table else None,
        start=to_groups(codes, layer).astype(np.float64))


def _scale_and_bias(q: QLayer) -> tuple[np.ndarray, nx.Bias]:
    """The weight scales and the bias of a weighted layer, which every weighted layer has."""
    if q.weight_scale is None or q.bias is None:
        raise ValueError(f"layer `{q.name}` ({q.kind}) has no weight scales or bias")
    return q.weight_scale, q.bias


def _write(layer: Layer, q: QLayer, x_enc: Encoding, outcome: Outcome, config: Config) -> None:
    """The learned weights, bias and scales into the integer layer; bias and requantization re-derived."""
    codes = q.weight_codes()[0]
    q.weights = from_groups(outcome.weights, layer, codes.shape).astype(codes.dtype)
    q.info.pop("_kernel_weights", None)
    if not (config.learn_bias or config.learn_scales):
        return
    q.weight_scale = np.asarray(outcome.scale, np.float64)
    acc_scale = x_enc.scale * q.weight_scale
    bias = nx.quantize_bias(outcome.bias, acc_scale, _scale_and_bias(q)[1].mantissa_bits)
    rebias(q, layer, x_enc, bias)
    q.info["bias_error_max"] = float(np.abs(bias.error(outcome.bias, acc_scale)).max(initial=0.0))
    q.info["bias_exponent"] = bias.exponent


# --------------------------------------------------------------------- entry


@dataclass(frozen=True)
class Trained(Record):
    """What finetune or adaround did to one layer: the images and rows it trained on, its loss before
    and after on them and on the held-out images, whether the learned layer was kept, and the share
    of weights rounded the other way than to nearest (see `reconstruct.Outcome`)."""

    layer: str
    algorithm: str  # finetune or adaround
    images: int
    rows: int
    steps: int
    loss: LossType
    loss_before: float
    loss_after: float
    kept: bool
    flipped: float
    heldout_images: int
    heldout_before: float
    heldout_after: float
    epochs_run: int
    best_epoch: int
    seconds: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "loss", LossType(self.loss))


def optimize(graph: Graph, plan: Plan, layers: Mapping[str, QLayer], images: Mapping[str, np.ndarray],
             params: Mapping[str, Params] | None = None, progress: bool | None = None,
             memory_limit: int = DEFAULT_MEMORY_LIMIT, start: str = "round to nearest"
             ) -> tuple[list[Trained], Verdict | None]:
    """Finetune and adaround the layers the plan flags, in place; the report, one entry per layer, and
    the whole network's verdict on the held-out images (None: no layer kept its training, or no image
    was held out), where ``start`` names the network the layers start from.

    ``images`` are NCHW per input layer (arrays or `Source` objects), before the script's
    normalization, at least as many as the largest ``dataset_size`` asked for (the runner checks,
    ALS508). They are read in batches: normalized for the float targets, and quantized to the
    input's codes for the integer pass. The float targets and the integer pass's live tensors stay
    within shares of ``memory_limit`` (`memory_shares`), spilled to disk beyond them.
    """
    params = params or {}
    chosen = configs(graph, plan)
    if not chosen:
        return [], None
    pool = max(config.images for _, config in chosen.values())
    images = {name: x.head(pool) if isinstance(x, Source) else x[:pool] for name, x in images.items()}
    live_budget, target_budget = memory_shares(memory_limit)
    target_store, held_store = Store(target_budget), Store(memory_limit // HELD_SHARE)
    held = HeldOut(graph, reduce(np.intersect1d, (held_out_images(config.images) for _, config in chosen.values())),
                   held_store, part_size(pool, _live_bytes(graph, plan) + _input_bytes(graph), live_budget))
    positions = {name: sample_positions(graph[name], config.images, np.random.default_rng(config.seed),
                                        positions_per_image(config.images))
                 for name, (_, config) in chosen.items()}
    started = snapshot(layers, list(chosen))
    before: Future[Errors] | None = None
    try:
        targets = _targets(graph, plan, positions, images, params, target_store, held)
        if len(held.indices):  # the start network on the held-out images, beside the training (`_beside`)
            before = aside(_beside(held, graph, plan, (dict(layers), started), images, params, memory_limit))
        report = _train(graph, plan, layers, images, params, chosen, (positions, targets, target_store),
                        (held, live_budget), progress)
        return _checked(plan, layers, (started, start), images, params, held, report, before)
    finally:
        if before is not None:
            wait([before])  # it reads the held-out outputs: they stay until it is done
        target_store.close()
        held_store.close()


def _beside(held: HeldOut, graph: Graph, plan: Plan, network: tuple[dict[str, QLayer], Mapping[str, QLayer]],
            images: Mapping[str, np.ndarray], params: Mapping[str, Params], memory_limit: int) -> Callable[[], Errors]:
    """The whole-network check's run of the start network (`HeldOut.started`), to run on a thread of its
    own while the layers train: the training leaves a core idle between the integer pass's layers (a step
    runs on one thread), and the start's layers are copies the training does not touch. Its blocks keep
    their live tensors within `BESIDE_SHARE` of the limit, beside the integer pass's."""
    layers, start = network
    block = part_size(len(held.indices), _live_bytes(graph, plan) + _input_bytes(graph), memory_limit // BESIDE_SHARE)
    return lambda: held.started(layers, start, images, plan, params, block)


def _input_bytes(graph: Graph) -> int:
    """Bytes of one image of every input, as float32."""
    return 4 * sum(int(np.prod([d if isinstance(d, int) else 1 for d in layer.output_shape[1:]]))
                   for layer in graph.inputs)


def _train(graph: Graph, plan: Plan, layers: Mapping[str, QLayer], images: Mapping[str, np.ndarray],
           params: Mapping[str, Params], chosen: Mapping[str, tuple[str, Config]],
           targeted: tuple[Mapping[str, Positions], dict[str, np.ndarray | Spill], Store],
           checked: tuple[HeldOut, int], progress: bool | None) -> list[Trained]:
    """The integer pass over every image, training each chosen layer before it runs (its live tensors
    within ``live_budget``); it ends by measuring the trained network on the held-out images."""
    from alls.runtime.exec.emulator import run_numeric

    positions, targets, target_store = targeted
    held, live_budget = checked
    label = "finetune" if any(algorithm == "finetune" for algorithm, _ in chosen.values()) else "adaround"
    bar = Progress(f"{label} ({len(chosen)} layers)", sum(config.epochs for _, config in chosen.values()), progress,
                   unit=" epochs")
    report: list[Trained] = []

    def before(layer: Layer, q: QLayer, xs: list[np.ndarray]) -> None:
        if layer.name not in chosen:
            return
        algorithm, config = chosen[layer.name]
        started = time.perf_counter()
        x_enc = layers[layer.inputs[0]].out
        layer_params = params.get(layer.name, layer.params)
        target = np.asarray(targets.pop(layer.name))
        del target_store[layer.name]
        problem = _problem(layer, q, xs[0], x_enc, positions[layer.name], target, layer_params,
                           plan[layer.name].quantization_groups)
        outcome = train(problem, config, on_epoch=bar.step)
        if outcome.kept:
            _write(layer, q, x_enc, outcome, config)
        report.append(Trained(
            layer.name, algorithm, config.images, len(problem.rows), outcome.steps, config.loss, outcome.loss_before,
            outcome.loss_after, outcome.kept, outcome.flipped, outcome.heldout_images, outcome.heldout_before,
            outcome.heldout_after, outcome.epochs_run, outcome.best_epoch, time.perf_counter() - started))

    feeds = {name: x.map(_normalizer(plan, name)) if isinstance(x, Source) else _Normalized(x, plan, name)
             for name, x in images.items()}
    store = Store(live_budget)
    try:
        # a _Normalized (like a Source) reads as an array a slice of images at a time, as the pass reads it
        run_numeric(graph, layers, feeds, params=params, before=before, store=store)  # type: ignore[arg-type]
        if len(held.indices) and any(r.kept for r in report):
            held.trained(layers, store)  # the output layers' codes stay in the store: nothing reads them
    finally:
        store.close()
    bar.close()
    return report


def _checked(plan: Plan, layers: Mapping[str, QLayer], start: tuple[Mapping[str, QLayer], str],
             images: Mapping[str, np.ndarray], params: Mapping[str, Params], held: HeldOut,
             report: list[Trained], before: Future[Errors] | None = None) -> tuple[list[Trained], Verdict | None]:
    """The report, after the whole network is checked on the images every layer held out
    (`alls.runtime.algorithms.heldout`): where it is worse trained, every layer goes back to ``start``
    (the layers as they started, and the start's name); and the verdict. ``before``: the start's error,
    measured beside the training."""
    if not len(held.indices) or not any(r.kept for r in report):
        return report, None
    verdict = held.judge(dict(layers), start[0], images, plan, params, start[1],
                         before.result() if before is not None else None)
    if verdict.kept:
        return report, verdict
    return [replace(r, kept=False, heldout_after=r.heldout_before) for r in report], verdict
