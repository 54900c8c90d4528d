"""The ONNX importer: small synthetic models, one op (or a few) at a time."""

from __future__ import annotations

import pathlib

import numpy as np
import onnx
import onnx.reference
import pytest
from onnx import TensorProto, helper, numpy_helper

import alls
from alls.importer import load_model

ort = pytest.importorskip("onnxruntime")

DIGITS = pathlib.Path(__file__).resolve().parent.parent / "samples" / "digits" / "digits_cnn.onnx"
X = (1, 3, 8, 8)


# ------------------------------------------------------------------ builder


def rand(*shape, seed=0):
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape).astype(np.float32)


def node(op, inputs, outputs, name=None, **attrs):
    outputs = [outputs] if isinstance(outputs, str) else outputs
    return helper.make_node(op, inputs, outputs, name=name or outputs[0] + "_node", **attrs)


def build(nodes, inits=None, inputs=None, outputs=("y",), opset=13, output_shapes=None, value_info=()):
    """A model: ``inputs`` {name: shape} (default x: 1x3x8x8), float tensors throughout."""
    inputs = {"x": X} if inputs is None else inputs
    output_shapes = output_shapes or {}
    graph = helper.make_graph(
        nodes, "net",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, output_shapes.get(o)) for o in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
        value_info=list(value_info),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset <= 18 else 10
    return model


def load(nodes, inits=None, **kw):
    input_shapes = kw.pop("input_shapes", None)
    return load_model(build(nodes, inits, **kw), input_shapes=input_shapes, name="net")


def names(graph):
    return [layer.short_name for layer in graph]


def feed(model, seed=1):
    return {i.name: rand(*[d.dim_value for d in i.type.tensor_type.shape.dim], seed=seed)
            for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}}


