"""Resize with scales whose product with the input size is not a whole number (width 7 at 1.5: 10
columns, read at 1/1.5, not 7/10): the float path against onnxruntime and `onnx.reference`, the
integer path against a slow exact reference of the ONNX transform, and the forms refused at import."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import alls
from alls import load_model
from alls.diagnostics import AllsError
from alls.runtime import numerics as nm
from alls.runtime.exec.native import run_float
from alls.runtime.ops import OPS
from alls.runtime.ops.base import Encoding, to_nhwc, to_onnx
from test_importer import build, load, node, rand

SHAPE = (1, 2, 7, 13)  # H 7, W 13: both widths at once
SCALES = (1.5, 0.6, 2.5)
CTMS = ("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel")
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
FORMS = [("nearest", n) for n in NEAREST] + [("linear", None)]


def _model(scale, ctm, mode, nearest):
    attrs = {"mode": mode, "coordinate_transformation_mode": ctm, **({"nearest_mode": nearest} if nearest else {})}
    return build([node("Resize", ["x", "", "s"], "y", **attrs)], {"s": np.array([1, 1, scale, scale], np.float32)},
                 inputs={"x": SHAPE}, opset=19)


def _float(model, x):
    graph = alls.load_model(model, name="net")
    assert not [d for d in graph.diagnostics if d.is_error]
    return graph, next(iter(run_float(graph, x)[0].values()))


def _ort(model, x):
    ort = pytest.importorskip("onnxruntime")  # (the import refusals below run without it)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _same(got, want, mode):
    assert got.shape == want.shape
    if mode == "nearest":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("ctm", CTMS)
@pytest.mark.parametrize("mode, nearest", FORMS)
def test_the_float_path_is_onnxruntimes(scale, ctm, mode, nearest):
    model, x = _model(scale, ctm, mode, nearest), rand(*SHAPE, seed=4)
    graph, got = _float(model, x)
    assert got.shape == (1, 2, math.floor(7 * scale), math.floor(13 * scale))
    _same(got, _ort(model, x), mode)


# onnx.reference and onnxruntime differ on two points: align_corners (the reference divides by
# scale · size − 1, onnxruntime by the output size − 1: this follows onnxruntime), and floor or ceil
# at a coordinate a float32 rounding away from a whole number (3 / 0.6f), which onnxruntime computes
# in float32. Everywhere else the float path is the reference's too.
@pytest.mark.parametrize("scale, ctm, mode, nearest", [
    (scale, ctm, mode, nearest) for scale in SCALES for ctm in ("half_pixel", "asymmetric", "pytorch_half_pixel")
    for mode, nearest in FORMS if not (nearest in ("floor", "ceil") and scale == 0.6)])
def test_the_float_path_is_onnx_references(scale, ctm, mode, nearest):
    from onnx.reference import ReferenceEvaluator

    model, x = _model(scale, ctm, mode, nearest), rand(*SHAPE, seed=5)
    _same(_float(model, x)[1], ReferenceEvaluator(model).run(None, {"x": x})[0], mode)


def _coordinate(o, l_in, l_out, ctm, rho):
    """ONNX's transform, exact, with ρ the given float32 scale (align_corners: the sizes)."""
    half = Fraction(1, 2)
    if ctm == "align_corners":
        return Fraction(o * (l_in - 1), l_out - 1) if l_out > 1 else Fraction(0)
    if ctm == "asymmetric":
        return o / rho
    if ctm == "pytorch_half_pixel" and l_out == 1:
        return -half
    return (o + half) / rho - half


def _slow_nearest(x, ctm, nearest, scale):
    n, h, w, c = x.shape
    oh, ow = math.floor(h * scale), math.floor(w * scale)
    rho = Fraction(float(np.float32(scale)))
    pick = {"round_prefer_floor": lambda t: math.ceil(t - Fraction(1, 2)),
            "round_prefer_ceil": lambda t: math.floor(t + Fraction(1, 2)), "floor": math.floor, "ceil": math.ceil}
    iy = [min(max(pick[nearest](_coordinate(o, h, oh, ctm, rho)), 0), h - 1) for o in range(oh)]
    ix = [min(max(pick[nearest](_coordinate(o, w, ow, ctm, rho)), 0), w - 1) for o in range(ow)]
    return x[:, iy][:, :, ix]


