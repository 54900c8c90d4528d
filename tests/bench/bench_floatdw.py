"""The float executor's depthwise conv against onnxruntime's depthwise Conv, per shape, one thread.

For each fixture network (``--models``, as bench_float.py names them), the depthwise convs it runs
are collected from one float run, with the activation each layer fuses, then each shape runs at
``--batch`` on random inputs, in one process, Numba and onnxruntime at one thread:

- alls: ``floatdw.depthwise``, the bias and the layer's activation in its store, as the float
  executor runs the layer;
- ort: a one-node model, the same Conv (group = C) followed by the same activation, on
  onnxruntime's CPU provider with ``intra_op_num_threads=1`` and its default graph optimizations
  (which fuse the activation into the Conv).

Medians of the CPU time of ``--repeat`` runs after a warm-up, and the ratio alls / ort (below 1:
alls is faster), with the load average, since the machine may be shared. The two results are
checked to agree within float32 rounding.

    python tests/bench/bench_floatdw.py [--models centerface,ppocr_cls] [--batch 8] [--repeat 7]

It prints figures only and exits 0: there are no timing assertions.
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_float import free_batch, network, one_thread, ort_session  # noqa: E402
from bench_floatconv import cpu_median  # noqa: E402

import alls  # noqa: E402

_ONNX_ACT = {"relu": ("Relu", {}), "relu6": ("Clip", {}), "hardswish": ("HardSwish", {})}


def shapes(name: str) -> dict[tuple, int] | str:
    """{(C, H, W, KH, KW, strides, dilations, pads, activation): count} of the network's depthwise convs."""
    found = network(name)
    if isinstance(found, str):
        return found
    model, shape, _ = found
    graph = alls.load_model(free_batch(model, shape), input_shapes=(1, *shape), name=name)
    seen: dict[tuple, int] = {}
    for layer in graph:
        if layer.kind != "dw":
            continue
        c, h, w = layer.input_shapes[0][1:]
        kh, kw = layer.params["weight"].shape[2:]
        a = layer.attrs
        act = layer.activation.value if layer.activation is not None else "linear"
        key = (c, h, w, kh, kw, tuple(a["strides"]), tuple(a["dilations"]), tuple(a["pads"]), act)
        seen[key] = seen.get(key, 0) + 1
    return seen


def ort_dw(batch: int, c: int, h: int, w: int, weight: np.ndarray, bias: np.ndarray, strides, dilations, pads,
           act: str):
    """A one-node depthwise Conv (then ``act``) on onnxruntime, one thread."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c" if act in _ONNX_ACT else "y"], group=c,
                              strides=list(strides), dilations=list(dilations), pads=list(pads))]
    inits = [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")]
    if act in _ONNX_ACT:
        op, _ = _ONNX_ACT[act]
        extra = []
        if op == "Clip":
            inits += [numpy_helper.from_array(np.float32(0), "lo"), numpy_helper.from_array(np.float32(6), "hi")]
            extra = ["lo", "hi"]
        nodes.append(helper.make_node(op, ["c", *extra], ["y"]))
    graph = helper.make_graph(nodes, "dw", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, c, h, w])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    return ort_session(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="centerface,ppocr_cls")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    from alls.runtime.kernels import floatdw

    one_thread()
    rng = np.random.default_rng(0)
    for name in args.models.split(","):
        found = shapes(name)
        if isinstance(found, str):
            print(f"\n{name}: skipped ({found})")
            continue
        print(f"\n{name}, batch {args.batch}: shape (count)        alls ms   ort ms   ratio")
        total = {"alls": 0.0, "ort": 0.0}
        for (c, h, w, kh, kw, strides, dilations, pads, act), count in found.items():
            x = rng.standard_normal((args.batch, c, h, w)).astype(np.float32)
            weight = rng.standard_normal((c, 1, kh, kw)).astype(np.float32)
            bias = rng.standard_normal(c).astype(np.float32)
            session = ort_dw(args.batch, c, h, w, weight, bias, strides, dilations, pads, act)
            want = session.run(None, {"x": x})[0]
            code = floatdw.ACT_CODES.get(act, floatdw.NONE)
            case = (x, weight[:, 0].copy(), bias, strides, dilations, pads, want.shape[2:], code)
            got = floatdw.depthwise(*case, threads=1)
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
            t_alls = cpu_median(lambda case=case: floatdw.depthwise(*case, threads=1), args.repeat)
            t_ort = cpu_median(lambda x=x, session=session: session.run(None, {"x": x}), args.repeat)
            total["alls"] += count * t_alls
            total["ort"] += count * t_ort
            print(f"  {c:4d}x{h:3d}x{w:3d} k{kh}x{kw} s{strides[0]}x{strides[1]} {act:9s} ({count})  "
                  f"{t_alls * 1e3:8.3f} {t_ort * 1e3:8.3f}   {t_alls / t_ort:5.2f}")
        if found:
            print(f"  all ({sum(found.values())} depthwise convs): alls {total['alls'] * 1e3:.2f} ms, ort "
                  f"{total['ort'] * 1e3:.2f} ms, ratio {total['alls'] / total['ort']:.2f}; "
                  f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