def run_ort(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def conv_model(weight, bias, attrs, activation=None, in_shape=X, op="Conv"):
    """One conv (or deconv) with the given parameters, optionally followed by an activation."""
    nodes = [node(op, ["x", "w", "b"], "c" if activation else "y", name="c", **attrs)]
    if activation:
        nodes.append(node(activation, ["c"], "y", name="a"))
    return build(nodes, {"w": weight, "b": bias}, inputs={"x": in_shape})


def conv_attrs(layer):
    keys = ("strides", "dilations", "pads", "group")
    return {k: list(layer.attrs[k]) if isinstance(layer.attrs[k], tuple) else layer.attrs[k] for k in keys}


# --------------------------------------------------------------------- conv


def test_a_dense_conv_is_a_conv_layer_with_its_weights_shapes_and_aliases():
    w, b = rand(4, 3, 3, 3), rand(4)
    g = load([node("Conv", ["x", "w", "b"], "y", name="c", pads=[1, 1, 1, 1])], {"w": w, "b": b})
    assert names(g) == ["input_layer1", "conv1", "output_layer1"]
    conv = g["conv1"]
    assert conv.name == "net/conv1" and conv.kind == "conv" and conv.op == "Conv" and conv.supported
    assert conv.inputs == ("net/input_layer1",) and conv.input_shapes == (X,) and conv.output_shape == (1, 4, 8, 8)
    assert conv.weight_shape == (4, 3, 3, 3) and np.array_equal(conv.params["weight"], w)
    assert np.array_equal(conv.params["bias"], b)
    assert conv.attrs["kernel_shape"] == (3, 3) and conv.attrs["pads"] == (1, 1, 1, 1) and conv.attrs["group"] == 1
    assert conv.macs == 4 * 8 * 8 * 3 * 9
    assert g.get("c") is conv and g.get("y") is conv and g.get("net/conv1") is conv
    assert g["output_layer1"].inputs == ("net/conv1",) and g["output_layer1"].output_shape == (1, 4, 8, 8)
    assert g.inputs == (g["input_layer1"],) and g.outputs == (g["output_layer1"],)
    assert g.get("x") is g["input_layer1"] and g.diagnostics == ()
    assert not conv.params["weight"].flags.writeable


def test_a_conv_without_bias_gets_a_zero_bias():
    g = load([node("Conv", ["x", "w"], "y")], {"w": rand(4, 3, 1, 1)})
    assert np.array_equal(g["conv1"].params["bias"], np.zeros(4))


@pytest.mark.parametrize(
    "in_c, w_shape, group, kind, out_c",
    [
        (4, (6, 2, 3, 3), 2, "conv", 6),  # grouped, not depthwise
        (4, (4, 1, 3, 3), 4, "dw", 4),  # depthwise
        (4, (8, 1, 3, 3), 4, "dw", 8),  # depthwise, channel multiplier 2
    ],
)
def test_grouped_and_depthwise_convs(in_c, w_shape, group, kind, out_c):
    g = load([node("Conv", ["x", "w"], "y", group=group, pads=[1, 1, 1, 1])], {"w": rand(*w_shape)},
             inputs={"x": (1, in_c, 8, 8)})
    assert names(g) == ["input_layer1", f"{kind}1", "output_layer1"]
    layer = g[f"{kind}1"]
    assert layer.kind == kind and layer.attrs["group"] == group and layer.weight_shape == w_shape
    assert layer.output_shape == (1, out_c, 8, 8) and layer.macs == out_c * 64 * w_shape[1] * 9


@pytest.mark.parametrize(
    "attrs, in_hw, resolved, out_hw",
    [
        (dict(strides=[2, 2], pads=[1, 1, 1, 1]), 8, dict(strides=[2, 2], pads=[1, 1, 1, 1]), (4, 4)),
        (dict(dilations=[2, 2], pads=[2, 2, 2, 2]), 8, dict(dilations=[2, 2], pads=[2, 2, 2, 2]), (6, 6)),
        (dict(pads=[0, 1, 2, 3]), 8, dict(pads=[0, 1, 2, 3]), (7, 9)),
        (dict(auto_pad="SAME_UPPER", strides=[2, 2]), 7, dict(strides=[2, 2], pads=[1, 1, 2, 2]), (4, 4)),
        (dict(auto_pad="SAME_LOWER", strides=[2, 2]), 7, dict(strides=[2, 2], pads=[2, 2, 1, 1]), (4, 4)),
        (dict(auto_pad="SAME_UPPER"), 7, dict(pads=[1, 1, 2, 2]), (7, 7)),
        (dict(auto_pad="SAME_LOWER", dilations=[2, 2]), 7, dict(dilations=[2, 2], pads=[3, 3, 3, 3]), (7, 7)),
        (dict(auto_pad="VALID", strides=[2, 2]), 7, dict(strides=[2, 2], pads=[0, 0, 0, 0]), (2, 2)),
    ],
)
def test_conv_strides_dilations_and_padding_resolve_to_explicit_pads(attrs, in_hw, resolved, out_hw):
    w, b = rand(4, 3, 4, 4), rand(4)
    model = conv_model(w, b, attrs, in_shape=(1, 3, in_hw, in_hw))
    g = load_model(model, name="net")
    conv = g["conv1"]
    expected = {**dict(strides=[1, 1], dilations=[1, 1], group=1), **resolved}
    assert conv_attrs(conv) == expected and conv.attrs["kernel_shape"] == (4, 4)
    assert conv.output_shape == (1, 4, *out_hw)
    # the resolved pads compute what auto_pad computes (onnx.reference: onnxruntime has no dilated SAME)
    explicit = conv_model(w, b, {k: v for k, v in expected.items() if k != "group"}, in_shape=(1, 3, in_hw, in_hw))
    x = feed(model)
    reference = onnx.reference.ReferenceEvaluator(model).run(None, x)[0]
    np.testing.assert_allclose(run_ort(explicit, x)[0], reference, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("group", [1, 2])
def test_conv_transpose_is_a_deconv_layer(group):
    w = rand(4, 3, 2, 2)
    g = load([node("ConvTranspose", ["x", "w"], "y", name="up", strides=[2, 2], group=group)], {"w": w},
             inputs={"x": (1, 4, 4, 4)})
    assert names(g) == ["input_layer1", "deconv1", "output_layer1"]
    deconv = g.get("up")
    assert deconv.kind == "deconv" and deconv.op == "ConvTranspose" and deconv.weight_shape == (4, 3, 2, 2)
    assert deconv.output_shape == (1, 3 * group, 8, 8) and deconv.params["bias"].shape == (3 * group,)
    assert deconv.attrs["strides"] == (2, 2) and deconv.attrs["group"] == group
    assert deconv.macs == 4 * 4 * 4 * 3 * 4


# -------------------------------------------------------------------- dense


def dense_reference(layer, x):
    return x @ layer.params["weight"].T + layer.params["bias"]


@pytest.mark.parametrize(
    "trans_b, alpha, beta, c_shape",
    [(1, 1.0, 1.0, (5,)), (0, 1.0, 1.0, (5,)), (1, 2.0, 0.5, (5,)), (0, 0.5, 3.0, (1, 5)), (1, 1.0, 1.0, None)],
)
def test_gemm_is_an_fc_layer_with_an_out_in_weight(trans_b, alpha, beta, c_shape):
    w = rand(5, 12) if trans_b else rand(12, 5)
    inits = {"w": w}
    ins = ["x", "w"]
    if c_shape:
        inits["c"] = rand(*c_shape)
        ins.append("c")
    model = build([node("Gemm", ins, "y", name="fc", transB=trans_b, alpha=alpha, beta=beta)], inits,
                  inputs={"x": (1, 12)})
    g = load_model(model, name="net")
    assert names(g) == ["input_layer1", "fc1", "output_layer1"]
    fc = g.get("fc")
    assert fc.kind == "fc" and fc.op == "Gemm" and fc.weight_shape == (5, 12) and fc.output_shape == (1, 5)
    np.testing.assert_allclose(fc.params["weight"], alpha * (w if trans_b else w.T), rtol=1e-6)
    expected_bias = beta * inits["c"].reshape(-1) if c_shape else np.zeros(5)
    np.testing.assert_allclose(fc.params["bias"], expected_bias, rtol=1e-6)
    x = feed(model)
    np.testing.assert_allclose(dense_reference(fc, x["x"]), run_ort(model, x)[0], rtol=1e-5, atol=1e-5)
    assert fc.macs == 60


def test_matmul_with_a_constant_weight_is_an_fc_layer_and_a_bias_add_folds_into_it():
    w, bias = rand(12, 5), rand(5)
    model = build([node("MatMul", ["x", "w"], "m", name="mm"), node("Add", ["m", "b"], "y", name="bias")],
                  {"w": w, "b": bias}, inputs={"x": (1, 12)})
    g = load_model(model, name="net")
    assert names(g) == ["input_layer1", "fc1", "output_layer1"]
    fc = g["fc1"]
    assert fc.op == "MatMul+Add" and np.array_equal(fc.params["weight"], w.T) and fc.weight_shape == (5, 12)
    assert np.allclose(fc.params["bias"], bias) and g.get("bias") is fc and g.get("mm") is fc
    x = feed(model)
    np.testing.assert_allclose(dense_reference(fc, x["x"]), run_ort(model, x)[0], rtol=1e-5, atol=1e-5)


def test_matmul_of_a_sequence_counts_macs_per_position():
    g = load([node("MatMul", ["x", "w"], "y")], {"w": rand(12, 5)}, inputs={"x": (1, 7, 12)})
    fc = g["fc1"]
    assert fc.output_shape == (1, 7, 5) and fc.macs == 7 * 12 * 5


def test_matmul_of_two_tensors_is_a_matmul_layer():
    g = load([node("MatMul", ["x", "z"], "y", name="mm")], inputs={"x": (1, 2, 4, 3), "z": (1, 1, 3, 5)})
    mm = g.get("mm")
    assert g.diagnostics == () and mm.kind == "matmul" and mm.short_name == "matmul1" and mm.supported
    assert mm.output_shape == (1, 2, 4, 5) and mm.macs == 2 * 4 * 5 * 3


def test_matmul_of_two_rank_2_tensors_is_refused_with_its_own_code():
    g = load([node("MatMul", ["x", "z"], "y", name="mm")], inputs={"x": (4, 4), "z": (4, 4)})
    assert [d.code for d in g.diagnostics] == ["ALS416"] and not g.get("mm").supported
    assert "axis 0 is the images" in g.diagnostics[0].message


# -------------------------------------------------------------- activations


ACTIVATIONS = [
    # (op, constant inputs, attributes, initializers, opset, activation, activation params)
    ("Relu", [], {}, {}, 13, "relu", ()),
    ("Clip", ["lo", "hi"], {}, {"lo": np.float32(0), "hi": np.float32(6)}, 13, "relu6", ()),
    ("Clip", [], dict(min=0.0, max=6.0), {}, 9, "relu6", ()),
    ("Clip", ["lo", "hi"], {}, {"lo": np.float32(-1), "hi": np.float32(2)}, 13, "clip", (("min", -1.0), ("max", 2.0))),
    ("Clip", [], dict(min=-1.0, max=2.0), {}, 9, "clip", (("min", -1.0), ("max", 2.0))),
    ("Clip", ["lo"], {}, {"lo": np.float32(0)}, 13, "relu", ()),
    ("Clip", ["", "hi"], {}, {"hi": np.float32(6)}, 13, "clip", (("min", -np.inf), ("max", 6.0))),
    ("LeakyRelu", [], dict(alpha=0.25), {}, 13, "leaky_relu", (("alpha", 0.25),)),
    ("PRelu", ["slope"], {}, {"slope": np.full((4, 1, 1), 0.25, np.float32)}, 13, "prelu", ()),
    ("Sigmoid", [], {}, {}, 13, "sigmoid", ()),
    ("Tanh", [], {}, {}, 13, "tanh", ()),
    ("HardSigmoid", [], dict(alpha=0.25, beta=0.5), {}, 13, "hard_sigmoid", (("alpha", 0.25), ("beta", 0.5))),
    ("HardSigmoid", [], {}, {}, 13, "hard_sigmoid", (("alpha", 0.2), ("beta", 0.5))),
    ("HardSwish", [], {}, {}, 14, "hardswish", ()),
    ("Elu", [], dict(alpha=0.5), {}, 13, "elu", (("alpha", 0.5),)),
]


def approx_params(params):
    return tuple((k, pytest.approx(v)) for k, v in params)


@pytest.mark.parametrize("op, extra, attrs, inits, opset, activation, params", ACTIVATIONS)
def test_an_activation_after_a_conv_fuses_into_it(op, extra, attrs, inits, opset, activation, params):
    nodes = [node("Conv", ["x", "w"], "c", name="c"), node(op, ["c", *extra], "y", name="a", **attrs)]
    g = load(nodes, {"w": rand(4, 3, 3, 3), **inits}, opset=opset)
    assert names(g) == ["input_layer1", "conv1", "output_layer1"]
    conv = g["conv1"]
    assert conv.activation == activation and conv.activation_params == approx_params(params)
    assert conv.op == "Conv+" + op and g.get("a") is conv and g.get("c") is conv and g.get("y") is conv
    assert g["output_layer1"].inputs == ("net/conv1",) and g.diagnostics == ()
    if activation == "prelu":
        assert np.array_equal(conv.params["prelu_slope"], np.full(4, 0.25))


@pytest.mark.parametrize("op, extra, attrs, inits, opset, activation, params", ACTIVATIONS)
def test_an_activation_after_the_input_is_an_activation_layer(op, extra, attrs, inits, opset, activation, params):
    if activation == "prelu":
        inits = {"slope": np.full((3, 1, 1), 0.25, np.float32)}
    g = load([node(op, ["x", *extra], "y", name="a", **attrs)], inits, opset=opset)
    assert names(g) == ["input_layer1", "activation1", "output_layer1"]
    layer = g.get("a")
    assert layer.kind == "activation" and layer.op == op and layer.activation == activation
    assert layer.activation_params == approx_params(params) and layer.output_shape == X
    assert layer.inputs == ("net/input_layer1",)
    if activation == "prelu":
        assert np.array_equal(layer.params["prelu_slope"], np.full(3, 0.25))


def test_a_clip_with_a_computed_bound_is_unsupported():
    g = load([node("ReduceMax", ["x"], "hi", name="max", keepdims=0), node("Clip", ["x", "", "hi"], "y", name="a")])
    clip = g.get("a")
    assert clip.kind == "clip" and not clip.supported and clip.inputs == ("net/input_layer1", "net/reduce_max1")
    assert [d.code for d in g.diagnostics] == ["ALS401", "ALS401"] and "net/clip1" in g.diagnostics[1].message


def test_an_activation_is_not_fused_into_a_layer_whose_output_is_also_read_elsewhere():
    g = load([node("Conv", ["x", "w"], "c", name="c"), node("Relu", ["c"], "r", name="r"),
              node("Add", ["c", "r"], "y", name="add")], {"w": rand(4, 3, 1, 1)})
    assert names(g) == ["input_layer1", "conv1", "activation1", "ew_add1", "output_layer1"]
    assert g["conv1"].activation is None and g["ew_add1"].inputs == ("net/conv1", "net/activation1")


def test_an_activation_is_not_fused_into_a_layer_whose_output_is_a_graph_output():
    g = load([node("Conv", ["x", "w"], "c", name="c"), node("Relu", ["c"], "y", name="r")],
             {"w": rand(4, 3, 1, 1)}, outputs=("c", "y"))
    assert names(g) == ["input_layer1", "conv1", "activation1", "output_layer1", "output_layer2"]
    assert g["conv1"].activation is None
    assert [o.inputs for o in g.outputs] == [("net/conv1",), ("net/activation1",)]


def test_an_activation_is_not_fused_through_an_identity_that_has_other_readers():
    g = load([node("Conv", ["x", "w"], "c", name="c"), node("Identity", ["c"], "i", name="id"),
              node("Relu", ["i"], "r", name="r"), node("Add", ["i", "r"], "y", name="add")], {"w": rand(4, 3, 1, 1)})
    assert names(g) == ["input_layer1", "conv1", "activation1", "ew_add1", "output_layer1"]
    assert g["conv1"].activation is None


def test_an_activation_is_not_fused_after_a_folded_batch_norm_that_has_other_readers():
    c = 4
    g = load([node("Conv", ["x", "w"], "c", name="c"),
              node("BatchNormalization", ["c", "s", "t", "m", "v"], "bn", name="bn"),
              node("Relu", ["bn"], "r", name="r"), node("Add", ["bn", "r"], "y", name="add")],
             {"w": rand(c, 3, 1, 1), "s": rand(c), "t": rand(c), "m": rand(c), "v": np.ones(c, np.float32)})
    assert names(g) == ["input_layer1", "conv1", "activation1", "ew_add1", "output_layer1"]
    assert g["conv1"].op == "Conv+BatchNormalization" and g["conv1"].activation is None


# ---------------------------------------------------- activations as patterns


def hardswish_tail(variant):
    """``c * Clip(c + 3, 0, 6) / 6`` written out in one of its forms, output ``y``."""
    inits = {"three": np.float32(3), "zero": np.float32(0), "six": np.float32(6),
             "sixth": np.float32(1 / 6)}
    plus3 = node("Add", ["three", "c"] if variant.endswith("3c") else ["c", "three"], "p3", name="p3")
    clip = node("Clip", ["p3", "zero", "six"], "r6", name="r6")
    form = variant.split(":")[0]
    if form == "c*(r6/6)":
        tail = [node("Div", ["r6", "six"], "s", name="s"), node("Mul", ["c", "s"], "y", name="hs")]
    elif form == "(r6/6)*c":
        tail = [node("Div", ["r6", "six"], "s", name="s"), node("Mul", ["s", "c"], "y", name="hs")]
    elif form == "c*(r6*sixth)":
        tail = [node("Mul", ["r6", "sixth"], "s", name="s"), node("Mul", ["c", "s"], "y", name="hs")]
    elif form == "c*(sixth*r6)":
        tail = [node("Mul", ["sixth", "r6"], "s", name="s"), node("Mul", ["c", "s"], "y", name="hs")]
    elif form == "(c*r6)/6":
        tail = [node("Mul", ["c", "r6"], "m", name="m"), node("Div", ["m", "six"], "y", name="hs")]
    elif form == "(r6*c)/6":
        tail = [node("Mul", ["r6", "c"], "m", name="m"), node("Div", ["m", "six"], "y", name="hs")]
    elif form == "(c*r6)*sixth":
        tail = [node("Mul", ["c", "r6"], "m", name="m"), node("Mul", ["m", "sixth"], "y", name="hs")]
    elif form == "sixth*(r6*c)":
        tail = [node("Mul", ["r6", "c"], "m", name="m"), node("Mul", ["sixth", "m"], "y", name="hs")]
    else:
        raise ValueError(variant)
    return [plus3, clip, *tail], inits


HARDSWISH_FORMS = ["c*(r6/6)", "(r6/6)*c", "c*(r6*sixth)", "c*(sixth*r6)", "(c*r6)/6", "(r6*c)/6",
                   "(c*r6)*sixth", "sixth*(r6*c)", "c*(r6/6):3c", "(c*r6)/6:3c"]


@pytest.mark.parametrize("variant", HARDSWISH_FORMS)
def test_hardswish_written_with_clip_is_one_fused_activation(variant):
    tail, inits = hardswish_tail(variant)
    model = build([node("Conv", ["x", "w"], "c", name="c"), *tail], {"w": rand(4, 3, 3, 3), **inits})
    g = load_model(model, name="net")
    assert names(g) == ["input_layer1", "conv1", "output_layer1"]
    conv = g["conv1"]
    assert conv.activation == "hardswish" and g.get("hs") is conv and g.get("y") is conv
    assert g.get("r6") is conv and g.get("p3") is conv  # the nodes the pattern merged are aliases too
    # the rewrite is right: hardswish(conv(x)) is what the model computes
    x = feed(model)
    z = run_ort(build([node("Conv", ["x", "w"], "c"), node("HardSwish", ["c"], "y")], {"w": conv.params["weight"]},
                      opset=14), x)[0]
    np.testing.assert_allclose(z, run_ort(model, x)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("order", [["c", "hsig"], ["hsig", "c"]])
def test_hardswish_written_as_x_times_hard_sigmoid(order):
    g = load([node("Conv", ["x", "w"], "c", name="c"),
              node("HardSigmoid", ["c"], "hsig", name="hsig", alpha=1 / 6, beta=0.5),
              node("Mul", order, "y", name="hs")], {"w": rand(4, 3, 3, 3)})
    assert names(g) == ["input_layer1", "conv1", "output_layer1"] and g["conv1"].activation == "hardswish"


def test_x_times_a_hard_sigmoid_of_another_slope_is_not_hardswish():
    g = load([node("Conv", ["x", "w"], "c", name="c"), node("HardSigmoid", ["c"], "hsig", name="hsig"),
              node("Mul", ["c", "hsig"], "y", name="m")], {"w": rand(4, 3, 3, 3)})
    assert names(g) == ["input_layer1", "conv1", "activation1", "ew_mult1", "output_layer1"]


def test_a_clip_plus_two_is_not_hardswish():
    tail, inits = hardswish_tail("c*(r6/6)")
    inits["three"] = np.float32(2)
    g = load([node("Conv", ["x", "w"], "c", name="c"), *tail], {"w": rand(4, 3, 3, 3), **inits})
    assert g["conv1"].activation is None and "ew_mult1" in names(g)


@pytest.mark.parametrize("order", [["c", "sig"], ["sig", "c"]])
def test_silu_written_as_x_times_sigmoid(order):
    g = load([node("Conv", ["x", "w"], "c", name="c"), node("Sigmoid", ["c"], "sig", name="sig"),
              node("Mul", order, "y", name="silu")], {"w": rand(4, 3, 3, 3)})
    assert names(g) == ["input_layer1", "conv1", "output_layer1"]
    assert g["conv1"].activation == "silu" and g.get("silu") is g["conv1"] and g.get("sig") is g["conv1"]


def test_silu_after_the_input_is_an_activation_layer():
    g = load([node("Sigmoid", ["x"], "sig", name="sig"), node("Mul", ["x", "sig"], "y", name="silu")])
    assert names(g) == ["input_layer1", "activation1", "output_layer1"] and g["activation1"].activation == "silu"


def test_a_sigmoid_read_twice_is_not_silu():
    g = load([node("Sigmoid", ["x"], "sig", name="sig"), node("Mul", ["x", "sig"], "m", name="m"),
              node("Add", ["m", "sig"], "y", name="add")])
    assert names(g) == ["input_layer1", "activation1", "ew_mult1", "ew_add1", "output_layer1"]


def test_a_sigmoid_that_is_a_graph_output_is_not_folded_into_silu():
    g = load([node("Sigmoid", ["x"], "sig", name="sig"), node("Mul", ["x", "sig"], "y", name="m")],
             outputs=("sig", "y"))
    assert names(g) == ["input_layer1", "activation1", "ew_mult1", "output_layer1", "output_layer2"]
    assert g["output_layer1"].inputs == ("net/activation1",)


# ------------------------------------------------------------- elementwise


@pytest.mark.parametrize("op, kind", [("Add", "ew_add"), ("Sub", "ew_sub"), ("Mul", "ew_mult")])
def test_elementwise_of_two_tensors(op, kind):
    g = load([node(op, ["x", "z"], "y", name="e")], inputs={"x": X, "z": X})
    assert names(g) == ["input_layer1", "input_layer2", f"{kind}1", "output_layer1"]
    layer = g.get("e")
    assert layer.kind == kind and layer.inputs == ("net/input_layer1", "net/input_layer2")
    assert layer.input_shapes == (X, X) and layer.output_shape == X and layer.attrs["broadcast"] is False


def test_elementwise_of_two_tensors_with_broadcast():
    g = load([node("Mul", ["x", "z"], "y", name="e")], inputs={"x": X, "z": (1, 3, 1, 1)})
    assert g.get("e").attrs["broadcast"] is True and g.get("e").output_shape == X


@pytest.mark.parametrize("op, kind, expected", [("Add", "ew_add", 2.0), ("Sub", "ew_sub", 2.0),
                                                ("Mul", "ew_mult", 2.0), ("Div", "ew_mult", 0.5)])
def test_elementwise_with_a_broadcast_constant(op, kind, expected):
    const = np.full((1, 3, 1, 1), 2.0, np.float32)
    g = load([node(op, ["x", "k"], "y", name="e")], {"k": const})
    assert names(g) == ["input_layer1", f"{kind}1", "output_layer1"]
    layer = g.get("e")
    assert layer.kind == kind and layer.inputs == ("net/input_layer1",) and layer.attrs["const_first"] is False
    assert np.allclose(layer.params["const"], expected) and layer.params["const"].shape == (1, 3, 1, 1)


def test_a_constant_minus_a_tensor_keeps_the_operand_order():
    g = load([node("Sub", ["k", "x"], "y", name="e")], {"k": np.float32(1)})
    assert g.get("e").kind == "ew_sub" and g.get("e").attrs["const_first"] is True


def test_a_sum_of_two_is_an_add_of_one_an_identity_and_of_three_unsupported():
    two = load([node("Sum", ["x", "z"], "y", name="s")], inputs={"x": X, "z": X})
    assert names(two) == ["input_layer1", "input_layer2", "ew_add1", "output_layer1"] and two.get("s").op == "Sum"
    one = load([node("Conv", ["x", "w"], "c", name="c"), node("Sum", ["c"], "y", name="s")], {"w": rand(4, 3, 1, 1)})
    assert names(one) == ["input_layer1", "conv1", "output_layer1"]  # it vanishes, as Identity does
    three = load([node("Sum", ["x", "z", "v"], "y", name="s")], inputs={"x": X, "z": X, "v": X})
    assert [d.code for d in three.diagnostics] == ["ALS401"] and "Sum of 3 inputs" in three.diagnostics[0].message


def test_division_by_a_tensor_is_unsupported():
    g = load([node("Div", ["x", "z"], "y", name="d")], inputs={"x": X, "z": X})
    assert [d.code for d in g.diagnostics] == ["ALS401"] and not g.get("d").supported


@pytest.mark.parametrize("op, const_shape", [("Add", (4, 1, 1)), ("Add", (1, 4, 1, 1)), ("Sub", (1, 4, 1, 1)),
                                             ("Add", ()), ("Add", (1,))])
def test_a_per_channel_constant_add_after_a_conv_folds_into_its_bias(op, const_shape):
    w, b = rand(4, 3, 3, 3), rand(4)
    k = rand(*const_shape) if const_shape else np.float32(0.75)
    model = build([node("Conv", ["x", "w", "b"], "c", name="c"), node(op, ["c", "k"], "y", name="add")],
                  {"w": w, "b": b, "k": k})
    g = load_model(model, name="net")
    assert names(g) == ["input_layer1", "conv1", "output_layer1"]
    conv = g["conv1"]
    assert conv.op == f"Conv+{op}" and g.get("add") is conv
    x = feed(model)
    folded = conv_model(conv.params["weight"], conv.params["bias"], {})
    np.testing.assert_allclose(run_ort(folded, x)[0], run_ort(model, x)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op, attrs, weight, const_shape", [
    ("Conv", {}, (4, 3, 3, 3), (1, 4, 1, 1)), ("Conv", {}, (4, 3, 3, 3), (1,)), ("Conv", {}, (4, 3, 3, 3), ()),
    ("Conv", {"group": 3}, (3, 1, 3, 3), (3, 1, 1)),
    ("ConvTranspose", {"group": 1}, (3, 4, 2, 2), (1, 4, 1, 1)),
    ("ConvTranspose", {"group": 3}, (3, 2, 2, 2), (1, 6, 1, 1)),
])
@pytest.mark.parametrize("scale_op", ["Mul", "Div"])
def test_a_scale_and_shift_after_a_conv_fold_into_its_weights_and_bias(op, attrs, weight, const_shape, scale_op):
    """conv -> Mul (or Div) by a constant per channel -> Add: PP-LCNet's affine blocks."""
    w, b = rand(*weight), rand(weight[1] * attrs.get("group", 1) if op == "ConvTranspose" else weight[0])
    k = rand(*const_shape) + 0.5 if const_shape else np.float32(1.5)
    model = build([node(op, ["x", "w", "b"], "c", name="c", **attrs), node(scale_op, ["c", "k"], "s", name="scale"),
                   node("Add", ["s", "t"], "y", name="shift")], {"w": w, "b": b, "k": k, "t": np.float32(0.25)})
    g = load_model(model, name="net")
    assert len(names(g)) == 3, names(g)
    layer = g.get("c")
    assert layer.op == f"{op}+{scale_op}+Add" and g.get("scale") is layer and g.get("shift") is layer
    x = feed(model)
    folded = conv_model(layer.params["weight"], layer.params["bias"], attrs, op=op)
    np.testing.assert_allclose(run_ort(folded, x)[0], run_ort(model, x)[0], rtol=1e-5, atol=1e-5)


def test_a_scale_after_an_activation_or_on_a_shared_conv_output_does_not_fold():
    after_relu = load([node("Conv", ["x", "w"], "c", name="c"), node("Relu", ["c"], "r", name="r"),
                       node("Mul", ["r", "k"], "y", name="m")], {"w": rand(4, 3, 1, 1), "k": np.float32(2)})
    assert names(after_relu) == ["input_layer1", "conv1", "ew_mult1", "output_layer1"]
    shared = load([node("Conv", ["x", "w"], "c", name="c"), node("Mul", ["c", "k"], "m", name="m"),
                   node("Add", ["c", "m"], "y", name="a")], {"w": rand(4, 3, 1, 1), "k": np.float32(2)})
    assert [layer.kind for layer in shared][1:3] == ["conv", "ew_mult"]


@pytest.mark.parametrize("shape", [(1,), (1, 1, 1, 1)])
def test_hardswish_whose_constants_are_arrays_of_one_value_is_still_found(shape):
    tail, inits = hardswish_tail("(c*r6)/6")
    inits = {k: np.full(shape, v, np.float32) for k, v in inits.items()}
    g = load_model(build([node("Conv", ["x", "w"], "c", name="c"), *tail], {"w": rand(4, 3, 3, 3), **inits}),
                   name="net")
    assert names(g) == ["input_layer1", "conv1", "output_layer1"] and g["conv1"].activation == "hardswish"


def test_a_constant_that_broadcasts_along_width_does_not_fold_into_the_bias():
    g = load([node("Conv", ["x", "w"], "c", name="c"), node("Add", ["c", "k"], "y", name="add")],
             {"w": rand(8, 3, 1, 1), "k": rand(8)})
    assert names(g) == ["input_layer1", "conv1", "ew_add1", "output_layer1"]
    assert np.array_equal(g["conv1"].params["bias"], np.zeros(8))


def test_a_bias_add_after_a_fused_activation_does_not_fold():
    g = load([node("Conv", ["x", "w"], "c", name="c"), node("Relu", ["c"], "r", name="r"),
              node("Add", ["r", "k"], "y", name="add")], {"w": rand(4, 3, 1, 1), "k": rand(4, 1, 1)})
    assert names(g) == ["input_layer1", "conv1", "ew_add1", "output_layer1"]


# ---------------------------------------------------- concat, pools, resize


def test_concat():
    g = load([node("Concat", ["x", "z"], "y", name="cat", axis=1)], inputs={"x": X, "z": (1, 5, 8, 8)})
    assert names(g) == ["input_layer1", "input_layer2", "concat1", "output_layer1"]
    cat = g.get("cat")
    assert cat.kind == "concat" and cat.attrs["axis"] == 1 and cat.output_shape == (1, 8, 8, 8)
    assert cat.inputs == ("net/input_layer1", "net/input_layer2") and cat.input_shapes == (X, (1, 5, 8, 8))


@pytest.mark.parametrize(
    "op, attrs, kind, out, expected",
    [
        ("MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2]), "maxpool", (1, 3, 4, 4),
         dict(kernel_shape=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0))),
        ("AveragePool", dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]), "avgpool", (1, 3, 8, 8),
         dict(kernel_shape=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1), count_include_pad=0)),
        ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"), "avgpool", (1, 3, 4, 4),
         dict(kernel_shape=(3, 3), strides=(2, 2), pads=(0, 0, 1, 1))),
        ("GlobalAveragePool", {}, "avgpool", (1, 3, 1, 1),
         dict(kernel_shape=(8, 8), strides=(1, 1), pads=(0, 0, 0, 0))),
        ("GlobalMaxPool", {}, "maxpool", (1, 3, 1, 1), dict(kernel_shape=(8, 8))),
    ],
)
def test_pools(op, attrs, kind, out, expected):
    g = load([node(op, ["x"], "y", name="p", **attrs)])
    assert names(g) == ["input_layer1", f"{kind}1", "output_layer1"]
    pool = g.get("p")
    assert pool.kind == kind and pool.op == op and pool.output_shape == out and pool.input_shapes == (X,)
    assert {k: pool.attrs[k] for k in expected} == expected
    assert pool.attrs.get("global", False) == op.startswith("Global")


