"""The float executor's fast paths: the conv, depthwise and pool geometries each kernel branch takes,
against onnxruntime, and the in-place activations against the observed run (same bits, nothing the
caller holds changed)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alls
from alls.runtime.exec.native import run_float, run_layer
from test_importer import build, node, rand
from test_native import check

ort = pytest.importorskip("onnxruntime")

X = (2, 4, 11, 13)  # a batch of two, odd sizes so that strides leave remainders

# (attrs, weight shape): depthwise (the flat-run branch for kernel widths 3 and 5 and others, the
# column-stride-2 branch, stride phases for other strides) and grouped and dense convs through im2col
GEOMETRIES = [
    ({"group": 4, "pads": [1, 1, 1, 1]}, (4, 1, 3, 3)),
    ({"group": 4, "pads": [2, 2, 2, 2]}, (4, 1, 5, 5)),
    ({"group": 4, "pads": [3, 0, 1, 2]}, (4, 1, 7, 2)),
    ({"group": 4, "strides": [2, 2], "pads": [1, 1, 1, 1]}, (4, 1, 3, 3)),
    ({"group": 4, "strides": [1, 2], "pads": [0, 1, 2, 0]}, (4, 1, 3, 5)),
    ({"group": 4, "strides": [2, 1], "pads": [2, 2, 2, 2]}, (4, 1, 5, 5)),
    ({"group": 4, "strides": [3, 3], "pads": [1, 2, 0, 1]}, (4, 1, 3, 3)),
    ({"group": 4, "strides": [2, 3], "dilations": [2, 1], "pads": [2, 1, 2, 1]}, (4, 1, 3, 4)),
    ({"group": 4, "dilations": [2, 3], "pads": [2, 3, 2, 3]}, (4, 1, 3, 3)),
    ({"group": 4}, (4, 1, 11, 13)),  # the kernel covers the whole plane
    ({"pads": [1, 2, 0, 1], "strides": [2, 3]}, (6, 4, 3, 3)),
    ({"pads": [0, 0, 3, 3], "dilations": [2, 2]}, (5, 4, 2, 3)),
    ({"strides": [2, 2]}, (6, 4, 1, 1)),
    ({"pads": [1, 1, 1, 1]}, (6, 4, 1, 1)),
    ({"group": 2, "pads": [1, 1, 1, 1]}, (6, 2, 3, 3)),
    ({"group": 2}, (4, 2, 1, 1)),
]


@pytest.mark.parametrize("attrs, w_shape", GEOMETRIES)
def test_conv_geometries_equal_onnxruntime(attrs, w_shape):
    check(build([node("Conv", ["x", "w", "b"], "y", **attrs)], {"w": rand(*w_shape), "b": rand(w_shape[0])},
                inputs={"x": X}))


@pytest.mark.parametrize("activation", ["Relu", "Clip", "HardSwish"])
@pytest.mark.parametrize("attrs", [{"pads": [1, 1, 1, 1]}, {"strides": [2, 2], "pads": [1, 0, 2, 1]},
                                   {"strides": [2, 1], "pads": [2, 2, 2, 2]}])
def test_a_depthwise_conv_with_its_activation_in_the_store_equals_onnxruntime(activation, attrs):
    """Wide rows (the row form and several register blocks a row) and narrow ones (the flat form),
    the activation applied by the kernel (ReLU, Clip(0, 6) as ReLU6, hardswish)."""
    kernel = (5, 5) if attrs["pads"][0] == 2 else (3, 3)
    extra = {"lo": np.float32(0), "hi": np.float32(6)} if activation == "Clip" else {}
    for shape in ((2, 4, 9, 77), (2, 4, 7, 12)):
        nodes = [node("Conv", ["x", "w", "b"], "c", group=4, **attrs), node(activation, ["c", *extra], "y")]
        model = build(nodes, {"w": rand(4, 1, *kernel), "b": rand(4), **extra}, inputs={"x": shape}, opset=14)
        graph = alls.load_model(model, name="net")
        assert any(layer.kind == "dw" and layer.activation is not None for layer in graph)
        check(model, {"x": 4 * rand(*shape, seed=5)})


@pytest.mark.parametrize("op, attrs", [
    ("MaxPool", {"kernel_shape": [5, 5], "strides": [1, 1], "pads": [2, 2, 2, 2]}),
    ("MaxPool", {"kernel_shape": [3, 2], "strides": [2, 3], "dilations": [2, 1], "ceil_mode": 1}),
    ("AveragePool", {"kernel_shape": [2, 3], "strides": [3, 2], "pads": [1, 0, 1, 2]}),
    ("AveragePool", {"kernel_shape": [3, 2], "strides": [2, 2], "ceil_mode": 1, "count_include_pad": 1}),
])
def test_pool_geometries_equal_onnxruntime(op, attrs):
    check(build([node(op, ["x"], "y", **attrs)], inputs={"x": X}, opset=13))


@pytest.mark.parametrize("activation", ["Relu", "Sigmoid", "HardSigmoid", "HardSwish", "Clip", "Relu6"])
def test_an_activation_run_in_place_gives_the_observed_run_bits_and_leaves_the_inputs(activation):
    """In place after the layer's run, or (the depthwise conv's ReLU, ReLU6, hardswish) in its kernel's store."""
    extra = {"lo": np.float32(-0.5), "hi": np.float32(1.5)} if activation == "Clip" else {}
    if activation == "Relu6":
        activation, extra = "Clip", {"lo": np.float32(0), "hi": np.float32(6)}
    nodes = [node("Conv", ["x", "w", "b"], "c", pads=[1, 1, 1, 1]), node(activation, ["c", *extra], "a"),
             node("Conv", ["a", "w2", "b2"], "d", group=3, pads=[1, 1, 1, 1]), node(activation, ["d", *extra], "y")]
    graph = alls.load_model(build(nodes, {"w": rand(3, 3, 3, 3), "b": rand(3), "w2": rand(3, 1, 3, 3),
                                          "b2": rand(3), **extra}, opset=14), name="net")
    x = rand(2, 3, 8, 8, seed=4)
    kept = x.copy()
    params = {layer.name: {k: v.copy() for k, v in layer.params.items()} for layer in graph if layer.params}
    seen = {}
    observed, _ = run_float(graph, x, observe=lambda layer, before, after: seen.__setitem__(layer.name, after))
    fast, taps = run_float(graph, x, taps="all")
    # the conv's sigmoid, fused into its store, is exp's (alls.runtime.kernels._activate), the observed
    # run's NumPy's tanh form: they agree within 2^-22 and what follows within float32 rounding of that;
    # every other activation, to the bit
    same = np.testing.assert_array_equal if activation != "Sigmoid" else \
        lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    for name, y in observed.items():
        same(fast[name], y)
    for name, y in taps.items():
        same(y, seen[name])
    np.testing.assert_array_equal(x, kept)
    for layer in graph:
        for k, v in params.get(layer.name, {}).items():
            np.testing.assert_array_equal(layer.params[k], v)


