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
regulariser has adaround's default weight, warm-up and β range (the finetune command has no
keywords for them). Beyond adaround:
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

Common to both: a layer starts as quantization (and bias correction, when the plan asks for it)
left it; a layer flagged for both runs finetune. A quarter of a layer's images (``dataset_size``
of them, the first of the images given; at least one) is held out: the layer ends at the
checkpoint whose loss on them is lowest, its start included, and stops once it gets worse there
(`alls.runtime.algorithms.reconstruct`); the report gives that held-out loss before and after, per layer. An
epoch is one pass over the other images, ``batch_size`` images per step, so a layer trains at most
``epochs × ⌈(dataset_size − held out) / batch_size⌉`` steps. Finetune's ``epochs``, when the
script does not set it, is what makes `FINETUNE_STEPS` steps (the guide's 4 epochs of 2048
images), at least 4: with 64 images that is 171 epochs, with 1024 images 11. To keep a step cheap, each image
contributes 64 output positions (fewer beyond 1024 images: a layer trains on at most 65,536
rows), drawn once per layer (every position of a smaller map), and only those positions' input
patches are gathered (im2col on the sampled positions only); the float targets are gathered at
the same positions in one streamed float pass (on the fp_optimized network: the layers as
equalization left them); depthwise layers train on Numba kernels
(`alls.runtime.kernels.training`), the rest on NumPy matrix products. The integer pass holds the
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
from collections.abc import Mapping

import numpy as np

from alls.catalogue import POST_SUBCOMMANDS
from alls.graph import WEIGHTED_KINDS, Graph, Layer
from alls.plan import Plan
from alls.runtime import numerics as nx
from alls.progress import Progress
from alls.runtime.exec.calibration import normalize
from alls.runtime.exec.lifetimes import Readers
from alls.runtime.exec.native import activation as float_activation
from alls.runtime.exec.native import run_float
from alls.runtime.algorithms.patches import (POSITIONS_PER_IMAGE, Positions, from_groups, gather_rows, sample_positions,
                                  to_groups)
from alls.runtime.exec.quantize import Encoding, QLayer, rebias
from alls.runtime.algorithms.reconstruct import Config, Outcome, Problem, held_out, train

__all__ = ["optimize", "configs", "images_needed", "untrained", "estimate_memory", "finetune_epochs",
           "FINETUNE_LR_FACTOR", "FINETUNE_STEPS"]

FINETUNE_LR_FACTOR = 100.0
FINETUNE_STEPS = 1024  # the steps a layer trains by default, whatever the images given
_ADAROUND = POST_SUBCOMMANDS["adaround"].keywords
_CHUNK = 16  # images per batch of the float pass
ROWS_PER_LAYER = 1 << 16  # the rows a layer trains on: 64 positions an image up to 1024 images


# ------------------------------------------------------------------ settings


def _beta(b_range) -> tuple[float, float]:
    lo, hi = b_range if b_range else (2.0, 20.0)
    return float(max(lo, hi)), float(min(lo, hi))


def _producers(graph: Graph, name: str) -> list[str]:
    """The weighted layers whose outputs make layer ``name``'s output (itself, if it has weights)."""
    layer = graph[name]
    if layer.kind in WEIGHTED_KINDS:
        return [layer.name]
    return [p for source in layer.inputs for p in _producers(graph, source)]


def _losses(graph: Graph, plan: Plan) -> dict[str, tuple[str, float]]:
    """Loss type and factor of every weighted layer reached by ``loss_layer_names`` (the first wins)."""
    ft = plan.settings.finetune
    names = ft.loss_layer_names or ()
    types = ft.loss_types or (ft.def_loss_type,) * len(names)
    factors = ft.loss_factors or (1.0,) * len(names)
    chosen: dict[str, tuple[str, float]] = {}
    for name, kind, factor in zip(names, types, factors):
        for producer in _producers(graph, name):
            chosen.setdefault(producer, (kind, float(factor)))
    return chosen