def _slow_bilinear(x, ctm, scale, zx, rq):
    n, h, w, c = x.shape
    one, rho = 1 << nm.RESIZE_FRACTION_BITS, Fraction(float(np.float32(scale)))

    def axis(l_in, l_out):
        for o in range(l_out):
            xi = _coordinate(o, l_in, l_out, ctm, rho)
            base = math.floor(xi)
            w1 = math.floor((xi - base) * one + Fraction(1, 2))
            yield min(max(base, 0), l_in - 1), min(max(base + 1, 0), l_in - 1), one - w1, w1

    rows, cols = list(axis(h, math.floor(h * scale))), list(axis(w, math.floor(w * scale)))
    xc, out = x.astype(object) - zx, np.zeros((n, len(rows), len(cols), c), np.int64)
    for i, (r0, r1, a0, a1) in enumerate(rows):
        for j, (c0, c1, b0, b1) in enumerate(cols):
            total = a0 * (b0 * xc[:, r0, c0] + b1 * xc[:, r0, c1]) + a1 * (b0 * xc[:, r1, c0] + b1 * xc[:, r1, c1])
            shifted = [(int(t) * int(rq.multiplier[0]) + (1 << (int(rq.shift[0]) - 1))) >> int(rq.shift[0])
                       for t in total.reshape(-1)]
            out[:, i, j] = np.clip(np.array(shifted).reshape(total.shape) + rq.zero_point, rq.lo, rq.hi)
    return out


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("ctm", CTMS)
@pytest.mark.parametrize("mode, nearest", FORMS)
def test_the_integer_path_is_the_exact_transform(scale, ctm, mode, nearest):
    from onnx.reference import ReferenceEvaluator

    layer = next(layer for layer in alls.load_model(_model(scale, ctm, mode, nearest), name="net")
                 if layer.kind == "resize")
    op, zx = OPS["resize"], 100
    enc = {layer.inputs[0]: Encoding(0.05, zx, 8), layer.name: Encoding(0.05, zx, 8)}
    q = op.quantize(layer, None, None, enc, None)
    x = np.random.default_rng(6).integers(0, 256, to_nhwc(np.zeros(SHAPE)).shape).astype(np.uint8)
    got = op.run_int(layer, q, [x], enc)
    if mode == "nearest":
        np.testing.assert_array_equal(got, _slow_nearest(x, ctm, nearest, scale))
    else:
        np.testing.assert_array_equal(got, _slow_bilinear(x, ctm, scale, zx, q.rq))
    x_float, model = to_onnx(enc[layer.name].dequantize(x)), _model(scale, ctm, mode, nearest)
    references = [] if ctm == "align_corners" else [lambda: ReferenceEvaluator(model).run(None, {"x": x_float})[0]]
    if not (nearest in ("floor", "ceil") and scale == 0.6):  # (float32 coordinates there: see above)
        references.append(lambda: _ort(model, x_float))
    for reference in references:  # exact in every case onnx.reference shares: the exact transform is its
        err = np.abs(enc[layer.name].dequantize(got) - to_nhwc(reference()))
        assert err.max() <= (0 if mode == "nearest" else 0.05 + 1e-6)  # bilinear: one LSB of rounding


def _legacy(op, opset, scales, mode="nearest"):
    if opset == 7:
        return build([node(op, ["x"], "y", mode=mode, scales=[1.0, 1.0, *scales])], inputs={"x": SHAPE}, opset=7)
    return build([node(op, ["x", "s"], "y", mode=mode)], {"s": np.array([1, 1, *scales], np.float32)},
                 inputs={"x": SHAPE}, opset=opset)


