"""Integer kernel throughput: alls.runtime.kernels against onnxruntime's int8 QLinearConv/QLinearMatMul.

What it measures, in one process:

1. Four layers: conv 3x3 64→64 at 56x56 (pads 1), conv 1x1 256→64 at 56x56, depthwise 3x3 on
   144 channels at 56x56 (pads 1), and dense 1280→1000. Each runs at batch 1 and 8.
2. Ours is the registry kernel (``conv``, ``dw``, ``fc``): NHWC uint8 in, int8 weights (a8_w8,
   packed once beforehand, as the quantizer does), int32 bias, per-channel requantization to
   uint8 out. That includes centring and padding the input and the requantization. onnxruntime
   runs one QLinearConv (NCHW) or QLinearMatMul node, with the same integers and
   power-of-two scale ratios. Its output must match ours within 1 LSB: ORT requantizes in
   float with round-half-to-even, and we use RHU (NUMERICS.md §2).
   The weights are drawn from ±63 (7 bits). On AVX2 without VNNI, ORT's u8×s8 GEMM multiplies
   with ``vpmaddubsw``, which saturates pair sums at 32767, so with full-range ±127 weights its
   convs and matmuls are not exact: 33–58 % of outputs differ, by up to 240. That is why ORT's
   quantizer offers ``reduce_range``. Ours is exact at any range, and the speed of both is
   independent of the values.
3. One thread (``numba.set_num_threads(1)``, ORT ``intra_op_num_threads=1``), then two. BLAS is
   pinned to one thread (our kernels do not use it). Every measurement is the median of
   ``--repeat`` runs (default 9), taken in three alternating blocks of ours and ORT's runs so
   that both see the same machine noise (blocks, not single runs: see ``alternating_medians``).
   The ratio is ours/ORT in speed (ORT time / our time); 1.0 means as fast.

First-call time (compilation, or loading Numba's on-disk cache) is measured and printed
apart from the timed runs.

    python tests/bench/bench_kernels.py [--repeat N] [--threads 1 2] [--batch 1 8]

It prints figures only and always exits 0: there are no timing assertions. Targets (from the
runtime issue): at least 0.4× ORT's speed, 0.5× for depthwise and dense.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ.setdefault(_var, "1")  # BLAS single-threaded (set before numpy loads it)

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

CASES = {
    # name: (C_in, C_out, kernel, group, pads)
    "conv3x3 64->64 56x56": (64, 64, 3, 1, 1),
    "conv1x1 256->64 56x56": (256, 64, 1, 1, 0),
    "dw3x3 144 56x56": (144, 144, 3, 144, 1),
    "dense 1280->1000": (1280, 1000, 0, 1, 0),
}
TARGET = {"dw3x3 144 56x56": 0.5, "dense 1280->1000": 0.5}
X_SCALE, W_SCALE, Y_SCALE = 2.0**-6, 2.0**-7, 2.0**-4  # μ = 2^−9, exact in fixed point
ZX, ZY = 128, 120


def _ort_session(node_inputs, node, x_shape, threads: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [node], "bench", [helper.make_tensor_value_info("x", TensorProto.UINT8, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in node_inputs.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def build(name: str, batch: int, threads: int, rng: np.random.Generator):
    """(ours, theirs, x_nhwc, x_ort, macs): two zero-argument callables and their inputs."""
    from onnx import helper

    from alls.runtime import numerics as nm
    from alls.runtime.kernels import ConvWeights, get_kernel

    c_in, c_out, k, group, pad = CASES[name]
    w_lim = 63  # 7-bit weights: ORT's AVX2 u8s8 path saturates beyond (see the module doc)
    bias = nm.Bias(rng.integers(-127, 128, c_out), 4, 8)
    common = {"xs": np.float32(X_SCALE), "xz": np.uint8(ZX), "ys": np.float32(Y_SCALE), "yz": np.uint8(ZY)}
    if k == 0:  # dense
        w = rng.integers(-w_lim, w_lim + 1, (c_out, c_in)).astype(np.int8)
        x = rng.integers(0, 256, (batch, c_in)).astype(np.uint8)
        weights = ConvWeights(w, 8)
        _ = weights.pairs  # packed once, as at quantization time
        rq = nm.requant([X_SCALE * W_SCALE / Y_SCALE], nm.value_bound(c_in, 8, 8), ZY)
        fc = get_kernel("fc")

        def ours():
            return fc(x, weights, None, rq, zero_point=ZX)

        node = helper.make_node("QLinearMatMul", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"])
        inputs = {**common, "w": np.ascontiguousarray(w.T), "ws": np.float32(W_SCALE), "wz": np.int8(0)}
        session = _ort_session(inputs, node, x.shape, threads)

        def theirs():
            return session.run(None, {"x": x})[0]

        return ours, theirs, lambda a: a, batch * c_in * c_out
    w = rng.integers(-w_lim, w_lim + 1, (c_out, c_in // group, k, k)).astype(np.int8)
    x = rng.integers(0, 256, (batch, 56, 56, c_in)).astype(np.uint8)
    x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    weights = ConvWeights(w, 8, group)
    _ = weights.pairs if group == 1 else weights.taps_padded  # packed once, as at quantization time
    bound = nm.value_bound(weights.fan_in, 8, 8, bias.max_abs())
    rq = nm.requant(np.full(c_out, X_SCALE * W_SCALE / Y_SCALE), bound, ZY)
    op = get_kernel("dw" if group > 1 else "conv")
    pads = (pad,) * 4

    def ours():
        return op(x, weights, bias, rq, zero_point=ZX, pads=pads)

    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"],
                            kernel_shape=[k, k], pads=list(pads), group=group)
    inputs = {**common, "w": w, "ws": np.full(c_out, W_SCALE, dtype=np.float32), "wz": np.zeros(c_out, np.int8),
              "b": bias.accumulator().astype(np.int32)}
    session = _ort_session(inputs, node, x_nchw.shape, threads)

    def theirs():
        return session.run(None, {"x": x_nchw})[0]

    return ours, theirs, lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1)), batch * 56 * 56 * c_out * (
        c_in // group) * k * k


def _cpu_busy():
    """(busy CPU-seconds of the machine, hypervisor steal included; CPU-seconds of this process;
    wall seconds), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    own = os.times()
    return (sum(fields[:8]) - idle) / tick, own.user + own.system, time.monotonic()


