"""Selectors bound to the layers of the digits model."""

from __future__ import annotations

import pathlib

import pytest

import alls
from alls.selectors import select, unique_layers

DIGITS = pathlib.Path(__file__).resolve().parent.parent / "samples" / "digits" / "digits_cnn.onnx"


@pytest.fixture(scope="module")
def graph():
    return alls.load_model(DIGITS)


def run(graph, selector: str):
    value = alls.parse(f"quantization_param({selector})\n").statements[0].call.arguments[0].value
    matches, diagnostics = select(value, graph)
    return [l.short_name for l in unique_layers(matches)], [(d.code, d.span.column, d.help) for d in diagnostics]


@pytest.mark.parametrize(
    "selector, names",
    [
        ("conv3", ["conv3"]),
        ("digits_cnn/conv3", ["conv3"]),
        ("{conv*}", ["conv1", "conv2", "conv3"]),
        ("{*}", ["input_layer1", "conv1", "dw1", "conv2", "maxpool1", "conv3", "avgpool1", "fc1", "output_layer1"]),
        ("{conv[2-3]}", ["conv2", "conv3"]),
        ("{conv?}", ["conv1", "conv2", "conv3"]),
        ("{digits_cnn/*pool*}", ["maxpool1", "avgpool1"]),
        ("[fc1, {dw*}, conv1, fc1]", ["fc1", "dw1", "conv1"]),
        ("pw", ["conv2"]),  # the ONNX node name is an alias
    ],
)
def test_selectors_match_names_globs_scopes_lists_and_aliases(graph, selector, names):
    got, diagnostics = run(graph, selector)
    assert got == names and diagnostics == []


def test_globs_are_case_sensitive(graph):
    assert run(graph, "{CONV*}")[0] == []


def test_a_glob_that_matches_nothing_suggests_one_that_does(graph):
    names, diagnostics = run(graph, "{cnv*}")
    assert names == [] and diagnostics == [("ALS201", 20, "did you mean `{conv*}`? (3 layers)")]


def test_a_name_that_matches_nothing_suggests_the_nearest(graph):
    _, diagnostics = run(graph, "[conv1, cnv3]")
    assert diagnostics[0][:2] == ("ALS201", 28) and "`conv3`" in diagnostics[0][2]


def test_a_name_scoped_to_another_network_matches_with_a_warning(graph):
    names, diagnostics = run(graph, "[yolov5m/conv3, {yolov5m/dw*}]")
    assert names == ["conv3", "dw1"] and [d[0] for d in diagnostics] == ["ALS211", "ALS211"]


def test_nothing_at_all_lists_the_kinds_of_the_network(graph):
    _, diagnostics = run(graph, "{zz*}")
    assert "conv* (3)" in diagnostics[0][2] and "alls layers MODEL" in diagnostics[0][2]
