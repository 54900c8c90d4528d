"""The float executor (the `native` target) against onnxruntime's float, in one process, 1 thread.

For each fixture network: the digits sample CNN; CenterFace at 320x320 (tests/models.py, its
wheel cached or fetched); a YOLOv8n-style network at 320x320 (tests/zoo_models.py); PP-OCR's
text-direction classifier (3x48x192) and its v4 text detector at 320x320 (tests/models.py,
the rapidocr-onnxruntime wheel). A network whose model cannot be had is skipped with the reason.

- alls: `run_float(graph, x)`, the float executor as calibration, analysis and the `native`
  target run it, Numba at 1 thread, BLAS at 1 thread;
- ort: onnxruntime's CPU provider on the same model, ``intra_op_num_threads=1``, its default graph
  optimizations (fused conv + activation, its own blocked layouts).

Each runs ``--repeat`` times per batch size after a warm-up; medians are printed with their ratio
(alls' time / ort's: below 1.5 is the target) and the load average at the time, since the machine
may be shared. ``--profile`` adds, per network at the largest batch, where alls' time goes: per layer
kind (its float run, then its fused activation, or ``kind(+act)`` where the run applies the activation
as it writes) and what is left (the executor's own Python).

    python tests/bench/bench_float.py [--models digits,centerface,yolov8n,ppocr_cls,ppocr_det]
                                      [--batches 1,8] [--repeat 7] [--profile]

It prints figures only and exits 0: there are no timing assertions.
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import alls  # noqa: E402
from alls.plan import Activation  # noqa: E402
from alls.runtime.exec import native  # noqa: E402
from alls.runtime.exec.native import run_float  # noqa: E402

NETWORKS = ("digits", "centerface", "yolov8n", "ppocr_cls", "ppocr_det")


def median_time(fn, repeat: int) -> tuple[float, float]:
    """Median wall-clock and median CPU seconds of this process (both run on one thread, so on a
    busy machine the CPU time is what the work itself took, the wall time what it took to get it)."""
    fn()
    walls, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def free_batch(model, shape):
    """The model with a free batch dimension, one image of ``shape`` and no stale shapes (CenterFace
    fixes its input at 10x3x32x32, PP-OCR leaves height and width free)."""
    inits = {t.name for t in model.graph.initializer}
    kept = [i for i in model.graph.input if i.name not in inits]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        dims[0].dim_param = "N"
        for dim, size in zip(list(dims)[1:], shape):
            dim.dim_value = size
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]
    return model


def network(name: str):
    """(ONNX model, one image's NCHW shape, input value range), or a string saying why not."""
    import onnx

    import models
    from zoo_models import build_yolov8

    try:
        if name == "digits":
            return onnx.load(str(ROOT / "samples" / "digits" / "digits_cnn.onnx")), (1, 8, 8), 1.0
        if name == "centerface":
            return onnx.load(str(models.centerface())), (3, 320, 320), 255.0
        if name == "yolov8n":
            return build_yolov8("n", 320), (3, 320, 320), 1.0
        if name == "ppocr_cls":
            return onnx.load(str(models.ppocr("cls"))), (3, 48, 192), 1.0
        if name == "ppocr_det":
            return onnx.load(str(models.ppocr("det"))), (3, 320, 320), 1.0
    except models.Unavailable as exc:
        return str(exc)
    raise ValueError(f"unknown network `{name}`; one of {', '.join(NETWORKS)}")


def ort_session(model):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def forget(graph) -> None:
    """Drop the executor's schedule of ``graph`` (with its prepared layers), made again on the next run."""
    if hasattr(native, "_schedules"):
        native._schedules.pop(graph, None)
        native._last = (lambda: None,) + native._last[1:]


def profile(graph, x: np.ndarray, repeat: int) -> dict[str, float]:
    """CPU seconds per run by layer kind (``kind``: its float run, ``kind+act``: its fused activation,
    ``kind(+act)``: the run that applies the activation as it writes, `Op.run_activated`), and the
    rest, ``(executor)``: the executor's own Python between them."""
    spent: dict[str, float] = defaultdict(float)

    def timed(fn, key_of):
        def run(layer, *args):
            start = time.process_time()
            y = fn(layer, *args)
            spent[key_of(layer)] += time.process_time() - start
            return y
        return run

    def timed_prepare(prepare):
        def made(layer, p):
            call = prepare(layer, p)
            if call is None:
                return None
            key = layer.kind if layer.activation in (None, Activation.LINEAR) else \
                f"{layer.kind}(+{layer.activation})"

            def run(xs):
                start = time.process_time()
                y = call(xs)
                spent[key] += time.process_time() - start
                return y
            return run
        return made

    from dataclasses import replace

    saved = native.OPS, native.activation, getattr(native, "activate_in_place", None)  # (None: an earlier revision)
    try:
        native.OPS = {kind: replace(op, run=timed(op.run, lambda layer: layer.kind),
                                    **({"run_activated": timed(op.run_activated,
                                                               lambda layer: f"{layer.kind}(+{layer.activation})")}
                                       if getattr(op, "run_activated", None) else {}))
                      for kind, op in saved[0].items()}
        native.activation, native.activate_in_place = (timed(fn, lambda layer: f"{layer.kind}+{layer.activation}")
                                                       for fn in saved[1:])
        for kind, op in list(native.OPS.items()):
            if getattr(op, "prepare", None) is not None:
                native.OPS[kind] = replace(op, prepare=timed_prepare(op.prepare))
        forget(graph)  # the schedule keeps the kinds' prepared layers: made again with the timed ones
        run_float(graph, x)
        spent.clear()
        start = time.process_time()
        for _ in range(repeat):
            run_float(graph, x)
        total = time.process_time() - start
    finally:
        native.OPS, native.activation, native.activate_in_place = saved
        forget(graph)
    result = {k: v / repeat for k, v in spent.items()}
    result["(executor)"] = total / repeat - sum(result.values())
    return result


def bench(name: str, args) -> None:
    found = network(name)
    if isinstance(found, str):
        print(f"\n{name}: skipped ({found})")
        return
    model, shape, top = found
    model = free_batch(model, shape)
    graph = alls.load_model(model, input_shapes=(1, *shape), name=name)
    session = ort_session(model)
    input_name = session.get_inputs()[0].name
    macs = sum(layer.macs for layer in graph) / 1e6
    print(f"\n{name}: {shape[1]}x{shape[2]}x{shape[0]}, {macs:.0f} M MACs per image")
    rng = np.random.default_rng(0)
    for batch in args.batches:
        x = rng.uniform(0, top, (batch, *shape)).astype(np.float32)
        load = os.getloadavg()[0]
        t_alls = median_time(lambda x=x: run_float(graph, x), args.repeat)
        try:
            session.run(None, {input_name: x})
            note = ""
            t_ort = median_time(lambda x=x: session.run(None, {input_name: x}), args.repeat)
        except Exception:  # a model whose Reshape constants fix the batch at 1 (YOLOv8's DFL head)
            note = f" ({batch} runs of 1)"
            t_ort = median_time(lambda x=x, batch=batch: [session.run(None, {input_name: x[i:i + 1]})
                                                        for i in range(batch)],
                                args.repeat)
        print(f"  batch {batch}: wall alls {t_alls[0] * 1e3:8.2f} ms  ort {t_ort[0] * 1e3:8.2f} ms{note}  "
              f"ratio {t_alls[0] / t_ort[0]:5.2f}   cpu alls {t_alls[1] * 1e3:8.2f} ms  ort {t_ort[1] * 1e3:8.2f} ms  "
              f"ratio {t_alls[1] / t_ort[1]:5.2f}   load {load:.2f}/{os.getloadavg()[0]:.2f}")
    if args.profile:
        x = rng.uniform(0, top, (max(args.batches), *shape)).astype(np.float32)
        spent = profile(graph, x, max(2, args.repeat // 2))
        total = sum(spent.values())
        print(f"  where alls' time goes at batch {len(x)} ({total * 1e3:.1f} ms):")
        for key, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
            print(f"    {key:24s} {seconds * 1e3:8.2f} ms  {seconds / total:6.1%}")


def one_thread() -> None:
    """Numba and BLAS at one thread, and the load average said, before anything is timed."""
    import numba

    numba.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    print(f"load average at the start: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(NETWORKS))
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    one_thread()
    for name in args.models.split(","):
        bench(name, args)


if __name__ == "__main__":
    main()
