"""Calibration: streaming statistics of every tensor over the calibration set.

`calibrate(graph, plan, data, ...)` runs the float network batch by batch
(after the script's normalization) and keeps, for every layer, statistics
of its output and, where its activation is a table, of the tensor before
the activation: min, max, per-channel min and max, and a histogram for
percentiles. Memory is bounded: a histogram has a fixed number of bins
whose width doubles (merging pairs of bins) when a value falls beyond it.

The data are checked first (`check_data`): shape, layout, dtype, NaN/Inf,
constant images, and enough images for ``batch_size x calib_num_batch``
(Hailo's OutOfRange error). Each problem is an `AllsError` with its code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from alls.diagnostics import AllsError, Severity
from alls.graph import Graph, Layer
from alls.plan import Plan
from alls.progress import Progress
from alls.runtime.exec.native import run_float
from alls.runtime.ops import OPS
from alls.runtime.ops.activation import TABLE_ACTIVATIONS
from alls.runtime.ops.base import RANGE_MARGIN, Params, activation_range, with_margin

if TYPE_CHECKING:
    from alls.runtime.exec.stream import Source

__all__ = ["TensorStats", "LayerStats", "calibrate", "check_data", "to_nchw", "input_arrays", "normalize",
           "TABLE_ACTIVATIONS", "check_values", "NonFinite", "RANGE_MARGIN", "with_margin", "activation_range"]

E = Severity.ERROR
BINS = 2048

_MAX_DOUBLINGS = 4096


class NonFinite(ArithmeticError):
    """A tensor held NaN (``nans`` of them) or Inf: its statistics are undefined."""

    def __init__(self, nans: int):
        super().__init__(f"{nans} NaN" if nans else "Inf")
        self.nans = nans


class TensorStats:
    """Min, max, count and a histogram of one tensor, updated batch by batch.

    The histogram has two halves of `BINS` bins each, for the magnitudes of
    the negative and the positive values; a half's bin width doubles (pairs
    of bins merge) whenever a value falls beyond its last bin.
    """

    def __init__(self, channels: int | None = None):
        self.min, self.max, self.count, self.zeros = math.inf, -math.inf, 0, 0
        # by sign: [the bin counts (int64), the bin width]
        self.halves: dict[int, list[Any]] = {1: [np.zeros(BINS, np.int64), 0.0], -1: [np.zeros(BINS, np.int64), 0.0]}
        self.channel_min = np.full(channels, np.inf, np.float32) if channels else None
        self.channel_max = np.full(channels, -np.inf, np.float32) if channels else None

    def update(self, x: np.ndarray) -> None:
        from alls.runtime.kernels.stats import extremes, histogram

        x = np.ascontiguousarray(x)
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float32)
        own = (self.channel_min, self.channel_max) if self.channel_min is not None and self.channel_max is not None \
            and x.ndim >= 2 and x.shape[1] == self.channel_min.size else None
        per_channel = own is not None
        if own is not None:
            view = x.reshape(x.shape[0], x.shape[1], -1)
            channel_min = own[0].astype(x.dtype)
            channel_max = own[1].astype(x.dtype)
        else:
            view = x.reshape(1, 1, -1)
            channel_min = channel_max = np.empty(1, x.dtype)
        low, high, zeros, top_pos, top_neg, nans = extremes(view, channel_min, channel_max, per_channel)
        if nans or not (math.isfinite(top_pos) and math.isfinite(top_neg)):
            raise NonFinite(int(nans))
        if own is not None:
            own[0][:] = channel_min
            own[1][:] = channel_max
        self.min, self.max = min(self.min, float(low)), max(self.max, float(high))
        self.count += x.size
        self.zeros += int(zeros)
        widths = [self._fit(sign, float(top)) for sign, top in ((1, top_pos), (-1, top_neg))]
        histogram(x.reshape(-1), x.dtype.type(widths[0]), x.dtype.type(widths[1]), self.halves[1][0],
                  self.halves[-1][0])

    def _fit(self, sign: int, top: float) -> float:
        """The bin width of one half once it holds ``top`` (pairs of bins merge until it does)."""
        half = self.halves[sign]
        width: float = half[1]
        if top <= 0.0:
            return width or 1.0  # nothing to add to this half
        if width == 0.0:
            width = half[1] = top / BINS * (1 + 1e-6)
        for _ in range(_MAX_DOUBLINGS):  # a finite top is reached in at most ~2,100 doublings of a float64 width
            if top < width * BINS:
                return width
            half[0] = np.concatenate([half[0].reshape(-1, 2).sum(axis=1), np.zeros(BINS // 2, np.int64)])
            width = half[1] = width * 2
        raise NonFinite(0)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100), interpolated within a bin, clamped to [min, max]."""
        if self.count == 0:
            return 0.0
        target = q / 100.0 * self.count
        neg, neg_width = self.halves[-1]
        pos, pos_width = self.halves[1]
        # the bins in value order: negative magnitudes from the largest, then zeros, then positives
        edges = [(-(i + 1) * neg_width, -i * neg_width, neg[i]) for i in range(BINS - 1, -1, -1) if neg[i]]
        if self.zeros:
            edges.append((0.0, 0.0, self.zeros))
        edges += [(i * pos_width, (i + 1) * pos_width, pos[i]) for i in range(BINS) if pos[i]]
        seen = 0
        for lo, hi, n in edges:
            if seen + n >= target:
                value = lo + (hi - lo) * ((target - seen) / n)
                return float(min(max(value, self.min), self.max))
            seen += n
        return float(self.max)