def test_maxpool_with_indices_is_unsupported():
    g = load([node("MaxPool", ["x"], ["y", "idx"], name="p", kernel_shape=[2, 2])])
    assert [d.code for d in g.diagnostics] == ["ALS401"] and not g.get("p").supported


def empty():
    return np.zeros(0, np.float32)


@pytest.mark.parametrize(
    "opset, inputs, inits, attrs, out, mode, ctm",
    [
        (13, ["x", "", "scales"], {"scales": np.array([1, 1, 2, 2], np.float32)}, dict(mode="nearest"),
         (1, 3, 16, 16), "nearest", "half_pixel"),
        (13, ["x", "", "", "sizes"], {"sizes": np.array([1, 3, 12, 12], np.int64)}, dict(mode="linear"),
         (1, 3, 12, 12), "bilinear", "half_pixel"),
        (13, ["x", "", "scales"], {"scales": np.array([1, 1, 2, 2], np.float32)},
         dict(mode="linear", coordinate_transformation_mode="align_corners"), (1, 3, 16, 16),
         "bilinear", "align_corners"),
        (11, ["x", "roi", "scales"], {"roi": empty(), "scales": np.array([1, 1, 2, 2], np.float32)},
         dict(mode="nearest"), (1, 3, 16, 16), "nearest", "half_pixel"),
        (11, ["x", "roi", "scales", "sizes"],
         {"roi": empty(), "scales": empty(), "sizes": np.array([1, 3, 4, 4], np.int64)},
         dict(mode="linear"), (1, 3, 4, 4), "bilinear", "half_pixel"),
        (9, ["x", "scales"], {"scales": np.array([1, 1, 2, 2], np.float32)}, dict(mode="nearest"),
         (1, 3, 16, 16), "nearest", "asymmetric"),
        (9, ["x", "scales"], {"scales": np.array([1, 1, 2, 2], np.float32)}, dict(mode="linear"),
         (1, 3, 16, 16), "bilinear", "asymmetric"),
    ],
)
def test_resize_and_upsample(opset, inputs, inits, attrs, out, mode, ctm):
    op = "Upsample" if opset == 9 else "Resize"
    g = load([node(op, inputs, "y", name="up", **attrs)], inits, opset=opset)
    assert names(g) == ["input_layer1", "resize1", "output_layer1"]
    resize = g.get("up")
    assert resize.kind == "resize" and resize.op == op and resize.inputs == ("net/input_layer1",)
    assert resize.output_shape == out and g["output_layer1"].output_shape == out
    assert resize.attrs["mode"] == mode and resize.attrs["coordinate_transformation_mode"] == ctm
    assert g.diagnostics == ()


