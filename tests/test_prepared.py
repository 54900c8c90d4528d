"""Layers prepared once (`Op.prepare`): the float executor's prepared calls give the bits of the
unprepared path (`run_layer`, and a run with ``observe``, which never prepares), whatever the batch,
with parameters replaced per run or changed in place, and with taps, watchers and outputs as before."""

from __future__ import annotations

import numpy as np
import pytest

import alls
from alls.runtime.exec import native
from alls.runtime.exec.native import run_float, run_layer
from alls.runtime.ops import OPS
from test_importer import DIGITS, build, node, rand


def unprepared(graph, x, params=None, taps=None):
    """The run without prepared layers: ``observe`` takes the unfused path, layer by layer."""
    return run_float(graph, x, params=params, taps=taps, observe=lambda layer, before, after: None)


def same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].shape == b[k].shape and a[k].dtype == b[k].dtype
        np.testing.assert_array_equal(a[k].view(np.int32), b[k].view(np.int32), err_msg=k)


def digits(batch):
    return alls.load_model(str(DIGITS), input_shapes=(batch, 1, 8, 8), name="digits")


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_each_prepared_layer_of_the_digits_cnn_gives_run_layers_bits(batch):
    graph = digits(batch)
    x = rand(batch, 1, 8, 8, seed=batch)
    _, tapped = unprepared(graph, x, taps="all")
    prepared = 0
    for layer in graph:
        op = OPS.get(layer.kind)
        if op is None or op.prepare is None or not layer.inputs:
            continue
        call = op.prepare(layer, layer.params)
        if call is None:
            continue
        xs = [tapped[name] for name in layer.inputs]
        got, expected = call(xs), run_layer(layer, xs)
        assert not any(np.may_share_memory(got, v) for v in xs)
        np.testing.assert_array_equal(got.view(np.int32), expected.view(np.int32), err_msg=layer.name)
        prepared += 1
    assert prepared == 7  # three convs, the depthwise, two pools and the dense layer


def test_a_run_equals_the_unprepared_run_across_batch_sizes():
    graph = digits(8)
    for batch in (8, 1, 5, 8, 2):  # the prepared layers' plans follow the shape of each run
        x = rand(batch, 1, 8, 8, seed=batch)
        same(run_float(graph, x)[0], unprepared(graph, x)[0])


def test_replaced_parameters_are_run_and_the_layer_is_prepared_again():
    graph = digits(8)
    x = rand(8, 1, 8, 8, seed=1)
    before = run_float(graph, x)[0]
    name = "digits/conv3"
    p = graph[name].params
    changed = {name: {"weight": p["weight"] * 1.5, "bias": p["bias"] - 0.25}}
    after = run_float(graph, x, params=changed)[0]
    same(after, unprepared(graph, x, params=changed)[0])
    assert not all(np.array_equal(after[k], before[k]) for k in after)
    same(run_float(graph, x)[0], before)  # the layer's own parameters again
    graph[name].params["weight"] = p["weight"] * 0.5  # a new array in the layer's own mapping
    same(run_float(graph, x)[0], unprepared(graph, x)[0])


@pytest.mark.parametrize("name", ["digits/conv1", "digits/dw1", "digits/conv2", "digits/conv3", "digits/fc1"])
def test_parameters_changed_in_place_are_never_run_stale(name):
    graph = digits(8)
    x = rand(8, 1, 8, 8, seed=2)
    params = graph[name].params
    weight, bias = params["weight"].copy(), params["bias"].copy()  # writable arrays in the layer's mapping
    params["weight"], params["bias"] = weight, bias
    before = run_float(graph, x)[0]  # prepared with these arrays
    weight *= -0.75
    bias += 0.5
    after = run_float(graph, x)[0]
    same(after, unprepared(graph, x)[0])
    assert not all(np.array_equal(after[k], before[k]) for k in after)
    weight.reshape(-1)[0] += 1.0  # one value
    same(run_float(graph, x)[0], unprepared(graph, x)[0])


