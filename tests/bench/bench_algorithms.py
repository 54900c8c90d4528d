"""What each algorithm is worth on CenterFace at 320x320, against onnxruntime's 8-bit models.

Calibration: 64 scenes of `tests/datasets.py` (seed 0); scoring: other scenes (seed 1). For each
configuration it prints the cosine and SNR of every output against the float model, and for bias
correction the share of the mean channel error it removed per layer and how many channels a weight's
rounding finished. onnxruntime's `quantize_static` runs on the same calibration images, per tensor
and per channel (QDQ, uint8 activations, int8 weights); the better of the two is its best 8-bit
configuration here.

    python tests/bench/bench_algorithms.py [--images 16]

It prints figures only and exits 0.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

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

OFF = "model_optimization_flavor(optimization_level=0)\npre_quantization_optimization(equalization, policy=disabled)\n"
BIAS16 = "quantization_param([{conv*}, {dw*}, {deconv*}], bias_mode=double_scale_initialization)\n"
CONFIGS = [
    ("round to nearest (8-bit bias)", OFF),
    ("+ equalization", OFF + "pre_quantization_optimization(equalization, policy=enabled)\n"),
    ("+ bias correction (8-bit bias)", OFF + "pre_quantization_optimization(equalization, policy=enabled)\n"
     "post_quantization_optimization(bias_correction, policy=enabled)\n"),
    ("+ bias correction (16-bit bias)", BIAS16 + OFF + "pre_quantization_optimization(equalization, policy=enabled)\n"
     "post_quantization_optimization(bias_correction, policy=enabled)\n"),
    ("default flow + 16-bit outputs", BIAS16 + "quantization_param({output_layer*}, precision_mode=a16_w16)\n"),
]


def main() -> None:
    import datasets
    import models
    from bench_network import fixed_batch_model, ort_models, session

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    args = parser.parse_args()
    try:
        path = models.centerface()
        calib, test = datasets.face_scenes(64, seed=0), datasets.face_scenes(args.images, seed=1)
    except (models.Unavailable, datasets.Unavailable) as exc:
        print(f"skipped: {exc}")
        return
    shape = (1, 3, 320, 320)
    x = np.ascontiguousarray(test.transpose(0, 3, 1, 2))
    rows = []
    native = None
    for name, script in CONFIGS:
        runner = Runner(path, shape)
        runner.load_script(script)
        start = time.perf_counter()
        qmodel = runner.quantize(calib, progress=False)
        seconds = time.perf_counter() - start
        if native is None:
            native = qmodel.run(x, target="native", layout="nchw").outputs
        numeric = qmodel.run(x, layout="nchw").outputs
        rows.append((name, [cosine(native[k], numeric[k]) for k in native], snr_db(*(next(iter(d.values()))
                                                                                      for d in (native, numeric))),
                     seconds))
        ibc = qmodel.report.get("bias_correction") or []
        if ibc:
            removed = sorted(r["removed"] for r in ibc)
            below = [r["layer"].rsplit("/", 1)[-1] for r in ibc if r["removed"] < 0.9]
            flipped = sum(r["channels_flipped"] for r in ibc)
            print(f"{name}: IBC on {len(ibc)} layers, removed min {removed[0]:.2f} median "
                  f"{removed[len(removed) // 2]:.2f}; below 90%: {len(below)} ({', '.join(below[:6])}); "
                  f"{flipped} of {sum(r['channels'] for r in ibc)} channels finished by a weight's rounding")
    import onnx
    from onnx import version_converter

    model_path = fixed_batch_model(path, len(x), shape)
    converted = version_converter.convert_version(onnx.load(str(model_path)), 13)  # per-channel QDQ needs 13
    onnx.save(converted, str(model_path))
    folder = Path(tempfile.mkdtemp())
    calib_nchw = np.ascontiguousarray(calib.transpose(0, 3, 1, 2))
    input_name = "input.1"
    for per_channel in (False, True):
        qdq = ort_models(model_path, input_name, calib_nchw, folder, per_channel=per_channel)
        outs = session(qdq, 1, True).run(None, {input_name: x})
        cos = [cosine(native[k], o) for k, o in zip(native, outs)]
        rows.append((f"onnxruntime int8, per {'channel' if per_channel else 'tensor'}", cos,
                     snr_db(next(iter(native.values())), outs[0]), float("nan")))
    print(f"\nCenterFace 320x320, {len(x)} scenes; cosine against float per output (heatmap first)")
    print(f"{'configuration':<34} {'heatmap':>8} {'scale':>8} {'offset':>8} {'landmark':>8} {'SNR dB':>7} {'time':>6}")
    for name, cos, snr, seconds in rows:
        took = "     -" if seconds != seconds else f"{seconds:5.1f}s"
        print(f"{name:<34} " + " ".join(f"{c:8.4f}" for c in cos) + f" {snr:7.2f} {took}")


if __name__ == "__main__":
    main()