def test_resize_cubic_is_unsupported():
    g = load([node("Resize", ["x", "", "s"], "y", name="up", mode="cubic")],
             {"s": np.array([1, 1, 2, 2], np.float32)})
    assert [d.code for d in g.diagnostics] == ["ALS401"] and not g.get("up").supported


# ---------------------------------------------------------------- views


@pytest.mark.parametrize(
    "nodes, inits, in_shape, out",
    [
        ([node("Reshape", ["x", "s"], "y", name="v")], {"s": np.array([1, 3, 64], np.int64)}, X, (1, 3, 64)),
        ([node("Flatten", ["x"], "y", name="v")], {}, X, (1, 192)),
        ([node("Transpose", ["x"], "y", name="v", perm=[0, 2, 3, 1])], {}, X, (1, 8, 8, 3)),
        ([node("Squeeze", ["x", "ax"], "y", name="v")], {"ax": np.array([2], np.int64)}, (1, 3, 1, 8), (1, 3, 8)),
        ([node("Unsqueeze", ["x", "ax"], "y", name="v")], {"ax": np.array([0], np.int64)}, X, (1, 1, 3, 8, 8)),
    ],
)
def test_views_are_format_conversions(nodes, inits, in_shape, out):
    g = load(nodes, inits, inputs={"x": in_shape})
    assert names(g) == ["input_layer1", "format_conversion1", "output_layer1"]
    view = g.get("v")
    assert view.kind == "format_conversion" and view.attrs["op"] == nodes[0].op_type
    assert view.input_shapes == (in_shape,) and view.output_shape == out and view.attrs["shape"] == out
    if nodes[0].op_type == "Transpose":
        assert view.attrs["perm"] == (0, 2, 3, 1)


