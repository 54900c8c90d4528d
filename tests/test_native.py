"""The float executor (`native` target) against onnxruntime, op by op and on whole models."""

from __future__ import annotations

import numpy as np
import pytest

import alls
from alls.runtime.exec.native import run_float
from test_importer import DIGITS, build, node, rand

ort = pytest.importorskip("onnxruntime")


def check(model, feeds=None, atol=1e-4):
    """run_float on the imported model equals onnxruntime on the original, output by output."""
    feeds = feeds or {i.name: rand(*[d.dim_value for d in i.type.tensor_type.shape.dim], seed=3)
                      for i in model.graph.input}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, feeds)
    graph = alls.load_model(model, name="net")
    assert not [d for d in graph.diagnostics if d.is_error]
    outputs, _ = run_float(graph, feeds)
    got = list(outputs.values())
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        scale = max(1.0, float(np.abs(e).max()))
        np.testing.assert_allclose(g, e, atol=atol * scale, rtol=0)


CONVS = [
    ({"pads": [1, 1, 1, 1]}, (8, 3, 3, 3)),
    ({"strides": [2, 2], "pads": [0, 1, 1, 0]}, (8, 3, 3, 3)),
    ({"dilations": [2, 2], "pads": [2, 2, 2, 2]}, (4, 3, 3, 3)),
    ({"auto_pad": "SAME_UPPER", "strides": [2, 2]}, (6, 3, 3, 3)),
    ({"group": 3}, (6, 1, 3, 3)),
    ({"group": 3, "strides": [2, 1], "pads": [1, 1, 1, 1]}, (3, 1, 3, 3)),  # depthwise
    ({}, (5, 3, 1, 1)),
]


@pytest.mark.parametrize("attrs, w_shape", CONVS)
def test_conv(attrs, w_shape):
    check(build([node("Conv", ["x", "w", "b"], "y", **attrs)], {"w": rand(*w_shape), "b": rand(w_shape[0])}))


@pytest.mark.parametrize("attrs, w_shape", [
    ({"strides": [2, 2]}, (3, 4, 3, 3)),
    ({"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}, (3, 4, 3, 3)),
    ({"strides": [2, 2], "group": 3}, (3, 2, 4, 4)),
    ({"dilations": [2, 2]}, (3, 2, 3, 3)),
])
def test_deconv(attrs, w_shape):
    group = attrs.get("group", 1)
    check(build([node("ConvTranspose", ["x", "w", "b"], "y", **attrs)],
                {"w": rand(*w_shape), "b": rand(w_shape[1] * group)}))


def test_gemm_after_flatten_and_matmul_over_a_sequence():
    check(build([node("Flatten", ["x"], "f"), node("Gemm", ["f", "w", "b"], "y", transB=1)],
                {"w": rand(7, 192), "b": rand(7)}))
    check(build([node("MatMul", ["x", "w"], "y")], {"w": rand(16, 5)}, inputs={"x": (2, 4, 16)}))


@pytest.mark.parametrize("op, attrs, extra", [
    ("Relu", {}, {}), ("Sigmoid", {}, {}), ("Tanh", {}, {}), ("LeakyRelu", {"alpha": 0.1}, {}),
    ("Elu", {}, {}), ("HardSigmoid", {}, {}), ("HardSwish", {}, {}),
    ("Clip", {}, {"lo": np.float32(-0.5), "hi": np.float32(1.5)}),
    ("PRelu", {}, {"slope": rand(3, 1, 1)}),
])
def test_activations_fused_into_a_conv(op, attrs, extra):
    inputs = ["c"] + list(extra)
    nodes = [node("Conv", ["x", "w", "b"], "c", pads=[1, 1, 1, 1]), node(op, inputs, "y", **attrs)]
    check(build(nodes, {"w": rand(3, 3, 3, 3), "b": rand(3), **extra}, opset=14))


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul"])
def test_elementwise_of_two_tensors_and_with_constants(op):
    nodes = [node("Conv", ["x", "w", "b"], "c", pads=[1, 1, 1, 1]), node(op, ["c", "x"], "d"),
             node(op, ["k", "d"], "y")]
    check(build(nodes, {"w": rand(3, 3, 3, 3), "b": rand(3), "k": rand(1, 3, 1, 1)}))


def test_concat_softmax_and_views():
    nodes = [node("Concat", ["x", "x"], "c", axis=1), node("Transpose", ["c"], "t", perm=[0, 2, 3, 1]),
             node("Reshape", ["t", "s"], "r"), node("Softmax", ["r"], "y", axis=-1)]
    check(build(nodes, {"s": np.array([1, 64, 6], np.int64)}))


@pytest.mark.parametrize("op, attrs", [
    ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1}),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ("GlobalAveragePool", {}), ("GlobalMaxPool", {}),
])
def test_pools(op, attrs):
    check(build([node(op, ["x"], "y", **attrs)], inputs={"x": (1, 3, 9, 9)}))


@pytest.mark.parametrize("mode, ctm, nearest", [
    ("nearest", "asymmetric", "floor"), ("nearest", "half_pixel", "round_prefer_floor"),
    ("nearest", "align_corners", "round_prefer_ceil"), ("linear", "half_pixel", None),
    ("linear", "align_corners", None), ("linear", "asymmetric", None), ("linear", "pytorch_half_pixel", None),
])
@pytest.mark.parametrize("scale", [2.0, 1.5])
def test_resize(mode, ctm, nearest, scale):
    attrs = {"mode": mode, "coordinate_transformation_mode": ctm}
    if nearest:
        attrs["nearest_mode"] = nearest
    scales = np.array([1, 1, scale, scale], np.float32)
    check(build([node("Resize", ["x", "", "s"], "y", **attrs)], {"s": scales}))


