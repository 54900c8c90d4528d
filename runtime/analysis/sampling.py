"""What the analysis figures show, gathered batch by batch: scatter points and per-channel histograms.

Points are subsampled deterministically: each batch gives ``count`` flat
positions drawn by a generator seeded with the batch's index, plus the
positions of its `EXTREMES` largest values and largest errors, so the
outliers that make a range always appear. Histograms count every value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alls.runtime.analysis.figures import PALETTE

__all__ = ["LayerSample", "OutputSample", "LayerSampler", "OutputSampler", "pick", "channels_of", "MAX_POINTS",
           "EXTREMES", "BINS"]

MAX_POINTS = 20_000  # scatter points per figure, spread over the batches
EXTREMES = 32
BINS = 48


@dataclass(frozen=True)
class LayerSample:
    """What the figures of one layer show: scatter points and per-channel histograms.

    ``colour[i]`` is the colour index of point i (its channel's rank among
    ``channels``, the widest first, or -1); ``counts`` has one row per
    highlighted channel and a last row for all the others, over ``edges``.
    """

    layer: str
    reference: np.ndarray
    quantized: np.ndarray
    colour: np.ndarray
    channels: tuple[int, ...]
    channel_ranges: tuple[tuple[float, float], ...]
    edges: np.ndarray
    counts: np.ndarray
    encoding_range: tuple[float, float]
    limits: tuple[float, float]
    total_channels: int


@dataclass(frozen=True)
class OutputSample:
    """Scatter points of one output: native, everything quantized, and the blamed layers in float;
    channel c < len(PALETTE) has colour c, the others -1."""

    output: str
    reference: np.ndarray
    numeric: np.ndarray
    recovered: np.ndarray
    colour: np.ndarray
    channels: int
    limits: tuple[float, float]


def pick(reference: np.ndarray, other: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Flat indices: ``count`` at random (seeded), plus the largest errors and the largest values."""
    n = reference.size
    if n <= count + 2 * EXTREMES:
        return np.arange(n)
    chosen = np.random.default_rng(seed).integers(0, n, count)
    k = EXTREMES
    flat_ref, flat_err = np.abs(reference).ravel(), np.abs(other.ravel() - reference.ravel())
    extremes = np.concatenate([np.argpartition(flat_err, n - k)[n - k:], np.argpartition(flat_ref, n - k)[n - k:]])
    return np.unique(np.concatenate([chosen, extremes]))


def channels_of(index: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The channel (axis 1) of each flat index into an array of ``shape``."""
    return np.unravel_index(index, shape)[1] if len(shape) >= 2 else np.zeros(index.size, np.int64)


class LayerSampler:
    """Scatter points and per-channel histograms of one layer's tensor.

    ``low`` and ``high`` are its channels' float ranges (the widest are
    highlighted), ``value_range`` the tensor's, ``encoding_range`` what its
    encoding represents; the histograms span both ranges.
    """

    def __init__(self, name: str, low: np.ndarray, high: np.ndarray, value_range: tuple[float, float],
                 encoding_range: tuple[float, float], per_batch: int):
        spans = np.maximum(high, 0) - np.minimum(low, 0)
        self.name, self.per_batch, self.encoding = name, per_batch, encoding_range
        self.channels = tuple(int(c) for c in np.argsort(-spans, kind="stable")[:len(PALETTE)])
        self.ranges = tuple((float(low[c]), float(high[c])) for c in self.channels)
        self.rank = np.full(spans.size, -1, np.int64)
        self.rank[list(self.channels)] = np.arange(len(self.channels))
        lo, hi = min(value_range[0], encoding_range[0]), max(value_range[1], encoding_range[1])
        self.edges = np.linspace(lo, hi if hi > lo else lo + 1.0, BINS + 1)
        self.counts = np.zeros((len(self.channels) + 1, BINS), np.int64)
        self.points: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def update(self, reference: np.ndarray, quantized: np.ndarray, seed: int) -> None:
        by_channel = np.moveaxis(reference, 1, 0) if reference.ndim >= 2 else reference[None]
        for k, c in enumerate(self.channels):
            self.counts[k] += np.histogram(by_channel[c], self.edges)[0]
        others = np.delete(by_channel, list(self.channels), axis=0)
        self.counts[-1] += np.histogram(others, self.edges)[0]
        index = pick(reference, quantized, self.per_batch, seed)
        colour = self.rank[channels_of(index, reference.shape)]
        self.points.append((reference.ravel()[index], quantized.ravel()[index], colour))

    def result(self) -> LayerSample:
        ref, quantized, colour = (np.concatenate(p) for p in zip(*self.points))
        limits = (float(self.edges[0]), float(self.edges[-1]))
        return LayerSample(self.name, ref.astype(np.float32), quantized.astype(np.float32), colour.astype(np.int8),
                           self.channels, self.ranges, self.edges, self.counts, self.encoding, limits,
                           int(self.rank.size))


class OutputSampler:
    """Scatter points of one output in three runs: native, numeric, and the blamed layers in float."""

    def __init__(self, name: str, channels: int, per_batch: int):
        self.name, self.channels, self.per_batch = name, channels, per_batch
        self.points: list[list[np.ndarray]] = []

    def update(self, native: np.ndarray, numeric: np.ndarray, recovered: np.ndarray, seed: int) -> None:
        index = pick(native, numeric, self.per_batch, seed)
        values = [v.ravel()[index] for v in (native, numeric, recovered)]
        self.points.append(values + [channels_of(index, native.shape)])

    def result(self) -> OutputSample:
        ref, num, rec, channel = (np.concatenate(p) for p in zip(*self.points))
        everything = np.concatenate([ref, num, rec])
        limits = (float(everything.min()), float(everything.max())) if everything.size else (0.0, 1.0)
        colour = np.where(channel < len(PALETTE), channel, -1).astype(np.int8)
        return OutputSample(self.name, ref, num, rec, colour, self.channels, limits)
