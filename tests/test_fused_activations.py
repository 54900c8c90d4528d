"""Activations fused into the float conv's store (alls.runtime.kernels._activate): the direct conv
and the BLAS 1x1 path against a slow NumPy reference for every fused activation over shapes,
strides, dilations and pads; sigmoid and SiLU's exp against float64; the float target against
onnxruntime on networks using each activation; ``observe`` still seeing the tensor before and after
the activation; the same bits for any batch and thread count."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alls
from alls.graph import Layer
from alls.runtime.exec.native import run_float
from alls.values import Activation
from test_importer import build, node, rand
from test_floatconv import reference
from test_native import check

floatconv = pytest.importorskip("alls.runtime.kernels.floatconv")
from alls.runtime.ops import conv as conv_op  # noqa: E402  (imports Numba's kernels on use only)
from alls.runtime.ops.activation import ACTIVATIONS  # noqa: E402

ort = pytest.importorskip("onnxruntime")

# the activation, its constants as the importer records them
FUSED = [(Activation.RELU, {}), (Activation.RELU6, {}), (Activation.CLIP, {"min": -0.5, "max": 1.25}),
         (Activation.LEAKY_RELU, {"alpha": 0.1}), (Activation.HARD_SIGMOID, {"alpha": 0.3, "beta": 0.4}),
         (Activation.HARDSWISH, {}), (Activation.SIGMOID, {}), (Activation.SILU, {})]
EXACT = {Activation.RELU, Activation.RELU6, Activation.CLIP, Activation.LEAKY_RELU, Activation.HARD_SIGMOID,
         Activation.HARDSWISH}


def fused(activation, params):
    layer = Layer("l", "conv", "Conv", (), (), (), activation=activation, activation_params=tuple(params.items()))
    return conv_op.fusable(layer)


def exact(activation, params, y):
    """The activation in float64, from its definition."""
    y = y.astype(np.float64)
    if activation is Activation.RELU:
        return np.maximum(y, 0)
    if activation is Activation.RELU6:
        return np.clip(y, 0, 6)
    if activation is Activation.CLIP:
        return np.clip(y, params["min"], params["max"])
    if activation is Activation.LEAKY_RELU:
        return np.where(y >= 0, y, params["alpha"] * y)
    if activation is Activation.HARD_SIGMOID:
        return np.clip(params["alpha"] * y + params["beta"], 0, 1)
    if activation is Activation.HARDSWISH:
        return y * np.clip(y / 6 + 0.5, 0, 1)
    if activation is Activation.SIGMOID:
        return 1 / (1 + np.exp(-y))
    return y / (1 + np.exp(-y))


def check_activated(got, pre, activation, params):
    """``got`` is ``pre`` activated: to the bit as NumPy's float32 steps for the piecewise-linear
    activations, within 4 ulp of float64 for the others (and 2^-120 of zero below that)."""
    if activation in EXACT:
        np.testing.assert_array_equal(got, ACTIVATIONS[activation](pre.copy(), **params).astype(np.float32))
    else:
        want = exact(activation, params, pre)
        ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
        assert np.all(np.abs(got - want) <= 4 * ulp + 2.0 ** -120)


geometries = st.tuples(
    st.integers(1, 3), st.integers(1, 9), st.integers(1, 14), st.integers(1, 19),  # N, C, H, W
    st.integers(1, 13), st.integers(1, 4), st.integers(1, 4),  # C_out, KH, KW
    st.tuples(st.integers(1, 3), st.integers(1, 3)), st.tuples(st.integers(1, 2), st.integers(1, 2)),
    st.tuples(*[st.integers(0, 2)] * 4))


@settings(max_examples=40, deadline=None)
@given(geometries, st.sampled_from(FUSED), st.integers(0, 2 ** 31))
def test_each_fused_activation_equals_the_conv_then_the_activation(geometry, activation, seed):
    n, c, h, w, out_c, kh, kw, strides, dilations, pads = geometry
    top, left, bottom, right = pads
    if h + top + bottom < (kh - 1) * dilations[0] + 1 or w + left + right < (kw - 1) * dilations[1] + 1:
        return  # no output position
    out_c += c == out_c == 1  # one channel to one is a depthwise conv, whose activation runs after it
    rng = np.random.default_rng(seed)
    x = (4 * rng.standard_normal((n, c, h, w))).astype(np.float32)
    weight = rng.standard_normal((out_c, c, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(out_c).astype(np.float32)
    attrs = {"strides": strides, "dilations": dilations, "pads": pads}
    pre = conv_op.conv2d(x, weight, bias, attrs)  # the conv alone: the direct conv, or BLAS for 1x1
    got = conv_op.conv2d(x, weight, bias, attrs, 1, fused(*activation))
    assert got.dtype == np.float32 and got.shape == pre.shape
    check_activated(got, pre, *activation)
    # and against the definition in float64: the conv's float32 rounding (test_floatconv's bound), through an
    # activation whose slope is at most 1.5, plus the activation's own rounding
    want = exact(*activation, reference(x, weight, bias, strides, dilations, pads))
    bound = 2 * c * kh * kw * np.finfo(np.float32).eps * reference(np.abs(x), np.abs(weight), np.abs(bias), strides,
                                                                   dilations, pads)
    assert np.all(np.abs(got - want) <= 1.5 * bound + 4 * np.spacing(np.abs(want).astype(np.float32)) + 2.0 ** -120)
    direct = floatconv.conv(x, weight, bias, strides, dilations, pads, threads=1, activation=fused(*activation))
    check_activated(direct, floatconv.conv(x, weight, bias, strides, dilations, pads, threads=1), *activation)


@pytest.mark.parametrize("activation", [Activation.SIGMOID, Activation.SILU])
def test_the_vector_exp_gives_sigmoid_and_silu_within_4_ulp_of_float64(activation):
    """Over float32 inputs across the range (every 2^-10 step in [-20, 20], then out to ±200), through the
    BLAS path's pass (`bias_activate`, the same code as the direct conv's store); infinities and NaN."""
    y = np.concatenate([np.arange(-20, 20, 2 ** -10), np.linspace(-200, 200, 40001), [-np.inf, np.inf, 0.0]])
    y = y.astype(np.float32)
    out = y.reshape(1, 1, -1).copy()
    code, *constants = fused(activation, {})
    floatconv.bias_activate(out, np.zeros(1, np.float32), code, np.array(constants, np.float32))
    got = out.reshape(-1)
    check_activated(got[:-3], y[:-3], activation, {})
    ends = [0.0, 1.0, 0.5] if activation is Activation.SIGMOID else [np.nan, np.inf, 0.0]  # -inf·0: NaN, as ort
    np.testing.assert_array_equal(got[-3:], np.array(ends, np.float32))
    nan = np.full((1, 1, 9), np.nan, np.float32)
    floatconv.bias_activate(nan, np.zeros(1, np.float32), code, np.array(constants, np.float32))
    assert np.isnan(nan).all()


def _net(op, extra, pointwise, group=1):
    """A conv (3x3 padded, or 1x1 strided) followed by ``op``, then a second conv and ``op``."""
    conv = {"pads": [1, 1, 1, 1]} if not pointwise else {"strides": [2, 1]}
    k = 1 if pointwise else 3
    if op == "Silu":
        def act(src, dst):
            return [node("Sigmoid", [src], dst + "s"), node("Mul", [src, dst + "s"], dst)]
    else:
        def act(src, dst):
            return [node(op, [src, *extra], dst, **({"alpha": 0.2} if op == "LeakyRelu" else {}))]
    nodes = [node("Conv", ["x", "w", "b"], "c", **conv), *act("c", "a"),
             node("Conv", ["a", "w2", "b2"], "d", group=group, **conv), *act("d", "y")]
    return build(nodes, {"w": rand(6, 3, k, k), "b": rand(6), "w2": rand(4, 6 // group, k, k), "b2": rand(4),
                         **extra}, inputs={"x": (2, 3, 11, 10)}, opset=14)


ONNX_ACTIVATIONS = [("Relu", {}), ("Clip", {"lo": np.float32(0), "hi": np.float32(6)}),
                    ("Clip", {"lo": np.float32(-0.5), "hi": np.float32(1.5)}), ("LeakyRelu", {}),
                    ("HardSigmoid", {}), ("HardSwish", {}), ("Sigmoid", {}), ("Silu", {})]


@pytest.mark.parametrize("pointwise", [False, True], ids=["3x3", "1x1"])
@pytest.mark.parametrize("op, extra", ONNX_ACTIVATIONS, ids=[f"{op}{len(e)}" for op, e in ONNX_ACTIVATIONS])
def test_the_float_target_with_each_fused_activation_equals_onnxruntime(op, extra, pointwise):
    model = _net(op, extra, pointwise)
    graph = alls.load_model(model, name="net")
    assert all(layer.activation is not None for layer in graph if layer.kind == "conv")  # fused, not a layer
    check(model, atol=1e-5)
    check(_net(op, extra, pointwise, group=2), atol=1e-5)  # grouped: the BLAS path's pass


@pytest.mark.parametrize("op, extra", ONNX_ACTIVATIONS, ids=[f"{op}{len(e)}" for op, e in ONNX_ACTIVATIONS])
def test_observe_sees_the_tensor_before_and_after_the_activation(op, extra):
    graph = alls.load_model(_net(op, extra, False), name="net")
    x = rand(2, 3, 11, 10, seed=5)
    seen = {}
    observed, _ = run_float(graph, x, observe=lambda layer, before, after: seen.__setitem__(layer.name,
                                                                                         (before, after)))
    fast, taps = run_float(graph, x, taps="all")
    for layer in graph:
        if layer.kind != "conv":
            continue
        before, after = seen[layer.name]
        xs = [seen[name][1] for name in layer.inputs]
        np.testing.assert_array_equal(before, conv_op.run(layer, xs, layer.params))  # the conv alone
        pre = conv_op.run(layer, [taps[name] for name in layer.inputs], layer.params)  # the fused run's own input
        check_activated(taps[layer.name], pre, layer.activation, dict(layer.activation_params))
        if layer.activation in EXACT:
            np.testing.assert_array_equal(after, taps[layer.name])
        else:
            np.testing.assert_allclose(after, taps[layer.name], rtol=0, atol=1e-6 * max(1, np.abs(after).max()))
    for name, y in observed.items():
        np.testing.assert_allclose(fast[name], y, rtol=0, atol=1e-6 * max(1, np.abs(y).max()))


@pytest.mark.parametrize("activation", [Activation.SILU, Activation.HARDSWISH, Activation.LEAKY_RELU])
@pytest.mark.parametrize("kernel, pads", [((3, 3), (1, 1, 1, 1)), ((1, 1), (0, 0, 0, 0))], ids=["3x3", "1x1"])
def test_fused_results_are_the_same_bits_for_any_batch_and_thread_count(activation, kernel, pads):
    params = dict(FUSED)[activation]
    rng = np.random.default_rng(11)
    x = (3 * rng.standard_normal((4, 16, 20, 20))).astype(np.float32)
    weight = rng.standard_normal((24, 16, *kernel)).astype(np.float32)
    bias = rng.standard_normal(24).astype(np.float32)
    attrs = {"strides": (1, 1), "dilations": (1, 1), "pads": pads}
    whole = conv_op.conv2d(x, weight, bias, attrs, 1, fused(activation, params))
    for i in range(len(x)):
        np.testing.assert_array_equal(conv_op.conv2d(x[i:i + 1], weight, bias, attrs, 1, fused(activation, params))[0],
                                      whole[i])
    if kernel != (1, 1):
        for threads in (1, 2, 4):
            np.testing.assert_array_equal(
                floatconv.conv(x, weight, bias, (1, 1), (1, 1), pads, threads=threads,
                               activation=fused(activation, params)), whole)


def test_activations_the_conv_does_not_fuse_run_after_it():
    """Tanh, ELU and PReLU have no fused form: the executor applies them after the conv, as before."""
    for act in (Activation.TANH, Activation.ELU, Activation.PRELU):
        layer = Layer("l", "conv", "Conv", (), (), (), activation=act)
        assert conv_op.fusable(layer) is None
    nodes = [node("Conv", ["x", "w", "b"], "c", pads=[1, 1, 1, 1]), node("Tanh", ["c"], "y")]
    check(build(nodes, {"w": rand(3, 3, 3, 3), "b": rand(3)}), atol=1e-5)