def alternating_medians(ours, theirs, repeat: int, rounds: int = 3) -> tuple[float, float]:
    """Medians of ``repeat`` runs each, taken in ``rounds`` alternating blocks with a pause between.

    Blocks rather than single interleaved runs, because both thread pools spin after a parallel
    run (ORT's intra-op pool, and the OpenMP pool behind Numba). A spinning pool steals one of
    the two cores from the other's next run. The pause lets the spinning stop.
    """
    a, b = [], []
    per = max(1, -(-repeat // rounds))
    for _ in range(rounds):
        for fn, times in ((ours, a), (theirs, b)):
            time.sleep(0.05)
            fn()
            for _ in range(per):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
    return statistics.median(a), statistics.median(b)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=9, help="timed runs per measurement; the median is kept (default 9)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    import numba
    import onnxruntime

    from alls.runtime import kernels  # noqa: F401
    import_s = time.perf_counter() - t0
    rng = np.random.default_rng(7)

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; numba {numba.__version__}, "
          f"onnxruntime {onnxruntime.__version__}, numpy {np.__version__}")
    print(f"import alls.runtime.kernels: {import_s:.2f} s; median of {args.repeat} runs in alternating blocks\n")
    busy_start = _cpu_busy()
    first_calls = []
    rows = []
    for threads in args.threads:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        for batch in args.batch:
            for name in CASES:
                ours, theirs, to_nhwc, macs = build(name, batch, threads, rng)
                t = time.perf_counter()
                y_ours = ours()  # first call: compiles, or loads the on-disk cache
                first_calls.append((name, batch, threads, time.perf_counter() - t))
                delta = int(np.max(np.abs(y_ours.astype(np.int64) - to_nhwc(theirs()).astype(np.int64))))
                t_ours, t_ort = alternating_medians(ours, theirs, args.repeat)
                rows.append((name, batch, threads, t_ours, t_ort, macs, delta))
                ratio = t_ort / t_ours
                flag = "" if ratio >= TARGET.get(name, 0.4) else "  (below target)"
                print(f"{name:<22} b{batch} t{threads}: ours {t_ours * 1e3:8.3f} ms  ort {t_ort * 1e3:8.3f} ms  "
                      f"ratio {ratio:5.2f}{flag}", flush=True)

    print("\n| layer | batch | threads | ours ms | ORT ms | ours GMAC/s | ORT GMAC/s | speed ours/ORT | target "
          "| max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, batch, threads, t_ours, t_ort, macs, delta in rows:
        print(f"| {name} | {batch} | {threads} | {t_ours * 1e3:.3f} | {t_ort * 1e3:.3f} | {macs / t_ours / 1e9:.1f} | "
              f"{macs / t_ort / 1e9:.1f} | {t_ort / t_ours:.2f} | {TARGET.get(name, 0.4)} | {delta} |")
    busy_end = _cpu_busy()
    if busy_start and busy_end:
        others = (busy_end[0] - busy_start[0]) - (busy_end[1] - busy_start[1])
        print(f"\nother processes and the hypervisor took {others / (busy_end[2] - busy_start[2]):.2f} CPUs on "
              f"average during the run (figures are noisy when this is not near 0)")
    slowest = max(first_calls, key=lambda r: r[3])
    print(f"first call (compile or cache load), slowest: {slowest[0]} b{slowest[1]} t{slowest[2]} "
          f"{slowest[3]:.2f} s; total {sum(r[3] for r in first_calls):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
