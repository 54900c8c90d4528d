"""Finetune and adaround at 4-bit weights against round to nearest, with their run times.

- digits: the shipped CNN with `quantization_param({conv*}, precision_mode=a8_w4)` and mmse weights
  clipping (level 0: equalization, no bias correction). Trained on the 64 calibration images and
  augmented copies of them (the same pool as tests/test_finetune.py), evaluated on the 360 test
  images: SNR of the logits against native, and accuracy.
- centerface: CenterFace at 320x320, calibrated on 64 and trained on ``--images`` scenes of
  `datasets.face_scenes(seed=0)`, evaluated on ``--test`` scenes drawn with seed 1: the cosine of
  each output against native (the heatmap first). Two flows, each round to nearest and then
  finetune (``--images`` images, ``--epochs`` epochs):
  "plain": `quantization_param({conv*}, precision_mode=a8_w4)` with no equalization, bias
  correction or clipping (round to nearest collapses);
  "guide": every weighted layer (conv, dw, deconv) at a8_w4 with mmse weights clipping at the
  default level (equalization and bias correction), as Hailo's guide asks of 4-bit weights.
  Beside them, onnxruntime's `quantize_static` with int4 weights on every conv (QDQ, uint8
  activations, per tensor and per channel) from the same 64 calibration scenes.
  Skipped when the model or scikit-image is unavailable.

    python tests/bench/bench_finetune.py [--models digits,centerface] [--images 128] [--epochs 16] [--test 32]

Times are whole `Runner.quantize` calls (calibration, equalization, bias correction and the
reconstruction), on however many cores Numba is given; it prints figures and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "bench"))

from alls.runtime.analysis.metrics import cosine, snr_db, top1  # noqa: E402
from alls.runtime.session.runner import Runner  # noqa: E402

DIGITS = ROOT / "samples" / "digits"
DIGITS_W4 = ("model_optimization_flavor(optimization_level=0)\n"
             "quantization_param({conv*}, precision_mode=a8_w4)\n"
             "pre_quantization_optimization(weights_clipping, layers={conv*}, mode=mmse)\n")
FACE_PLAIN = ("model_optimization_flavor(optimization_level=0)\n"
              "pre_quantization_optimization(equalization, policy=disabled)\n"
              "quantization_param({conv*}, precision_mode=a8_w4)\n")
FACE_GUIDE = ("quantization_param([{conv*}, {dw*}, {deconv*}], precision_mode=a8_w4)\n"
              "pre_quantization_optimization(weights_clipping, layers=[{conv*}, {dw*}, {deconv*}], mode=mmse)\n")


def timed(runner: Runner, script: str, images: np.ndarray, **kw) -> float:
    runner.load_script(script)
    start = time.perf_counter()
    runner.quantize(images, progress=sys.stderr.isatty(), **kw)
    return time.perf_counter() - start


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print()


def bench_digits() -> None:
    from test_finetune import augmented

    x, y = np.load(DIGITS / "test_x.npy"), np.load(DIGITS / "test_y.npy")
    pool = augmented(np.load(DIGITS / "calib.npy"), 1024)
    runner = Runner(DIGITS / "digits_cnn.onnx")
    native = runner.infer(x, target="native").output
    variants = [
        ("a8_w4 round to nearest", ""),
        ("a8_w4 adaround (512 images, 8 epochs, lr 1e-2)",
         "post_quantization_optimization(adaround, policy=enabled, dataset_size=512, epochs=8, learning_rate=0.01)"),
        ("a8_w4 adaround (level 3: 256 images, 320 epochs)",
         "post_quantization_optimization(adaround, policy=enabled, dataset_size=256, epochs=320)"),
        ("a8_w4 finetune (1024 images, 4 epochs)", "post_quantization_optimization(finetune, policy=enabled, "
         "dataset_size=1024)"),
    ]
    rows = [["float (native)", "-", f"{100 * np.mean(top1(native) == y):.2f}", "-"]]
    for label, statement in variants:
        seconds = timed(runner, DIGITS_W4 + statement + "\n", pool)
        out = runner.infer(x).output
        rows.append([label, f"{snr_db(native, out):.2f}", f"{100 * np.mean(top1(out) == y):.2f}", f"{seconds:.1f}"])
    print(f"digits: trained on the 64 calibration images and augmented copies, evaluated on {len(x)} test images")
    table(["variant", "SNR dB", "accuracy %", "time s"], rows)


def onnxruntime_int4(model: Path, calib: np.ndarray, scenes: np.ndarray, native: dict) -> list[list[str]]:
    """onnxruntime's `quantize_static` with int4 weights on every conv (uint8 activations), per
    tensor and per channel, calibrated on the same scenes: the rows of the table."""
    import tempfile

    import onnx
    from bench_network import fixed_batch_model, ort_models, session
    from onnx import version_converter

    x = np.ascontiguousarray(scenes.transpose(0, 3, 1, 2))
    path = fixed_batch_model(model, len(x), (1, 3, 320, 320))
    onnx.save(version_converter.convert_version(onnx.load(str(path)), 21), str(path))  # int4 QDQ needs 21
    folder, rows = Path(tempfile.mkdtemp()), []
    for per_channel in (False, True):
        started = time.perf_counter()
        qdq = ort_models(path, "input.1", np.ascontiguousarray(calib.transpose(0, 3, 1, 2)), folder,
                         per_channel=per_channel, weight_bits=4)
        outputs = session(qdq, 1, True).run(None, {"input.1": x})
        rows.append([f"onnxruntime a8_w4, per {'channel' if per_channel else 'tensor'}, every conv",
                     *(f"{cosine(native[k], o):.4f}" for k, o in zip(native, outputs)),
                     f"{time.perf_counter() - started:.1f}"])
    return rows


def bench_centerface(images: int, epochs: int, test: int) -> None:
    import datasets
    import models

    try:
        model = models.centerface()
        pool, scenes = datasets.face_scenes(images, seed=0), datasets.face_scenes(test, seed=1)
    except (models.Unavailable, datasets.Unavailable) as exc:
        print(f"centerface: skipped ({exc})")
        return
    runner = Runner(model, input_shapes=(1, 3, 320, 320))
    native = runner.infer(scenes, target="native").outputs
    calibration = "model_optimization_config(calibration, batch_size=8, calibset_size=64)\n"
    finetune = f"post_quantization_optimization(finetune, policy=enabled, dataset_size={images}, epochs={epochs})\n"
    rows = []
    for flow, script in (("plain", FACE_PLAIN), ("guide", FACE_GUIDE)):
        for label, extra in (("round to nearest", ""), (f"finetune ({images} images, {epochs} epochs)", finetune)):
            seconds = timed(runner, calibration + script + extra, pool)
            outputs = runner.infer(scenes).outputs
            rows.append([f"{flow}: a8_w4 {label}", *(f"{cosine(native[k], outputs[k]):.4f}" for k in native),
                         f"{seconds:.1f}"])
    rows += onnxruntime_int4(model, pool[:64], scenes, native)
    print(f"centerface 320x320: calibrated on 64 and trained on {images} scenes (seed 0), evaluated on {test} "
          "scenes (seed 1); cosine against native per output")
    table(["variant", *(f"{k.rsplit('/', 1)[1]}{' (heatmap)' if i == 0 else ''}" for i, k in enumerate(native)),
           "time s"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,centerface")
    parser.add_argument("--images", type=int, default=128, help="CenterFace finetune images (dataset_size)")
    parser.add_argument("--epochs", type=int, default=16, help="CenterFace finetune epochs")
    parser.add_argument("--test", type=int, default=32, help="CenterFace evaluation scenes")
    args = parser.parse_args()
    chosen = args.models.split(",")
    if "digits" in chosen:
        bench_digits()
    if "centerface" in chosen:
        bench_centerface(args.images, args.epochs, args.test)


if __name__ == "__main__":
    main()
