"""Start and end nodes: the graph between them is imported, named and quantized; bad cuts are
located errors; a quantized file keeps its cut; zoo network configs give the cut and shape."""

import pathlib

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import alls
from alls.cli import main
from alls.zoo import parse_yaml_subset
from test_importer import DIGITS
from zoo_models import build_yolov8

ZOO = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "zoo-config"


def code_of(excinfo) -> str:
    return excinfo.value.diagnostics[0].code


def chain_with_skip():
    """x -> a -> b -> c, out = a + c (a skip connection around b and c); and a second input y
    that only d reads."""
    w = numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], [t], name=t.upper()) for t in ("a",)]
    nodes += [helper.make_node("Conv", [i, "w"], [o], name=o.upper()) for i, o in (("a", "b"), ("b", "c"))]
    nodes += [helper.make_node("Add", ["a", "c"], ["s"], name="ADD"),
              helper.make_node("Conv", ["y", "w"], ["d"], name="D")]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, 4, 4]) for n in ("x", "y")]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, 4, 4]) for n in ("s", "d")]
    return helper.make_model(helper.make_graph(nodes, "skip", vi, outs, [w]),
                             opset_imports=[helper.make_opsetid("", 13)])


def test_end_nodes_keep_what_they_need_and_name_it():
    graph = alls.load_model(chain_with_skip(), start_nodes=["A", "D"], end_nodes=["ADD", "D"])
    assert [l.short_name for l in graph] == ["input_layer1", "input_layer2", "conv1", "conv2", "conv3", "conv4",
                                             "ew_add1", "output_layer1", "output_layer2"]
    assert [graph.get(n).short_name for n in ("A", "D", "B", "C")] == ["conv1", "conv2", "conv3", "conv4"]
    graph = alls.load_model(chain_with_skip(), start_nodes=["B", "D"], end_nodes=["C", "D"])
    assert [l.kind for l in graph] == ["input_layer", "input_layer"] + ["conv"] * 3 + ["output_layer"] * 2
    assert graph.start_nodes == ("B", "D") and graph.end_nodes == ("C", "D")
    assert graph.inputs[0].output_shape == (1, 2, 4, 4)  # inferred from the original input


def test_bad_cuts_are_located_errors():
    with pytest.raises(alls.AllsError) as excinfo:
        alls.load_model(chain_with_skip(), end_nodes=["ADD", "DD"])
    assert code_of(excinfo) == "ALS406" and "`DD`" in str(excinfo.value)
    assert "`D`" in excinfo.value.diagnostics[0].help
    with pytest.raises(alls.AllsError) as excinfo:  # the skip from A reaches around the start node C
        alls.load_model(chain_with_skip(), start_nodes=["C", "D"], end_nodes=["ADD", "D"])
    assert code_of(excinfo) == "ALS407" and "`x`" in str(excinfo.value)
    with pytest.raises(alls.AllsError) as excinfo:  # the input y reaches no end node
        alls.load_model(chain_with_skip(), end_nodes=["ADD"])
    assert code_of(excinfo) == "ALS407" and "`y`" in str(excinfo.value)
    with pytest.raises(alls.AllsError) as excinfo:
        alls.load_model(chain_with_skip(), start_nodes=["C"], end_nodes=["B"])
    assert code_of(excinfo) == "ALS408" and "`C`" in str(excinfo.value)


def test_a_tensor_name_is_taken_for_its_node():
    graph = alls.load_model(DIGITS, end_nodes=["pool"])
    by_tensor = alls.load_model(DIGITS, end_nodes=[next(o for o in _outputs("pool"))])
    assert [l.name for l in graph] == [l.name for l in by_tensor]
    assert [l.kind for l in graph][-2:] == ["maxpool", "output_layer"]


def _outputs(node_name):
    import onnx

    return next(n.output for n in onnx.load(str(DIGITS)).graph.node if n.name == node_name)


