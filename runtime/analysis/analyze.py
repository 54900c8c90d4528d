"""Layer analysis of a quantized model: which layers carry the error, why, and what to do about it.

Hailo's guide (section 5, "Advanced Analysis"), as pure functions of runs of
a `QuantizedModel` on some images:

1. The layer table, two views of every compute layer (all but the input and
   output layers):
   - *alone*: only this layer quantized, measured at the outputs. The layer
     runs on its integer kernel and every other layer in float
     (`alls.runtime.exec.partial`), on the first ``isolation_images`` images; the
     worst and the mean output SNR against native. Each layer reruns the
     network below it, so this view is the costly one, hence the subset.
   - *at the layer*: everything quantized, measured at this layer: the
     numeric target's tensor against the fp_optimized target's (the float
     graph the integer layers were made from; with equalization its
     channels are scaled, and it equals native at the outputs): SNR,
     cosine, MSE and largest absolute error, on every image.
   The table is sorted by harm: the lowest worst-output SNR alone first.
2. Samples of the ``worst`` layers for plots: float values against quantized
   ones, coloured by channel, and per-channel histograms.
3. Advice per layer (`alls.runtime.analysis.rules`), each with its reason.
   On the ``CLIP_TRIALS`` most harmful layers whose extreme values make a
   large share of the range, activation clipping is tried first: the
   outputs with only that tensor quantized, at its encoding and clipped.
4. Recovery: the worst layers in float and everything else quantized, the
   outputs before and after; also ``QuantizedModel.run(keep_native=...)``,
   which keeps their output tensors at their integer encodings, so the two
   tell a layer's kernel error from its tensor's rounding.

`analyze` runs all four and returns an `Analysis`; `Analysis.as_dict()` is
the JSON form. Every pass reads the images a batch at a time within the
memory limit and sums its figures over the batches
(`alls.runtime.analysis.passes`), so any number of images fits the limit. `alls.runtime.analysis.report` writes it as a page with figures.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alls.diagnostics import AllsError, Diagnostic, Severity
from alls.graph import Layer
from alls.runtime.analysis.metrics import Agreement, AgreementSums, plain, snr_from_powers
from alls.progress import Progress
from alls.runtime.analysis.passes import Histogram, Images, Kept, batch_size
from alls.runtime.exec.calibration import check_data, input_arrays
from alls.runtime.analysis.rules import CLIP_RATIO, LOGIT_FLOOR, PERCENTILES, Advice, LayerFacts, advise
from alls.runtime.exec.native import run_float
from alls.runtime.exec.partial import compute_layers, float_taps, isolated_outputs, outputs_with, run_partial
from alls.runtime.exec.quantize import Encoding
from alls.runtime.exec.stream import check_memory_limit
from alls.runtime.analysis.sampling import MAX_POINTS, LayerSample, LayerSampler, OutputSample, OutputSampler
from alls.runtime.analysis.quantized import Quantized, plan_flags, weight_error, zeroed_channels
from alls.runtime.exec.threads import runtime_call

__all__ = ["analyze", "Analysis", "LayerRow", "Agreement", "Recovery", "LayerSample", "OutputSample", "Advice",
           "DEFAULT_WORST", "DEFAULT_ISOLATION_IMAGES"]

DEFAULT_WORST = 3
DEFAULT_ISOLATION_IMAGES = 8
CLIP_TRIALS = 10  # activation clipping is tried on this many of the most harmful layers

Data = dict[str, np.ndarray]


# -------------------------------------------------------------------- data


@dataclass(frozen=True)
class LayerRow:
    """One row of the layer table: both views of one layer."""

    name: str
    kind: str
    weight_bits: int | None
    output_bits: int
    alone_snr_db: float  # only this layer quantized: the worst output's SNR
    alone_output: str  # ... which output that is
    alone_mean_snr_db: float  # ... the mean over the outputs (dB)
    alone_outputs: dict[str, float]
    at_layer: Agreement  # everything quantized, at this layer
    low: float  # the float tensor's range
    high: float
    beyond: float = 0.0  # the share of its float values outside the range its encoding represents
    advice: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"layer": self.name, "kind": self.kind, "weight_bits": self.weight_bits,
                "output_bits": self.output_bits, "alone_snr_db": plain(self.alone_snr_db),
                "alone_output": self.alone_output, "alone_mean_snr_db": plain(self.alone_mean_snr_db),
                "alone_outputs": {k: plain(v) for k, v in self.alone_outputs.items()},
                "at_layer": self.at_layer.as_dict(), "range": [self.low, self.high], "beyond_encoding": self.beyond,
                "advice": list(self.advice)}


@dataclass(frozen=True)
class Recovery:
    """The outputs against native: everything quantized (``numeric``), the ``layers`` in float
    (``recovered``), and the ``layers`` kept native inside the integer graph (``keep_native``)."""

    layers: tuple[str, ...]
    numeric: dict[str, Agreement]
    recovered: dict[str, Agreement]
    keep_native: dict[str, Agreement]
    samples: tuple[OutputSample, ...] = ()

    def removed(self, output: str, by: str = "recovered") -> float:
        """The share of the output's error power that keeping the layers in float removes."""
        before, after = self.numeric[output].mse, getattr(self, by)[output].mse
        return 1.0 - after / before if before > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"layers": list(self.layers),
                "outputs": {name: {"numeric": self.numeric[name].as_dict(),
                                   "recovered": self.recovered[name].as_dict(),
                                   "keep_native": self.keep_native[name].as_dict(),
                                   "removed": plain(self.removed(name)),
                                   "removed_keep_native": plain(self.removed(name, "keep_native"))}
                            for name in self.numeric}}


