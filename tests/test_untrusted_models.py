"""Hostile models: graph validation (ALS440-ALS446) before the import, declared sizes (ALS023,
ALS024), bounded folding (ALS025, ALS026; Loop and Scan never folded), external data only from
the model's folder."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hostile import assert_refused, conv_weight, model, raw_tensor, run_isolated
from onnx import TensorProto, helper

import alls
from alls.cli import main


def refused(proto, *codes_, **kw) -> list[alls.Diagnostic]:
    with pytest.raises(alls.AllsError) as error:
        alls.load_model(proto, **kw)
    found = list(error.value.diagnostics)
    assert {d.code for d in found} == set(codes_), [d.message for d in found]
    return found


def node(op, inputs, output, name="", **attrs):
    return helper.make_node(op, inputs, [output], name=name or None, **attrs)


# -------------------------------------------------------------- structure


def test_a_cycle_names_its_nodes():
    found = refused(model([node("Add", ["x", "b"], "a", "first"), node("Relu", ["a"], "b", "second"),
                           node("Relu", ["a"], "y")]), "ALS440")
    assert "`first`" in found[0].message and "cycle" in found[0].message


def test_nodes_out_of_order_are_als440():
    found = refused(model([node("Relu", ["a"], "y", "late"), node("Relu", ["x"], "a", "early")]), "ALS440")
    assert "`late`" in found[0].message and "before" in found[0].message


def test_an_input_nobody_produces_is_als441():
    found = refused(model([node("Add", ["x", "ghost"], "y", "adder")]), "ALS441")
    assert "`adder`" in found[0].message and "`ghost`" in found[0].message


def test_two_producers_of_one_tensor_are_als442():
    found = refused(model([node("Relu", ["x"], "y", "one"), node("Sigmoid", ["x"], "y", "two")]), "ALS442")
    assert "`two`" in found[0].message and "`one`" in found[0].message


def test_an_identity_of_itself_is_als443_not_a_hang(tmp_path):
    proto = model([node("Relu", ["x"], "a"), node("Identity", ["y"], "y", "loop")])
    found = refused(proto, "ALS443")
    assert "`loop`" in found[0].message
    onnx.save(proto, tmp_path / "m.onnx")
    assert_refused(run_isolated(["layers", "m.onnx"], tmp_path, timeout=60), {"ALS443"})


# ------------------------------------------------------------------ tensors


def test_a_conv_with_zero_output_channels_is_als444():
    found = refused(model([node("Conv", ["x", "w"], "y", "conv")], {"w": np.zeros((0, 3, 3, 3), np.float32)}),
                    "ALS444")
    assert "`w`" in found[0].message


def test_an_empty_1d_placeholder_is_allowed():
    proto = model([node("Resize", ["x", "roi", "scales"], "y", mode="nearest")],
                  {"roi": np.zeros(0, np.float32), "scales": np.array([1, 1, 2, 2], np.float32)})
    assert alls.load_model(proto)["resize1"].output_shape == (1, 3, 16, 16)


def test_weights_whose_data_do_not_fill_their_shape_are_als445():
    bad = raw_tensor("w", (4, 3, 3, 3), np.zeros(100, np.float32).tobytes())
    found = refused(model([node("Conv", ["x", "w"], "y", "conv")], raw_inits=[bad]), "ALS445")
    assert "(4, 3, 3, 3)" in found[0].message and "100" in found[0].message


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_or_inf_weights_are_als446(value):
    w = conv_weight()
    w[1, 0, 0, 0] = value
    refused(model([node("Conv", ["x", "w"], "y", "conv")], {"w": w}), "ALS446")


def test_a_huge_declared_tensor_is_refused_before_it_is_read():
    bad = raw_tensor("w", (1 << 20, 1 << 20), b"")
    found = refused(model([node("Add", ["x", "w"], "y")], raw_inits=[bad]), "ALS023")
    assert "max_tensor_elements" in found[0].message


def test_the_constant_bytes_limit_names_itself():
    proto = model([node("Conv", ["x", "w"], "y")], {"w": conv_weight()})
    refused(proto, "ALS024", limits=alls.Limits(max_constant_bytes=100))
    assert alls.load_model(proto)["conv1"].kind == "conv"


@pytest.mark.parametrize("shape, code", [((1, 3, 1 << 70, 8), "ALS023"), ((1, 3, 100000, 100000), "ALS023"),
                                         ((1, 3, 0, 8), "ALS444"), ((1, 3, -8, 8), "ALS444")])
def test_input_shapes_given_are_checked(shape, code):
    refused(model([node("Relu", ["x"], "y")]), code, input_shapes=shape)


def test_cli_input_shape_beyond_int64_is_a_coded_error(tmp_path, capsys):
    onnx.save(model([node("Relu", ["x"], "y")]), tmp_path / "m.onnx")
    status = main(["layers", str(tmp_path / "m.onnx"), "--input-shape", "1,3,99999999999999999999999,8"])
    _, err = capsys.readouterr()
    assert status == 2 and "ALS023" in err


# ------------------------------------------------------------------ folding


def test_a_tiny_constant_of_shape_asking_for_gigabytes_is_als025(tmp_path):
    shape = helper.make_tensor("shape", TensorProto.INT64, (3,), [4096, 4096, 4096])
    proto = model([node("ConstantOfShape", ["shape"], "big", "bomb"), node("Add", ["x", "big"], "y")],
                  raw_inits=[shape])
    found = [d for d in alls.load_model(proto).diagnostics if d.code == "ALS025"]
    assert found and found[0].is_error
    assert "`bomb`" in found[0].message and "max_fold_elements" in found[0].message
    onnx.save(proto, tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").stat().st_size < 300
    assert_refused(run_isolated(["layers", "m.onnx"], tmp_path, timeout=60, memory=2 << 30), {"ALS025"})


def _counting_loop(trips: int):
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []), helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1])],
        initializer=[onnx.numpy_helper.from_array(np.ones(1, np.float32), "one")],
    )
    inits = [helper.make_tensor("trips", TensorProto.INT64, (), [trips]), helper.make_tensor("cond", TensorProto.BOOL, (), [True]),
             helper.make_tensor("v0", TensorProto.FLOAT, (1,), [0.0])]
    loop = helper.make_node("Loop", ["trips", "cond", "v0"], ["v"], name="forever", body=body)
    return model([loop, node("Add", ["x", "v"], "y")], raw_inits=inits)


def test_a_constant_loop_of_1e15_trips_is_never_folded(tmp_path):
    proto = _counting_loop(10**15)
    graph = alls.load_model(proto)
    assert any(d.code == "ALS401" and "`forever`" in d.message for d in graph.diagnostics)
    onnx.save(proto, tmp_path / "m.onnx")
    outcome = run_isolated(["layers", "m.onnx"], tmp_path, timeout=60)
    assert not outcome.timed_out and "Traceback" not in outcome.text and outcome.returncode == 1


def test_a_fold_over_its_time_budget_is_als026():
    a = np.random.default_rng(0).normal(size=(300, 300)).astype(np.float32)
    proto = model([node("MatMul", ["a", "a"], "c", "slow"), node("Add", ["x", "c"], "y")], {"a": a},
                  inputs={"x": (300, 300)})
    found = [d for d in alls.load_model(proto, limits=alls.Limits(max_fold_seconds=1e-6)).diagnostics
             if d.code == "ALS026"]
    assert found and "`slow`" in found[0].message and "max_fold_seconds" in found[0].message


# ------------------------------------------------------------ external data


def _external_model(tmp_path, location="weights.bin"):
    from onnx.external_data_helper import set_external_data

    w = conv_weight()
    proto = model([node("Conv", ["x", "w"], "y")], {"w": w})
    tensor = proto.graph.initializer[0]
    (tmp_path / "weights.bin").write_bytes(w.tobytes())
    set_external_data(tensor, location=location, length=w.nbytes)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    onnx.save(proto, tmp_path / "m.onnx")
    return w


def test_external_weights_are_read_from_the_models_folder_only(tmp_path, monkeypatch):
    w = _external_model(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    np.testing.assert_array_equal(alls.load_model(tmp_path / "m.onnx")["conv1"].params["weight"], w)


def test_external_data_outside_the_models_folder_is_refused(tmp_path):
    sub = tmp_path / "model"
    sub.mkdir()
    _external_model(sub, location="../weights.bin")
    (tmp_path / "weights.bin").write_bytes(conv_weight().tobytes())
    found = refused(sub / "m.onnx", "ALS402")
    assert "beside the model" in found[0].message