def configs(graph: Graph, plan: Plan) -> dict[str, tuple[str, Config]]:
    """The algorithm and training configuration of every layer the plan flags, in graph order."""
    ft, ad = plan.settings.finetune, plan.settings.adaround
    losses = _losses(graph, plan)
    epochs = finetune_epochs(plan)
    out: dict[str, tuple[str, Config]] = {}
    for index, layer in enumerate(graph):
        lp = plan[layer.name]
        if not _trainable(layer) or not (lp.finetune or lp.adaround):
            continue
        if lp.finetune:
            loss, factor = losses.get(layer.name, (ft.def_loss_type, 1.0))
            out[layer.name] = ("finetune", Config(
                images=ft.dataset_size, epochs=epochs, batch_size=ft.batch_size,
                learning_rate=ft.learning_rate * FINETUNE_LR_FACTOR,
                lr_warmup_steps=ft.warmup_epochs * -(-ft.dataset_size // ft.batch_size),
                reg_weight=_ADAROUND["weight"].default, reg_warmup=_ADAROUND["warmup"].default, beta=_beta(None),
                optimizer=ft.optimizer, learn_bias=True, learn_scales=ft.train_scales, loss=loss, factor=factor,
                seed=index))
        else:
            out[layer.name] = ("adaround", Config(
                images=ad.dataset_size, epochs=ad.epochs, batch_size=ad.batch_size, learning_rate=ad.learning_rate,
                reg_weight=ad.weight, reg_warmup=ad.warmup, beta=_beta(ad.b_range), seed=index))
    return out


def finetune_epochs(plan: Plan) -> int:
    """The script's finetune epochs; by default enough for `FINETUNE_STEPS` steps on the images that
    are not held out (the guide's 4 epochs of 2048 images make 1024), at least the default 4."""
    ft = plan.settings.finetune
    source = plan.settings.sources.get("finetune.epochs")
    if source is not None and not source.is_default:
        return ft.epochs
    per_epoch = -(-(ft.dataset_size - held_out(ft.dataset_size)) // ft.batch_size)
    return max(ft.epochs, -(-FINETUNE_STEPS // max(per_epoch, 1)))


def _trainable(layer: Layer) -> bool:
    """A conv, depthwise, transposed conv or dense layer (not a dense layer over a sequence)."""
    return layer.kind in WEIGHTED_KINDS and (layer.kind != "fc" or len(layer.output_shape) == 2)


def untrained(graph: Graph, plan: Plan) -> list[str]:
    """Layers the plan flags that the reconstruction cannot train (dense layers over sequences)."""
    return [layer.name for layer in graph if (plan[layer.name].finetune or plan[layer.name].adaround)
            and not _trainable(layer)]


def images_needed(plan: Plan) -> dict[str, int]:
    """Images each algorithm the plan runs reads: {"finetune": dataset_size, ...}."""
    needed = {}
    for algo in ("finetune", "adaround"):
        if any(getattr(layer, algo) and layer.kind in WEIGHTED_KINDS for layer in plan):
            needed[algo] = getattr(plan.settings, algo).dataset_size
    return needed


def positions_per_image(images: int) -> int:
    """Output positions drawn from every image: 64, fewer beyond 1024 images (ROWS_PER_LAYER rows a layer)."""
    return max(1, min(POSITIONS_PER_IMAGE, ROWS_PER_LAYER // max(images, 1)))


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


def estimate_memory(graph: Graph, plan: Plan) -> int:
    """Bytes the reconstruction holds at its peak, roughly: the images (the runner's float copy and
    their integer codes), the integer pass over every image (`_live_bytes`, each layer run in parts
    of about `CHUNK_BYTES`), the float targets, and the rows of the largest layer (three copies
    while it trains)."""
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
    return images * (inputs + _live_bytes(graph, plan)) + 4 * CHUNK_BYTES + targets + 3 * rows


# ------------------------------------------------------------------ targets


def _targets(graph: Graph, plan: Plan, positions: Mapping[str, Positions], images: Mapping[str, np.ndarray],
             params: Mapping) -> dict[str, np.ndarray]:
    """The float network's output of every chosen layer at its sampled positions, streamed in batches
    (each normalized as it is read)."""
    out = {name: np.empty((len(pos), graph[name].output_shape[1]), np.float32) for name, pos in positions.items()}
    count = max(pos.images for pos in positions.values())
    start = 0

    def observe(layer: Layer, before: np.ndarray, after: np.ndarray) -> None:
        pos = positions.get(layer.name)
        if pos is None or start >= pos.images:
            return
        rows = slice(start * pos.per_image, min(start + _CHUNK, pos.images) * pos.per_image)
        n = pos.n[rows] - start
        out[layer.name][rows] = after[n, :, pos.i[rows], pos.j[rows]] if after.ndim == 4 else after[n]

    for start in range(0, count, _CHUNK):
        run_float(graph, {k: normalize(v[start:start + _CHUNK], plan, k) for k, v in images.items()}, params,
                  observe=observe)
    return out


# ----------------------------------------------------------------- problems


def _ranges(q: QLayer) -> tuple[tuple[float, float], tuple[float, float]]:
    """(R4)'s ranges in real units: the clamp (or the table's input range), and the output range."""
    def real(enc: Encoding, lo: int, hi: int) -> tuple[float, float]:
        return enc.scale * (lo - enc.zero_point), enc.scale * (hi - enc.zero_point)

    if q.pre is not None:
        return real(q.pre, 0, nx.activation_max(q.pre.bits)), real(q.out, 0, nx.activation_max(q.out.bits))
    return real(q.out, q.rq.lo, q.rq.hi), (-np.inf, np.inf)


def _problem(layer: Layer, q: QLayer, x: np.ndarray, x_enc: Encoding, positions: Positions,
             target: np.ndarray, params: Mapping, groups: int) -> Problem:
    weight = np.asarray(params["weight"], np.float64)
    kernel = tuple(q.weights.shape[2:]) if layer.kind != "fc" else (1, 1)
    rows = gather_rows(layer, x, x_enc.zero_point, x_enc.bits, positions, kernel)
    channels = q.weight_scale.size
    acc_scale = x_enc.scale * q.weight_scale
    pre_range, out_range = _ranges(q)
    table = q.pre is not None
    return Problem(
        rows=rows, per_image=positions.per_image, target=target, weight=to_groups(weight, layer),
        scale=np.asarray(q.weight_scale, np.float64),
        group_of=nx.channel_groups(channels, groups if channels % groups == 0 else 1),
        wmax=nx.weight_max(q.weight_bits), x_scale=x_enc.scale, bias=q.bias.accumulator() * acc_scale,
        unit=(q.pre or q.out).scale, pre_range=pre_range, out_range=out_range,
        activation=(lambda a: float_activation(layer, a, params)) if table else None,
        start=to_groups(q.weights, layer).astype(np.float64))


def _write(layer: Layer, q: QLayer, x_enc: Encoding, outcome: Outcome, config: Config) -> None:
    """The learned weights, bias and scales into the integer layer; bias and requantization re-derived."""
    q.weights = from_groups(outcome.weights, layer, q.weights.shape).astype(q.weights.dtype)
    q.info.pop("_kernel_weights", None)
    if not (config.learn_bias or config.learn_scales):
        return
    q.weight_scale = np.asarray(outcome.scale, np.float64)
    acc_scale = x_enc.scale * q.weight_scale
    bias = nx.quantize_bias(outcome.bias, acc_scale, q.bias.mantissa_bits)
    rebias(q, layer, x_enc, bias)
    q.info["bias_error_max"] = float(np.abs(bias.error(outcome.bias, acc_scale)).max(initial=0.0))
    q.info["bias_exponent"] = bias.exponent


# --------------------------------------------------------------------- entry


def optimize(graph: Graph, plan: Plan, layers: Mapping[str, QLayer], images: Mapping[str, np.ndarray],
             params: Mapping[str, Mapping] | None = None, progress: bool | None = None) -> list[dict]:
    """Finetune and adaround the layers the plan flags, in place; the report, one entry per layer.

    ``images`` are NCHW per input layer, before the script's normalization, at least as many as
    the largest ``dataset_size`` asked for (the runner checks, ALS508). They are read in batches:
    normalized for the float targets, and quantized to the input's codes for the integer pass.
    """
    from alls.runtime.exec.emulator import run_numeric

    params = params or {}
    chosen = configs(graph, plan)
    if not chosen:
        return []
    pool = max(config.images for _, config in chosen.values())
    images = {name: x[:pool] for name, x in images.items()}
    positions = {name: sample_positions(graph[name], config.images, np.random.default_rng(config.seed),
                                        positions_per_image(config.images))
                 for name, (_, config) in chosen.items()}
    targets = _targets(graph, plan, positions, images, params)
    label = "finetune" if any(algorithm == "finetune" for algorithm, _ in chosen.values()) else "adaround"
    bar = Progress(f"{label} ({len(chosen)} layers)", sum(config.epochs for _, config in chosen.values()), progress,
                   unit=" epochs")
    report: list[dict] = []

    def before(layer: Layer, q: QLayer, xs: list[np.ndarray]) -> None:
        if layer.name not in chosen:
            return
        algorithm, config = chosen[layer.name]
        started = time.perf_counter()
        x_enc = layers[layer.inputs[0]].out
        layer_params = params.get(layer.name, layer.params)
        problem = _problem(layer, q, xs[0], x_enc, positions[layer.name], targets.pop(layer.name), layer_params,
                           plan[layer.name].quantization_groups)
        outcome = train(problem, config, on_epoch=bar.step)
        if outcome.kept:
            _write(layer, q, x_enc, outcome, config)
        report.append({
            "layer": layer.name, "algorithm": algorithm, "images": config.images, "rows": len(problem.rows),
            "steps": outcome.steps, "loss": config.loss, "loss_before": outcome.loss_before,
            "loss_after": outcome.loss_after, "kept": outcome.kept, "flipped": outcome.flipped,
            "heldout_images": outcome.heldout_images, "heldout_before": outcome.heldout_before,
            "heldout_after": outcome.heldout_after, "epochs_run": outcome.epochs_run,
            "best_epoch": outcome.best_epoch, "seconds": time.perf_counter() - started,
        })

    codes = {}
    for name, x in images.items():
        encoding = layers[name].out
        codes[name] = np.empty(x.shape, encoding.dtype)
        for start in range(0, len(x), _CHUNK):
            codes[name][start:start + _CHUNK] = encoding.quantize(normalize(x[start:start + _CHUNK], plan, name))
    run_numeric(graph, layers, codes, raw=True, params=params, before=before)
    bar.close()
    return report