def test_an_activation_is_not_run_in_place_on_a_layers_input():
    """A layer whose float run hands back its input (a standalone activation) gets a new tensor."""
    graph = alls.load_model(build([node("Relu", ["x"], "y")], inputs={"x": (1, 3, 4, 4)}), name="net")
    layer = next(layer for layer in graph if layer.activation == "relu")
    x = rand(1, 3, 4, 4)
    kept = x.copy()
    y = run_layer(layer, [x])
    np.testing.assert_array_equal(x, kept)
    np.testing.assert_array_equal(y, np.maximum(kept, 0))


def test_equalized_weights_passed_as_params_are_used_and_left_as_they_are():
    nodes = [node("Conv", ["x", "w", "b"], "c", pads=[1, 1, 1, 1]), node("Relu", ["c"], "y")]
    graph = alls.load_model(build(nodes, {"w": rand(3, 3, 3, 3), "b": rand(3)}), name="net")
    conv = next(layer for layer in graph if layer.kind == "conv")
    new = {"weight": 2 * conv.params["weight"], "bias": conv.params["bias"] - 1}
    kept = {k: v.copy() for k, v in new.items()}
    x = rand(2, 3, 8, 8, seed=2)
    got, _ = run_float(graph, x, {conv.name: new})
    moved = alls.load_model(build(nodes, {"w": kept["weight"], "b": kept["bias"]}), name="net")
    np.testing.assert_array_equal(next(iter(got.values())), next(iter(run_float(moved, x)[0].values())))
    for k, v in new.items():
        np.testing.assert_array_equal(v, kept[k])


