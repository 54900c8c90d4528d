"""A YOLOv8n at 320x320 (`zoo_models.build_yolov8`, random weights, cut at its six head convs as
Hailo's parser takes it): the default flow's time and the numeric target's batch-1 time, against onnxruntime, in one
process.

- flow: `Runner.quantize` with the default script (calibration on 64 images, quantization) against
  onnxruntime's `quantize_static` on the same images (QDQ, uint8 activations, int8 weights);
- batch 1: `QuantizedModel.run(x, target="numeric")` on one image against onnxruntime's int8 model
  (graph optimizations on, so QLinearConv) and its float model, after a warm-up run.

Images are scikit-image's photographs (`datasets.face_scenes`) scaled to 0..1, or uniform noise
when scikit-image is missing. Medians of ``--repeat`` runs; the ratio is alls' time over
onnxruntime's (below 1 is faster). Each output's SNR against the float model is printed for
context. It prints figures only and exits 0: there are no timing assertions.

    python tests/bench/bench_yolo.py [--size 320] [--repeat 5] [--threads 1]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_network import median_time, ort_models, session  # noqa: E402

from alls.runtime.analysis.metrics import snr_db  # noqa: E402
from alls.runtime.session.runner import Runner  # noqa: E402
from test_yolo import HEAD_CONVS, cut_at  # noqa: E402
from zoo_models import build_yolov8  # noqa: E402


def images(n: int, size: int, seed: int) -> tuple[np.ndarray, str]:
    import datasets

    try:
        return datasets.face_scenes(n, size, seed=seed) / 255.0, "scikit-image photographs"
    except datasets.Unavailable:
        return np.random.default_rng(seed).random((n, size, size, 3)).astype(np.float32), "uniform noise"


def main() -> None:
    import numba
    import onnx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--calib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))

    folder = Path(tempfile.mkdtemp())
    path = folder / "yolov8n.onnx"
    onnx.save(cut_at(build_yolov8("n", args.size), HEAD_CONVS), str(path))
    calib, source = images(args.calib, args.size, seed=0)
    x, _ = images(1, args.size, seed=1)
    x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2), np.float32)
    print(f"yolov8n at {args.size}x{args.size}, cut at its six head convs; {args.calib} calibration images "
          f"({source}); {args.threads} thread(s); load average {os.getloadavg()[0]:.2f}")

    flows, qmodel = [], None
    for _ in range(max(1, args.repeat // 2)):
        start = time.perf_counter()
        runner = Runner(path)
        qmodel = runner.quantize(calib, progress=False)
        flows.append(time.perf_counter() - start)
    ort_flows, qdq = [], None
    calib_nchw = np.ascontiguousarray(calib.transpose(0, 3, 1, 2), np.float32)
    for _ in range(max(1, args.repeat // 2)):
        start = time.perf_counter()
        qdq = ort_models(path, "images", calib_nchw, folder)
        ort_flows.append(time.perf_counter() - start)
    flow, ort_flow = statistics.median(flows), statistics.median(ort_flows)
    print(f"  default flow:   alls {flow:7.2f} s   ort quantize_static {ort_flow:7.2f} s ({flow / ort_flow:.2f}x its time)")

    int8 = session(qdq, args.threads, optimized=True)
    fp32 = session(path, args.threads, optimized=True)
    t_alls = median_time(lambda: qmodel.run(x, target="numeric"), args.repeat)
    t_int8 = median_time(lambda: int8.run(None, {"images": x_nchw}), args.repeat)
    t_fp32 = median_time(lambda: fp32.run(None, {"images": x_nchw}), args.repeat)
    print(f"  batch 1:        alls numeric {t_alls * 1e3:7.1f} ms   ort int8 {t_int8 * 1e3:7.1f} ms "
          f"({t_alls / t_int8:.2f}x its time)   ort float {t_fp32 * 1e3:7.1f} ms ({t_alls / t_fp32:.2f}x)")

    test, _ = images(8, args.size, seed=2)
    test_nchw = np.ascontiguousarray(test.transpose(0, 3, 1, 2), np.float32)
    native = qmodel.run(test, target="native").outputs
    numeric = qmodel.run(test, target="numeric").outputs
    theirs = [int8.run(None, {"images": test_nchw[i:i + 1]}) for i in range(len(test))]
    for k, name in enumerate(native):
        ort_out = np.concatenate([t[k] for t in theirs]).transpose(0, 2, 3, 1)
        print(f"  {name.rsplit('/', 1)[-1]:>14} SNR against float on 8 other images: alls "
              f"{snr_db(native[name], numeric[name]):5.1f} dB, ort int8 {snr_db(native[name], ort_out):5.1f} dB")
    print(f"  load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
