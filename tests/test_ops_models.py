"""The ops of Hailo's detectors, imported, run in float against onnxruntime, quantized and emulated."""

from __future__ import annotations

import numpy as np
import pytest

import alls
from alls.runtime.analysis.metrics import cosine
from alls.runtime.session.runner import Runner
from test_importer import build, node, rand
from test_native import check

ort = pytest.importorskip("onnxruntime")

X = (1, 8, 8, 8)


def conv(name, source, c_in, c_out, k=1, stride=1, act=None):
    """A conv (and its activation) as ultralytics exports it; returns (nodes, inits, output)."""
    w, b = rand(c_out, c_in, k, k, seed=len(name)), rand(c_out, seed=len(name) + 1) * 0.1
    nodes = [node("Conv", [source, f"{name}.w", f"{name}.b"], f"{name}.c", pads=[k // 2] * 4, strides=[stride] * 2)]
    out = f"{name}.c"
    if act == "silu":
        nodes += [node("Sigmoid", [out], f"{name}.s"), node("Mul", [out, f"{name}.s"], f"{name}.y")]
        out = f"{name}.y"
    elif act == "relu":
        nodes += [node("Relu", [out], f"{name}.y")]
        out = f"{name}.y"
    return nodes, {f"{name}.w": w, f"{name}.b": b}, out


def wrap(middle, inits=None, c_in=8, c_mid=8, opset=18, mid_out="m"):
    """conv -> the ops under test -> conv: the ops sit between two quantized layers."""
    first, i1, a = conv("c1", "x", X[1], c_in, 3, act="relu")
    last, i2, _ = conv("c2", mid_out, c_mid, 4)
    nodes = first + [n for n in middle(a)] + last
    last[-1].output[0] = "y"
    return build(nodes, {**i1, **i2, **(inits or {})}, inputs={"x": X}, opset=opset)


CASES = {
    "focus": (lambda a: [node("Slice", [a, "s0", "e", "ax", "st"], "f0"), node("Slice", [a, "s1", "e", "ax", "st"], "f1"),
                         node("Slice", [a, "s2", "e", "ax", "st"], "f2"), node("Slice", [a, "s3", "e", "ax", "st"], "f3"),
                         node("Concat", ["f0", "f1", "f2", "f3"], "c", axis=1), node("Resize", ["c", "", "sc"], "m",
                                                                                  mode="nearest")],
              {"s0": np.array([0, 0]), "s1": np.array([1, 0]), "s2": np.array([0, 1]), "s3": np.array([1, 1]),
               "e": np.array([100, 100]), "ax": np.array([2, 3]), "st": np.array([2, 2]),
               "sc": np.array([1, 1, 2, 2], np.float32)}, 32),
    "split_equal": (lambda a: [node("Split", [a], ["p", "q"], axis=1, num_outputs=2),
                               node("Add", ["p", "q"], "m")], {}, 4),
    "split_sizes": (lambda a: [node("Split", [a, "sz"], ["p", "q"], axis=1), node("Concat", ["q", "p"], "m", axis=1)],
                    {"sz": np.array([3, 5])}, 8),
    "split_width": (lambda a: [node("Split", [a, "sz"], ["p", "q"], axis=3), node("Concat", ["q", "p"], "m", axis=3)],
                    {"sz": np.array([5, 3])}, 8),
    "sppf": (lambda a: [node("MaxPool", [a], "p1", kernel_shape=[5, 5], pads=[2] * 4),
                        node("MaxPool", ["p1"], "p2", kernel_shape=[5, 5], pads=[2] * 4),
                        node("MaxPool", ["p2"], "p3", kernel_shape=[5, 5], pads=[2] * 4),
                        node("Concat", [a, "p1", "p2", "p3"], "m", axis=1)], {}, 32),
    "pad_reflect": (lambda a: [node("Pad", [a, "pd"], "m", mode="reflect")],
                    {"pd": np.array([0, 0, 1, 2, 0, 0, 2, 1])}, 8),
    "pad_constant": (lambda a: [node("Pad", [a, "pd"], "m")], {"pd": np.array([0, 0, 1, 1, 0, 0, 1, 1])}, 8),
    "depth_to_space": (lambda a: [node("DepthToSpace", [a], "m", blocksize=2, mode="CRD")], {}, 2),
    "space_to_depth": (lambda a: [node("SpaceToDepth", [a], "m", blocksize=2)], {}, 32),
    "reduce_mean": (lambda a: [node("ReduceMean", [a, "ax"], "r", keepdims=1), node("Mul", [a, "r"], "m")],
                    {"ax": np.array([2, 3])}, 8),
    "reduce_max_channels": (lambda a: [node("ReduceMax", [a, "ax"], "r", keepdims=1), node("Sub", [a, "r"], "m")],
                            {"ax": np.array([1])}, 8),
    "reduce_sum": (lambda a: [node("ReduceSum", [a, "ax"], "m", keepdims=1)], {"ax": np.array([1])}, 1),
    "softmax_channels": (lambda a: [node("Softmax", [a], "m", axis=1)], {}, 8),
    "softmax_width": (lambda a: [node("Softmax", [a], "m", axis=3)], {}, 8),
    "dfl_reshape_transpose_softmax": (
        lambda a: [node("Reshape", [a, "sh"], "r"), node("Transpose", ["r"], "t", perm=[0, 2, 1, 3]),
                   node("Softmax", ["t"], "s", axis=1), node("Transpose", ["s"], "t2", perm=[0, 2, 1, 3]),
                   node("Reshape", ["t2", "back"], "m")],
        {"sh": np.array([1, 2, 4, 64]), "back": np.array([1, 8, 8, 8])}, 8),
    "gate": (lambda a: [node("Sigmoid", [a], "g"), node("Mul", [a, "g"], "h"), node("Sigmoid", ["h"], "g2"),
                        node("Mul", ["h", "g2"], "m")], {}, 8),
    "leaky_prelu": (lambda a: [node("LeakyRelu", [a], "l", alpha=0.1), node("Add", ["l", a], "s"),
                               node("PRelu", ["s", "sl"], "m")], {"sl": np.full((8, 1, 1), 0.25, np.float32)}, 8),
    "sub_div_constants": (lambda a: [node("Sub", ["kc", a], "s"), node("Div", ["s", "d"], "m")],
                          {"kc": rand(1, 8, 8, 8, seed=9), "d": np.array(3.0, np.float32)}, 8),
    "yolov5_wh_square": (lambda a: [node("Sigmoid", [a], "s"), node("Mul", ["s", "two"], "t"),
                                    node("Pow", ["t", "p"], "m")],
                         {"two": np.array(2.0, np.float32), "p": np.array(2.0, np.float32)}, 8),
    "resize_bilinear_align_corners": (
        lambda a: [node("Resize", [a, "", "sc"], "m", mode="linear", coordinate_transformation_mode="align_corners")],
        {"sc": np.array([1, 1, 2, 2], np.float32)}, 8),
    "resize_nearest_asymmetric_floor": (
        lambda a: [node("Resize", [a, "", "", "sz"], "m", mode="nearest", coordinate_transformation_mode="asymmetric",
                        nearest_mode="floor")], {"sz": np.array([1, 8, 16, 16])}, 8),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_float_equals_onnxruntime(case):
    middle, inits, c_mid = CASES[case]
    check(wrap(middle, inits, c_mid=c_mid))


def _images(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, X[2], X[3], X[1])).astype(np.float32)


_MOVES = ("slice", "feature_splitter", "pad", "depth_to_space", "space_to_depth", "reduce_max", "format_conversion",
          "maxpool")


@pytest.mark.parametrize("case", sorted(CASES))
def test_quantized_and_emulated(case):
    """Every op quantizes and runs in integers; the numeric target follows native, and a layer that only
    moves codes keeps its input's encoding exactly: its integer output is its float op on its integer input."""
    middle, inits, c_mid = CASES[case]
    runner = Runner(wrap(middle, inits, c_mid=c_mid))
    runner.quantize(_images(64), progress=False)
    x = _images(8, seed=1)
    native = runner.infer(x, target="native").output
    numeric = runner.infer(x, taps="all")
    assert cosine(native, numeric.output) > 0.98
    graph, layers = runner.graph, runner.quantized.layers
    from alls.runtime.exec.native import run_layer

    for layer in graph:
        if layer.kind not in _MOVES or (layer.kind == "maxpool" and not layer.attrs.get("kernel_shape")):
            continue
        source = layers[layer.inputs[0]]
        assert layers[layer.name].out == source.out and layers[layer.name].rq is None, layer.name
        moved = run_layer(layer, [numeric.taps[layer.inputs[0]].transpose(0, 3, 1, 2)
                                  if numeric.taps[layer.inputs[0]].ndim == 4 else numeric.taps[layer.inputs[0]]])
        got = numeric.taps[layer.name]
        got = got.transpose(0, 3, 1, 2) if got.ndim == 4 else got
        np.testing.assert_array_equal(got, moved, err_msg=layer.name)


def test_unsupported_ops_after_a_supported_network_suggest_the_end_nodes():
    """A head of two convs, a concat and a flatten, then a TopK that has no layer: ALS401 once, and ALS411
    naming the last supported node."""
    first, i1, a = conv("c1", "x", X[1], 8, 3, act="silu")
    box, i2, b = conv("box", a, 8, 4)
    cls, i3, c = conv("cls", a, 8, 3)
    nodes = first + box + cls + [node("Concat", [b, c], "cat", axis=1), node("Flatten", ["cat"], "f"),
                                 node("TopK", ["f", "k"], ["y", "idx"], name="/post/TopK")]
    graph = alls.load_model(build(nodes, {**i1, **i2, **i3, "k": np.array([5])}, inputs={"x": X}, outputs=("y",)))
    codes = [d.code for d in graph.diagnostics]
    assert codes.count("ALS401") == 1 and codes.count("ALS411") == 1
    [hint] = [d for d in graph.diagnostics if d.code == "ALS411"]
    assert "(TopK)" in hint.message and hint.help == "--end-nodes f_node"


def test_no_cut_is_suggested_when_an_unsupported_op_comes_first():
    nodes = [node("Einsum", ["x"], "e", equation="nchw->nchw")] + conv("c1", "e", X[1], 4)[0]
    nodes[-1].output[0] = "y"
    graph = alls.load_model(build(nodes, conv("c1", "e", X[1], 4)[1], inputs={"x": X}))
    assert [d.code for d in graph.diagnostics] == ["ALS401"]


@pytest.mark.parametrize("nodes, inits, reason", [
    ([node("Slice", ["x", "s", "e", "ax"], "y")], {"s": np.array([0]), "e": np.array([1]), "ax": np.array([0])},
     "a slice of the batch axis"),
    ([node("Slice", ["x", "s", "e", "ax"], "y")], {"s": np.array([0, 0]), "e": np.array([9, 9]), "ax": np.array([0, 1])},
     None),  # the whole batch and every channel: no slice at all
    ([node("Shape", ["x"], "sh"), node("Slice", ["x", "s", "e"], "y")],  # computed from the input at run time
     {"s": np.array([0, 0, 0, 0]), "e": np.array([9, 4, 4, 4])}, None),
    ([node("Split", ["x", "sz"], ["y", "z"], axis=1)], {"sz": np.array([3, 3])}, "a split of axis 1 (8) into [3, 3]"),
    ([node("Pad", ["x", "p"], "y")], {"p": np.array([0, 0, -1, 0, 0, 0, 0, 0])}, "a negative pad"),
    ([node("DepthToSpace", ["x"], "y", blocksize=3)], {}, "DepthToSpace of an NCHW tensor"),
    ([node("ReduceMean", ["x"], "y", keepdims=0)], {}, "a reduction over the batch axis"),
    ([node("Pow", ["x", "p"], "y")], {"p": np.array(3.0, np.float32)}, "only a power of 1 or 2"),
])
def test_forms_without_a_layer_are_reported_with_their_reason(nodes, inits, reason):
    inputs = {"x": (2, *X[1:])}
    graph = alls.load_model(build(nodes, inits, inputs=inputs, opset=18))
    errors = [d for d in graph.diagnostics if d.code == "ALS401"]
    if reason is None:  # a slice that keeps the batch; Shape of a static input folds: the bounds are constant
        assert errors == [] and all(layer.supported for layer in graph)
        return
    assert len(errors) == 1 and reason in errors[0].message, [d.message for d in graph.diagnostics]
    with pytest.raises(alls.AllsError) as excinfo:
        Runner(build(nodes, inits, inputs=inputs, opset=18)).quantize(_images(64), progress=False)
    assert {d.code for d in excinfo.value.diagnostics} <= {"ALS401", "ALS510"}
