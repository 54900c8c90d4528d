"""Calibration's statistics kernels against NumPy's min and max, in one process.

For CenterFace-like layer outputs (float32 NCHW: 32 channels of 160x160, 64 of 80x80, 128 of
40x40, 256 of 20x20, 8 images each, after a ReLU and before it) it times, on one thread:

- `alls.runtime.kernels.stats.extremes` with per-channel extremes (what `TensorStats.update` calls:
  the minimum, maximum, zeros, NaNs and the channels' extremes, in one pass);
- NumPy's ``x.min(axis=(0, 2))`` and ``x.max(axis=(0, 2))`` of the same (N, C, R) view (the
  per-channel extremes alone, two passes): the reference;
- `alls.runtime.kernels.stats.histogram` over the same values.

Each figure is the median of ``--repeat`` runs (default 9), ours and NumPy's alternating, CPU time;
the ratio is NumPy's time over ours (above 1: ours is faster). The extremes are checked against
NumPy's first. It prints figures only and always exits 0.

    python tests/bench/bench_stats.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

SHAPES = {"32 x 160x160": (32, 160, 160), "64 x 80x80": (64, 80, 80), "128 x 40x40": (128, 40, 40),
          "256 x 20x20": (256, 20, 20)}


def _cpu(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def _measure(x: np.ndarray, repeat: int) -> tuple[float, float, float]:
    """Milliseconds (CPU medians) of `extremes`, NumPy's per-channel min and max, and `histogram` over ``x``."""
    from alls.runtime.kernels.stats import extremes, histogram

    view = x.reshape(x.shape[0], x.shape[1], -1)
    lo, hi = np.full(x.shape[1], np.inf, np.float32), np.full(x.shape[1], -np.inf, np.float32)
    extremes(view, lo, hi, True)
    assert np.array_equal(lo, view.min(axis=(0, 2))) and np.array_equal(hi, view.max(axis=(0, 2)))
    pos, neg = np.zeros(2048, np.int64), np.zeros(2048, np.int64)
    width = np.float32(abs(x).max() / 2048)
    ours, theirs, hist = [], [], []
    for _ in range(repeat):
        ours.append(_cpu(lambda: extremes(view, lo, hi, True)))
        theirs.append(_cpu(lambda: (view.min(axis=(0, 2)), view.max(axis=(0, 2)))))
        hist.append(_cpu(lambda: histogram(x.reshape(-1), width, width, pos, neg)))
    a, b, h = (1e3 * statistics.median(t) for t in (ours, theirs, hist))
    return a, b, h


def main() -> None:
    import numba

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--images", type=int, default=8)
    args = parser.parse_args()
    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"{'tensor':26s} {'extremes ms':>12s} {'numpy min+max ms':>17s} {'ratio':>6s} {'histogram ms':>13s}")
    for name, shape in SHAPES.items():
        for relu in (False, True):
            x = rng.normal(size=(args.images, *shape)).astype(np.float32)
            if relu:
                np.maximum(x, 0, out=x)
            a, b, h = _measure(x, args.repeat)
            print(f"{name + (' relu' if relu else ''):26s} {a:12.2f} {b:17.2f} {b / a:6.2f} {h:13.2f}")


if __name__ == "__main__":
    main()