@dataclass(frozen=True)
class Analysis:
    """Everything `analyze` found, as data; `as_dict` is the JSON form (without the plot samples)."""

    network: str
    images: int
    isolation_images: int
    outputs: dict[str, Agreement]  # numeric against native, on every image
    layers: tuple[LayerRow, ...]  # sorted by harm
    advice: tuple[Advice, ...]  # in the order of the table
    recovery: Recovery
    samples: tuple[LayerSample, ...]  # the worst layers
    diagnostics: tuple[Diagnostic, ...] = ()
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def worst(self) -> tuple[str, ...]:
        return self.recovery.layers

    def as_dict(self) -> dict[str, Any]:
        return {"network": self.network, "images": self.images, "isolation_images": self.isolation_images,
                "worst": list(self.worst), "outputs": {k: v.as_dict() for k, v in self.outputs.items()},
                "layers": [row.as_dict() for row in self.layers], "advice": [a.as_dict() for a in self.advice],
                "recovery": self.recovery.as_dict(),
                "diagnostics": [{"code": d.code, "severity": str(d.severity), "message": d.message, "help": d.help}
                                for d in self.diagnostics],
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}


# ------------------------------------------------------------------ inputs


def _images(qmodel: Quantized, x: Any, layout: str, memory_limit: int) -> Images:
    """The images as NCHW float32 per input layer (not yet normalized), checked, in batches within
    ``memory_limit``: an input beyond a quarter of it, memory-mapped or a folder is read as it is used."""
    data = input_arrays(qmodel.graph, x, layout, stream_over=memory_limit // 4)
    if not len(next(iter(data.values()))):
        raise AllsError.of("ALS512", "nothing to analyze: the data hold no image")
    for value in data.values():
        check_data(value, len(value), "analysis")
    return Images(data, batch_size(qmodel.graph, memory_limit))


# ------------------------------------------------------------ view 1: alone


Trial = Callable[[Data], Data]  # float taps of every layer -> the outputs of a changed network
Errors = dict[str, tuple[float, float]]  # output -> (error power, signal power), per value


def _output_errors(qmodel: Quantized, data: Images, trials: dict[Any, Trial], label: str,
                   progress: bool | None) -> dict[Any, Errors]:
    """Each trial's error at every output against native, batch by batch from the float taps."""
    outputs = [o.name for o in qmodel.graph.outputs]
    noise = {key: dict.fromkeys(outputs, 0.0) for key in trials}
    signal, count = dict.fromkeys(outputs, 0.0), dict.fromkeys(outputs, 0)
    bar = Progress(label, len(trials) * data.batches, progress)
    for batch in data:
        feeds = qmodel.feeds(batch, "nchw")
        native = run_float(qmodel.graph, feeds)[0]
        taps = float_taps(qmodel, feeds)
        for name, ref in native.items():
            signal[name] += float(np.sum(np.square(ref, dtype=np.float64)))
            count[name] += ref.size
        for key, trial in trials.items():
            for name, y in trial(taps).items():
                noise[key][name] += float(np.sum(np.square(y.astype(np.float64) - native[name])))
            bar.step()
    bar.close()
    return {key: {o: (noise[key][o] / count[o], signal[o] / count[o]) for o in outputs} for key in noise}


def _alone(qmodel: Quantized, data: Images, layers: list[Layer], progress: bool | None) -> dict[str, Errors]:
    """For each layer and output: (error power, signal power) with only that layer quantized."""
    trials: dict[Any, Trial] = {layer.name: functools.partial(_isolated, qmodel, layer) for layer in layers}
    return _output_errors(qmodel, data, trials, "layers alone", progress)


def _isolated(qmodel: Quantized, layer: Layer, taps: Data) -> Data:
    return isolated_outputs(qmodel, taps, layer)


# ------------------------------------------------------- view 2: at the layer


def _encoding_range(qmodel: Quantized, name: str) -> tuple[float, float]:
    """The float range that a layer's output encoding represents."""
    enc = qmodel.layers[name].out
    return enc.scale * (0 - enc.zero_point), enc.scale * ((1 << enc.bits) - 1 - enc.zero_point)


class _LayerStats:
    """Everything quantized, at one layer: agreement, the float values, the mean error per channel."""

    def __init__(self, layer: Layer, encoding_range: tuple[float, float]) -> None:
        self.agreement = AgreementSums()
        self.values = Histogram(layer.output_channels)
        self.error_sum = np.zeros(layer.output_channels or 1, np.float64)
        self.per_channel = 0
        self.below = 0
        self.encoding_range, self.beyond, self.excess = encoding_range, 0, 0.0

    def update(self, reference: np.ndarray, quantized: np.ndarray) -> None:
        r = np.asarray(reference, np.float64)
        error = quantized.astype(np.float64) - r
        self.agreement.add(r.ravel(), error.ravel())
        self.values.update(reference)
        if reference.ndim >= 2 and reference.shape[1] == self.error_sum.size:
            self.error_sum += error.sum(axis=tuple(i for i in range(error.ndim) if i != 1))
        else:
            self.error_sum += error.sum()
        self.per_channel += reference.size // self.error_sum.size
        self.below += int(np.count_nonzero(reference < LOGIT_FLOOR))
        lo, hi = self.encoding_range
        self.beyond += int(np.count_nonzero((reference < lo) | (reference > hi)))
        self.excess += float(np.sum(np.square(np.maximum(r - hi, 0.0) + np.maximum(lo - r, 0.0))))

    @property
    def mean_error(self) -> np.ndarray:
        return self.error_sum / max(self.per_channel, 1)

    def channel_ranges(self) -> tuple[np.ndarray, np.ndarray]:
        v = self.values
        low, high = v.channel_min, v.channel_max
        if low is None or high is None:
            return np.array([v.min]), np.array([v.max])
        return low.astype(np.float64), high.astype(np.float64)


def _at_layers(qmodel: Quantized, data: Images, layers: list[Layer], outputs: Kept,
               progress: bool | None = None) -> dict[str, _LayerStats]:
    """The at-layer statistics of every layer; the numeric outputs of each batch go to ``outputs``."""
    stats = {layer.name: _LayerStats(layer, _encoding_range(qmodel, layer.name)) for layer in layers}
    with Progress("layers, all quantized", data.batches, progress, unit=" batches") as bar:
        for b, batch in enumerate(data):
            reference = qmodel.run(batch, target="fp_optimized", taps="all", layout="nchw").taps
            numeric = qmodel.run(batch, target="numeric", taps="all", layout="nchw")
            for name, entry in stats.items():
                entry.update(reference[name], numeric.taps[name])
            outputs.put(b, numeric.outputs)
            bar.step()
    return stats


# ---------------------------------------------------------------- samples


def _samples(qmodel: Quantized, data: Images, names: list[str],
             stats: dict[str, _LayerStats]) -> tuple[LayerSample, ...]:
    samplers = [LayerSampler(name, *stats[name].channel_ranges(), (stats[name].values.min, stats[name].values.max),
                             _encoding_range(qmodel, name), MAX_POINTS // data.batches) for name in names]
    for b, batch in enumerate(data):
        reference = qmodel.run(batch, target="fp_optimized", taps=names, layout="nchw").taps
        quantized = qmodel.run(batch, target="numeric", taps=names, layout="nchw").taps
        for sampler in samplers:
            sampler.update(reference[sampler.name], quantized[sampler.name], seed=b)
    return tuple(s.result() for s in samplers)


# ---------------------------------------------------------------- recovery


def _recovery(qmodel: Quantized, data: Images, names: list[str], numeric_outputs: Kept) -> Recovery:
    quantized = {layer.name for layer in compute_layers(qmodel.graph)} - set(names)
    outputs = [o.name for o in qmodel.graph.outputs]
    sums = {kind: {o: AgreementSums() for o in outputs} for kind in ("numeric", "recovered", "keep_native")}
    samplers = {o: OutputSampler(o, qmodel.graph[o].output_channels or 1, MAX_POINTS // data.batches) for o in outputs}
    for b, batch in enumerate(data):
        numeric = numeric_outputs.get(b, outputs)
        native = qmodel.run(batch, target="native", layout="nchw").outputs
        recovered = run_partial(qmodel, qmodel.feeds(batch, "nchw"), quantized)
        kept = qmodel.run(batch, target="numeric", keep_native=names, layout="nchw").outputs
        for o in outputs:
            for kind, values in (("numeric", numeric), ("recovered", recovered), ("keep_native", kept)):
                sums[kind][o].update(native[o], values[o])
            samplers[o].update(native[o], numeric[o], recovered[o], seed=b)
    samples = tuple(samplers[o].result() for o in outputs)
    results = {kind: {o: acc.result() for o, acc in by_output.items()} for kind, by_output in sums.items()}
    return Recovery(tuple(names), results["numeric"], results["recovered"], results["keep_native"], samples)


# ------------------------------------------------------------------ advice


def _tensor_quantized(qmodel: Quantized, layer: Layer, encoding: Encoding, taps: Data) -> Data:
    return outputs_with(qmodel, taps, layer, encoding.dequantize(encoding.quantize(taps[layer.name])))


def _clip_trials(qmodel: Quantized, data: Images, layers: list[Layer], stats: dict[str, _LayerStats],
                 progress: bool | None) -> dict[str, dict[str, tuple[float, float]]]:
    """For the ``layers`` whose extreme values make a large share of the range: the SNR of each output
    with only this tensor quantized, at its encoding and at one clipped to the percentiles."""
    trials: dict[Any, Trial] = {}
    for layer in layers:
        v = stats[layer.name].values
        lo, hi = v.percentile(PERCENTILES[0]), v.percentile(PERCENTILES[1])
        if max(hi, 0) - min(lo, 0) > CLIP_RATIO * (max(v.max, 0) - min(v.min, 0)):
            continue
        now = qmodel.layers[layer.name].out
        for tag, encoding in (("now", now), ("clipped", Encoding.from_range(lo, hi, now.bits))):
            trials[layer.name, tag] = functools.partial(_tensor_quantized, qmodel, layer, encoding)
    errors = _output_errors(qmodel, data, trials, "clipping trials", progress) if trials else {}
    snr = snr_from_powers
    return {name: {o: (snr(*now[o]), snr(*errors[name, "clipped"][o])) for o in now if now[o][0] > 0}
            for (name, tag), now in errors.items() if tag == "now"}


def _facts(qmodel: Quantized, layer: Layer, stats: _LayerStats, alone: Errors,
           equalizable: dict[str, tuple[str, ...]], clip_trial: dict[str, tuple[float, float]] | None) -> LayerFacts:
    enc = qmodel.layers[layer.name].out
    readers = qmodel.graph.consumers(layer.name)
    output = next((r.name for r in readers if r.kind == "output_layer"), None)
    low, high = stats.channel_ranges()
    v = stats.values
    zeroed, channels = zeroed_channels(qmodel, layer)
    return LayerFacts(
        layer.name, layer.kind, layer.activation, enc.scale, enc.zero_point, enc.bits,
        qmodel.layers[layer.name].weight_bits, v.min, v.max, v.percentile(PERCENTILES[0]),
        v.percentile(PERCENTILES[1]), low, high, stats.agreement.result().mse, stats.mean_error,
        stats.below / max(v.count, 1), output, alone[output][0] if output else 0.0, weight_error(qmodel, layer),
        equalizable.get(layer.name, tuple(r.name for r in readers)), layer.name in equalizable,
        plan_flags(qmodel, layer.name), clip_trial, stats.beyond / max(v.count, 1),
        stats.excess / max(v.count, 1), int(qmodel.report.calibration_images or 0),
        kernel=tuple(layer.attrs.get("kernel_shape", ())) if layer.kind == "conv" else (),
        zeroed_channels=zeroed, channels=channels)


# ----------------------------------------------------------------- analyze


def _harm(alone: Errors) -> tuple[float, float]:
    """The sort key of the table: the worst output's SNR, then the mean (dB)."""
    snrs = [snr_from_powers(*pair) for pair in alone.values()]
    return min(snrs), float(np.mean(snrs))


def _row(qmodel: Quantized, layer: Layer, alone: Errors, stats: _LayerStats, advice: list[Advice]) -> LayerRow:
    snrs = {o: snr_from_powers(*pair) for o, pair in alone.items()}
    worst = min(snrs, key=lambda o: snrs[o])
    q = qmodel.layers[layer.name]
    return LayerRow(layer.name, layer.kind, q.weight_bits, q.out.bits, snrs[worst], worst,
                    float(np.mean(list(snrs.values()))), snrs, stats.agreement.result(), stats.values.min,
                    stats.values.max, stats.beyond / max(stats.values.count, 1), tuple(a.key for a in advice))


def _check(worst: int, isolation_images: int) -> None:
    for name, value in (("worst", worst), ("isolation_images", isolation_images)):
        if not isinstance(value, int) or value < 1:
            raise AllsError.of("ALS512", f"`{name}` must be an integer >= 1, not {value!r}",
                         f"for example {name}={DEFAULT_WORST if name == 'worst' else DEFAULT_ISOLATION_IMAGES}")


def _diagnostics(analysis_images: int, isolation: int, recovery: Recovery) -> list[Diagnostic]:
    found = []
    if isolation < analysis_images:
        found.append(Diagnostic("ALS513", Severity.INFO, f"the layers were quantized one at a time on the first "
                                f"{isolation} of the {analysis_images} images", help="each layer reruns the network "
                                "below it; pass more isolation images for a steadier ranking"))
    shares = {o: recovery.removed(o) for o in recovery.numeric if recovery.numeric[o].mse > 0}
    if shares and min(shares.values()) < 0.5:
        o = min(shares, key=lambda k: shares[k])
        before, after = recovery.numeric[o].snr_db, recovery.recovered[o].snr_db
        message = (f"the {len(recovery.layers)} worst layers in float remove only {max(shares[o], 0):.0%} of the "
                   f"error at `{o.rsplit('/', 1)[-1]}` ({before:.2f} -> {after:.2f} dB)")
        found.append(Diagnostic("ALS514", Severity.WARNING, message, help="the error is spread over more layers, or "
                                "comes from how their errors interact: look further down the table, or keep more "
                                "layers"))
    return found


@runtime_call
def analyze(qmodel: Quantized, x: Any, layout: str = "nhwc", worst: int = DEFAULT_WORST,
            isolation_images: int = DEFAULT_ISOLATION_IMAGES, progress: bool | None = None, *,
            threads: int | None = None, memory_limit: int | str | None = None) -> Analysis:
    """The layer analysis of ``qmodel`` on images ``x`` ((N, H, W, C) for "nhwc", or a dict per input: arrays,
    memory-mapped ``.npy`` or folders of them, `alls.arrays.Folder`), on at most ``threads`` threads (None: the model's, else
    every core). The images are read a batch at a time and the figures accumulated over the batches, so what
    the analysis holds is bounded by ``memory_limit`` (bytes or text such as "4GiB"; default 4 GiB), not by
    the number of images (`alls.runtime.analysis.passes`)."""
    _check(worst, isolation_images)
    limit = check_memory_limit(memory_limit)
    data = _images(qmodel, x, layout, limit)
    with Kept(limit // 4) as numeric_outputs:
        return _analyze(qmodel, data, worst, min(isolation_images, len(data)), numeric_outputs, progress)


def _analyze(qmodel: Quantized, data: Images, worst: int, isolation: int, numeric_outputs: Kept,
             progress: bool | None) -> Analysis:
    from alls.runtime.algorithms.equalize import pairs

    layers = compute_layers(qmodel.graph)
    subset = data.head(isolation)
    clock = _Clock()
    alone = _alone(qmodel, subset, layers, progress)
    clock.lap("alone")
    stats = _at_layers(qmodel, data, layers, numeric_outputs, progress)
    clock.lap("at_layer")
    ranked = sorted(layers, key=lambda l: _harm(alone[l.name]))
    trials = _clip_trials(qmodel, subset, ranked[:CLIP_TRIALS], stats, progress)
    clock.lap("clip_trials")
    equalizable = {p.writer: p.readers for p in pairs(qmodel.graph)}
    advice = {l.name: advise(_facts(qmodel, l, stats[l.name], alone[l.name], equalizable, trials.get(l.name)))
              for l in layers}
    rows = [_row(qmodel, l, alone[l.name], stats[l.name], advice[l.name]) for l in ranked]
    blamed = [l.name for l in ranked[:worst]]
    samples = _samples(qmodel, data, blamed, stats)
    clock.lap("samples")
    with Progress("recovery", 1, progress, unit=" pass") as bar:
        recovery = _recovery(qmodel, data, blamed, numeric_outputs)
        bar.step()
    clock.lap("recovery")
    images = len(data)
    return Analysis(qmodel.graph.name, images, isolation, recovery.numeric, tuple(rows),
                    tuple(a for row in rows for a in advice[row.name]), recovery, samples,
                    tuple(_diagnostics(images, isolation, recovery)), clock.seconds)


class _Clock:
    """Seconds per phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name], self.last = now - self.last, now
