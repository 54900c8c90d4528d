"""Hailo's layer numbering on the networks whose zoo configs decide how names compare: YOLOv9c's
stride-8 box and class predictions are two apart (conv98, conv100) where every other level is
adjacent. Each faithful topology (tests/zoo_evidence.py) is cut at its prediction convs and
compared name by name with the zoo's post-processing config and model script (docs/naming.md)."""

import json
import pathlib
import re

import pytest

import alls
from alls.naming import natural_key
from zoo_evidence import build_yolov9c, yolov9c_predictions

ZOO = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "zoo-config"
SCRIPTS = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / \
    "hailo-ai__hailo_model_zoo" / "hailo_model_zoo" / "cfg" / "alls" / "generic"
needs_zoo = pytest.mark.skipif(not ZOO.is_dir(), reason="../shared/zoo-config is not present")


def decoders(config: str, *keys: str) -> list[str]:
    doc = json.loads((ZOO / "postprocess_config" / config).read_text())
    return [d[k].rsplit("/", 1)[-1] for d in doc["bbox_decoders"] for k in keys]


def _reads_within(graph, layer, kind: str, depth: int) -> bool:
    """Whether ``layer`` reads a layer of ``kind`` through at most ``depth`` layers."""
    sources = [s for s in map(graph.get, layer.inputs) if s is not None]
    return depth > 0 and any(s.kind == kind or _reads_within(graph, s, kind, depth - 1) for s in sources)


@pytest.fixture(scope="module")
def yolov9c():
    model = build_yolov9c(imgsz=64)
    predictions = yolov9c_predictions(model)
    return model, predictions, alls.load_model(model, end_nodes=predictions)


@needs_zoo
def test_yolov9c_predictions_have_the_zoo_names(yolov9c):
    """The first count gives the stride-8 head conv95-101 interleaved, with ADown's 3x3 conv (conv99)
    among them; in the final count ``conv100`` (the box prediction) is taken before ``conv98`` and
    ``conv99``, and ADown's split waits as ``feature_splitter`` behind every ready conv: box conv98,
    class conv100, and ADown's convs after the head (conv101, conv102)."""
    _, predictions, graph = yolov9c
    zoo = decoders("yolov9c_nms_config.json", "reg_layer", "cls_layer")
    assert [graph.get(p).short_name for p in predictions] == zoo == \
        ["conv98", "conv100", "conv121", "conv122", "conv143", "conv144"]
    assert sum(l.kind == "conv" for l in graph) == 144  # the last prediction is the last conv
    script = (SCRIPTS / "yolov9c.alls").read_text()
    assert re.findall(r"change_output_activation\((conv\d+), sigmoid\)", script) == zoo[1::2]
    # the neck's ADown convs (reading its average pool through the split, and a max pool) follow the heads
    adown = [l.short_name for l in graph if l.kind == "conv" and _reads_within(graph, l, "avgpool", 3)]
    assert adown[-4:] == ["conv101", "conv102", "conv123", "conv124"]


@needs_zoo
def test_yolov9c_numbers_the_string_comparison_decided_are_marked(yolov9c):
    _, _, graph = yolov9c
    marked = sorted((l.short_name for l in graph if l.name in graph.order_disputed and l.kind == "conv"),
                    key=natural_key)
    assert marked == ["conv98", "conv99"]  # box prediction and class conv 1, swapped compared as numbers
    assert graph.order_disputed <= graph.tie_numbered


@needs_zoo
def test_yolov9c_end_nodes_are_the_zoo_s_in_structure(yolov9c):
    """The zoo's end nodes are box and class prediction per level, torch's numbers 7 apart (the class
    branch: conv, SiLU as Sigmoid and Mul, twice, and the prediction conv). Its ONNX holds the training
    graph's auxiliary branch too (outside the cut, numbered before the head), so its numbers are larger."""
    model, predictions, _ = yolov9c
    network = alls.read_zoo_network(ZOO / "networks" / "yolov9c.yaml")
    zoo = [int(n.split("_")[1]) for n in network.end_nodes]
    here = [int(n.split("_")[1]) for n in predictions]
    assert [b - a for a, b in zip(zoo[::2], zoo[1::2])] == [b - a for a, b in zip(here[::2], here[1::2])] == [7] * 3
    ops = {n.name: n for n in model.graph.node}
    groups = [next(a.i for a in ops[p].attribute if a.name == "group") for p in predictions]
    assert groups == [4, 1] * 3  # the box prediction is a conv in 4 groups, as DDetect writes it


def test_yolov9c_runs_in_onnxruntime(yolov9c):
    """Valid ONNX that onnxruntime runs: 144 convs (none after the cut), five ADowns' average pools,
    and each level's 64 box and 80 class channels joined over its 8x8, 4x4 and 2x2 cells."""
    import numpy as np
    import onnx

    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    model, _, _ = yolov9c
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert (ops.count("Conv"), ops.count("AveragePool")) == (144, 5)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = session.run(None, {"images": np.random.default_rng(0).random((1, 3, 64, 64), np.float32)})[0]
    assert out.shape == (1, 144, 64 + 16 + 4) and np.isfinite(out).all()
