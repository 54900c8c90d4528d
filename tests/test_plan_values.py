"""Plan values: one default per setting (the catalogue's), typed words from the resolver to the kernels,
and a plan that shows what the runtime uses (a standalone batch norm's 16-bit bias included)."""

from __future__ import annotations

import ast
import json
import pathlib

import numpy as np
import pytest

import alls
from alls.catalogue import BATCH_NORM_BIAS_MODE, COMMANDS, POST_SUBCOMMANDS, QUANTIZATION_PARAM
from alls.plan import Activation, AdaroundMode, BiasMode, ClippingMode, EqualizationTarget, LossType, Optimizer
from alls.tables import explain_layer, plan_table
from alls.values import Word
from test_importer import build, node, rand

ROOT = pathlib.Path(__file__).resolve().parent.parent
DIGITS = ROOT / "samples" / "digits" / "digits_cnn.onnx"
WORDS = (BiasMode, ClippingMode, Activation, LossType, Optimizer, AdaroundMode, EqualizationTarget)


def plan_of(text: str, graph) -> alls.Plan:
    return alls.resolve(alls.parse(text, "t.alls"), graph, advice=False)


@pytest.fixture(scope="module")
def digits():
    return alls.load_model(DIGITS)


@pytest.fixture(scope="module")
def batch_norm():
    """A batch norm after the input (nothing to fold it into), then a conv reading it."""
    nodes = [node("BatchNormalization", ["x", "g", "bb", "m", "v"], "n"),
             node("Conv", ["n", "w", "b"], "y", pads=[1, 1, 1, 1])]
    inits = {"g": rand(3) + 2, "bb": rand(3), "m": rand(3), "v": np.abs(rand(3)) + 0.5, "w": rand(4, 3, 3, 3),
             "b": rand(4)}
    return build(nodes, inits)


# ------------------------------------------------------------------ the words


@pytest.mark.parametrize("enum", WORDS, ids=lambda e: e.__name__)
def test_a_member_reads_as_its_script_spelling(enum):
    for member in enum:
        assert str(member) == f"{member}" == member.value == json.loads(json.dumps(member))
        assert enum(member.value) is member


def test_the_catalogue_allows_exactly_the_enums_spellings():
    q = QUANTIZATION_PARAM.keywords
    assert q["bias_mode"].type.values == BiasMode.spellings()
    assert set(q["activation_clipping_mode"].type.values) | set(q["weights_clipping_mode"].type.values) == \
        set(ClippingMode.spellings())
    ar, ft = POST_SUBCOMMANDS["adaround"].keywords, POST_SUBCOMMANDS["finetune"].keywords
    assert ar["mode"].type.values == AdaroundMode.spellings() and ft["optimizer"].type.values == Optimizer.spellings()
    assert ft["def_loss_type"].type.values == LossType.spellings()
    activation = COMMANDS["change_output_activation"].positional[-1].type.values
    assert set(activation) <= set(Activation.spellings())


def test_the_resolver_gives_members_not_strings(digits):
    plan = plan_of(
        "quantization_param(conv1, bias_mode=double_scale_initialization)\n"
        "quantization_param(conv2, use_16bit_bias=False)\n"
        "pre_quantization_optimization(weights_clipping, layers=[conv1], mode=mmse)\n"
        "pre_quantization_optimization(activation_clipping, layers=[conv2], mode=percentile, "
        "clipping_values=[0.1, 99.9])\n"
        "pre_quantization_optimization(equalization, policy=enabled, equalization_target=activation)\n"
        "post_quantization_optimization(finetune, policy=enabled, loss_types=[L2, Cosine], def_loss_type=L1, "
        "optimizer=sgd)\n"
        "post_quantization_optimization(adaround, policy=disabled, mode=train_all)\n"
        "change_output_activation(sigmoid)\n", digits)
    assert plan["conv1"].bias_mode is BiasMode.DOUBLE and plan["conv2"].bias_mode is BiasMode.SINGLE
    assert plan["conv1"].weights_clipping.mode is ClippingMode.MMSE
    assert plan["conv2"].activation_clipping.mode is ClippingMode.PERCENTILE
    assert plan.settings.equalization_target is EqualizationTarget.ACTIVATION
    ft = plan.settings.finetune
    assert ft.loss_types == (LossType.L2, LossType.COSINE) and all(type(t) is LossType for t in ft.loss_types)
    assert ft.def_loss_type is LossType.L1 and ft.optimizer is Optimizer.SGD
    assert plan.settings.adaround.mode is AdaroundMode.TRAIN_ALL
    assert any(layer.activation is Activation.SIGMOID for layer in plan)
    assert all(layer.activation is None or type(layer.activation) is Activation for layer in plan)
    assert digits["conv1"].activation is Activation.RELU  # the graph's fused activations too


def test_defaults_are_the_catalogues_members(digits):
    plan = plan_of("", digits)
    assert plan["conv1"].bias_mode is QUANTIZATION_PARAM.keywords["bias_mode"].default is BiasMode.SINGLE
    s = plan.settings
    assert s.finetune.def_loss_type is LossType.L2REL and s.finetune.optimizer is Optimizer.ADAM
    assert s.adaround.mode is AdaroundMode.TRAIN_4BIT and s.equalization_target is EqualizationTarget.WEIGHTS
    assert s.adaround.b_range == POST_SUBCOMMANDS["adaround"].keywords["b_range"].default
    assert plan_of("model_optimization_flavor(optimization_level=3)\n", digits).settings.adaround.mode \
        is AdaroundMode.TRAIN_ALL


