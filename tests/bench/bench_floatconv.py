"""The float executor's direct conv against the BLAS paths, per conv shape and fused activation.

For each fixture network (``--models``, as bench_float.py names them), the convs of one group it
runs are collected from its graph (input shape, weights, geometry, fused activation), then each
shape runs at ``--batch`` on random inputs, Numba and BLAS at one thread, in one process, in two
tables:

- dense (KH·KW > 1, or padded): gemm, Numba's ``im2col`` per image into one columns buffer, one
  float32 BLAS product, the bias, then the activation in place (the path before the direct conv),
  against direct, ``floatconv.conv`` with the activation fused into its store;
- 1x1 (unpadded): blas, one BLAS product per image over the input as it lies, then the bias and
  the activation in one pass (`floatconv.bias_activate`: `conv2d`'s BLAS path), against direct,
  as above; the ``rule`` column says which ``conv2d`` takes (`alls.runtime.ops.conv.direct`).

Medians of the CPU time of ``--repeat`` runs after a warm-up, in GMAC/s, and the ratio BLAS time /
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
from alls.runtime.ops.activation import activate_in_place, activation  # noqa: E402
from alls.runtime.ops import conv as conv_op  # noqa: E402


def shapes(name: str) -> dict[tuple, int] | str:
    """{(C, H, W, C_out, KH, KW, strides, dilations, pads, activation): count} of the network's convs of
    one group (no depthwise)."""
    found = network(name)
    if isinstance(found, str):
        return found
    model, shape, _ = found
    graph = alls.load_model(free_batch(model, shape), input_shapes=(1, *shape), name=name)
    seen: dict[tuple, int] = {}
    for layer in graph:
        if layer.kind != "conv" or layer.attrs.get("group", 1) != 1:
            continue
        a = layer.attrs
        key = (*layer.input_shapes[0][1:], *layer.weight_shape[0:1], *layer.weight_shape[2:], tuple(a["strides"]),
               tuple(a["dilations"]), tuple(a["pads"]), layer.activation)
        seen[key] = seen.get(key, 0) + 1
    return seen


def activate(y, layer):
    """The layer's activation in place, as the executor's separate pass runs it."""
    if layer.activation is not None and not activate_in_place(layer, y):
        y[...] = activation(layer, y)
    return y


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


def blas_1x1(x, weight, bias, strides, fused):
    """`conv2d`'s BLAS path of a 1x1 conv: one product per image over the (strided) input, then the bias
    and the activation in one pass (`bias_activate`)."""
    from alls.runtime.kernels.floatconv import bias_activate

    n, c = x.shape[:2]
    sh, sw = strides
    cols = np.ascontiguousarray(x[:, :, ::sh, ::sw])
    ho, wo = cols.shape[2:]
    cols = cols.reshape(n, c, ho * wo)
    flat = weight.reshape(len(weight), -1)
    out = np.empty((n, len(weight), ho * wo), np.float32)
    act = np.array(fused[1:], np.float32)
    for i in range(n):
        np.matmul(flat, cols[i], out=out[i])
        bias_activate(out[i:i + 1], bias, fused[0], act)
    return out.reshape(n, len(weight), ho, wo)


def cpu_median(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def table(name: str, found: dict[tuple, int], pointwise: bool, args, rng) -> None:
    from alls.graph import Layer
    from alls.runtime.kernels import floatconv

    rows = {key: count for key, count in found.items() if ((key[4:6] == (1, 1) and not any(key[8])) == pointwise)}
    if not rows:
        return
    other = "blas" if pointwise else "gemm"
    print(f"\n{name}, batch {args.batch}, {'1x1' if pointwise else 'dense'}: shape act (count)   {other} ms  GMAC/s"
          f"   direct ms  GMAC/s   ratio{'  rule' if pointwise else ''}")
    total = {other: 0.0, "direct": 0.0, "taken": 0.0}
    for (c, h, w, out_c, kh, kw, strides, dilations, pads, act), count in rows.items():
        layer = Layer("bench", "conv", "Conv", (), (), (), activation=act)
        x = rng.standard_normal((args.batch, c, h, w)).astype(np.float32)
        weight = rng.standard_normal((out_c, c, kh, kw)).astype(np.float32) / np.float32(np.sqrt(c * kh * kw))
        bias = rng.standard_normal(out_c).astype(np.float32)
        geometry = (strides, dilations, pads)
        fused = conv_op.fusable(layer) or (0, 0.0, 0.0)
        if pointwise:
            slow = lambda x=x, weight=weight, bias=bias, s=strides, fused=fused: blas_1x1(x, weight, bias, s, fused)
        else:
            slow = lambda x=x, weight=weight, bias=bias, g=geometry, layer=layer: activate(
                gemm(x, weight, bias, *g), layer)
        fast = lambda x=x, weight=weight, bias=bias, g=geometry, fused=fused: floatconv.conv(
            x, weight, bias, *g, threads=1, activation=fused)
        want, got = slow(), fast()
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * float(np.abs(want).max()))
        t_slow, t_direct = cpu_median(slow, args.repeat), cpu_median(fast, args.repeat)
        macs = got.size * c * kh * kw
        direct = conv_op.direct(x.shape, weight.shape, {"pads": pads}, 1)
        total[other] += count * t_slow
        total["direct"] += count * t_direct
        total["taken"] += count * (t_direct if direct else t_slow)
        print(f"  {c:4d}x{h:3d}x{w:3d} -> {out_c:4d} k{kh}x{kw} s{strides[0]}x{strides[1]} {act or '-'} ({count})  "
              f"{t_slow * 1e3:8.2f} {macs / t_slow / 1e9:6.1f}   {t_direct * 1e3:8.2f} {macs / t_direct / 1e9:6.1f}"
              f"   {t_slow / t_direct:5.2f}{('  direct' if direct else '  blas') if pointwise else ''}")
    rule = f", as the rule takes {total['taken'] * 1e3:.1f} ms" if pointwise else ""
    print(f"  all ({sum(rows.values())} convs): {other} {total[other] * 1e3:.1f} ms, direct "
          f"{total['direct'] * 1e3:.1f} ms, ratio {total[other] / total['direct']:.2f}{rule}; "
          f"load {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="centerface,yolov8n,ppocr_det")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    one_thread()
    rng = np.random.default_rng(0)
    for name in args.models.split(","):
        found = shapes(name)
        if isinstance(found, str):
            print(f"\n{name}: skipped ({found})")
            continue
        for pointwise in (False, True):
            table(name, found, pointwise, args, rng)


if __name__ == "__main__":
    main()
