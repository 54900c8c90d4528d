"""Passes of the analysis over its images, within the memory limit.

The analysis reads its images many times (each layer alone, every layer with everything quantized,
the samples, the recovery), a batch at a time:

- `Images`: the images per input, NCHW float32, each an array or a `Source` (a memory-mapped
  ``.npy``, a folder of them, an array larger than a quarter of the limit) read as it is used;
  iterating gives the batches, `head` the first images, still unread.
- `batch_size`: images per batch, so that two float copies of every layer's output fit a quarter
  of the limit (and at most `MEMORY_BUDGET`, 64 images), whatever the number of images.
- `Kept`: tensors of every batch kept for a later pass (the numeric outputs, which the recovery
  compares again), in memory within their share of the limit, beyond it in temporary files.
- `Histogram`: `TensorStats` with bin widths that are powers of two, so that the histogram, and the
  percentiles read from it, do not depend on how the images are batched.

Every figure the analysis takes per layer is a sum, a count, a minimum or a maximum over images, so
a run in many batches gives what one batch gives: counts, minima, maxima and histograms exactly,
float64 sums to their rounding.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from alls.graph import Graph
from alls.runtime.exec.calibration import BINS, TensorStats
from alls.runtime.exec.stream import DEFAULT_MEMORY_LIMIT, Source, Store

__all__ = ["Images", "Kept", "Histogram", "batch_size", "MEMORY_BUDGET", "MAX_BATCH"]

MEMORY_BUDGET = 512 << 20  # at most this many bytes of tensors per batch (two copies of every layer's output)
MAX_BATCH = 64

Data = dict[str, np.ndarray]


def batch_size(graph: Graph, memory_limit: int | None = None) -> int:
    """Images per batch: two float copies of every layer's output within a quarter of ``memory_limit``
    (default `DEFAULT_MEMORY_LIMIT`) and `MEMORY_BUDGET`; at least 1, at most `MAX_BATCH`."""
    limit = DEFAULT_MEMORY_LIMIT if memory_limit is None else memory_limit
    per_image = sum(math.prod(d for d in layer.output_shape[1:] if isinstance(d, int)) for layer in graph) * 4
    budget = min(MEMORY_BUDGET, limit // 4)
    return int(min(MAX_BATCH, max(1, budget // max(2 * per_image, 1))))


class Images:
    """The images of every input (NCHW float32, each an array or a `Source`), read ``size`` images at a time."""

    def __init__(self, data: Mapping[str, np.ndarray | Source], size: int):
        self.data, self.size = dict(data), max(1, size)
        self.count = len(next(iter(self.data.values())))

    def __len__(self) -> int:
        return self.count

    @property
    def batches(self) -> int:
        return -(-self.count // self.size)

    def head(self, count: int) -> Images:
        """The first ``count`` images, still unread."""
        return Images({k: v.head(count) if isinstance(v, Source) else v[:count] for k, v in self.data.items()},
                      self.size)

    def __iter__(self) -> Iterator[Data]:
        for start in range(0, self.count, self.size):
            yield {k: np.asarray(v[start:start + self.size]) for k, v in self.data.items()}


class Kept:
    """Tensors of every batch, kept for a later pass: in memory within ``budget`` bytes, beyond it in
    unlinked temporary files (`Store`)."""

    def __init__(self, budget: int):
        self.store = Store(budget)

    def put(self, batch: int, values: Mapping[str, np.ndarray]) -> None:
        for name, value in values.items():
            slot = self.store.allocate(value.shape, value.dtype)
            slot[:] = value
            self.store[f"{batch}/{name}"] = slot

    def get(self, batch: int, names: list[str]) -> Data:
        return {name: np.asarray(self.store[f"{batch}/{name}"][:]) for name in names}

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Kept:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Histogram(TensorStats):
    """`TensorStats` whose bin widths are powers of two: a half starts at the smallest power of two
    whose `BINS` bins hold its first values, and merging two bins of width w is binning at 2w (values
    divided by a power of two are exact), so the bins end the same for any batching of the images."""

    def _fit(self, sign: int, top: float) -> float:
        half = self.halves[sign]
        if half[1] == 0.0 and 0.0 < top < math.inf:
            half[1] = math.ldexp(1.0, math.frexp(top / BINS)[1])  # top / BINS < 2**e: top < width * BINS
        return super()._fit(sign, top)