@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (4, 4), (1, 48), (2, 64), (12, 96), (40, 41)])
def test_the_compiled_global_pool_gives_numpys_reduction_bits(hw):
    """NumPy's pairwise float32 sum (eight running sums, halves above 128 values) and its maximum,
    NaN included, on planes below and above the size the pool layer hands to the kernel."""
    from alls.runtime.kernels.floating import global_pool

    rng = np.random.default_rng(hw[0] * 100 + hw[1])
    x = (rng.standard_normal((2, 3, *hw)) * 100).astype(np.float32)
    np.testing.assert_array_equal(global_pool(x, True),
                                  np.add.reduce(x, axis=(2, 3), keepdims=True) / np.float32(hw[0] * hw[1]))
    x[0, 1].flat[rng.integers(0, x[0, 1].size)] = np.nan
    np.testing.assert_array_equal(global_pool(x, False), np.maximum.reduce(x, axis=(2, 3), keepdims=True))


def test_a_squeeze_and_excite_block_equals_onnxruntime_and_numpys_broadcast_product():
    """The gate (N, C, 1, 1) times the planes, either operand first, in one compiled pass."""
    from alls.runtime.kernels.floating import scale_planes

    nodes = [node("GlobalAveragePool", ["x"], "p"), node("Conv", ["p", "w", "b"], "g"),
             node("HardSigmoid", ["g"], "s"), node("Mul", ["x", "s"], "m"), node("Mul", ["s", "m"], "y")]
    check(build(nodes, {"w": rand(4, 4, 1, 1), "b": rand(4)}, inputs={"x": (3, 4, 6, 10)}))
    x, s = rand(3, 4, 6, 10, seed=8), rand(3, 4, 1, 1, seed=9)
    want = x * s
    np.testing.assert_array_equal(scale_planes(x, s, np.empty_like(x), False), want)
    np.testing.assert_array_equal(scale_planes(x, s, x, True), want)  # into the planes themselves


@settings(max_examples=120, deadline=None)
@given(st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 11), st.integers(1, 30)),
       st.tuples(st.integers(1, 3), st.integers(1, 3)), st.tuples(st.integers(1, 2), st.integers(1, 2)),
       st.tuples(st.integers(1, 2), st.integers(1, 2)), st.tuples(*[st.integers(0, 1)] * 4), st.booleans(),
       st.integers(0, 2**32 - 1))
def test_the_compiled_max_pool_gives_the_numpy_forms_bits(shape, kernel, strides, dilations, pads, ceil, seed):
    """Against the tap-by-tap NumPy form over the -inf-padded tensor: NaN wins, a window of pads only
    would be -inf; pads, strides, dilations, ceil_mode. (+0 and -0 are equal values: of the two NumPy
    keeps the second in its vector loop and the first in its scalar one, the kernel the first.)"""
    from alls.runtime.ops import pool

    (n, c, h, w), (kh, kw), (sh, sw), (dh, dw) = shape, kernel, strides, dilations
    top, left, bottom, right = (p if p < k else 0 for p, k in zip(pads, (kh, kw, kh, kw)))
    rounding = np.ceil if ceil else np.floor
    ho = int(rounding((h + top + bottom - (kh - 1) * dh - 1) / sh)) + 1
    wo = int(rounding((w + left + right - (kw - 1) * dw - 1) / sw)) + 1
    ho -= ceil and (ho - 1) * sh >= h + top
    wo -= ceil and (wo - 1) * sw >= w + left
    if ho < 1 or wo < 1:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    for value, share in ((np.nan, 0.05), (-0.0, 0.1), (0.0, 0.1), (-np.inf, 0.03)):
        x[rng.random(x.shape) < share] = value
    attrs = {"kernel_shape": kernel, "strides": strides, "dilations": dilations, "pads": (top, left, bottom, right)}
    got = pool.pool2d(x, attrs, "maxpool", (ho, wo))
    extra_h = max(0, (ho - 1) * sh + (kh - 1) * dh + 1 - (h + top + bottom))
    extra_w = max(0, (wo - 1) * sw + (kw - 1) * dw + 1 - (w + left + right))
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom + extra_h), (left, right + extra_w)), constant_values=-np.inf)
    want = pool._max_taps(padded, kernel, strides, dilations, (ho, wo))
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.float32 and np.isnan(got).sum() == np.isnan(want).sum()


def test_a_depthwise_conv_with_a_channel_multiplier_and_its_activation_equals_onnxruntime():
    """Two outputs a channel: no plain depthwise conv, so the conv runs, then its activation."""
    nodes = [node("Conv", ["x", "w", "b"], "c", group=4, pads=[1, 1, 1, 1]), node("Relu", ["c"], "y")]
    model = build(nodes, {"w": rand(8, 1, 3, 3), "b": rand(8)}, inputs={"x": (2, 4, 9, 11)})
    assert any(layer.kind == "dw" and layer.activation == "relu" for layer in alls.load_model(model, name="net"))
    check(model)