@dataclass
class LayerStats:
    """The statistics of one layer: its output, and (for table activations) its input to the activation.

    For a layer with weights, ``channel_mean`` is the mean of every channel of
    its linear output (before the activation), which bias correction aims at.
    """

    output: TensorStats
    before: TensorStats | None = None
    channel_sum: np.ndarray | None = None
    channel_count: int = 0

    @property
    def channel_mean(self) -> np.ndarray | None:
        return None if self.channel_sum is None else self.channel_sum / max(self.channel_count, 1)


@dataclass
class Statistics:
    """What calibration saw: per-layer statistics, and how many images."""

    layers: dict[str, LayerStats] = field(default_factory=dict)
    images: int = 0

    def __getitem__(self, name: str) -> LayerStats:
        return self.layers[name]


# ------------------------------------------------------------------- data



def to_nchw(data: ArrayLike, layer: Layer, layout: str, dtype: DTypeLike | None = np.float32) -> np.ndarray:
    """Calibration or inference images as NCHW ``dtype`` (None keeps theirs); errors name what is wrong."""
    if layout not in ("nhwc", "nchw"):
        raise AllsError.of("ALS505", f"unknown layout `{layout}`", "use layout=\"nhwc\" (Hailo's, the default) or layout=\"nchw\"")
    data = np.asarray(data)
    if data.dtype.kind not in "fiub" or data.dtype.kind == "b":
        raise AllsError.of("ALS505", f"the data have dtype {data.dtype}; expected numbers (uint8 or float)",
                     "load the images as a numeric array")
    want = tuple(layer.output_shape[1:])  # (C, H, W)
    if data.ndim == len(want):
        data = data[None]
    if data.ndim != len(want) + 1:
        raise AllsError.of("ALS505", f"the data have shape {data.shape}; `{layer.short_name}` takes {_describe(want, layout)}",
                     "pass a batch of images: (N, H, W, C) for layout=\"nhwc\", (N, C, H, W) for layout=\"nchw\"")
    if len(want) == 3:
        nchw = data if layout == "nchw" else data.transpose(0, 3, 1, 2)
        if tuple(nchw.shape[1:]) != want:
            other = data.transpose(0, 3, 1, 2) if layout == "nchw" else data
            hint = (f"these look like {'NHWC' if layout == 'nchw' else 'NCHW'} images: pass "
                    f"layout=\"{'nhwc' if layout == 'nchw' else 'nchw'}\"" if tuple(other.shape[1:]) == want
                    else f"resize the images, or load the model with input_shapes=(N, {', '.join(map(str, want))})")
            raise AllsError.of("ALS505", f"the data have shape {data.shape} ({layout}); `{layer.short_name}` takes "
                         f"{_describe(want, layout)}", hint)
        data = nchw
    elif tuple(data.shape[1:]) != want:
        raise AllsError.of("ALS505", f"the data have shape {data.shape}; `{layer.short_name}` takes (N, {', '.join(map(str, want))})")
    return np.ascontiguousarray(data, dtype=dtype)