@pytest.mark.parametrize("view", ["Flatten", "Reshape"])
def test_a_flatten_of_n_c_1_1_in_front_of_a_gemm_is_absorbed(view):
    inits = {"w": rand(5, 3), "b": rand(5)}
    if view == "Reshape":
        inits["s"] = np.array([1, 3], np.int64)
    model = build([node("GlobalAveragePool", ["x"], "g", name="gap"),
                   node(view, ["g", "s"] if view == "Reshape" else ["g"], "f", name="flat"),
                   node("Gemm", ["f", "w", "b"], "y", name="fc", transB=1)], inits)
    g = load_model(model, name="net")
    assert names(g) == ["input_layer1", "avgpool1", "fc1", "output_layer1"]
    fc = g["fc1"]
    assert fc.inputs == ("net/avgpool1",) and fc.input_shapes == ((1, 3, 1, 1),) and fc.output_shape == (1, 5)
    assert g.get("flat") is fc and g.get("fc") is fc
    x = feed(model)
    pooled = x["x"].mean(axis=(2, 3))
    np.testing.assert_allclose(dense_reference(fc, pooled), run_ort(model, x)[0], rtol=1e-5, atol=1e-5)


def test_a_flatten_of_a_feature_map_stays_a_format_conversion():
    g = load([node("Flatten", ["x"], "f", name="flat"), node("Gemm", ["f", "w"], "y", name="fc", transB=1)],
             {"w": rand(5, 192)})
    assert names(g) == ["input_layer1", "format_conversion1", "fc1", "output_layer1"]
    assert g["fc1"].inputs == ("net/format_conversion1",) and g["fc1"].input_shapes == ((1, 192),)


@pytest.mark.parametrize("axis, opset, expected", [(None, 13, -1), (None, 11, 1), (1, 13, 1)])
def test_softmax(axis, opset, expected):
    attrs = {} if axis is None else {"axis": axis}
    g = load([node("Softmax", ["x"], "y", name="sm", **attrs)], inputs={"x": (1, 10)}, opset=opset)
    assert names(g) == ["input_layer1", "softmax1", "output_layer1"]
    assert g.get("sm").kind == "softmax" and g.get("sm").attrs["axis"] == expected
    assert g.get("sm").output_shape == (1, 10)


def test_identity_and_dropout_vanish():
    g = load([node("Conv", ["x", "w"], "c", name="c"), node("Identity", ["c"], "i", name="id"),
              node("Dropout", ["i"], "d", name="drop"), node("Relu", ["d"], "y", name="r")], {"w": rand(4, 3, 1, 1)})
    assert names(g) == ["input_layer1", "conv1", "output_layer1"]
    assert g["conv1"].activation == "relu" and g["output_layer1"].inputs == ("net/conv1",)


def test_an_identity_as_the_output():
    g = load([node("Relu", ["x"], "r", name="r"), node("Identity", ["r"], "y", name="id")])
    assert names(g) == ["input_layer1", "activation1", "output_layer1"]
    assert g["output_layer1"].inputs == ("net/activation1",) and g["output_layer1"].aliases == ("y",)


# -------------------------------------------------------------- constants


@pytest.mark.parametrize("opset", [11, 13])
def test_a_shape_subgraph_folds_into_a_constant_reshape(opset):
    unsqueeze = (node("Unsqueeze", ["n"], "n1", name="unsq", axes=[0]) if opset < 13
                 else node("Unsqueeze", ["n", "zero"], "n1", name="unsq"))
    nodes = [
        node("Conv", ["x", "w"], "c", name="c"),
        node("Shape", ["c"], "shape", name="shape"),
        node("Gather", ["shape", "zero0"], "n", name="gather", axis=0),
        unsqueeze,
        node("Concat", ["n1", "minus1"], "target", name="cat", axis=0),
        node("Reshape", ["c", "target"], "y", name="reshape"),
    ]
    inits = {"w": rand(4, 3, 1, 1), "zero0": np.array(0, np.int64), "minus1": np.array([-1], np.int64)}
    if opset >= 13:
        inits["zero"] = np.array([0], np.int64)
    g = load(nodes, inits, opset=opset)
    assert names(g) == ["input_layer1", "conv1", "format_conversion1", "output_layer1"]
    assert not any(layer.op in ("Shape", "Gather", "Concat", "Unsqueeze") for layer in g)
    reshape = g.get("reshape")
    assert reshape.kind == "format_conversion" and reshape.output_shape == (1, 256)
    assert reshape.inputs == ("net/conv1",) and g.diagnostics == ()


def test_constant_nodes_as_weights_and_operands():
    w, b = rand(4, 3, 3, 3), rand(4)
    nodes = [
        helper.make_node("Constant", [], ["w"], name="wc", value=numpy_helper.from_array(w)),
        helper.make_node("Constant", [], ["b"], name="bc", value=numpy_helper.from_array(b)),
        helper.make_node("Constant", [], ["k"], name="kc", value_float=0.5),
        node("Conv", ["x", "w", "b"], "c", name="c", pads=[1, 1, 1, 1]),
        node("Relu", ["c"], "r", name="r"),
        node("Mul", ["r", "k"], "y", name="m"),
    ]
    g = load(nodes)
    assert names(g) == ["input_layer1", "conv1", "ew_mult1", "output_layer1"]
    assert np.array_equal(g["conv1"].params["weight"], w) and np.array_equal(g["conv1"].params["bias"], b)
    const = g["ew_mult1"].params["const"]
    assert const == 0.5 and const.dtype == np.float32


def test_a_constant_scalar_float_feeds_a_constant_subgraph():
    nodes = [
        helper.make_node("Constant", [], ["k"], name="kc", value_float=2.0),
        node("Mul", ["k", "w"], "w2", name="scale"),  # float32 * the float Constant: folded
        node("Conv", ["x", "w2"], "y", name="c"),
    ]
    g = load(nodes, {"w": rand(4, 3, 1, 1)})
    assert names(g) == ["input_layer1", "conv1", "output_layer1"]
    assert np.allclose(g["conv1"].params["weight"], 2 * rand(4, 3, 1, 1))


def test_a_constant_output_is_left_out_with_a_warning():
    g = load([node("Relu", ["x"], "y", name="r"), node("Add", ["k", "k"], "z", name="kk")], {"k": rand(3)},
             outputs=("y", "z"))
    assert names(g) == ["input_layer1", "activation1", "output_layer1"]
    assert [d.code for d in g.diagnostics] == ["ALS404"]


# --------------------------------------------------------------- batch norm


def bn_inits(c, seed=3):
    rng = np.random.default_rng(seed)
    return {"s": rng.uniform(0.5, 2, c).astype(np.float32), "t": rng.standard_normal(c).astype(np.float32),
            "m": rng.standard_normal(c).astype(np.float32), "v": rng.uniform(0.5, 2, c).astype(np.float32)}


