"""The layer kinds of the runtime: one module per kind, one table, one meaning of "weighted"."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from alls.graph import KINDS, WEIGHTED_KINDS
from alls.runtime.ops import OPS

RUNTIME = Path(__file__).resolve().parents[1] / "runtime"


def test_every_kind_has_one_op():
    assert set(OPS) == set(KINDS) - {"input_layer"}
    for kind, op in OPS.items():
        assert op.kind == kind
        assert callable(op.run) and callable(op.quantize) and callable(op.run_int)


def test_weighted_has_one_definition():
    assert {kind for kind, op in OPS.items() if op.weighted} == set(WEIGHTED_KINDS)
    assert {kind for kind, op in OPS.items() if op.accumulates} == set(WEIGHTED_KINDS) | {"batch_norm"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


# The float, statistics and training kernels are plain functions their one user imports, and so are the
# kernels' thread budget and compiling notes (set by exec/threads.py for a runtime call); the integer
# kernels are reached through the registry, by the ops alone.
NON_INTEGER_KERNELS = {"alls.runtime.kernels.floating", "alls.runtime.kernels.floatconv",
                       "alls.runtime.kernels.floatdw", "alls.runtime.kernels.floatmove", "alls.runtime.kernels.stats",
                       "alls.runtime.kernels.training", "alls.runtime.kernels.patches", "alls.runtime.kernels.targets",
                       "alls.runtime.kernels._parallel",
                       "alls.runtime.kernels._compiling"}


def _integer_kernels(path) -> set[str]:
    return {name for name in _imports(path) if name.startswith("alls.runtime.kernels")
            and not any(name == k or name.startswith(k + ".") for k in NON_INTEGER_KERNELS)}


def test_only_the_ops_reach_the_kernels():
    """The executor, quantizer and emulator go through `OPS`; only the ops call the kernel registry."""
    stages = [p for folder in ("session", "analysis", "algorithms", "exec") for p in sorted((RUNTIME / folder).glob("*.py"))]
    assert stages
    for path in stages + sorted(RUNTIME.glob("*.py")):
        assert not _integer_kernels(path), f"{path.name} imports {_integer_kernels(path)}"
    for path in sorted((RUNTIME / "ops").glob("*.py")):
        reached = _integer_kernels(path)
        assert reached <= {"alls.runtime.kernels", "alls.runtime.kernels.ConvWeights"}, f"{path.name}: {reached}"


def test_the_ops_load_no_numba():
    code = "import sys, alls.runtime.ops, alls.runtime.exec.quantize, alls.runtime.exec.emulator; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------- data-movement kernels

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from alls.runtime import numerics as nx  # noqa: E402
from alls.runtime.ops.base import to_nhwc  # noqa: E402


def _codes(shape, bits=8, seed=0):
    top = nx.activation_max(bits)
    return np.random.default_rng(seed).integers(0, top + 1, shape).astype(np.uint8 if bits == 8 else np.uint16)


def _reference(op, x, inits=(), opset=18, outputs=("y",), **attrs):
    """onnx.reference on integer codes (the ops below only move or compare codes)."""
    names = ["x"] + [name for name, _ in inits]
    dtype = TensorProto.UINT8 if x.dtype == np.uint8 else TensorProto.UINT16
    graph = helper.make_graph([helper.make_node(op, names, list(outputs), **attrs)], "ref",
                              [helper.make_tensor_value_info("x", dtype, x.shape)],
                              [helper.make_tensor_value_info(o, dtype, None) for o in outputs],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return ReferenceEvaluator(model).run(None, {"x": x})


def _kernel(name):
    from alls.runtime.kernels import get_kernel

    return get_kernel(name)


@pytest.mark.parametrize("starts, ends, axes, steps", [
    ([0, 0], [100, 100], [2, 3], [2, 2]),  # Focus: the even rows and columns
    ([1, 0], [100, 100], [2, 3], [2, 2]),
    ([-1], [-100], [3], [-1]),  # reversed, through index 0
    ([2, -3], [-1, 100], [1, 2], [1, 1]),
    ([5], [1], [1], [-2]),
])
@pytest.mark.parametrize("bits", [8, 16])
def test_slice_kernel_equals_onnx_reference(starts, ends, axes, steps, bits):
    from alls.importer import _slice_bounds

    x = _codes((2, 6, 7, 5), bits)
    (expected,) = _reference("Slice", x, [("s", np.array(starts)), ("e", np.array(ends)), ("a", np.array(axes)),
                                          ("st", np.array(steps))])
    slices = [(int(a), *_slice_bounds(s, e, st, x.shape[a])) for s, e, a, st in zip(starts, ends, axes, steps)]
    nhwc_slices = [({0: 0, 1: 3, 2: 1, 3: 2}[a], *rest) for a, *rest in slices]
    got = _kernel("slice")(to_nhwc(x), nhwc_slices)
    assert np.array_equal(got, to_nhwc(expected))


@pytest.mark.parametrize("mode, pads", [("constant", [0, 1, 2, 0, 0, 2, 1, 3]), ("reflect", [0, 0, 1, 2, 0, 0, 2, 1]),
                                        ("edge", [0, 2, 1, 1, 0, 0, 3, 0]), ("wrap", [0, 0, 1, 1, 0, 0, 1, 1])])
def test_pad_kernel_equals_onnx_reference(mode, pads):
    x = _codes((1, 3, 5, 6))
    value = np.array(37, np.uint8)
    inits = [("p", np.array(pads))] + ([("v", value)] if mode == "constant" else [])
    (expected,) = _reference("Pad", x, inits, opset=19, mode=mode)
    per = [(pads[i], pads[i + 4]) for i in range(4)]
    nhwc = [per[0], per[2], per[3], per[1]]
    got = _kernel("pad")(to_nhwc(x), nhwc, mode=mode, value=37)
    assert np.array_equal(got, to_nhwc(expected))


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space_kernel_equals_onnx_reference(mode):
    x = _codes((2, 12, 3, 4), 16)
    (expected,) = _reference("DepthToSpace", x, blocksize=2, mode=mode)
    assert np.array_equal(_kernel("depth_to_space")(to_nhwc(x), blocksize=2, mode=mode), to_nhwc(expected))


def test_space_to_depth_kernel_equals_onnx_reference():
    x = _codes((2, 3, 6, 4))
    (expected,) = _reference("SpaceToDepth", x, blocksize=2)
    assert np.array_equal(_kernel("space_to_depth")(to_nhwc(x), blocksize=2), to_nhwc(expected))


@pytest.mark.parametrize("axes", [(2, 3), (1,), (1, 2, 3), (3,)])
def test_reduce_max_kernel_equals_onnx_reference(axes):
    x = _codes((2, 5, 4, 3))
    (expected,) = _reference("ReduceMax", x, [("a", np.array(axes))], keepdims=1)
    nhwc_axes = [{1: 3, 2: 1, 3: 2}[a] for a in axes]
    assert np.array_equal(_kernel("reduce_max")(to_nhwc(x), axes=nhwc_axes), to_nhwc(expected))


def _slow_reduce_sum(x, zx, axes, mu, zy, bits_out):
    """(N33) one output at a time with Python integers, against the exact multiplier's rational."""
    count = int(np.prod([x.shape[a] for a in axes]))
    bound = count * nx.activation_max(8 if x.dtype == np.uint8 else 16)
    rq = nx.requant([mu], bound, zy, bits_out)
    (m,), (n,) = (v.tolist() for v in rq.per_channel(1))
    total = x.astype(object).sum(axis=tuple(axes), keepdims=True) - count * zx
    flat = [min(max(zy + ((int(v) * m + ((1 << n) >> 1)) >> n), rq.lo), rq.hi) for v in total.reshape(-1)]
    return rq, np.array(flat, dtype=np.int64).reshape(total.shape)


@pytest.mark.parametrize("axes, mean", [((1, 2), True), ((3,), True), ((1, 2, 3), False), ((2,), False)])
@pytest.mark.parametrize("bits", [8, 16])
def test_reduce_sum_kernel_equals_slow_reference(axes, mean, bits):
    x = _codes((2, 6, 5, 4), bits, seed=3)
    count = int(np.prod([x.shape[a] for a in axes]))
    mu = 0.37 / (count if mean else 1) * (3 if not mean else 1)
    rq, expected = _slow_reduce_sum(x, 17, axes, mu, 9, 8)
    got = _kernel("reduce_sum")(x, rq, zero_point=17, axes=axes)
    assert np.array_equal(got.astype(np.int64), expected)
