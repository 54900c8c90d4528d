"""Shape arithmetic that is constant once the input shape is static folds away, however it is
spelled; folding is bounded."""

import time

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

import alls
from alls.folding import MAX_FOLDED_ELEMENTS


def const(name, value):
    return h.make_node("Constant", [], [name], value=nh.from_array(np.array(value, np.int64)), name=name + "_c")


def model(nodes, inits=(), dims=("N", 3, "H", "W")):
    w = nh.from_array(np.random.default_rng(0).random((8, 3, 3, 3), np.float32), "w")
    nodes = [h.make_node("Conv", ["x", "w"], ["r"], name="conv", pads=[1, 1, 1, 1]), *nodes]
    graph = h.make_graph(nodes, "ocr", [h.make_tensor_value_info("x", T.FLOAT, list(dims))],
                         [h.make_tensor_value_info("y", T.FLOAT, None)], [w, *inits])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])


def chained_reshapes():
    """An OCR-style head: a Reshape whose width comes from Cast/Div/Floor of a Shape, then a second
    Reshape whose target reads the Shape of the first one's output (which ONNX's own inference
    leaves unknown) through Gather, ConstantOfShape and Mul."""
    return model([
        h.make_node("Shape", ["r"], ["s"], name="shape"), const("i3", 3), h.make_node("Gather", ["s", "i3"], ["wd"]),
        h.make_node("Cast", ["wd"], ["wf"], to=T.FLOAT), const("two", 2), h.make_node("Cast", ["two"], ["tf"], to=T.FLOAT),
        h.make_node("Div", ["wf", "tf"], ["half"]), h.make_node("Floor", ["half"], ["fl"]),
        h.make_node("Cast", ["fl"], ["hi"], to=T.INT64), const("ax", [0]), h.make_node("Unsqueeze", ["hi", "ax"], ["hu"]),
        const("head", [1, 8, -1]), h.make_node("Concat", ["head", "hu"], ["shp"], axis=0),
        h.make_node("Reshape", ["r", "shp"], ["y1"], name="reshape1"),
        h.make_node("Shape", ["y1"], ["s2"], name="shape2"), const("i2", 2), h.make_node("Gather", ["s2", "i2"], ["d2"]),
        h.make_node("ConstantOfShape", ["one"], ["ones"], value=nh.from_array(np.array([1], np.int64))),
        h.make_node("Mul", ["d2", "ones"], ["d2b"]), const("zero", 0), const("step", 1),
        h.make_node("Range", ["zero", "d2", "step"], ["rg"]), h.make_node("Expand", ["d2b", "one"], ["d2c"]),
        const("head2", [1, -1]), h.make_node("Concat", ["head2", "d2c"], ["shp2"], axis=0),
        h.make_node("Reshape", ["y1", "shp2"], ["y"], name="reshape2")],
        [nh.from_array(np.array([1], np.int64), "one")])


def test_chained_shape_arithmetic_folds_with_a_static_input():
    graph = alls.load_model(chained_reshapes(), (1, 3, 32, 100))
    assert not graph.diagnostics
    assert [(l.kind, l.op) for l in graph][1:4] == [("conv", "Conv"), ("format_conversion", "Reshape"),
                                                    ("format_conversion", "Reshape")]
    assert graph.outputs[0].output_shape == (1, 400, 64)
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    session = ort.InferenceSession(chained_reshapes().SerializeToString(), providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": np.zeros((1, 3, 32, 100), np.float32)})[0].shape == (1, 400, 64)


def test_folding_is_bounded():
    huge = model([const("big", [1 << 20, 1 << 20]),
                  h.make_node("ConstantOfShape", ["big"], ["z"], name="zeros"),
                  h.make_node("Shape", ["r"], ["s"]), h.make_node("Reshape", ["r", "s"], ["y"])])
    start = time.perf_counter()
    graph = alls.load_model(huge, (1, 3, 8, 8))
    assert time.perf_counter() - start < 10  # nothing of 2^40 values was made
    assert graph.outputs[0].output_shape == (1, 8, 8, 8)
    assert (1 << 40) > MAX_FOLDED_ELEMENTS