def input_arrays(graph: Graph, x: Any, layout: str = "nhwc", dtype: DTypeLike | None = np.float32,
                 stream_over: int | None = None) -> dict[str, np.ndarray]:
    """Images per input layer as NCHW arrays: ``x`` is one array (a one-input model) or a dict
    keyed by input layer names (full, short or ONNX). ALS505 for a wrong key, a missing input or
    inputs with different image counts. With ``stream_over`` (bytes), an input whose float copy
    would be larger, or that is memory-mapped or a `Folder`, is a `Source` read a batch at a time."""
    inputs = graph.inputs
    if not isinstance(x, Mapping):
        if len(inputs) != 1:
            raise AllsError.of("ALS505", f"the model has {len(inputs)} inputs; pass {{input name: array}}",
                               "inputs: " + ", ".join(l.short_name for l in inputs))
        x = {inputs[0].name: x}
    out: dict[str, np.ndarray | Source] = {}
    for key, value in x.items():
        layer = graph.get(key)
        if layer is None or layer.kind != "input_layer":
            raise AllsError.of("ALS505", f"`{key}` is not an input of `{graph.name}`",
                               "inputs: " + ", ".join(l.short_name for l in inputs))
        out[layer.name] = _feed(value, layer, layout, dtype, stream_over)
    missing = [l.short_name for l in inputs if l.name not in out]
    if missing:
        raise AllsError.of("ALS505", f"no data for the input{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if len({len(v) for v in out.values()}) != 1:
        raise AllsError.of("ALS505", "the inputs have different numbers of images")
    # a streamed input's `Source` stands in for its array: the session reads it as it reads one (shape,
    # length, slices of images, numpy.asarray) and tells it apart where it must
    return out  # type: ignore[return-value]


def _feed(value: Any, layer: Layer, layout: str, dtype: DTypeLike | None, stream_over: int | None
          ) -> np.ndarray | Source:
    """`to_nchw` of ``value``, or a `Source` of it where it is to be streamed (checked on its first image)."""
    from alls.runtime.exec.stream import Source, read

    want = len(layer.output_shape)
    shape = getattr(value, "shape", None)
    lazy = not isinstance(value, np.ndarray) or isinstance(value, np.memmap) or _mapped(value)
    if (stream_over is None or shape is None or len(shape) != want or not len(value)
            or not (lazy or 4 * value.size > stream_over)):
        return to_nchw(value, layer, layout, dtype)
    first = to_nchw(read(value, slice(0, 1)), layer, layout, dtype)
    return Source(value, lambda part: to_nchw(part, layer, layout, dtype), first.shape[1:])


def _mapped(array: np.ndarray) -> bool:
    from alls.runtime.exec.stream import _mapping

    return _mapping(array) is not None


def _describe(chw: tuple[int, ...], layout: str) -> str:
    if len(chw) != 3:
        return f"(N, {', '.join(map(str, chw))})"
    c, h, w = chw
    return f"(N, {h}, {w}, {c}) in nhwc" if layout == "nhwc" else f"(N, {c}, {h}, {w}) in nchw"


def check_data(data: np.ndarray | Source, needed: int, what: str = "calibration") -> None:
    """FAQ errors: too few images, NaN/Inf, constant data. Streamed data (a `Source`) are read a part
    at a time; the checks are minima, maxima and counts, the same over parts as over the whole."""
    from alls.runtime.exec.stream import Source, blocks

    n = data.shape[0]
    if needed > n:
        raise AllsError.of("ALS501", f"{what} asks for {needed} images but was given {n}",
                     "give more images, or lower batch_size x calib_num_batch (or calibset_size) to at most "
                     f"{n}")
    if isinstance(data, Source):
        parts = blocks(needed, data.nbytes // max(n, 1), _CHECK_BYTES)
        low, high = _check_parts((data[part] for part in parts), needed, what)
    else:
        sample = data[:needed]
        check_values(sample, what)
        low, high = (float(sample.min()), float(sample.max())) if needed > 0 else (0.0, 1.0)
    if needed > 0 and high == low:
        raise AllsError.of("ALS504", f"the {what} data are constant (every value is {low:g})",
                     "calibrate on real, pre-processed images: constant or random data give meaningless ranges")


_CHECK_BYTES = 1 << 28


def _check_parts(parts: Iterable[np.ndarray], needed: int, what: str) -> tuple[float, float]:
    """`check_values` over parts of ``needed`` images (the counts added up); their minimum and maximum."""
    low, high, bad = math.inf, -math.inf, 0
    for part in parts:
        finite = np.isfinite(part).reshape(len(part), -1).all(axis=1)
        bad += int((~finite).sum())
        if finite.all() and part.size:
            low, high = min(low, float(part.min())), max(high, float(part.max()))
    if bad:
        raise AllsError.of("ALS503", f"{bad} of the {needed} {what} images contain NaN or Inf",
                           "check the pre-processing that made the array")
    peak = max(abs(low), abs(high)) if needed else 0.0
    if peak > FLOAT16_MAX:
        raise AllsError.of("ALS521", f"the {what} reach {peak:.6g}, beyond ±{FLOAT16_MAX:g} (float16's range)",
                           "scale the images to their usual range (0..255, or normalized), or add the scaling to "
                           "the model")
    return (low, high) if needed else (0.0, 1.0)


FLOAT16_MAX = 65504.0


def check_values(data: np.ndarray, what: str = "data") -> None:
    """Images within the range the float network is run in: no NaN or Inf (ALS503), no magnitude beyond
    float16's 65504 (ALS521; a real image, raw or normalized, never comes near, while values near float32's
    limit overflow to Inf in the first layer). Integer images are converted to float32 exactly below that."""
    n = len(data)
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).reshape(n, -1).any(axis=1).sum())
        raise AllsError.of("ALS503", f"{bad} of the {n} {what} images contain NaN or Inf",
                           "check the pre-processing that made the array")
    if data.size and max(abs(float(data.min())), abs(float(data.max()))) > FLOAT16_MAX:
        peak = max(abs(float(data.min())), abs(float(data.max())))
        raise AllsError.of("ALS521", f"the {what} reach {peak:.6g}, beyond ±{FLOAT16_MAX:g} (float16's range)",
                           "scale the images to their usual range (0..255, or normalized), or add the scaling to "
                           "the model")


