"""The attention product kernel (`matmul`, two activation tensors) against onnxruntime and BLAS.

Shapes are attention's in YOLO11's C2PSA / YOLOv10's PSA block at 640x640 (a 20x20 map: 400
positions): Q·Kᵀ, (P, 400, 32) by (P, 32, 400), and the weights times V, (P, 400, 400) by
(P, 400, 64), with P = 2 heads per image, at batch 1 and 8, 8-bit codes (a8) and 16-bit (a16).

- alls: `alls.runtime.kernels.matmul`, the centred products summed exactly and requantized to
  codes (its sums are taken by BLAS in float64, exact below 2^53: see the module);
- ort: onnxruntime's ``MatMulInteger`` (uint8 × uint8 → int32, its exact integer GEMM; 8-bit
  only, it has no 16-bit form), without the requantization;
- float32: NumPy's float32 ``matmul`` of the same shapes (single-threaded BLAS), the speed the
  float network's product has.

One thread everywhere (BLAS pinned before NumPy loads it). Medians of ``--repeat`` runs; the
load average is printed, since the machine may be shared.

    python tests/bench/bench_matmul.py [--repeat 9]

It prints figures only and exits 0: there are no timing assertions.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_network import median_time  # noqa: E402

SHAPES = {"Q·Kᵀ": (400, 32, 400), "A·V": (400, 400, 64)}  # (M, K, N)
HEADS = 2


def ort_matmul_integer(p: int, m: int, k: int, n: int):
    """An onnxruntime session of one MatMulInteger (uint8 inputs with zero points), or None."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    node = helper.make_node("MatMulInteger", ["a", "b", "za", "zb"], ["y"])
    graph = helper.make_graph(
        [node], "mm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [p, m, k]),
         helper.make_tensor_value_info("b", TensorProto.UINT8, [p, k, n])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [p, m, n])],
        [helper.make_tensor("za", TensorProto.UINT8, [], [128]), helper.make_tensor("zb", TensorProto.UINT8, [], [128])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    from alls.runtime import numerics as nx
    from alls.runtime.kernels.matmul import matmul, matmul_bound

    rng = np.random.default_rng(0)
    print(f"load average at the start: {os.getloadavg()[0]:.2f}; one thread")
    print(f"{'product':6s} {'batch':>5s} {'bits':>4s} {'alls':>10s} {'ort int':>10s} {'float32':>10s} "
          f"{'GMAC/s':>7s} {'alls/ort':>8s} {'alls/f32':>8s}")
    for label, (m, k, n) in SHAPES.items():
        for batch in (1, 8):
            p = HEADS * batch
            for bits, dtype in ((8, np.uint8), (16, np.uint16)):
                a = rng.integers(0, 1 << bits, (p, m, k)).astype(dtype)
                b = rng.integers(0, 1 << bits, (p, k, n)).astype(dtype)
                zero = 1 << (bits - 1)
                bound = matmul_bound(k, bits, bits)
                rq = nx.requant([2.0 ** -(bits + 6)], bound, 0, bits)
                ours = median_time(functools.partial(matmul, a, b, rq, zero_points=(zero, zero)), args.repeat)
                f32 = median_time(functools.partial(np.matmul, a.astype(np.float32), b.astype(np.float32)),
                                  args.repeat)
                theirs = float("nan")
                session = ort_matmul_integer(p, m, k, n) if bits == 8 else None
                if session is not None:
                    theirs = median_time(functools.partial(session.run, None, {"a": a, "b": b}), args.repeat)
                gmacs = p * m * k * n / ours / 1e9
                print(f"{label:6s} {batch:5d} {bits:4d} {ours * 1e3:8.2f}ms {theirs * 1e3:8.2f}ms {f32 * 1e3:8.2f}ms "
                      f"{gmacs:7.1f} {ours / theirs:8.2f} {ours / f32:8.2f}", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
