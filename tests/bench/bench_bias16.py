"""Is the 16-bit bias's small loss on PP-OCRv4's detector noise or a real effect?

PP-OCRv4's detector (rapidocr-onnxruntime 1.3.24) at a8_w8 on text scenes, level 0 and with bias
correction (IBC), with the default 8-bit bias (`single_scale_decomposition`) and with
`bias_mode=double_scale_initialization` on every layer with weights. Each seed draws its own 32
calibration and 15 held-out scenes; the two bias modes are compared on the same draw (paired), so
the spread of their difference over the draws says how large a difference chance alone makes.

Per run it prints the heatmap's cosine and SNR on the held-out scenes, and what could explain a
difference: the largest bias exponent among the layers (the 8-bit mantissa's step is 2^e accumulator
units), and, with IBC, how much of the per-channel mean error IBC removed, how many channels a weight
flip finished (16-bit bias only) and how many lost their correction (below half a bias step).

    python tests/bench/bench_bias16.py [--size 320] [--seeds 0,1,2] [--ibc both|on|off] [--no-flips]

``--no-flips`` keeps IBC from flipping weights to carry what the bias cannot (the 16-bit bias's
flips, ablated).

It prints a Markdown table, then the paired differences (16-bit minus 8-bit) per seed, and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "bench"))
logging.getLogger().setLevel(logging.ERROR)

from alls.runtime.analysis.metrics import cosine, snr_db  # noqa: E402
from alls.runtime.session.runner import Runner  # noqa: E402

MODES = {"8-bit": "", "16-bit": "quantization_param([{conv*}, {dw*}, {deconv*}], bias_mode=double_scale_initialization)\n"}


def run(runner: Runner, mode: str, ibc: bool, calib: np.ndarray, x: np.ndarray, native: np.ndarray) -> dict:
    runner.load_script(f"model_optimization_config(calibration, batch_size=8, calibset_size={len(calib)})\n"
                       + MODES[mode])
    started = time.perf_counter()
    model = runner.quantize(calib, progress=False, equalize=False, ibc=ibc)
    seconds = time.perf_counter() - started
    out = next(iter(runner.infer(x, layout="nchw").outputs.values()))
    exponents = [q.bias.exponent for q in model.layers.values() if q.bias is not None]
    corrected = model.report["bias_correction"]
    return {"cosine": cosine(native, out), "snr": snr_db(native, out), "seconds": seconds,
            "max_exponent": max(exponents, default=0),
            "removed": float(np.mean([r["removed"] for r in corrected])) if corrected else float("nan"),
            "flipped": sum(r["channels_flipped"] for r in corrected),
            "lost": sum(r["channels_lost"] for r in corrected)}


def main() -> None:
    import datasets
    import models
    from bench_network import fixed_batch_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--ibc", default="both", choices=("both", "on", "off"))
    parser.add_argument("--no-flips", action="store_true", help="IBC corrects by the bias alone")
    args = parser.parse_args()
    if args.no_flips:
        import alls.runtime.algorithms.ibc as ibc

        ibc._flips = lambda base, bias, *_: (np.full(base.shape, -1), bias)
    try:
        path = models.ppocr_det()
        datasets.text_scenes(1, 32)
    except (models.Unavailable, datasets.Unavailable) as exc:
        print(f"ppocr: skipped ({exc})")
        return
    shape = (1, 3, args.size, args.size)
    runner = Runner(fixed_batch_model(path, 1, shape), shape, progress=False)
    ibcs = {"both": (False, True), "on": (True,), "off": (False,)}[args.ibc]
    print("| seed | IBC | bias | cosine | SNR dB | max bias exponent | IBC removed | flipped | lost | quantize s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    diffs: dict[bool, list] = {ibc: [] for ibc in ibcs}
    for seed in (int(s) for s in args.seeds.split(",")):
        calib = (datasets.text_scenes(32, args.size, seed=10 + seed) / 127.5 - 1.0).astype(np.float32)
        test = (datasets.text_scenes(15, args.size, seed=100 + seed) / 127.5 - 1.0).astype(np.float32)
        x = np.ascontiguousarray(test.transpose(0, 3, 1, 2))
        native = next(iter(runner.infer(x, target="native", layout="nchw").outputs.values()))
        for ibc in ibcs:
            got = {}
            for mode in MODES:
                r = got[mode] = run(runner, mode, ibc, calib, x, native)
                print(f"| {seed} | {'on' if ibc else 'off'} | {mode} | {r['cosine']:.4f} | {r['snr']:.2f} | "
                      f"{r['max_exponent']} | {r['removed']:.3f} | {r['flipped']} | {r['lost']} | "
                      f"{r['seconds']:.1f} |", flush=True)
            diffs[ibc].append((got["16-bit"]["cosine"] - got["8-bit"]["cosine"], got["16-bit"]["snr"] - got["8-bit"]["snr"]))
    for ibc, pairs in diffs.items():
        cos, snr = np.array(pairs).T
        print(f"IBC {'on' if ibc else 'off'}: 16-bit minus 8-bit per seed: cosine "
              f"{', '.join(f'{d:+.4f}' for d in cos)} (mean {cos.mean():+.4f}, sd {cos.std(ddof=1) if len(cos) > 1 else 0:.4f}); "
              f"SNR dB {', '.join(f'{d:+.2f}' for d in snr)} (mean {snr.mean():+.2f})")


if __name__ == "__main__":
    main()
