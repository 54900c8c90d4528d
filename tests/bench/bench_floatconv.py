"""The float executor's direct conv against the im2col + GEMM path it replaced, per conv shape.

For each fixture network (``--models``, as bench_float.py names them), the dense convs it runs
(one group, not 1x1 without pads: the convs `alls.runtime.kernels.floatconv` takes) are collected
from one float run, then each shape runs at ``--batch`` on random inputs, Numba and BLAS at one
thread, in one process:

- direct: ``floatconv.conv``;
- gemm: Numba's ``im2col`` per image into one columns buffer, one float32 BLAS product and the
  bias (the path of the commit before).

Medians of the CPU time of ``--repeat`` runs after a warm-up, in GMAC/s, and the ratio gemm time /
direct time (above 1: the direct conv is faster), with the load average, since the machine may be
shared. The two results are checked to agree within float32 rounding.

    python tests/bench/bench_floatconv.py [--models centerface,yolov8n,ppocr_det] [--batch 8] [--repeat 5]

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
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_float import free_batch, network, one_thread  # noqa: E402

import alls  # noqa: E402
from alls.runtime.exec.native import run_float  # noqa: E402
from alls.runtime.ops import conv as conv_op  # noqa: E402


def shapes(name: str) -> dict[tuple, int] | str:
    """{(C, H, W, C_out, KH, KW, strides, dilations, pads): count} of the network's direct convs."""
    found = network(name)
    if isinstance(found, str):
        return found
    model, shape, top = found
    graph = alls.load_model(free_batch(model, shape), input_shapes=(1, *shape), name=name)
    seen: dict[tuple, int] = {}
    original = conv_op.conv2d

    def record(x, weight, bias, attrs, group=1):
        kh, kw = weight.shape[2:]
        if group == 1 and ((kh, kw) != (1, 1) or any(attrs["pads"])):
            key = (*x.shape[1:], weight.shape[0], kh, kw, tuple(attrs["strides"]), tuple(attrs["dilations"]),
                   tuple(attrs["pads"]))
            seen[key] = seen.get(key, 0) + 1
        return original(x, weight, bias, attrs, group)

    conv_op.conv2d = record
    try:
        run_float(graph, np.random.default_rng(0).uniform(0, top, (1, *shape)).astype(np.float32))
    finally:
        conv_op.conv2d = original
    return seen


def gemm(x, weight, bias, strides, dilations, pads):
    from alls.runtime.kernels.floating import im2col

    n, c, h, w = x.shape
    out_c, _, kh, kw = weight.shape
    (sh, sw), (dh, dw), (top, left, bottom, right) = strides, dilations, pads
    ho = (h + top + bottom - (kh - 1) * dh - 1) // sh + 1
    wo = (w + left + right - (kw - 1) * dw - 1) // sw + 1
    flat, column = weight.reshape(out_c, -1), bias.reshape(-1, 1)
    cols = np.empty((c * kh * kw, ho * wo), np.float32)
    out = np.empty((n, out_c, ho * wo), np.float32)
    for i in range(n):
        im2col(x, i, cols, kh, kw, sh, sw, dh, dw, top, left, ho, wo)
        np.matmul(flat, cols, out=out[i])
        out[i] += column
    return out.reshape(n, out_c, ho, wo)


def cpu_median(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="centerface,yolov8n,ppocr_det")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from alls.runtime.kernels import floatconv

    one_thread()
    rng = np.random.default_rng(0)
    for name in args.models.split(","):
        found = shapes(name)
        if isinstance(found, str):
            print(f"\n{name}: skipped ({found})")
            continue
        print(f"\n{name}, batch {args.batch}: shape (count)   gemm ms  GMAC/s   direct ms  GMAC/s   ratio")
        total = {"gemm": 0.0, "direct": 0.0}
        for (c, h, w, out_c, kh, kw, strides, dilations, pads), count in found.items():
            x = rng.standard_normal((args.batch, c, h, w)).astype(np.float32)
            weight = rng.standard_normal((out_c, c, kh, kw)).astype(np.float32)
            bias = rng.standard_normal(out_c).astype(np.float32)
            geometry = (strides, dilations, pads)
            want, got = gemm(x, weight, bias, *geometry), floatconv.conv(x, weight, bias, *geometry, threads=1)
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * float(np.abs(want).max()))
            case = (x, weight, bias, *geometry)
            t_gemm = cpu_median(lambda case=case: gemm(*case), args.repeat)
            t_direct = cpu_median(lambda case=case: floatconv.conv(*case, threads=1), args.repeat)
            macs = got.size * c * kh * kw
            total["gemm"] += count * t_gemm
            total["direct"] += count * t_direct
            print(f"  {c:4d}x{h:3d}x{w:3d} -> {out_c:4d} k{kh}x{kw} s{strides[0]}x{strides[1]} ({count})  "
                  f"{t_gemm * 1e3:8.2f} {macs / t_gemm / 1e9:6.1f}   {t_direct * 1e3:8.2f} {macs / t_direct / 1e9:6.1f}"
                  f"   {t_gemm / t_direct:5.2f}")
        if found:
            print(f"  all ({sum(found.values())} convs): gemm {total['gemm'] * 1e3:.1f} ms, direct "
                  f"{total['direct'] * 1e3:.1f} ms, ratio {total['gemm'] / total['direct']:.2f}; "
                  f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