def test_taps_watchers_and_outputs_as_before():
    graph = digits(4)
    x = rand(4, 1, 8, 8, seed=4)
    seen, expected_seen = {}, {}
    outputs, tapped = run_float(graph, x, taps="all", watch=lambda layer, y: seen.__setitem__(layer.name, y.copy()))
    expected_outputs, expected_tapped = unprepared(graph, x, taps="all")
    run_float(graph, x, observe=lambda layer, b, a: expected_seen.__setitem__(layer.name, a.copy()))
    same(outputs, expected_outputs)
    same(tapped, expected_tapped)
    same(seen, expected_seen)


SMALL = [
    ([node("Conv", ["x", "w", "b"], "c", pads=[1, 1, 1, 1]), node("Relu", ["c"], "r"),
      node("Conv", ["r", "w2", "b2"], "y")], {"w": (8, 3, 3, 3), "b": (8,), "w2": (5, 8, 1, 1), "b2": (5,)}),
    ([node("Conv", ["x", "w", "b"], "c", strides=[2, 2], pads=[0, 1, 1, 0]), node("Clip", ["c", "lo", "hi"], "r"),
      node("MaxPool", ["r"], "y", kernel_shape=[2, 2], strides=[1, 1])],
     {"w": (6, 3, 3, 3), "b": (6,), "lo": (), "hi": ()}),
    ([node("Conv", ["x", "w", "b"], "c", group=3, pads=[1, 1, 1, 1]), node("Relu", ["c"], "r"),
      node("AveragePool", ["r"], "p", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
      node("GlobalAveragePool", ["p"], "y")], {"w": (3, 1, 3, 3), "b": (3,)}),
    ([node("Conv", ["x", "w", "b"], "c", group=3, dilations=[2, 2], pads=[2, 2, 2, 2]),
      node("Sigmoid", ["c"], "s"), node("Conv", ["s", "w2", "b2"], "y", dilations=[2, 1])],
     {"w": (6, 1, 3, 3), "b": (6,), "w2": (4, 6, 3, 3), "b2": (4,)}),
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("case", range(len(SMALL)))
def test_small_graphs_equal_the_unprepared_path(case, seed):
    nodes, shapes = SMALL[case]
    inits = {k: rand(*s, seed=seed + 7) for k, s in shapes.items()}
    if "lo" in inits:
        inits["lo"], inits["hi"] = np.float32(-0.5), np.float32(1.0)
    graph = alls.load_model(build(nodes, inits), name="net")
    assert not [d for d in graph.diagnostics if d.is_error]
    for batch in (1, 4, 2):
        x = rand(batch, 3, 8, 8, seed=seed + batch)
        same(run_float(graph, x)[0], unprepared(graph, x)[0])
        same(run_float(graph, x)[0], run_float(graph, x)[0])


def test_the_schedule_keeps_one_prepared_layer_per_step():
    graph = digits(2)
    x = rand(2, 1, 8, 8)
    run_float(graph, x)
    steps, _, kept = native._schedule(graph, frozenset())
    made = [entry for entry in kept if entry is not None and entry[2] is not None]
    assert len(made) == 7
    run_float(graph, x)
    assert [entry for entry in native._schedule(graph, frozenset())[2] if entry is not None and entry[2]] == made


def test_a_big_prepared_layer_still_goes_through_the_thread_choice(monkeypatch):
    from alls.runtime.kernels import _parallel

    nodes = [node("Conv", ["x", "w", "b"], "c", pads=[1, 1, 1, 1]), node("Relu", ["c"], "r"),
             node("Conv", ["r", "w2", "b2"], "d", group=16, pads=[1, 1, 1, 1]), node("Relu", ["d"], "y")]
    inits = {"w": rand(16, 16, 3, 3), "b": rand(16), "w2": rand(16, 1, 3, 3), "b2": rand(16)}
    graph = alls.load_model(build(nodes, inits, inputs={"x": (2, 16, 160, 160)}), name="big")
    x = rand(2, 16, 160, 160)
    expected = unprepared(graph, x)[0]
    works = []
    real = _parallel.run

    def run(key, work, parts, kernel, *args):
        works.append(work)
        return real(key, work, parts, kernel, *args)

    monkeypatch.setattr(_parallel, "run", run)
    same(run_float(graph, x)[0], expected)
    assert len([w for w in works if w >= 2 * _parallel.WORK_PER_THREAD]) == 2  # the conv and the depthwise
