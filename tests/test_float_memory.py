"""The float executor's memory-bound layers: an elementwise layer written into an input nobody reads
afterwards (and never into one a tap, an output, an observer, a live view or the caller holds), and
the single-pass deconv and nearest resize against slow references and onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

import alls
from alls.runtime.exec import native
from alls.runtime.exec.native import run_float
from test_importer import build, node, rand
from test_native import check

ort = pytest.importorskip("onnxruntime")

X = (2, 3, 8, 8)


def _residual_model():
    """conv -> add the input -> times a per-channel constant -> add a second conv -> relu (fused)."""
    nodes = [node("Conv", ["x", "w", "b"], "c", pads=[1, 1, 1, 1]), node("Add", ["c", "x"], "d"),
             node("Mul", ["d", "k"], "e"), node("Conv", ["x", "w2", "b2"], "c2"), node("Sub", ["k", "c2"], "s"),
             node("Add", ["e", "s"], "f"), node("Relu", ["f"], "y")]
    inits = {"w": rand(3, 3, 3, 3), "b": rand(3), "k": rand(1, 3, 1, 1, seed=5), "w2": rand(3, 3, 1, 1),
             "b2": rand(3)}
    return build(nodes, inits, inputs={"x": X})


def _observed(graph, x):
    """A run with an observer, which overwrites nothing: the reference for the bits."""
    return run_float(graph, x, observe=lambda layer, before, after: None)


def _overwrites(monkeypatch):
    """The layers whose result came back in the memory of one of their inputs, by name."""
    seen: list[str] = []
    inner = native.run_layer

    def run_layer(layer, xs, *args, **kwargs):
        y = inner(layer, xs, *args, **kwargs)
        if layer.kind != "output_layer" and any(np.shares_memory(y, x) for x in xs):  # (an output is its input)
            seen.append(layer.kind)
        return y

    monkeypatch.setattr(native, "run_layer", run_layer)
    return seen


def test_elementwise_layers_write_into_dead_inputs_with_the_same_bits(monkeypatch):
    model = _residual_model()
    check(model, {"x": rand(*X, seed=2)})
    graph = alls.load_model(model, name="net")
    x = rand(*X, seed=2)
    kept = x.copy()
    expected, _ = _observed(graph, x)
    seen = _overwrites(monkeypatch)
    got, _ = run_float(graph, x)
    assert sorted(seen) == ["ew_add", "ew_add", "ew_mult", "ew_sub"]  # the relu too, in place, in the last add
    for name, y in expected.items():
        np.testing.assert_array_equal(got[name], y)
    np.testing.assert_array_equal(x, kept)


def test_a_tapped_tensor_is_never_overwritten():
    graph = alls.load_model(_residual_model(), name="net")
    x = rand(*X, seed=2)
    shown: dict[str, np.ndarray] = {}
    run_float(graph, x, observe=lambda layer, before, after: shown.__setitem__(layer.name, after.copy()))
    convs = [layer.name for layer in graph if layer.kind == "conv"]
    _, tapped = run_float(graph, x, taps=convs)
    for name in convs:
        np.testing.assert_array_equal(tapped[name], shown[name])


def test_the_callers_input_is_never_overwritten():
    nodes = [node("Mul", ["x", "k"], "m"), node("Reshape", ["x", "shape"], "r"), node("Add", ["r", "k2"], "y")]
    graph = alls.load_model(build(nodes, {"k": rand(1, 3, 1, 1), "k2": rand(1, 3, 64, 1),
                                          "shape": np.array([2, 3, 64, 1], np.int64)},
                                  inputs={"x": X}, outputs=("m", "y")), name="net")
    x = rand(*X, seed=1)
    kept = x.copy()
    outputs, _ = run_float(graph, x)
    np.testing.assert_array_equal(x, kept)
    expected, _ = _observed(graph, kept.copy())
    for name, y in expected.items():
        np.testing.assert_array_equal(outputs[name], y)


def test_a_view_or_an_output_that_is_still_held_keeps_its_memory():
    """A conv read last by an add while a reshape of it (a view) is an output, and an elementwise
    result that is an output and read by a later add."""
    shape = np.array([2, 3, 64, 1], np.int64)
    nodes = [node("Conv", ["x", "w", "b"], "c", pads=[1, 1, 1, 1]), node("Reshape", ["c", "flat"], "r"),
             node("Mul", ["r", "k"], "t"), node("Reshape", ["t", "back"], "tb"), node("Add", ["c", "tb"], "d"),
             node("Mul", ["d", "k2"], "m"), node("Add", ["m", "x"], "y")]
    inits = {"w": rand(3, 3, 3, 3), "b": rand(3), "flat": shape, "back": np.array(X, np.int64),
             "k": rand(1, 3, 64, 1), "k2": rand(1, 3, 1, 1)}
    model = build(nodes, inits, inputs={"x": X}, outputs=("r", "m", "y"))
    check(model, {"x": rand(*X, seed=3)})
    graph = alls.load_model(model, name="net")
    x = rand(*X, seed=3)
    expected, _ = _observed(graph, x)
    got, _ = run_float(graph, x)
    for name, y in expected.items():
        np.testing.assert_array_equal(got[name], y)


def test_what_an_observer_is_shown_stays_as_it_was_shown():
    graph = alls.load_model(_residual_model(), name="net")
    shown: list[tuple[np.ndarray, np.ndarray]] = []
    run_float(graph, rand(*X, seed=4), observe=lambda layer, before, after: shown.append((after, after.copy())))
    assert len(shown) == len(list(graph))
    for held, copy in shown:
        np.testing.assert_array_equal(held, copy)


def test_the_bits_do_not_depend_on_the_batch():
    graph = alls.load_model(_residual_model(), name="net")
    x = rand(*X, seed=6)
    whole, _ = run_float(graph, x)
    for i in range(X[0]):
        one, _ = run_float(graph, x[i:i + 1].copy())
        for name, y in one.items():
            np.testing.assert_array_equal(whole[name][i:i + 1], y)