@pytest.mark.parametrize("with_bias", [True, False])
def test_conv_batch_norm_relu_folds_into_one_layer_that_computes_the_same(with_bias):
    inits = {"w": rand(6, 3, 3, 3), **bn_inits(6)}
    if with_bias:
        inits["b"] = rand(6)
    model = build([node("Conv", ["x", "w", "b"] if with_bias else ["x", "w"], "c", name="c", pads=[1, 1, 1, 1]),
                   node("BatchNormalization", ["c", "s", "t", "m", "v"], "bn", name="bn", epsilon=1e-3),
                   node("Relu", ["bn"], "y", name="r")], inits)
    g = load_model(model, name="net")
    assert names(g) == ["input_layer1", "conv1", "output_layer1"]
    conv = g["conv1"]
    assert conv.op == "Conv+BatchNormalization+Relu" and conv.activation == "relu"
    assert g.get("bn") is conv and g.get("r") is conv and conv.weight_shape == (6, 3, 3, 3)
    x = feed(model)
    folded = conv_model(conv.params["weight"], conv.params["bias"], {"pads": [1, 1, 1, 1]}, activation="Relu")
    np.testing.assert_allclose(run_ort(folded, x)[0], run_ort(model, x)[0], rtol=1e-4, atol=1e-5)


def test_depthwise_and_deconv_batch_norms_fold():
    inits = {"w": rand(4, 1, 3, 3), "u": rand(4, 2, 2, 2), **bn_inits(4),
             **{k + "2": v for k, v in bn_inits(4, 5).items()}}
    model = build([node("Conv", ["x", "w"], "c", name="c", group=4, pads=[1, 1, 1, 1]),
                   node("BatchNormalization", ["c", "s", "t", "m", "v"], "bn", name="bn"),
                   node("ConvTranspose", ["bn", "u"], "d", name="d", strides=[2, 2], group=2),
                   node("BatchNormalization", ["d", "s2", "t2", "m2", "v2"], "y", name="bn2")],
                  inits, inputs={"x": (1, 4, 8, 8)})
    g = load_model(model, name="net")
    assert names(g) == ["input_layer1", "dw1", "deconv1", "output_layer1"]
    dw, deconv = g["dw1"], g["deconv1"]
    assert dw.op == "Conv+BatchNormalization" and deconv.op == "ConvTranspose+BatchNormalization"
    folded = build([node("Conv", ["x", "w", "b"], "c", group=4, pads=[1, 1, 1, 1]),
                    node("ConvTranspose", ["c", "u", "ub"], "y", strides=[2, 2], group=2)],
                   {"w": dw.params["weight"], "b": dw.params["bias"], "u": deconv.params["weight"],
                    "ub": deconv.params["bias"]}, inputs={"x": (1, 4, 8, 8)})
    x = feed(model)
    np.testing.assert_allclose(run_ort(folded, x)[0], run_ort(model, x)[0], rtol=1e-4, atol=1e-4)


def test_gemm_batch_norm_folds_into_the_fc_layer():
    inits = {"w": rand(6, 12), "b": rand(6), **bn_inits(6)}
    model = build([node("Gemm", ["x", "w", "b"], "f", name="fc", transB=1),
                   node("BatchNormalization", ["f", "s", "t", "m", "v"], "y", name="bn")], inits,
                  inputs={"x": (2, 12)})
    g = load_model(model, name="net")
    assert names(g) == ["input_layer1", "fc1", "output_layer1"]
    fc = g["fc1"]
    assert fc.op == "Gemm+BatchNormalization" and fc.output_shape == (2, 6)
    x = feed(model)
    np.testing.assert_allclose(dense_reference(fc, x["x"]), run_ort(model, x)[0], rtol=1e-4, atol=1e-5)


def test_a_batch_norm_after_the_input_is_a_batch_norm_layer():
    model = build([node("BatchNormalization", ["x", "s", "t", "m", "v"], "y", name="bn")], bn_inits(3))
    g = load_model(model, name="net")
    assert names(g) == ["input_layer1", "batch_norm1", "output_layer1"]
    bn = g.get("bn")
    assert bn.kind == "batch_norm" and bn.output_shape == X
    x = feed(model)
    ours = x["x"] * bn.params["scale"].reshape(1, 3, 1, 1) + bn.params["shift"].reshape(1, 3, 1, 1)
    np.testing.assert_allclose(ours, run_ort(model, x)[0], rtol=1e-5, atol=1e-5)


def test_a_batch_norm_after_an_activation_is_not_folded():
    g = load([node("Conv", ["x", "w"], "c", name="c"), node("Relu", ["c"], "r", name="r"),
              node("BatchNormalization", ["r", "s", "t", "m", "v"], "y", name="bn")],
             {"w": rand(4, 3, 1, 1), **bn_inits(4)})
    assert names(g) == ["input_layer1", "conv1", "batch_norm1", "output_layer1"]


def test_a_batch_norm_of_a_sequence_does_not_fold_into_the_fc():
    """BN normalizes axis 1; an fc over (N, T, C) has its features on the last axis."""
    g = load([node("MatMul", ["x", "w"], "f", name="fc"),
              node("BatchNormalization", ["f", "s", "t", "m", "v"], "y", name="bn")],
             {"w": rand(5, 5), **bn_inits(7)}, inputs={"x": (1, 7, 5)})
    assert names(g) == ["input_layer1", "fc1", "batch_norm1", "output_layer1"]


# --------------------------------------------------------------- unsupported


@pytest.mark.parametrize(
    "middle, inits, kind",
    [
        (node("Einsum", ["c"], "e", name="mystery", equation="nchw->nchw"), {}, "einsum"),
        (node("TopK", ["c", "k"], ["e", "idx"], name="mystery", axis=3), {"k": np.array([4], np.int64)}, "top_k"),
    ],
)
def test_an_unsupported_op_is_a_diagnostic_and_the_rest_still_loads(middle, inits, kind):
    g = load([node("Conv", ["x", "w"], "c", name="c"), middle, node("Relu", ["e"], "r", name="r"),
              node("Conv", ["r", "w2"], "y", name="c2")], {"w": rand(4, 3, 1, 1), "w2": rand(2, 4, 1, 1), **inits})
    assert names(g) == ["input_layer1", "conv1", f"{kind}1", "activation1", "conv2", "output_layer1"]
    [diagnostic] = g.diagnostics
    assert diagnostic.code == "ALS401" and diagnostic.severity is alls.Severity.ERROR
    assert "mystery" in diagnostic.message and middle.op_type in diagnostic.message
    assert f"net/{kind}1" in diagnostic.message
    layer = g.get("mystery")
    assert layer.name == f"net/{kind}1" and not layer.supported
    assert layer.inputs == ("net/conv1",) and g["activation1"].inputs == (f"net/{kind}1",)
    assert all(l.supported for l in g if l is not layer)


def test_an_unsupported_op_with_a_constant_input_only_does_not_raise():
    bad = helper.make_node("Frobnicate", ["k"], ["f"], name="custom", domain="com.example")
    model = build([bad, node("Add", ["x", "f"], "y", name="add")], {"k": rand(3)})
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    g = load_model(model, name="net")
    assert "custom" in " ".join(d.message for d in g.diagnostics)
    assert "ew_add1" in names(g)


# ----------------------------------- found by the fixture models (test_fixture_models.py)


def only_error(g):
    [diagnostic] = [d for d in g.diagnostics if d.code == "ALS401"]
    return diagnostic.message


def test_nothing_folds_into_an_unsupported_conv():
    """light_resnet50: a conv the importer could not read must not take the batch norm or relu after it."""
    g = load([node("Conv", ["x", "w"], "c", name="c"),
              node("BatchNormalization", ["c", "s", "t", "m", "v"], "bn", name="bn"), node("Relu", ["bn"], "y", name="r")],
             bn_inits(4), inputs={"x": X, "w": (4, 3, 1, 1)})
    assert names(g) == ["input_layer1", "input_layer2", "conv1", "batch_norm1", "output_layer1"]
    assert not g["conv1"].supported and g["conv1"].op == "Conv" and g["conv1"].activation is None
    assert "weights are not constant" in only_error(g)
    assert g["batch_norm1"].supported and g["batch_norm1"].op == "BatchNormalization+Relu"


def test_a_constant_of_shape_with_a_tensor_value_folds_into_a_weight():
    """light_*: weights written as ConstantOfShape(shape, value=tensor) are constants."""
    fill = helper.make_node("ConstantOfShape", ["shape"], ["w"], name="fill",
                            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.5]))
    g = load([fill, node("Conv", ["x", "w"], "y", name="c")], {"shape": np.array([4, 3, 1, 1], np.int64)})
    assert names(g) == ["input_layer1", "conv1", "output_layer1"] and g.diagnostics == ()
    assert np.array_equal(g["conv1"].params["weight"], np.full((4, 3, 1, 1), 0.5, np.float32))


def test_a_gemm_bias_that_differs_per_row_is_unsupported():
    """test_gemm_default_matrix_bias: C of shape (M, N) is one bias per row, not per output."""
    g = load([node("Gemm", ["x", "w", "c"], "y", name="fc")], {"w": rand(4, 5), "c": rand(3, 5)}, inputs={"x": (3, 4)})
    assert names(g) == ["input_layer1", "gemm1", "output_layer1"] and not g["gemm1"].supported
    assert "C of shape (3, 5) differs from row to row" in only_error(g)


@pytest.mark.parametrize("opset, attrs, outputs, stats_shape", [(15, dict(training_mode=1), ["y", "rm", "rv"], (4,)),
                                                                (9, {}, ["y", "mean", "var"], ())])
