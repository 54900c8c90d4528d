"""Finetune's per-layer training (`reconstruct.train`) on CenterFace-like layer problems: the fused step
against the step it replaced (`tests/test_train_step.py`'s NumPy reference, its depthwise products
on the former Numba kernels, loops over rows x channels x taps, here), in one process.

Each problem is a layer of 128 images of 64 rows (CenterFace's rows at the guide's default
dataset_size), 4 images (256 rows) a step, l2rel: a dense 3x3 conv (64 → 64 channels), a 1x1 conv
(128 → 64), depthwise 3x3 convs of 64 and 256 channels, a 3x3 conv of 256 → 256 and CenterFace's
deep, wide layers at 10x10 (1x1 convs 960 → 320, 160 → 960 and 960 → 160, a depthwise 3x3 of 960
channels). Both paths learn the same weights (checked here too). CPU-time medians of ``--repeats`` runs of ``--steps`` steps each; the load average
is printed, since the machine may be shared.

``--threads N`` runs the fused step's kernels on up to N threads (wall-clock time then, for both),
as many as `alls.runtime.kernels._parallel` finds worth it and free.

The rows' gather (`alls.runtime.algorithms.patches.gather_rows`) is timed too, on CenterFace's layer
inputs (8-bit, 128 images of 64 positions, wall-clock medians): against the former kernel (taps
written in (C, KH, KW) order, no prefetch), and for a depthwise layer against that gather followed
by the former layout of its rows (`depthwise_rows`), one thread (``--threads`` to change).

    python tests/bench/bench_trainstep.py [--steps 240] [--repeats 3] [--threads 1] [--only LAYER] [--learning-rate 1e-3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import test_train_step  # noqa: E402
from numba import njit  # noqa: E402
from test_train_step import RefStepper  # noqa: E402

from alls.plan import LossType  # noqa: E402
from alls.graph import Layer  # noqa: E402
from alls.runtime.algorithms import patches as rows_of  # noqa: E402
from alls.runtime.algorithms import reconstruct as R  # noqa: E402
from alls.runtime.exec.threads import numba_threads, single_threaded_blas  # noqa: E402
from alls.runtime.kernels import _parallel  # noqa: E402
from alls.runtime.kernels.training import depthwise_rows  # noqa: E402

LAYERS = {  # (groups, outputs per group, taps)
    "conv 3x3 64->64": (1, 64, 576),
    "conv 1x1 128->64": (1, 64, 128),
    "dw 3x3 x64": (64, 1, 9),
    "dw 3x3 x256": (256, 1, 9),
    "conv 3x3 256->256": (1, 256, 2304),  # 590k weights: a deep layer's passes over them
    # CenterFace's deep, wide layers at 10x10 (the most of a default finetune's training time)
    "conv 1x1 960->320": (1, 320, 960),
    "conv 1x1 160->960": (1, 960, 160),
    "conv 1x1 960->160": (1, 160, 960),
    "dw 3x3 x960": (960, 1, 9),
}


@njit(cache=True)
def _former_forward(rows: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    n_rows, channels, taps = rows.shape
    for r in range(n_rows):
        for c in range(channels):
            acc = np.float32(0.0)
            for k in range(taps):
                acc += np.float32(rows[r, c, k]) * w[c, k]
            out[r, c] = acc


@njit(cache=True)
def _former_backward(rows: np.ndarray, grad: np.ndarray, out: np.ndarray) -> None:
    n_rows, channels, taps = rows.shape
    for c in range(channels):
        for k in range(taps):
            out[c, k] = 0.0
        for r in range(n_rows):
            g = grad[r, c]
            for k in range(taps):
                out[c, k] += g * np.float32(rows[r, c, k])


def former_forward(rows: np.ndarray, w: np.ndarray) -> np.ndarray:
    out = np.empty(rows.shape[:2], np.float32)
    _former_forward(np.ascontiguousarray(rows), np.ascontiguousarray(w, np.float32), out)
    return out


def former_backward(rows: np.ndarray, grad: np.ndarray) -> np.ndarray:
    out = np.empty(rows.shape[1:], np.float32)
    _former_backward(np.ascontiguousarray(rows), np.ascontiguousarray(grad, np.float32), out)
    return out


test_train_step.ref_depthwise_forward = former_forward  # the same sums in the same order, compiled
test_train_step.ref_depthwise_backward = former_backward


GATHERS = {  # (input H = W, input channels, kernel, depthwise)
    "conv 1x1 24->144 @80": (80, 24, 1, False),
    "conv 3x3 24->24 @80": (80, 24, 3, False),
    "conv 1x1 96->576 @20": (20, 96, 1, False),
    "dw 3x3 x144 @80": (80, 144, 3, True),
    "dw 3x3 x576 @20": (20, 576, 3, True),
}


@njit(cache=True)
def _former_patches(x: np.ndarray, n: np.ndarray, ii: np.ndarray, jj: np.ndarray, vi: np.ndarray, vj: np.ndarray,
                    zero_point: int, out: np.ndarray) -> None:
    rows, channels = out.shape[0], out.shape[1]
    kh, kw = ii.shape[1], jj.shape[1]
    for r in range(rows):
        for a in range(kh):
            for b in range(kw):
                dst = out[r, :, a, b]
                if vi[r, a] and vj[r, b]:
                    src = x[n[r], ii[r, a], jj[r, b]]
                    for c in range(channels):
                        dst[c] = src[c] - zero_point
                else:
                    for c in range(channels):
                        dst[c] = 0


def gather_case(size: int, channels: int, kernel: int, depthwise: bool, images: int = 128):
    """A CenterFace-like layer (stride 1, padded) and its 8-bit input, with its sampled positions."""
    outputs = channels if depthwise else 2 * channels
    layer = Layer(name="l", kind="dw" if depthwise else "conv", op="Conv", inputs=("x",),
                  input_shapes=((1, channels, size, size),), output_shape=(1, outputs, size, size),
                  attrs={"group": channels if depthwise else 1, "strides": [1, 1], "dilations": [1, 1],
                         "pads": [kernel // 2] * 4})
    x = np.random.default_rng(1).integers(0, 256, (images, size, size, channels)).astype(np.uint8)
    positions = rows_of.sample_positions(layer, images, np.random.default_rng(2))
    return layer, x, positions


def former_gather(layer: Layer, x: np.ndarray, positions: rows_of.Positions, kernel: int, depthwise: bool) -> object:
    group = layer.attrs["group"]
    out = np.empty((len(positions), group, x.shape[3] // group * kernel * kernel), np.int16)
    (ii, vi), (jj, vj) = rows_of._taps(layer, x, positions.i, positions.j, (kernel, kernel))
    _former_patches(x, positions.n, ii, jj, vi, vj, 128, out.reshape(len(positions), x.shape[3], kernel, kernel))
    return depthwise_rows(out) if depthwise else out


def bench_gather(repeats: int, threads: int, only: str | None) -> None:
    print(f"{'gather':22} {'former ms':>10} {'now ms':>8} {'ratio':>6}  same rows")
    for name, (size, channels, kernel, depthwise) in GATHERS.items():
        if only and only not in name:
            continue
        layer, x, positions = gather_case(size, channels, kernel, depthwise)
        times: dict[str, list[float]] = {"former": [], "now": []}
        got = {}
        with numba_threads(threads):
            for _ in range(repeats + 1):  # the first of each compiles (or loads) and is not counted
                for label in ("former", "now"):
                    start = time.perf_counter()
                    got[label] = former_gather(layer, x, positions, kernel, depthwise) if label == "former" else \
                        rows_of.gather_rows(layer, x, 128, 8, positions, (kernel, kernel))
                    times[label].append(time.perf_counter() - start)
        old, new = (statistics.median(times[k][1:]) for k in ("former", "now"))
        now = got["now"]
        if isinstance(now, rows_of.LaidRows):
            laid = got["former"]
            same = np.array_equal(now.codes.astype(np.int64) + now.offset, laid[0].astype(np.int64) + laid[1])
        else:
            same = np.array_equal(now, got["former"])
        print(f"{name:22} {1e3 * old:10.1f} {1e3 * new:8.1f} {old / new:6.2f}  {same}")


def problem(groups: int, outs: int, taps: int, images: int = 128, per_image: int = 64) -> R.Problem:
    rng = np.random.default_rng(0)
    rows = np.clip(rng.normal(0, 40, (images * per_image, groups, taps)), -128, 127).astype(np.int16)
    weight = rng.normal(0, 1 / np.sqrt(taps), (groups, outs, taps))
    scale = np.abs(weight).max(axis=2).reshape(-1) / 7
    clean = 0.02 * np.einsum("rgk,gok->rgo", rows.astype(np.float32), weight.astype(np.float32)).reshape(len(rows), -1)
    target = np.maximum(clean + rng.normal(0, 0.05 * clean.std(), clean.shape), 0).astype(np.float32)
    return R.Problem(rows=rows, per_image=per_image, target=target, weight=weight, scale=scale,
                     group_of=np.zeros(groups * outs, np.int64), wmax=7, x_scale=0.02, bias=np.zeros(groups * outs),
                     unit=float(clean.max() / 127), pre_range=(0.0, np.inf), out_range=(-np.inf, np.inf))


def run(p: R.Problem, config: R.Config, stepper: type, threads: int = 1, wall: bool = False) -> tuple[float, R.Outcome]:
    original = R._Stepper
    R._Stepper = stepper  # type: ignore[misc]
    try:
        with single_threaded_blas(), numba_threads(threads):  # as in a runtime call (BLAS threads spin between calls)
            clock = time.perf_counter if wall else time.process_time
            start = clock()
            outcome = R.train(p, config)
            return clock() - start, outcome
    finally:
        R._Stepper = original  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=240)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", help="the layers whose name contains this (the gathers too)")
    parser.add_argument("--learning-rate", type=float, default=1e-3,
                        help="1e-2 is finetune's default (the guide's 1e-4 times FINETUNE_LR_FACTOR)")
    args = parser.parse_args()
    config = replace(R.Config(images=128, epochs=64, batch_size=4, learning_rate=args.learning_rate, loss=LossType.L2REL),
                     steps=args.steps)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    run(problem(2, 2, 9), replace(config, steps=4), R._Stepper)  # compile (or load) the kernels
    total = {"numpy": 0.0, "fused": 0.0}
    print(f"{'layer':18} {'numpy ms/step':>14} {'fused ms/step':>14} {'ratio':>6}  same weights")
    for name, shape in LAYERS.items():
        if args.only and args.only not in name:
            continue
        p = problem(*shape)
        times: dict[str, list[float]] = {"numpy": [], "fused": []}
        outcomes = {}
        for _ in range(args.repeats):
            for label, stepper in (("numpy", RefStepper), ("fused", R._Stepper)):
                seconds, outcomes[label] = run(p, config, stepper, args.threads if label == "fused" else 1,
                                               args.threads > 1)
                times[label].append(seconds)
        old, new = (statistics.median(times[k]) for k in ("numpy", "fused"))
        total["numpy"] += old
        total["fused"] += new
        same = np.array_equal(outcomes["numpy"].weights, outcomes["fused"].weights)
        steps = outcomes["fused"].steps
        print(f"{name:18} {1e3 * old / steps:14.3f} {1e3 * new / steps:14.3f} {old / new:6.2f}  {same}")
    clock = "wall-clock" if args.threads > 1 else "CPU"
    if total["fused"]:
        print(f"all layers: {total['numpy'] / total['fused']:.2f}x ({clock} time, medians of {args.repeats})")
    _parallel.reset()
    bench_gather(args.repeats, args.threads, args.only)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
