"""Cold and warm start: what the first run spends compiling Numba kernels, kernel by kernel.

Each start is a fresh Python process that quantizes a fixture network with a default script and runs
its numeric target on 8 images (``--model digits`` the shipped digits CNN, ``yolov8n`` a YOLOv8n-style
model at 320x320 from tests/zoo_models.py), with ``NUMBA_CACHE_DIR`` pointing at a new, empty folder:

- cold: the first process, which compiles every kernel the flow calls (and writes Numba's cache);
- warm: the same again on the cache the cold process wrote (the kernels load from disk).

The child process times every compilation with Numba's ``numba:compile`` event and reports each
kernel's own compile time (the kernels it compiles on the way, for inlining, are counted on
themselves), its signatures, and the whole process's wall time. The process's wall time is printed
for each start, with the load average, and the kernels sorted by time.

    python tests/bench/bench_cold_start.py [--model digits|yolov8n] [--warm 2]

It prints figures only and exits 0: there are no timing assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, sys, time
start = time.perf_counter()
from numba.core import event

own, stack, signatures = {}, [], {}

class Timer(event.Listener):
    def on_start(self, ev):
        stack.append([time.perf_counter(), 0.0])

    def on_end(self, ev):
        began, nested = stack.pop()
        spent = time.perf_counter() - began
        dispatcher = ev.data["dispatcher"]
        name = f"{dispatcher.py_func.__module__.rsplit('.', 1)[-1]}.{dispatcher.py_func.__name__}"
        own[name] = own.get(name, 0.0) + spent - nested
        signatures.setdefault(name, []).append(str(ev.data["args"]))
        if stack:
            stack[-1][1] += spent

event.register("numba:compile", Timer())
sys.path.insert(0, sys.argv[2])
import numpy as np
from alls.runtime import Runner

which = sys.argv[1]
if which == "digits":
    model, shape = sys.argv[3] + "/samples/digits/digits_cnn.onnx", (1, 1, 8, 8)
else:
    import zoo_models
    model, shape = zoo_models.build_yolov8("n", imgsz=320), (1, 3, 320, 320)
runner = Runner(model, shape)
runner.load_script("model_optimization_config(calibration, batch_size=4, calibset_size=8)\n")
images = np.random.default_rng(0).uniform(0, 1, (8, shape[2], shape[3], shape[1])).astype(np.float32)
runner.quantize(images, progress=False).run(images, target="numeric")
print(json.dumps({"wall": time.perf_counter() - start, "own": own, "signatures": signatures}))
"""


def start(model: str, cache: str) -> tuple[dict, float]:
    """One process's report, and its wall time seen from outside (interpreter start included)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, model, str(ROOT / "tests"), str(ROOT)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1]), time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="digits", choices=("digits", "yolov8n"))
    parser.add_argument("--warm", type=int, default=2, help="warm starts after the cold one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        report, outside = start(args.model, cache)
        compiled = sum(report["own"].values())
        print(f"{args.model}: cold start {outside:.1f} s (of which compiling {compiled:.1f} s, "
              f"{sum(len(s) for s in report['signatures'].values())} signatures of {len(report['own'])} kernels); "
              f"load average {os.getloadavg()[0]:.2f}")
        for name, seconds in sorted(report["own"].items(), key=lambda kv: -kv[1]):
            sigs = report["signatures"][name]
            print(f"  {seconds:6.2f} s  {name} ({len(sigs)} signature{'s' if len(sigs) > 1 else ''})")
        for _ in range(args.warm):
            warm, outside = start(args.model, cache)
            print(f"{args.model}: warm start {outside:.1f} s (compiling {sum(warm['own'].values()):.1f} s); "
                  f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