def test_a_batch_norm_in_training_mode_is_unsupported(opset, attrs, outputs, stats_shape):
    """test_batchnorm_*_training_mode: batch statistics, and outputs a layer does not have."""
    model = build([node("Conv", ["x", "w"], "c", name="c"),
                   node("BatchNormalization", ["c", "s", "t", "m", "v"], outputs, name="bn", **attrs)],
                  {"w": rand(4, 3, 1, 1), **bn_inits(4)}, outputs=outputs, opset=opset)
    g = load_model(model, name="net")
    assert names(g) == ["input_layer1", "conv1", "batch_normalization1", *[f"output_layer{i}" for i in (1, 2, 3)]]
    assert "training mode" in only_error(g) and g["conv1"].op == "Conv"
    assert [l.output_shape for l in g.outputs] == [(1, 4, 8, 8), stats_shape, stats_shape]  # () is unknown


@pytest.mark.parametrize("training_mode, outputs, reason", [
    (None, ["y", "mask"], "mask output"),  # inference, but the mask is read
    (np.array(True), ["y"], "training mode"),
    ("computed", ["y"], "training mode"),  # a graph input: known only at run time
])
def test_dropout_in_training_mode_or_with_its_mask_read_is_unsupported(training_mode, outputs, reason):
    """test_training_dropout*, test_dropout_default_mask*."""
    inits = {"r": np.array(0.5, np.float32)}
    if isinstance(training_mode, np.ndarray):
        inits["t"] = training_mode
    inputs = ["x"] if training_mode is None else ["x", "r", "t"]
    model = build([node("Dropout", inputs, outputs, name="drop")], inits, outputs=outputs)
    if isinstance(training_mode, str):
        model.graph.input.append(helper.make_tensor_value_info("t", TensorProto.BOOL, ()))
    g = load_model(model, name="net")
    assert "dropout1" in names(g) and not g["dropout1"].supported and reason in only_error(g)


def test_dropout_with_training_mode_false_vanishes():
    g = load([node("Dropout", ["x", "r", "t"], "y", name="drop")],
             {"r": np.array(0.5, np.float32), "t": np.array(False)})
    assert names(g) == ["input_layer1", "output_layer1"] and g.diagnostics == ()


@pytest.mark.parametrize("op, second, in_shape", [("Reshape", (2,), (1, 12)), ("Unsqueeze", (1,), (3, 4)),
                                                  ("Squeeze", (1,), (1, 3, 4))])
def test_a_view_with_a_computed_shape_or_axes_is_unsupported(op, second, in_shape):
    """test_reshape_*, test_unsqueeze_*: the view was kept, with its input's shape as its own."""
    model = build([node(op, ["x", "s"], "y", name="v")], inputs={"x": in_shape, "s": second})
    model.graph.input[1].type.tensor_type.elem_type = TensorProto.INT64
    g = load_model(model, name="net")
    layer = g.get("v")
    assert not layer.supported and "not constant" in only_error(g)
    assert layer.output_shape == () and g.outputs[0].output_shape == ()  # unknown, not the input's


def test_an_unsupported_node_without_its_first_output_is_named_by_the_next():
    """test_lstm_defaults: an LSTM that leaves out its optional first output, Y."""
    lstm = helper.make_node("LSTM", ["x", "w", "r"], ["", "h"], hidden_size=3)
    g = load([lstm], {"w": rand(1, 12, 2), "r": rand(1, 12, 3)}, inputs={"x": (1, 1, 2)}, outputs=("h",))
    assert names(g) == ["input_layer1", "lstm1", "output_layer1"]
    assert g.get("h") is g["lstm1"] and g["output_layer1"].inputs == ("net/lstm1",)
    assert "the node producing `h` (op `LSTM`" in only_error(g) and g.outputs[0].output_shape == (1, 1, 3)


def test_the_outputs_of_an_unsupported_node_keep_their_own_shapes():
    """test_operator_chunk: the second output of a Split is not shaped like its first."""
    g = load([node("Split", ["x"], ["a", "b"], name="split", axis=1, split=[1, 2])], outputs=("a", "b"), opset=11)
    assert [l.output_shape for l in g.outputs] == [(1, 1, 8, 8), (1, 2, 8, 8)]


# ---------------------------------------------------------------- opsets


def small_net(opset):
    inits = {"w": rand(4, 3, 3, 3), "fw": rand(5, 4), **bn_inits(4)}
    nodes = [node("Conv", ["x", "w"], "c", name="c", pads=[1, 1, 1, 1]),
             node("BatchNormalization", ["c", "s", "t", "m", "v"], "bn", name="bn"),
             node("Relu", ["bn"], "r", name="r"),
             node("GlobalAveragePool", ["r"], "g", name="gap"),
             node("Flatten", ["g"], "f", name="flat"),
             node("Gemm", ["f", "fw"], "z", name="fc", transB=1),
             node("Softmax", ["z"], "y", name="sm", axis=1)]
    return build(nodes, inits, opset=opset)


@pytest.mark.parametrize("opset", [9, 11, 13, 17, 21])
def test_supported_opsets_load_cleanly(opset):
    g = load_model(small_net(opset), name="net")
    assert g.opset == opset and g.diagnostics == ()
    assert names(g) == ["input_layer1", "conv1", "avgpool1", "fc1", "softmax1", "output_layer1"]


@pytest.mark.parametrize("opset", [8, 22])
def test_other_opsets_warn_but_load(opset):
    g = load_model(small_net(opset), name="net")
    assert [(d.code, d.severity) for d in g.diagnostics] == [("ALS403", alls.Severity.WARNING)]
    assert names(g) == ["input_layer1", "conv1", "avgpool1", "fc1", "softmax1", "output_layer1"]


# ------------------------------------------------------------ input shapes


def stale_model():
    """A fixed 1x3x32x32 model whose declared intermediate and output shapes say 32x32."""
    nodes = [node("Conv", ["x", "w"], "c", name="c", pads=[1, 1, 1, 1]),
             node("MaxPool", ["c"], "p", name="p", kernel_shape=[2, 2], strides=[2, 2]),
             node("Resize", ["p", "", "sc"], "y", name="up", mode="nearest")]
    stale = [helper.make_tensor_value_info("c", TensorProto.FLOAT, (1, 4, 32, 32)),
             helper.make_tensor_value_info("p", TensorProto.FLOAT, (1, 4, 16, 16))]
    return build(nodes, {"w": rand(4, 3, 3, 3), "sc": np.array([1, 1, 2, 2], np.float32)},
                 inputs={"x": (1, 3, 32, 32)}, output_shapes={"y": (1, 4, 32, 32)}, value_info=stale)


@pytest.mark.parametrize("override", [(1, 3, 64, 64), {"x": (1, 3, 64, 64)}, [1, 3, 64, 64]])
def test_an_input_shape_override_reaches_every_layer(override):
    base = load_model(stale_model(), name="net")
    g = load_model(stale_model(), input_shapes=override, name="net")
    assert names(g) == names(base) == ["input_layer1", "conv1", "maxpool1", "resize1", "output_layer1"]
    for old, new in zip(base, g):
        assert new.output_shape == old.output_shape[:2] + tuple(2 * d for d in old.output_shape[2:])
    assert g["output_layer1"].output_shape == (1, 4, 64, 64)
    assert g["conv1"].macs == 4 * base["conv1"].macs


def test_a_dynamic_batch_is_one():
    model = build([node("Relu", ["x"], "y")], inputs={"x": ("N", 3, 8, 8)})
    assert load_model(model)["input_layer1"].output_shape == X


def test_a_dynamic_spatial_size_needs_an_override():
    model = build([node("Relu", ["x"], "y")], inputs={"x": (1, 3, "H", "W")})
    with pytest.raises(alls.AllsError) as error:
        load_model(model)
    assert [d.code for d in error.value.diagnostics] == ["ALS405"]
    assert load_model(model, input_shapes=(1, 3, 16, 16))["activation1"].output_shape == (1, 3, 16, 16)


@pytest.mark.parametrize("override", [(1, 3, 64), {"z": (1, 3, 64, 64)}])
def test_a_bad_input_shape_override_is_als405(override):
    with pytest.raises(alls.AllsError) as error:
        load_model(stale_model(), input_shapes=override)
    assert [d.code for d in error.value.diagnostics] == ["ALS405"]


def test_one_shape_for_a_model_with_two_inputs_is_als405():
    model = build([node("Add", ["x", "z"], "y")], inputs={"x": X, "z": X})
    with pytest.raises(alls.AllsError) as error:
        load_model(model, input_shapes=X)
    assert [d.code for d in error.value.diagnostics] == ["ALS405"]
    g = load_model(model, input_shapes={"z": X})
    assert names(g) == ["input_layer1", "input_layer2", "ew_add1", "output_layer1"]


