"""The faithful zoo topologies: valid ONNX, run by onnxruntime, node names where the zoo's configs
expect them, and the conv count each published architecture has."""

import numpy as np
import onnx
import pytest

from zoo_models import (SSD_START, build_ssd_mobilenet_v1, build_yolo11, build_yolov5, build_yolov8, build_yolov10n,
                        build_yolox_s)

# Conv nodes per architecture, counted from the published configs (the DFL conv included for v8).
CONVS = {("v8", "n"): 64, ("v8", "s"): 64, ("v8", "m"): 84, ("v8", "l"): 104, ("v5", "s"): 70, ("v5", "m"): 94}


@pytest.mark.parametrize("scale", ["n", "m"])
def test_yolov8_export_names_and_shapes(scale):
    model = build_yolov8(scale, imgsz=320)
    onnx.checker.check_model(model)
    names = {n.name: n.op_type for n in model.graph.node}
    for i in range(3):  # the end nodes of the zoo's yolov8*_seg/_pose configs
        assert names[f"/model.22/cv2.{i}/cv2.{i}.2/Conv"] == "Conv"
        assert names[f"/model.22/cv3.{i}/cv3.{i}.2/Conv"] == "Conv"
    assert names["/model.9/m_2/MaxPool"] == "MaxPool" and names["/model.2/Split"] == "Split"
    assert names["/model.22/dfl/Softmax"] == "Softmax"
    assert sum(op == "Conv" for op in names.values()) == CONVS[("v8", scale)]
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [1, 84, 2100]


@pytest.mark.parametrize("version, convs", [("spp", 70), ("6.1", 60)])
def test_yolov5s_versions(version, convs):
    model = build_yolov5("s", imgsz=320, version=version)
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Conv") == convs
    assert ("Slice" in ops[:8]) == (version == "spp")  # the Focus stem
    assert ops.count("MaxPool") == 3


def test_yolox_end_nodes_are_where_the_zoo_names_them():
    model = build_yolox_s(imgsz=320)
    names = {n.name: n.op_type for n in model.graph.node}
    for conv, sig in ((197, 199), (213, 215), (229, 231)):  # networks/yolox_s_leaky.yaml parser.nodes
        assert names[f"Conv_{conv}"] == "Conv"
        assert names[f"Sigmoid_{sig}"] == names[f"Sigmoid_{sig + 1}"] == "Sigmoid"
    assert sum(op == "Conv" for op in names.values()) == 83


def test_ssd_mobilenet_nodes_and_onnxruntime():
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    model = build_ssd_mobilenet_v1()
    names = {n.name for n in model.graph.node}
    assert SSD_START in names
    assert {f"BoxPredictor_{i}/{k}/BiasAdd" for i in range(6) for k in ("BoxEncodingPredictor", "ClassPredictor")} <= names
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = session.run(None, {"normalized_input_image_tensor": np.zeros((1, 3, 300, 300), np.float32)})
    assert [o.shape[1:] for o in outs[:2]] == [(12, 19, 19), (273, 19, 19)]


def test_yolov8n_runs_in_onnxruntime():
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    model = build_yolov8("n", imgsz=320)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = session.run(None, {"images": np.random.default_rng(0).random((1, 3, 320, 320), np.float32)})[0]
    assert out.shape == (1, 84, 2100) and np.isfinite(out).all()
    assert 0 <= out[:, 4:].min() and out[:, 4:].max() <= 1  # class scores after the sigmoid


@pytest.mark.parametrize("build, convs, depthwise", [(lambda: build_yolo11("n", imgsz=64), 88, 7),
                                                     (lambda: build_yolov10n(imgsz=64), 83, 13)])
def test_yolo11_and_v10_run_in_onnxruntime(build, convs, depthwise):
    """Valid ONNX that onnxruntime runs; its Conv nodes (the DFL conv included) and depthwise convs as
    the published configs count them."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    model = build()
    onnx.checker.check_model(model)
    group = [next((a.i for a in n.attribute if a.name == "group"), 1) for n in model.graph.node if n.op_type == "Conv"]
    assert (len(group), sum(g > 1 for g in group)) == (convs, depthwise)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = session.run(None, {"images": np.random.default_rng(0).random((1, 3, 64, 64), np.float32)})[0]
    assert out.shape == (1, 84, 84) and np.isfinite(out).all()
