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


# ------------------------------------------------------------------ deconv

def _deconv_reference(x, weight, bias, attrs, out_hw):
    """ConvTranspose in float64, pixel by pixel: each input pixel's kernel added where it lands."""
    group = attrs.get("group", 1)
    (sh, sw), (dh, dw) = attrs.get("strides", [1, 1]), attrs.get("dilations", [1, 1])
    top, left = attrs.get("pads", [0, 0, 0, 0])[:2]
    n, c, h, w = x.shape
    cg, og, kh, kw = c // group, weight.shape[1], weight.shape[2], weight.shape[3]
    out = np.zeros((n, og * group, *out_hw)) + bias.reshape(1, -1, 1, 1)
    for ch in range(c):
        g = ch // cg
        for y in range(h):
            for z in range(w):
                for i in range(kh):
                    for j in range(kw):
                        yo, zo = y * sh + i * dh - top, z * sw + j * dw - left
                        if 0 <= yo < out_hw[0] and 0 <= zo < out_hw[1]:
                            out[:, g * og:(g + 1) * og, yo, zo] += x[:, ch, y, z, None] * weight[ch, :, i, j]
    return out


# (attrs, weight shape (C_in, C_out/group, kh, kw)): taps apart (stride at least the dilated kernel),
# with pads, output padding, gaps between the taps and groups; and one with overlapping taps
DECONVS = [
    ({"strides": [2, 2]}, (4, 3, 2, 2)),
    ({"strides": [2, 2], "pads": [1, 0, 0, 1]}, (4, 3, 2, 2)),
    ({"strides": [2, 3], "output_padding": [1, 2]}, (4, 2, 2, 3)),
    ({"strides": [3, 3], "dilations": [2, 1]}, (4, 2, 2, 2)),
    ({"strides": [3, 2]}, (4, 2, 1, 1)),
    ({"strides": [2, 2], "group": 2}, (4, 3, 2, 2)),
    ({"strides": [2, 2], "pads": [1, 1, 1, 1]}, (4, 3, 3, 3)),
]


@pytest.mark.parametrize("attrs, w_shape", DECONVS)
def test_deconv_equals_a_slow_reference_onnx_reference_and_onnxruntime(attrs, w_shape):
    from onnx.reference import ReferenceEvaluator

    group = attrs.get("group", 1)
    weight, bias = rand(*w_shape), rand(w_shape[1] * group, seed=1)
    model = build([node("ConvTranspose", ["x", "w", "b"], "y", **attrs)], {"w": weight, "b": bias},
                  inputs={"x": (2, 4, 5, 6)})
    x = rand(2, 4, 5, 6, seed=7)
    check(model, {"x": x})
    graph = alls.load_model(model, name="net")
    got = next(iter(run_float(graph, x)[0].values()))
    reference = _deconv_reference(x.astype(np.float64), weight.astype(np.float64), bias, attrs, got.shape[2:])
    np.testing.assert_allclose(got, reference, atol=1e-5, rtol=1e-5)
    if group == 1:  # (onnx.reference's ConvTranspose reshapes a grouped weight wrongly)
        expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    one = next(iter(run_float(graph, x[1:].copy())[0].values()))
    np.testing.assert_array_equal(got[1:], one)  # the same bits at another batch size


# ------------------------------------------------------------------ resize

@pytest.mark.parametrize("ctm, nearest", [("asymmetric", "floor"), ("half_pixel", "round_prefer_floor"),
                                          ("align_corners", "round_prefer_ceil"), ("pytorch_half_pixel", "ceil")])
@pytest.mark.parametrize("scales", [(2.0, 2.0), (3.0, 1.5), (0.5, 2.5)])
def test_a_nearest_resize_is_a_copy_of_onnx_references_values(ctm, nearest, scales):
    from onnx.reference import ReferenceEvaluator

    model = build([node("Resize", ["x", "", "s"], "y", mode="nearest", coordinate_transformation_mode=ctm,
                        nearest_mode=nearest)], {"s": np.array([1, 1, *scales], np.float32)},
                  inputs={"x": (2, 3, 6, 8)})  # (sizes the scales give exactly)
    x = rand(2, 3, 6, 8, seed=8)
    check(model, {"x": x})
    got = next(iter(run_float(alls.load_model(model, name="net"), x)[0].values()))
    np.testing.assert_array_equal(got, ReferenceEvaluator(model).run(None, {"x": x})[0])