@pytest.mark.parametrize("content", [b"\x00\x01garbage\xff\xfe" * 16, b"", b"not an onnx model at all\n"])
def test_a_file_that_is_not_onnx_is_als402(tmp_path, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(alls.AllsError) as error:
        load_model(path)
    assert [d.code for d in error.value.diagnostics] == ["ALS402"]


def test_a_missing_file_is_als402(tmp_path):
    with pytest.raises(alls.AllsError) as error:
        load_model(tmp_path / "missing.onnx")
    assert [d.code for d in error.value.diagnostics] == ["ALS402"]


def test_the_scope_is_the_file_stem_or_the_name_given(tmp_path):
    path = tmp_path / "my model.onnx"
    onnx.save(build([node("Relu", ["x"], "y")]), path)
    assert load_model(path).name == "my_model" and load_model(path)["activation1"].name == "my_model/activation1"
    assert load_model(str(path), name="other").layers[1].name == "other/activation1"
    assert load_model(build([node("Relu", ["x"], "y")])).name == "net"


# -------------------------------------------------------------- names


def test_short_names_win_over_onnx_aliases():
    # the ONNX node called "conv2" is the first conv, Hailo's conv1
    g = load([node("Conv", ["x", "w"], "a", name="conv2"), node("Conv", ["a", "w2"], "y", name="conv1")],
             {"w": rand(4, 3, 1, 1), "w2": rand(4, 4, 1, 1)})
    assert names(g) == ["input_layer1", "conv1", "conv2", "output_layer1"]
    assert g.get("conv1").name == "net/conv1" and g.get("conv2").name == "net/conv2"
    assert g.get("a") is g["net/conv1"]


def test_names_count_each_kind_in_topological_order():
    g = load([node("Conv", ["x", "w"], "a", name="a"), node("Relu", ["a"], "r1", name="r1"),
              node("Conv", ["r1", "w"], "b", name="b"), node("Add", ["a", "b"], "s", name="s"),
              node("MaxPool", ["s"], "p", name="p", kernel_shape=[2, 2], strides=[2, 2]),
              node("Conv", ["p", "w"], "y", name="c3")],
             {"w": rand(3, 3, 1, 1)})
    assert names(g) == ["input_layer1", "conv1", "activation1", "conv2", "ew_add1", "maxpool1", "conv3",
                        "output_layer1"]
    assert g.consumers("net/conv1") == (g["activation1"], g["ew_add1"])


# ------------------------------------------------------------- the digits


def test_the_digits_model():
    g = load_model(DIGITS)
    assert g.name == "digits_cnn" and g.diagnostics == () and g.opset == 13
    assert [(l.name, l.op, l.activation) for l in g] == [
        ("digits_cnn/input_layer1", "Input", None),
        ("digits_cnn/conv1", "Conv+BatchNormalization+Relu", "relu"),
        ("digits_cnn/dw1", "Conv+BatchNormalization+Clip", "relu6"),
        ("digits_cnn/conv2", "Conv+Relu", "relu"),
        ("digits_cnn/maxpool1", "MaxPool", None),
        ("digits_cnn/conv3", "Conv+Relu", "relu"),
        ("digits_cnn/avgpool1", "GlobalAveragePool", None),
        ("digits_cnn/fc1", "Gemm", None),
        ("digits_cnn/output_layer1", "Output", None),
    ]
    assert g["conv1"].macs == 16 * 8 * 8 * 9
    assert g["conv1"].output_shape == (1, 16, 8, 8) and g["fc1"].weight_shape == (10, 32)
    assert g.get("pw") is g["conv2"] and g.get("relu6") is g["dw1"] and g.get("flatten") is g["fc1"]
    assert g["fc1"].inputs == ("digits_cnn/avgpool1",) and g["output_layer1"].output_shape == (1, 10)


def test_the_digits_model_folded_computes_what_the_onnx_model_computes():
    """Rebuild the network from the graph's folded parameters and compare with onnxruntime."""
    g = load_model(DIGITS)
    x = np.load(DIGITS.parent / "test_x.npy")[:16].astype(np.float32).reshape(-1, 1, 8, 8)
    inits, nodes, tensor = {}, [], "x"
    for layer in g:
        if layer.kind in ("conv", "dw"):
            inits[layer.short_name + "w"], inits[layer.short_name + "b"] = layer.params["weight"], layer.params["bias"]
            nodes.append(node("Conv", [tensor, layer.short_name + "w", layer.short_name + "b"], layer.short_name,
                              group=layer.attrs["group"], pads=list(layer.attrs["pads"]),
                              strides=list(layer.attrs["strides"])))
            tensor = layer.short_name
            if layer.activation == "relu":
                nodes.append(node("Relu", [tensor], tensor + "_a"))
            else:
                nodes.append(node("Clip", [tensor, "zero", "six"], tensor + "_a"))
                inits["zero"], inits["six"] = np.float32(0), np.float32(6)
            tensor += "_a"
        elif layer.kind == "maxpool":
            nodes.append(node("MaxPool", [tensor], "mp", kernel_shape=[2, 2], strides=[2, 2]))
            tensor = "mp"
        elif layer.kind == "avgpool":
            nodes += [node("GlobalAveragePool", [tensor], "gap"), node("Flatten", ["gap"], "flat")]
            tensor = "flat"
        elif layer.kind == "fc":
            inits["fw"], inits["fb"] = layer.params["weight"], layer.params["bias"]
            nodes.append(node("Gemm", [tensor, "fw", "fb"], "y", transB=1))
    rebuilt = build(nodes, inits, inputs={"x": ("N", 1, 8, 8)})
    original = ort.InferenceSession(str(DIGITS), providers=["CPUExecutionProvider"])
    expected = original.run(None, {original.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(run_ort(rebuilt, {"x": x})[0], expected, rtol=1e-4, atol=1e-4)


def test_an_input_without_any_shape_needs_an_override():
    model = build([node("Relu", ["x"], "y")], inputs={"x": None})
    with pytest.raises(alls.AllsError) as error:
        load_model(model)
    assert [d.code for d in error.value.diagnostics] == ["ALS405"]
    assert load_model(model, input_shapes=(1, 3, 16, 16))["activation1"].output_shape == (1, 3, 16, 16)


def test_initializers_listed_as_graph_inputs_are_weights_not_inputs():
    model = build([node("Conv", ["x", "w"], "y", name="c")], {"w": rand(4, 3, 1, 1)}, opset=9)
    model.graph.input.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, (4, 3, 1, 1)))
    g = load_model(model, name="net")
    assert names(g) == ["input_layer1", "conv1", "output_layer1"] and g.inputs[0].aliases == ("x",)


@pytest.mark.parametrize("op, attrs, in_shape, out", [("Squeeze", dict(axes=[2]), (1, 3, 1, 8), (1, 3, 8)),
                                                      ("Unsqueeze", dict(axes=[1]), (1, 8), (1, 1, 8))])
def test_squeeze_and_unsqueeze_with_axes_attributes_before_opset_13(op, attrs, in_shape, out):
    g = load([node(op, ["x"], "y", name="v", **attrs)], inputs={"x": in_shape}, opset=11)
    assert names(g) == ["input_layer1", "format_conversion1", "output_layer1"]
    assert g.get("v").output_shape == out


def test_a_constant_target_shape_that_no_longer_fits_the_input_is_refused_with_the_node():
    """A model exported for 8x8 images reshapes to a constant 1x3x64; imported at 16x16 the target no
    longer holds the input's values, and the concat after it cannot join its parts: each an ALS401
    naming the node and both shapes, never a layer run on garbled shapes."""
    nodes = [node("Reshape", ["x", "target"], "flat", name="/head/Reshape"),
             node("Reshape", ["x", "target"], "flat2", name="/head/Reshape_1"),
             node("Concat", ["flat", "flat2"], "y", name="/head/Concat", axis=1)]
    inits = {"target": np.array([1, 3, 64], dtype=np.int64)}
    assert not [d for d in load(nodes, inits).diagnostics if d.code == "ALS401"]
    graph = load(nodes, inits, input_shapes=(1, 3, 16, 16))
    errors = [d.message for d in graph.diagnostics if d.code == "ALS401"]
    assert any("/head/Reshape`" in m and "1x3x16x16 (768 values) to 1x3x64 (192)" in m for m in errors), errors
    assert not all(layer.supported for layer in graph)


# ------------------------------------------------------- ceil_mode pools

CEIL_MODE_CASES = [(size, k, s, p0, p1) for size in (5, 6, 7, 8) for k in (2, 3) for s in (1, 2, 3)
                   for p0 in (0, 1) for p1 in (0, 1, 2) if p0 < k and p1 < k]


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_a_ceil_mode_pool_is_shaped_as_onnxruntime_runs_it_or_refused(op, tmp_path):
    """ONNX's shape inference keeps a last ceil_mode window that starts in the end padding; onnxruntime
    drops it. A pool is imported with onnxruntime's shape, or refused (ALS401) where the two disagree."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime runs the pools")
    refused = 0
    for size, k, s, p0, p1 in CEIL_MODE_CASES:
        node = helper.make_node(op, ["x"], ["y"], kernel_shape=[k, k], strides=[s, s], pads=[p0, p0, p1, p1],
                                ceil_mode=1)
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, size, size])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        path = tmp_path / "pool.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        ran = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(
            None, {"x": np.zeros((1, 1, size, size), np.float32)})[0]
        imported = load_model(path)
        pools = [layer for layer in imported if layer.kind in ("maxpool", "avgpool")]
        if pools:
            assert pools[0].output_shape[2:] == ran.shape[2:], (size, k, s, p0, p1)
        else:
            refused += 1
            assert any(d.code == "ALS401" and "ceil_mode" in d.message for d in imported.diagnostics)
    assert 0 < refused < len(CEIL_MODE_CASES)