def test_cli_cut_options_and_zoo_config(tmp_path, capsys):
    assert main(["layers", str(DIGITS), "--end-nodes", "pool"]) == 0
    out = capsys.readouterr().out
    assert "maxpool1" in out and "fc1" not in out
    assert main(["layers", str(DIGITS), "--end-nodes", "pol"]) == 2  # the tool could not run
    err = capsys.readouterr().err
    assert "ALS406" in err and "`pool`" in err
    config = tmp_path / "networks" / "digits.yaml"
    config.parent.mkdir()
    config.write_text("base:\n- base/digits_base.yaml\nparser:\n  nodes:\n  - conv1\n  - - pw\n")
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "digits_base.yaml").write_text("preprocessing:\n  input_shape:\n  - 8\n  - 8\n  - 1\n")
    assert main(["layers", str(DIGITS), "--zoo-config", str(config), "--json"]) == 0
    out = capsys.readouterr().out
    assert '"digits_cnn/conv2"' in out and 'maxpool1' not in out
    config.write_text("parser:\n  nodes:\n  - conv1\n  - - pww\n")  # the error points into the config
    assert main(["layers", str(DIGITS), "--zoo-config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "ALS406" in err and f"{config}:4:7" in err and "`pw`" in err
    config.write_text("parser: {nodes: [a, b]}\n")
    assert main(["layers", str(DIGITS), "--zoo-config", str(config)]) == 2
    assert "ALS409" in capsys.readouterr().err


def test_quantized_file_keeps_its_cut(tmp_path):
    pytest.importorskip("numba", reason="the integer runtime needs numba")
    from alls.runtime.session.model import load
    from alls.runtime.session.runner import Runner

    calib = np.load(DIGITS.parent / "calib.npy")
    runner = Runner(DIGITS, end_nodes=["pool"])
    assert runner.graph.outputs[0].inputs == (runner.graph.get("pool").name,)
    runner.quantize(calib, progress=False)
    runner.save(tmp_path / "q.npz")
    again = load(tmp_path / "q.npz")
    assert again.graph.end_nodes == ("pool",) and [l.name for l in again.graph] == [l.name for l in runner.graph]
    assert load(tmp_path / "q.npz", end_nodes=["pool"]).graph.end_nodes == ("pool",)
    with pytest.raises(alls.AllsError) as excinfo:
        load(tmp_path / "q.npz", end_nodes=["fc"])
    assert code_of(excinfo) == "ALS410"


def test_yaml_subset_reader():
    doc = parse_yaml_subset("a:\n  nodes:\n  - null\n  - - x/y\n    - 'z'\n  n: 3\nlong: one\n  two\nempty: []\n")
    assert doc == {"a": {"nodes": [None, ["x/y", "z"]], "n": 3}, "long": "one two", "empty": []}
    with pytest.raises(alls.AllsError) as excinfo:
        parse_yaml_subset("a: &anchor 1\n")
    assert code_of(excinfo) == "ALS409"


@pytest.mark.skipif(not ZOO.is_dir(), reason="../shared/zoo-config is not present")
def test_every_zoo_network_config_reads():
    configs = sorted((ZOO / "networks").glob("*.yaml"))
    read = [alls.read_zoo_network(p) for p in configs]
    assert len(read) == len(configs) > 200
    pose = alls.read_zoo_network(ZOO / "networks" / "yolov8s_pose.yaml")
    assert pose.input_shape == (1, 3, 640, 640) and pose.start_nodes == ()
    assert pose.end_nodes[0] == "/model.22/cv2.2/cv2.2.2/Conv" and len(pose.end_nodes) == 9


def crnn():
    """A CRNN's shape: conv, relu, a reshape to a sequence, an LSTM (unsupported)."""
    w = numpy_helper.from_array(np.random.default_rng(0).random((8, 1, 3, 3), np.float32), "w")
    lstm_w = numpy_helper.from_array(np.ones((1, 64, 64), np.float32), "W")
    lstm_r = numpy_helper.from_array(np.ones((1, 64, 16), np.float32), "R")
    shape = numpy_helper.from_array(np.array([8, 1, 64], np.int64), "shp")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Reshape", ["r", "shp"], ["seq"], name="to_seq"),
             helper.make_node("LSTM", ["seq", "W", "R"], ["Y", "Yh"], name="lstm", hidden_size=16)]
    graph = helper.make_graph(nodes, "crnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], [w, lstm_w, lstm_r, shape])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_unsupported_ops_after_a_cut_suggest_the_end_nodes():
    graph = alls.load_model(crnn())
    errors = [d for d in graph.diagnostics if d.code == "ALS401"]
    assert len(errors) == 1 and "`lstm`" in errors[0].message and "`crnn/lstm1`" in errors[0].message
    note = next(d for d in graph.diagnostics if d.code == "ALS411")
    assert note.help == "--end-nodes to_seq" and "LSTM" in note.message
    cut = alls.load_model(crnn(), end_nodes=note.help.split()[1].split(","))
    assert not cut.diagnostics and [l.kind for l in cut][1:3] == ["conv", "format_conversion"]
    assert cut.get("relu").short_name == "conv1"  # the relu fused into the conv stays inside the cut


def test_no_suggestion_when_the_cut_would_drop_real_work():
    model = crnn()
    model.graph.node[0].op_type = "ConvInteger"  # the first layer itself is unsupported
    assert not any(d.code == "ALS411" for d in alls.load_model(model).diagnostics)
    graph = alls.load_model(build_yolov8("n", imgsz=320))  # a Split early on: most convs come after it
    if any(not layer.supported for layer in graph):
        assert not any(d.code == "ALS411" for d in graph.diagnostics)
