"""The float executor's fast paths: the conv, depthwise and pool geometries each kernel branch takes,
against onnxruntime, and the in-place activations against the observed run (same bits, nothing the
caller holds changed)."""

from __future__ import annotations

import numpy as np
import pytest

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


@pytest.mark.parametrize("op, attrs", [
    ("MaxPool", {"kernel_shape": [5, 5], "strides": [1, 1], "pads": [2, 2, 2, 2]}),
    ("MaxPool", {"kernel_shape": [3, 2], "strides": [2, 3], "dilations": [2, 1], "ceil_mode": 1}),
    ("AveragePool", {"kernel_shape": [2, 3], "strides": [3, 2], "pads": [1, 0, 1, 2]}),
    ("AveragePool", {"kernel_shape": [3, 2], "strides": [2, 2], "ceil_mode": 1, "count_include_pad": 1}),
])
def test_pool_geometries_equal_onnxruntime(op, attrs):
    check(build([node(op, ["x"], "y", **attrs)], inputs={"x": X}, opset=13))


@pytest.mark.parametrize("activation", ["Relu", "Sigmoid", "HardSigmoid", "HardSwish", "Clip"])
def test_an_activation_run_in_place_gives_the_observed_run_bits_and_leaves_the_inputs(activation):
    extra = {"lo": np.float32(-0.5), "hi": np.float32(1.5)} if activation == "Clip" else {}
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
