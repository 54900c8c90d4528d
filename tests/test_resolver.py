"""The resolver: scripts bound to graphs, field by field, with provenance."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import alls
from alls.catalogue import LEVELS, POST_SUBCOMMANDS
from alls.plan import Finetune, LayerPlan

from conftest import corpus_files, needs_corpus

ROOT = pathlib.Path(__file__).resolve().parent.parent
DIGITS = ROOT / "samples" / "digits" / "digits_cnn.onnx"


@pytest.fixture(scope="module")
def digits():
    return alls.load_model(DIGITS)


def plan_of(text: str, graph, advice: bool = True):
    return alls.resolve(alls.parse(text, "t.alls"), graph, advice=advice)


def codes(plan) -> list[str]:
    return [d.code for d in plan.diagnostics]


# ------------------------------------------------------------- small models


def _conv(name, x, y, cin, cout, seed):
    w = np.random.default_rng(seed).standard_normal((cout, cin, 3, 3)).astype(np.float32)
    b = np.zeros(cout, np.float32)
    return (helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [y], name=name, pads=[1, 1, 1, 1]),
            [numpy_helper.from_array(w, f"{name}_w"), numpy_helper.from_array(b, f"{name}_b")])


def _model(nodes, inits, outputs, name="net"):
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 4, 8, 8))],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return alls.load_model(model, name=name)


@pytest.fixture(scope="module")
def residual():
    """x -> conv1 -> relu -> conv2 -> add(conv1) -> concat(conv3(x)) -> output."""
    c1, i1 = _conv("c1", "x", "a", 4, 8, 1)
    c2, i2 = _conv("c2", "r", "b", 8, 8, 2)
    c3, i3 = _conv("c3", "x", "d", 4, 8, 3)
    nodes = [c1, helper.make_node("Relu", ["a"], ["r"], name="relu"), c2,
             helper.make_node("Add", ["b", "a"], ["s"], name="add"), c3,
             helper.make_node("Concat", ["s", "d"], ["y"], name="cat", axis=1)]
    return _model(nodes, i1 + i2 + i3, ["y"], "residual")


@pytest.fixture(scope="module")
def detector():
    """Two conv output maps (a heatmap and a box regression), as a detection head has."""
    c1, i1 = _conv("c1", "x", "f", 4, 8, 1)
    c2, i2 = _conv("heat", "f", "heat_out", 8, 1, 2)
    c3, i3 = _conv("box", "f", "box_out", 8, 4, 3)
    return _model([c1, c2, c3], i1 + i2 + i3, ["heat_out", "box_out"], "det")


# ----------------------------------------------------------------- defaults


def test_an_empty_script_gives_the_documented_defaults(digits):
    plan = plan_of("", digits)
    assert plan.diagnostics == ()
    assert len(plan) == len(digits)
    for layer in plan:
        assert layer.precision_mode == "a8_w8" and layer.output_bits == 8
        weighted = layer.kind in ("conv", "dw", "deconv", "fc")
        assert layer.weight_bits == (8 if weighted else None)
        assert layer.bias_mode == ("single_scale_decomposition" if weighted else None)
        assert layer.equalization == layer.bias_correction == weighted  # optimization_level 1
        assert not layer.finetune and not layer.adaround
        assert all(source.is_default for source in layer.sources.values())
    assert plan["conv1"].input_bits == (8,) and plan["input_layer1"].input_bits == ()
    s = plan.settings
    assert (s.optimization_level, s.compression_level, s.auto_4bit_weights_ratio) == (1, 0, 0.0)
    assert (s.calibration.batch_size, s.calibration.calibset_size) == (8, 64)
    assert s.finetune.dataset_size == 2048 and not s.finetune.policy


def test_settings_dataclasses_mirror_the_catalogue():
    """Defaults live in the catalogue; the settings classes hold exactly its keywords."""
    for cls, sub in ((Finetune, "finetune"),):
        keys = set(POST_SUBCOMMANDS[sub].keywords) - {"device", "use_saitama"}
        assert {f.name for f in dataclasses.fields(cls)} == keys


def test_a_plan_is_immutable(digits):
    plan = plan_of("quantization_param(conv1, bias_mode=double_scale_initialization)", digits)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan["conv1"].bias_mode = "single_scale_decomposition"
    with pytest.raises(TypeError):
        plan["conv1"].sources["bias_mode"] = None


# ---------------------------------------------------- order and provenance


def test_later_statements_win_field_by_field_and_every_field_remembers_its_statement(digits):
    plan = plan_of(
        "quantization_param({conv*}, precision_mode=a16_w16, bias_mode=double_scale_initialization)\n"
        "quantization_param(conv2, precision_mode=a8_w8)\n", digits, advice=False)
    conv1, conv2 = plan["conv1"], plan["conv2"]
    assert conv1.precision_mode == "a16_w16" and conv1.source("precision_mode").span.line == 1
    assert conv2.precision_mode == "a8_w8" and conv2.source("precision_mode").span.line == 2
    assert conv2.bias_mode == "double_scale_initialization" and conv2.source("bias_mode").span.line == 1
    assert conv2.source("quantization_groups").is_default
    assert [source.span.line for source, _ in conv2.history] == [1, 2]
    assert dict(conv2.history[1][1])["precision_mode"] == "a8_w8"


def test_a_statement_with_errors_is_skipped_whole(digits):
    plan = plan_of("quantization_param({conv*}, precision_mode=a16_w12, bias_mode=double_scale_initialization)\n",
                   digits)
    assert "ALS301" in codes(plan)
    assert plan["conv1"].bias_mode == "single_scale_decomposition"


def test_a_template_placeholder_leaves_the_default(digits):
    plan = plan_of("model_optimization_config(calibration, calibset_size={calibset_size}, batch_size=4)\n", digits)
    assert codes(plan) == ["ALS305"]
    assert plan.settings.calibration.calibset_size == 64 and plan.settings.calibration.batch_size == 4


def test_old_spellings_set_the_current_fields(digits):
    plan = plan_of("quantization_param(conv1, use_16bit_bias=True, activation_clipping_mode=manual, "
                   "activation_clipping_values=[0, 6])\n", digits)
    assert plan["conv1"].bias_mode == "double_scale_initialization"
    assert str(plan["conv1"].activation_clipping) == "manual [0, 6]"


# -------------------------------------------------------------------- levels


@pytest.mark.parametrize("level", sorted(LEVELS))
def test_each_optimization_level_maps_onto_the_algorithms(digits, level):
    plan = plan_of(f"model_optimization_flavor(optimization_level={level})\n", digits, advice=False)
    spec, s = LEVELS[level], plan.settings
    assert s.optimization_level == level and s.source("optimization_level").span.line == 1
    assert s.equalization == spec.equalization and s.bias_correction == spec.bias_correction
    assert s.finetune.policy == (spec.finetune is not None)
    assert s.adaround.policy == (spec.adaround is not None)
    for key, value in (spec.finetune or spec.adaround or {}).items():
        assert getattr(s.finetune if spec.finetune else s.adaround, key) == value
    conv1 = plan["conv1"]
    assert conv1.bias_correction == spec.bias_correction and conv1.finetune == (spec.finetune is not None)
    assert conv1.adaround == (spec.adaround is not None)  # levels 3-4 train all layers


def test_an_explicit_algorithm_statement_overrides_the_level_wherever_it_stands(digits):
    plan = plan_of("post_quantization_optimization(finetune, policy=disabled)\n"
                   "model_optimization_flavor(optimization_level=2)\n", digits, advice=False)
    assert not plan.settings.finetune.policy and plan.settings.finetune.epochs == 4
    assert plan.settings.source("finetune.policy").span.line == 1


def test_compression_level_gives_the_largest_weights_4_bits_but_not_the_layers_a_statement_set(digits):
    plan = plan_of("model_optimization_flavor(compression_level=5)\nquantization_param(fc1, precision_mode=a8_w8)\n",
                   digits, advice=False)
    four = [layer.short_name for layer in plan if layer.weight_bits == 4]
    assert four == ["conv1", "dw1", "conv2", "conv3"]
    assert plan["fc1"].weight_bits == 8
    assert plan["conv2"].source("precision_mode").via == "compression_level=5"
    sizes = {layer.short_name: layer.params["weight"].size for layer in digits if layer.has_weights}
    plan = plan_of("model_optimization_config(compression_params, auto_4bit_weights_ratio=0.4)\n", digits,
                   advice=False)
    four = {layer.short_name for layer in plan if layer.weight_bits == 4}
    largest = max(sizes, key=sizes.get)
    assert largest in four and sum(sizes[n] for n in four) >= 0.4 * sum(sizes.values())
    assert sum(sizes[n] for n in four) - min(sizes[n] for n in four) < 0.4 * sum(sizes.values())


def test_adaround_train_4bit_touches_only_4_bit_layers(digits):
    plan = plan_of("quantization_param(conv2, precision_mode=a8_w4)\n"
                   "post_quantization_optimization(adaround, policy=enabled, mode=train_4bit)\n", digits)
    assert [layer.short_name for layer in plan if layer.adaround] == ["conv2"]


def test_finetune_parameters_and_frozen_layers(digits):
    plan = plan_of("post_quantization_optimization(finetune, policy=enabled, epochs=8, learning_rate=0.001, "
                   "layers_to_freeze=[conv1], loss_layer_names=[fc1], loss_types=[CE], loss_factors=[1.0])\n", digits)
    ft = plan.settings.finetune
    assert (ft.policy, ft.epochs, ft.learning_rate) == (True, 8, 0.001)
    assert ft.layers_to_freeze == ("digits_cnn/conv1",) and ft.loss_layer_names == ("digits_cnn/fc1",)
    assert ft.loss_types == ("ce",)
    assert not plan["conv1"].finetune and plan["conv2"].finetune and not plan["maxpool1"].finetune


# --------------------------------------------------------------------- bits


def test_a_16_bit_output_layer_widens_its_producer_output(digits):
    plan = plan_of("quantization_param({output_layer*}, precision_mode=a16_w16)\n", digits)
    fc1 = plan["fc1"]
    assert (fc1.input_bits, fc1.weight_bits, fc1.output_bits) == ((8,), 8, 16)
    assert fc1.source("output_bits").span.line == 1
    assert plan["output_layer1"].input_bits == (16,) and plan["output_layer1"].output_bits == 16
    assert "ALS312" not in codes(plan)


def test_partial_16_bit_warns_at_each_boundary_and_whole_16_bit_does_not(residual):
    plan = plan_of("quantization_param({conv*}, precision_mode=a16_w16)\n", residual)
    [warning] = [d for d in plan.diagnostics if d.code == "ALS312"]
    assert warning.span.line == 1 and "ew_add1" in warning.message and "concat1" in warning.message
    assert plan["ew_add1"].input_bits == (16, 16) and plan["ew_add1"].output_bits == 8
    whole = plan_of("quantization_param({*}, precision_mode=a16_w16)\n", residual)
    assert "ALS312" not in codes(whole)
    assert all(layer.output_bits == 16 for layer in whole)


# ------------------------------------------------------------ applicability


def test_an_option_that_cannot_apply_names_each_layer_and_its_kind(digits):
    plan = plan_of("quantization_param({*}, bias_mode=double_scale_initialization)\n", digits)
    [error] = [d for d in plan.diagnostics if d.code == "ALS213"]
    assert "`maxpool1` (maxpool)" in error.message and "`avgpool1` (avgpool)" in error.message
    assert "conv1" not in error.message
    assert (error.span.line, error.span.column) == (1, 25) and error.labels[0].span.column == 20
    assert plan["conv1"].bias_mode == "double_scale_initialization"  # the layers it can apply to still get it


@pytest.mark.parametrize("statement, code, fragment", [
    ("quantization_param({*}, quantization_groups=2)", "ALS213", "`maxpool1` (maxpool)"),
    ("quantization_param({conv*}, quantization_groups=3)", "ALS308", "`conv1` (16 channels)"),
    ("quantization_param(conv1, force_range_index=1)", "ALS308", "`conv1` (1 input)"),
    ("quantization_param(input_layer1, force_range_in=[0, 1])", "ALS213", "`input_layer1` (input_layer)"),
    ("pre_quantization_optimization(weights_clipping, layers=[maxpool1], mode=mmse)", "ALS213", "`maxpool1`"),
    ("post_quantization_optimization(bias_correction, layers={*pool*}, policy=enabled)", "ALS213", "avgpool1"),
    ("normalization([0, 0, 0], [255, 255, 255])", "ALS307", "input `input_layer1` has 1 channel"),
    ("normalization([0], [255], conv1)", "ALS213", "`conv1` (conv)"),
    ("quantization_param({cnv*}, precision_mode=a16_w16)", "ALS201", "`{cnv*}`"),
])
def test_what_cannot_apply_is_an_error(digits, statement, code, fragment):
    plan = plan_of(statement + "\n", digits)
    found = [d for d in plan.diagnostics if d.code == code]
    assert found and fragment in found[0].message and found[0].is_error


def test_groups_that_divide_apply(digits):
    plan = plan_of("quantization_param({conv*}, quantization_groups=4)\n", digits)
    assert codes(plan) == [] and [plan[n].quantization_groups for n in ("conv1", "conv2", "dw1")] == [4, 4, 1]


# ------------------------------------------------- other commands, globals


def test_normalization_and_output_activation(digits):
    plan = plan_of("norm1 = normalization([0.5], [0.25])\nchange_output_activation(sigmoid)\n", digits)
    [norm] = plan.settings.normalization
    assert (norm.name, norm.input, norm.mean, norm.std) == ("norm1", "digits_cnn/input_layer1", (0.5,), (0.25,))
    assert plan["fc1"].activation == "sigmoid" and plan["fc1"].source("activation").span.line == 2
    plan = plan_of("change_output_activation(output_layer1, linear)\n", digits)
    assert plan["fc1"].activation is None


def test_clipping_without_layers_reaches_every_layer_it_can(digits):
    plan = plan_of("pre_quantization_optimization(activation_clipping, mode=percentile, clipping_values=[0, 99.9])\n"
                   "pre_quantization_optimization(activation_clipping, layers=[conv1], mode=disabled)\n", digits)
    clipped = [layer.short_name for layer in plan if layer.activation_clipping]
    assert "conv1" not in clipped and "conv2" in clipped and "output_layer1" not in clipped
    assert codes(plan) == []


# -------------------------------------------------------------------- advice


@pytest.mark.parametrize("text, code", [
    ("quantization_param({conv*}, precision_mode=a8_w4)", "ALS311"),
    ("model_optimization_flavor(compression_level=2)", "ALS311"),
    ("model_optimization_config(calibration, calibset_size=16)", "ALS313"),
    ("model_optimization_config(calibration, batch_size=128)", "ALS314"),
    ("post_quantization_optimization(finetune, policy=enabled, dataset_size=4, batch_size=8)", "ALS314"),
    ("model_optimization_flavor(optimization_level=0)", "ALS315"),
    ("pre_quantization_optimization(equalization, policy=disabled)", "ALS315"),
])
def test_advice_from_the_guide(digits, text, code):
    assert code in codes(plan_of(text + "\n", digits))


def test_4_bit_with_finetune_and_weights_clipping_needs_no_advice(digits):
    plan = plan_of("quantization_param({conv*}, precision_mode=a8_w4)\n"
                   "pre_quantization_optimization(weights_clipping, layers={conv*}, mode=mmse)\n"
                   "post_quantization_optimization(finetune, policy=enabled, dataset_size=64)\n", digits)
    assert codes(plan) == []


def test_a_detection_head_at_8_bits_gets_advice_and_16_bit_outputs_silence_it(detector):
    plan = plan_of("", detector)
    [advice] = [d for d in plan.diagnostics if d.code == "ALS316"]
    assert "2 output maps" in advice.message
    assert "ALS316" not in codes(plan_of("quantization_param({output_layer*}, precision_mode=a16_w16)\n", detector))


def test_a_classifier_gets_no_detection_advice(digits):
    assert "ALS316" not in codes(plan_of("", digits))


# ----------------------------------------------------------------- the API


def test_resolve_takes_text_and_a_model_path():
    plan = alls.resolve("quantization_param(conv1, precision_mode=a16_w16\n", str(DIGITS))
    assert "ALS102" in codes(plan)  # the syntax error comes back as a diagnostic
    plan = alls.resolve("quantization_param(conv1, precision_mode=a16_w16)\n", DIGITS)
    assert plan["conv1"].precision_mode == "a16_w16" and plan.network == "digits_cnn"


def test_plan_as_json_keeps_the_sources(digits):
    plan = plan_of("quantization_param(conv1, bias_mode=double_scale_initialization)\n", digits)
    doc = json.loads(json.dumps(plan.as_dict()))
    conv1 = next(layer for layer in doc["layers"] if layer["name"] == "digits_cnn/conv1")
    assert conv1["bias_mode"] == "double_scale_initialization"
    assert conv1["sources"]["bias_mode"]["line"] == 1
    assert set(LayerPlan.FIELDS) <= set(conv1)
    assert doc["settings"]["calibration"] == {"batch_size": 8, "calibset_size": 64}


@needs_corpus
def test_every_corpus_script_resolves_against_a_model_without_raising(digits):
    for path in corpus_files()[::5]:
        script, _ = alls.read_script(path)
        plan = alls.resolve(script, digits)
        assert len(plan) == len(digits)