def normalize(data: np.ndarray, plan: Plan | None, input_name: str) -> np.ndarray:
    """The script's `normalization` of this input, (x - mean) / std per channel."""
    if plan is None:
        return data
    for norm in plan.settings.normalization:
        if norm.input == input_name:
            shape = (1, -1) + (1,) * (data.ndim - 2)
            mean = np.asarray(norm.mean, np.float32).reshape(shape)
            std = np.asarray(norm.std, np.float32).reshape(shape)
            return ((data - mean) / std).astype(np.float32)
    return data


# ------------------------------------------------------------ calibration


def batches(data: np.ndarray, batch_size: int, count: int) -> Iterator[np.ndarray]:
    for b in range(count):
        chunk = data[b * batch_size:(b + 1) * batch_size]
        if len(chunk):
            yield chunk


def calibrate(graph: Graph, data: Mapping[str, np.ndarray], batch_size: int, calib_num_batch: int,
              plan: Plan | None = None, params: Mapping[str, Params] | None = None,
              progress: bool | None = None) -> Statistics:
    """Statistics of every layer over ``batch_size x calib_num_batch`` images.

    ``data`` maps each input layer's name to NCHW float32 images (checked and
    converted by `to_nchw` / `check_data`); ``plan`` supplies the
    normalization and says which activations are tables.
    """
    needed = batch_size * calib_num_batch
    stats = Statistics()
    for layer in graph:
        channels = layer.output_channels if len(layer.output_shape) >= 2 else None
        table = layer.activation in TABLE_ACTIVATIONS
        stats.layers[layer.name] = LayerStats(TensorStats(channels), TensorStats(channels) if table else None)

    def observe(layer: Layer, before: np.ndarray, after: np.ndarray) -> None:
        entry = stats.layers[layer.name]
        try:
            entry.output.update(after)
            if entry.before is not None:
                entry.before.update(before)
        except NonFinite as exc:
            raise AllsError.of("ALS520", f"layer `{layer.short_name}` computed {exc} on calibration batch "
                               f"{batch + 1}: its statistics are undefined",
                               "the activations overflow float32: check the model's weights and the data's range "
                               "(and the script's normalization)") from None
        if layer.kind in OPS and OPS[layer.kind].accumulates and before.ndim >= 2:
            axes = tuple(i for i in range(before.ndim) if i != (1 if before.ndim == 4 else before.ndim - 1))
            sums = before.sum(axis=axes, dtype=np.float64)
            entry.channel_sum = sums if entry.channel_sum is None else entry.channel_sum + sums
            entry.channel_count += before.size // sums.size

    bar = Progress("calibration", calib_num_batch, progress)
    names = list(data)
    batch = 0
    for b in range(calib_num_batch):
        batch = b
        feeds = {name: normalize(data[name][b * batch_size:(b + 1) * batch_size], plan, name) for name in names}
        if not len(next(iter(feeds.values()))):
            break
        run_float(graph, feeds, params, observe=observe)
        stats.images += len(next(iter(feeds.values())))
        bar.step()
    bar.close()
    assert stats.images <= needed
    return stats
