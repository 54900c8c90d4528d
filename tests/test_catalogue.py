"""The catalogue: complete docs, defaults that satisfy their own types."""

from __future__ import annotations

import pytest

import alls
from alls.catalogue import BIAS_MODES, COMMANDS, PRECISION_MODES
from alls.nodes import Boolean, ListValue, Number, Span, Word

SPAN = Span("t", 1, 1, 1, 2)


def _node(value):
    if isinstance(value, bool):
        return Boolean(value, str(value), SPAN)
    if isinstance(value, (int, float)):
        return Number(value, repr(value), SPAN)
    if isinstance(value, (list, tuple)):
        return ListValue(tuple(_node(v) for v in value), SPAN)
    return Word(str(value), SPAN)


def _all_specs():
    for command in COMMANDS.values():
        yield command.name, command
        for sub in (command.subcommands or {}).values():
            yield f"{command.name}({sub.name})", sub


SPECS = dict(_all_specs())


@pytest.mark.parametrize("key", sorted(SPECS))
def test_every_command_and_argument_is_documented(key):
    spec = SPECS[key]
    assert spec.doc.strip()
    for arg in (*spec.positional, *spec.keywords.values()):
        assert arg.doc.strip(), f"{key}: {arg.name}"


@pytest.mark.parametrize("key", sorted(k for k, s in SPECS.items() if s.interpreted and s.subcommands is None))
def test_defaults_satisfy_their_own_types(key):
    for arg in (*SPECS[key].positional, *SPECS[key].keywords.values()):
        if arg.default is not None:
            assert arg.type.check(_node(arg.default)) == [], f"{key}: {arg.name}={arg.default!r}"


def test_the_quantization_values_are_the_documented_ones():
    assert set(PRECISION_MODES) == {"a8_w8", "a8_w4", "a16_w16", "a16_w8", "a16_w8_a16", "a16_w4_a16", "a8_w8_a16"}
    assert set(BIAS_MODES) == {"single_scale_decomposition", "double_scale_initialization"}
    groups = COMMANDS["quantization_param"].keywords["quantization_groups"]
    assert groups.type.check(_node(4)) == [] and groups.type.check(_node(5)) != []


@pytest.mark.parametrize("mode", PRECISION_MODES)
def test_every_precision_mode_checks_clean(mode):
    assert alls.check(f"quantization_param({{conv*}}, precision_mode={mode})\n") == []


@pytest.mark.parametrize(
    "text",
    [
        "pre_quantization_optimization(equalization, policy=enabled, equalization_target=activation)",
        "pre_quantization_optimization(weights_clipping, layers={conv*}, mode=mmse)",
        "pre_quantization_optimization(weights_clipping, layers=[conv1], mode=manual, clipping_values=[-0.5, 0.5])",
        "pre_quantization_optimization(activation_clipping, layers={conv*}, mode=percentile_force, clipping_values=[0, 99.9])",
        "post_quantization_optimization(adaround, policy=enabled, epochs=100, batch_size=8)",
        "model_optimization_config(compression_params, auto_4bit_weights_ratio=0.3)",
        "model_optimization_flavor(optimization_level=4, compression_level=5)",
        "change_output_activation(output_layer1, sigmoid)",
        "norm = normalization([0.5], [0.25], input_layer1)",
    ],
)
def test_valid_uses_of_interpreted_commands_check_clean(text):
    assert alls.check(text + "\n") == []


def test_a_sub_command_the_emulator_does_not_run_is_reported_as_info():
    (d,) = alls.check("pre_quantization_optimization(matmul_correction, layers={matmul*}, correction_type=zp_comp_block)\n")
    assert d.code == "ALS208" and d.severity is alls.Severity.INFO