@pytest.mark.parametrize("op, opset", [("Upsample", 7), ("Upsample", 9), ("Resize", 10)])
@pytest.mark.parametrize("scales", [(1.5, 2.5), (3.0, 3.0), (2.0, 1.5)])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample_and_resize_10_round_as_onnxruntime(op, opset, scales, mode):
    """No nearest_mode before opset 11: onnxruntime rounds down on a growing axis (x / 3 at 3x)."""
    model, x = _legacy(op, opset, scales, mode), rand(*SHAPE, seed=7)
    graph, got = _float(model, x)
    _same(got, _ort(model, x), mode)
    layer = next(layer for layer in graph if layer.kind == "resize")
    enc = {layer.inputs[0]: Encoding(0.05, 100, 8), layer.name: Encoding(0.05, 100, 8)}
    codes = np.random.default_rng(8).integers(0, 256, (1, 7, 13, 2)).astype(np.uint8)
    ints = OPS["resize"].run_int(layer, OPS["resize"].quantize(layer, None, None, enc, None), [codes], enc)
    if mode == "nearest":
        assert layer.attrs["nearest_mode"] == "floor"
        np.testing.assert_array_equal(to_onnx(enc[layer.name].dequantize(ints)),
                                      _ort(model, to_onnx(enc[layer.name].dequantize(codes))))


def test_a_legacy_nearest_that_grows_one_axis_and_shrinks_the_other_is_refused():
    g = load_model(_legacy("Resize", 10, (1.5, 0.6)), name="net")
    assert [d.code for d in g.diagnostics] == ["ALS401"]


def test_axes_name_the_axes_the_scales_resize():
    model = build([node("Resize", ["x", "", "s"], "y", mode="nearest", axes=[2, -1])],
                  {"s": np.array([1.5, 0.6], np.float32)}, inputs={"x": SHAPE}, opset=19)
    x = rand(*SHAPE, seed=9)
    graph, got = _float(model, x)
    assert next(layer for layer in graph if layer.kind == "resize").attrs["scales"] == (1.5, float(np.float32(0.6)))
    np.testing.assert_array_equal(got, _ort(model, x))


@pytest.mark.parametrize("inputs, inits", [
    (["x", "", "", "sz"], {"sz": np.array([1, 3, 11, 5], np.int64)}),
    (["x", "", "s"], {"s": np.array([1, 1, 2, 0.5], np.float32)}),
])
def test_sizes_and_whole_products_carry_no_scale(inputs, inits):
    layer = load([node("Resize", inputs, "y", name="up", mode="nearest")], inits).get("up")
    assert "scales" not in layer.attrs


def test_a_non_whole_product_carries_its_scale():
    layer = load([node("Resize", ["x", "", "s"], "y", name="up", mode="linear")],
                 {"s": np.array([1, 1, 1.5, 0.6], np.float32)}, inputs={"x": (1, 3, 7, 13)}).get("up")
    assert layer.output_shape == (1, 3, 10, 7)
    assert layer.attrs["scales"] == (1.5, float(np.float32(0.6)))


@pytest.mark.parametrize("inputs, inits", [
    (["x", "", "s"], {"s": np.array([1, 1, -2, 2], np.float32)}),
    (["x", "", "s"], {"s": np.array([1, 1, 1e9, 1e9], np.float32)}),
    (["x", "", "s"], {"s": np.array([1, 1, 0.01, 1], np.float32)}),  # floor(8 · 0.01) = 0 rows
    (["x", "", "", "sz"], {"sz": np.array([1, 3, -4, 5], np.int64)}),
])
def test_bad_scales_and_sizes_are_refused_at_import(inputs, inits):
    g = load([node("Resize", inputs, "y", name="up", mode="nearest")], inits)
    assert [d.code for d in g.diagnostics if d.is_error][:1] == ["ALS401"] and not g.get("up").supported
    with pytest.raises(AllsError, match="ALS446"):  # an infinite scale stops the import before the op
        load([node("Resize", inputs, "y", name="up", mode="nearest")],
             {"s": np.array([1, 1, np.inf, 2], np.float32)})


@pytest.mark.parametrize("attrs, scales", [
    ({"coordinate_transformation_mode": "tf_crop_and_resize"}, [1, 1, 2, 2]),
    ({"coordinate_transformation_mode": "half_pixel_symmetric"}, [1, 1, 1.5, 1.5]),
    ({"antialias": 1, "mode": "linear"}, [1, 1, 0.5, 0.5]),
    ({}, [1, 2, 2, 2]),
])
def test_forms_without_a_layer_are_refused_at_import(attrs, scales):
    g = load([node("Resize", ["x", "", "s"], "y", name="up", **attrs)], {"s": np.array(scales, np.float32)},
             opset=19)
    assert [d.code for d in g.diagnostics] == ["ALS401"] and not g.get("up").supported
