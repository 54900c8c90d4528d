"""The importer's op registry: every family module is loaded, an op has one handler, and the
table is the only way from a node to a layer."""

from __future__ import annotations

import pathlib

import pytest
from test_importer import build, node

import alls
from alls.importer import HANDLERS
from alls.importer.ops import FAMILIES, identity
from alls.importer.registry import handles

OPS_FOLDER = pathlib.Path(alls.__file__).parent / "importer" / "ops"


def test_every_module_of_the_ops_folder_is_a_listed_family():
    modules = {p.stem for p in OPS_FOLDER.glob("*.py")} - {"__init__"}
    assert modules == {family.__name__.rsplit(".", 1)[-1] for family in FAMILIES}


def test_every_family_registers_a_handler_and_every_handler_lives_in_a_family():
    families = {family.__name__ for family in FAMILIES}
    owners = {handler.__module__ for handler in HANDLERS.values()}
    assert owners == families


def test_an_op_registered_twice_is_refused_with_both_handlers_named():
    with pytest.raises(ValueError, match=r"two handlers for the ONNX op `Relu`: alls\.importer\.ops\.activations\.relu"):
        handles("Relu")(lambda imp, n, data_in: None)
    assert HANDLERS["Relu"].__module__ == "alls.importer.ops.activations"


def test_a_registered_handler_is_what_turns_the_node_into_a_layer(monkeypatch):
    model = build([node("Neg", ["x"], "n", name="neg"), node("Relu", ["n"], "y")])
    graph = alls.load_model(model, name="net")
    assert [layer.kind for layer in graph if not layer.supported] == ["neg"]
    assert "no layer for the ONNX op `Neg`" in graph.diagnostics[0].message

    monkeypatch.setitem(HANDLERS, "Neg", identity.identity)  # Neg read as Identity: it vanishes
    graph = alls.load_model(model, name="net")
    assert [layer.kind for layer in graph] == ["input_layer", "activation", "output_layer"]
    assert graph.get("activation1").inputs == ("net/input_layer1",) and not graph.diagnostics

    monkeypatch.setitem(HANDLERS, "Neg", lambda imp, n, data_in: "a reason of the handler's own")
    graph = alls.load_model(model, name="net")
    assert [d.code for d in graph.diagnostics] == ["ALS401"]
    assert graph.diagnostics[0].message.endswith("(op `Neg`, layer `net/neg1`): a reason of the handler's own")