def test_a_batch_norm_with_nothing_before_it():
    nodes = [node("BatchNormalization", ["x", "g", "bb", "m", "v"], "y")]
    check(build(nodes, {"g": rand(3), "bb": rand(3), "m": rand(3), "v": np.abs(rand(3)) + 0.5}))


def test_the_digits_model_at_another_batch_size():
    import onnx

    x = np.load(DIGITS.parent / "test_x.npy")[:16].transpose(0, 3, 1, 2).astype(np.float32)
    model = onnx.load(DIGITS)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"input": x})[0]
    outputs, taps = run_float(alls.load_model(DIGITS), x, taps="all")
    np.testing.assert_allclose(outputs["digits_cnn/output_layer1"], expected, atol=1e-4)
    assert set(taps) == {layer.name for layer in alls.load_model(DIGITS)}
    assert taps["digits_cnn/conv1"].shape == (16, 16, 8, 8) and taps["digits_cnn/conv1"].min() >= 0


def test_bad_feeds_are_named():
    graph = alls.load_model(DIGITS)
    with pytest.raises(KeyError, match="not an input"):
        run_float(graph, {"nope": np.zeros((1, 1, 8, 8), np.float32)})


def test_centerface_native_equals_onnxruntime():
    """The pretrained face detector at its own fixed 10x3x32x32 input: every output within 1e-4 of its range."""
    import models

    try:
        path = models.centerface()
    except models.Unavailable as exc:
        pytest.skip(str(exc))
    import onnx

    model = onnx.load(str(path))
    x = np.random.default_rng(5).uniform(0, 255, (10, 3, 32, 32)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"input.1": x})
    outputs, _ = run_float(alls.load_model(model, name="centerface"), x)
    for e, g in zip(expected, outputs.values()):
        assert np.abs(e - g).max() < 1e-4 * max(np.ptp(e), 1e-6)


def test_a_large_batch_runs_in_parts_with_the_same_outputs(monkeypatch):
    """A plain run takes a batch a few images at a time (`PART_BYTES`) and joins the outputs: what the
    whole batch at once gives, to the float32 rounding of the dense layer's BLAS product (whose order
    of summation follows the batch's size); runs with taps, observers or watchers take the batch whole."""
    import alls.runtime.exec.native as native

    graph = alls.load_model(DIGITS, input_shapes=(1, 1, 8, 8))
    x = np.random.default_rng(0).uniform(0, 1, (37, 1, 8, 8)).astype(np.float32)
    monkeypatch.setattr(native, "PART_BYTES", 1 << 40)
    whole = run_float(graph, x)[0]
    seen = []
    monkeypatch.setattr(native, "_run", lambda g, inputs, *rest, run=native._run: (
        seen.append(len(next(iter(inputs.values())) if isinstance(inputs, dict) else inputs)), run(g, inputs, *rest))[1])
    monkeypatch.setattr(native, "PART_BYTES", 4 * 32 * 8 * 8 * 5)  # the largest output: 32x8x8 floats an image
    assert native.part_images(graph) == 5
    parts = run_float(graph, {graph.inputs[0].name: x})[0]
    assert seen[0] == 5 and sorted(seen[1:]) == [2] + [5] * 6  # the parts after the first finish in any order
    assert parts.keys() == whole.keys()
    for name in whole:
        np.testing.assert_allclose(parts[name], whole[name], rtol=1e-5, atol=1e-5)
    seen.clear()
    run_float(graph, x, taps=["conv1"])
    run_float(graph, x, watch=lambda layer, y: None)
    assert seen == [37, 37]


def test_a_small_run_asks_numba_its_thread_count_only_when_a_kernel_needs_it(monkeypatch):
    """Outside a runtime call a float run's budget is Numba's count, asked by the first kernel call
    that needs it and kept for the run (`_parallel.UNASKED`): the digits CNN's layers are all too small
    for threads and never ask; a depthwise conv called through `depthwise` asks once, and gets the count."""
    import numba

    from alls.runtime.kernels import _parallel
    from alls.runtime.kernels.floatdw import depthwise

    graph = alls.load_model(DIGITS, input_shapes=(1, 1, 8, 8))
    x = np.random.default_rng(0).uniform(0, 1, (8, 1, 8, 8)).astype(np.float32)
    want = run_float(graph, x)[0]
    host, asked = numba.get_num_threads(), []
    monkeypatch.setattr(numba, "get_num_threads", lambda: asked.append(1) or host)
    got = run_float(graph, x)[0]
    assert asked == [] and _parallel.scoped() is None
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    outer = _parallel.set_budget(_parallel.UNASKED)
    try:
        weight, bias = np.ones((4, 3, 3), np.float32), np.zeros(4, np.float32)
        for _ in range(2):
            depthwise(x.repeat(4, axis=1), weight, bias, (1, 1), (1, 1), (1, 1, 1, 1), (8, 8))
        assert asked == [1] and _parallel.budget() == host
    finally:
        _parallel.set_budget(outer)


def test_an_output_layer_gives_its_input_as_it_is():
    graph = alls.load_model(DIGITS, input_shapes=(1, 1, 8, 8))
    x = np.random.default_rng(0).uniform(0, 1, (3, 1, 8, 8)).astype(np.float32)
    outputs, taps = run_float(graph, x, taps=["fc1"])
    plain = run_float(graph, x)[0]
    (name, y), = plain.items()
    np.testing.assert_array_equal(y, taps[next(iter(taps))])
    assert y.dtype == np.float32 and y.flags.c_contiguous and np.array_equal(outputs[name], y)