def test_the_plan_json_spells_members_as_the_script_does(digits):
    plan = plan_of("quantization_param(conv1, bias_mode=double_scale_initialization)\n"
                   "pre_quantization_optimization(weights_clipping, layers=[conv1], mode=mmse)\n", digits)
    doc = json.loads(json.dumps(plan.as_dict()))
    conv1 = next(layer for layer in doc["layers"] if layer["name"].endswith("/conv1"))
    assert conv1["bias_mode"] == "double_scale_initialization" and conv1["weights_clipping"]["mode"] == "mmse"
    settings = doc["settings"]
    assert settings["finetune"]["def_loss_type"] == "l2rel" and settings["adaround"]["mode"] == "train_4bit"
    assert "sets bias_mode=double_scale_initialization" in explain_layer(plan, "conv1")


# -------------------------------------------------- what the runtime uses is in the plan


def test_a_standalone_batch_norm_has_its_bias_mode_and_weight_bits_in_the_plan(batch_norm):
    graph = alls.load_model(batch_norm)
    plan = plan_of("", graph)
    bn = plan["batch_norm1"]
    assert bn.bias_mode is BATCH_NORM_BIAS_MODE is BiasMode.DOUBLE and bn.source("bias_mode").is_default
    assert bn.weight_bits == 8 and bn.quantization_groups == 1
    row = next(line for line in plan_table(plan).splitlines() if line.startswith("batch_norm1"))
    assert row.split()[2:6] == ["8", "8", "8", "double"]
    wide = plan_of("quantization_param(input_layer1, precision_mode=a16_w16)\n", graph)
    assert wide["batch_norm1"].input_bits == (16,) and wide["batch_norm1"].weight_bits == 16


def test_the_runtime_quantizes_a_batch_norm_as_its_plan_says(batch_norm):
    from alls.runtime import Runner

    runner = Runner(batch_norm)
    qmodel = runner.quantize(np.random.default_rng(0).standard_normal((64, 8, 8, 3)).astype(np.float32),
                             progress=False)
    lp, q = qmodel.plan["batch_norm1"], qmodel.layers[qmodel.graph["batch_norm1"].name]
    assert q.weight_bits == lp.weight_bits == 8
    assert q.bias.mantissa_bits == 16  # double_scale_initialization's mantissa (N10)


def test_finetune_trains_with_the_plans_regulariser(digits):
    from alls.runtime.algorithms.finetune import configs

    default = configs(digits, plan_of("post_quantization_optimization(finetune, policy=enabled)\n", digits))
    ar = POST_SUBCOMMANDS["adaround"].keywords
    _, config = default[digits["conv1"].name]
    assert (config.reg_weight, config.reg_warmup) == (ar["weight"].default, ar["warmup"].default)
    assert config.beta == (max(ar["b_range"].default), min(ar["b_range"].default))
    assert config.loss is LossType.L2REL and config.optimizer is Optimizer.ADAM
    given = configs(digits, plan_of("post_quantization_optimization(finetune, policy=enabled, optimizer=sgd)\n"
                                    "post_quantization_optimization(adaround, weight=0.5, warmup=0.1, "
                                    "b_range=[4, 12])\n", digits))
    _, config = given[digits["conv1"].name]
    assert (config.reg_weight, config.reg_warmup, config.beta) == (0.5, 0.1, (12.0, 4.0))
    assert config.optimizer is Optimizer.SGD


def test_tune_finetunes_on_at_most_the_catalogues_dataset_size():
    from alls.runtime.session.tuning import FINETUNE_IMAGES, STEPS

    assert FINETUNE_IMAGES == POST_SUBCOMMANDS["finetune"].keywords["dataset_size"].default
    assert f"at most {FINETUNE_IMAGES}" in dict(STEPS)["+ finetune"]


# ------------------------------------------------------ no spelling compared in the runtime


def _spellings() -> set[str]:
    return {spelling for enum in WORDS for spelling in enum.spellings()}


RUNTIME_FILES = sorted((ROOT / "runtime").rglob("*.py"))


@pytest.mark.parametrize("path", RUNTIME_FILES, ids=lambda p: str(p.relative_to(ROOT / "runtime")))
def test_the_runtime_compares_plan_words_by_member(path):
    """No ``==``/``!=``/``in`` against a literal spelling of a plan word."""
    spellings, found = _spellings(), []
    for tree_node in ast.walk(ast.parse(path.read_text(), str(path))):
        literals = []
        if isinstance(tree_node, ast.Compare):
            literals = [tree_node.left, *tree_node.comparators]
            literals += [e for c in tree_node.comparators if isinstance(c, (ast.Tuple, ast.List, ast.Set))
                         for e in c.elts]
        found += [f"line {c.lineno}: {c.value!r}" for c in literals
                  if isinstance(c, ast.Constant) and isinstance(c.value, str) and c.value in spellings]
    assert not found, f"{path.relative_to(ROOT)} compares plan words as strings: {found}"


def test_the_check_sees_a_spelling_compared(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f(lp):\n    return lp.bias_mode == 'double_scale_initialization'\n")
    tree = ast.parse(module.read_text())
    compares = [n for n in ast.walk(tree) if isinstance(n, ast.Compare)]
    assert compares and compares[0].comparators[0].value in _spellings()
    assert issubclass(BiasMode, Word) and issubclass(BiasMode, str)
