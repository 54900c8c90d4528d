"""YOLO detectors end to end: imported whole, float against onnxruntime, cut at the head convs,
quantized with the default script and with the zoo's own, run in integers, evaluated and analyzed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import onnx.utils
import pytest
from onnx import helper

import alls
from alls.cli import main
from alls.runtime.analysis.analyze import analyze
from alls.runtime.analysis.metrics import cosine
from alls.runtime.exec.native import run_float
from alls.runtime.session.runner import Runner
from zoo_models import build_ssd_mobilenet_v1, build_yolov5, build_yolov8, build_yolox_s

ort = pytest.importorskip("onnxruntime")

# the six convs Hailo's parser ends a YOLOv8 at: box (cv2) and class (cv3) of strides 8, 16, 32
HEAD_CONVS = tuple(f"/model.22/{branch}.{i}/{branch}.{i}.2/Conv" for i in range(3) for branch in ("cv2", "cv3"))

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus"
SIZE = 64  # the smallest input a YOLOv8 takes (stride 32), so that the tests stay quick


def zoo_script(network: str) -> str:
    """The model zoo's own script for ``network``, read from the corpus (skips when the corpus is absent)."""
    found = sorted(CORPUS.glob(f"hailo-ai__hailo_model_zoo*/hailo_model_zoo/cfg/alls/generic/{network}.alls"))
    if not found:
        pytest.skip(f"the corpus ({CORPUS}) has no {network}.alls")
    return found[-1].read_text()


def cut_at(model: onnx.ModelProto, end_nodes) -> onnx.ModelProto:
    """The model from its input to the outputs of ``end_nodes``, as Hailo's parser cuts it."""
    outputs = {n.name: n.output[0] for n in model.graph.node}
    extractor = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(model))
    return extractor.extract_model([model.graph.input[0].name], [outputs[e] for e in end_nodes])


def class_priors(model: onnx.ModelProto, nc: int = 80) -> onnx.ModelProto:
    """The class convs' biases set as ultralytics' Detect.bias_init sets them (log(5/nc/(640/s)²)):
    a trained detector's class logits sit far below zero."""
    convs = {n.name: n for n in model.graph.node}
    inits = {t.name: t for t in model.graph.initializer}
    for i, stride in enumerate((8, 16, 32)):
        bias = inits[convs[f"/model.22/cv3.{i}/cv3.{i}.2/Conv"].input[2]]
        bias.CopyFrom(onnx.numpy_helper.from_array(np.full(nc, math.log(5 / nc / (640 / stride) ** 2), np.float32),
                                                   bias.name))
    return model


def _images(n, scale=1.0, seed=0):
    return (np.random.default_rng(seed).random((n, SIZE, SIZE, 3)) * scale).astype(np.float32)


BUILT = {
    "yolov8n": lambda: build_yolov8("n", SIZE), "yolov8s": lambda: build_yolov8("s", SIZE),
    "yolov8m": lambda: build_yolov8("m", SIZE), "yolov5s": lambda: build_yolov5("s", SIZE, "spp"),
    "yolov5m_6.1": lambda: build_yolov5("m", SIZE, "6.1"), "yolox_s_leaky": lambda: build_yolox_s(SIZE),
    "ssd_mobilenet_v1": lambda: build_ssd_mobilenet_v1(),
}


@pytest.mark.parametrize("name", sorted(BUILT))
def test_float_target_matches_onnxruntime(name):
    """Each built network imports whole, and each output is within 1e-4 of its range of onnxruntime's."""
    model = BUILT[name]()
    _matches_onnxruntime(model, model)
    if name.startswith("yolov8"):  # the importer's cut against onnx's own extraction of the same subgraph
        _matches_onnxruntime(model, cut_at(model, HEAD_CONVS), HEAD_CONVS)


def _matches_onnxruntime(model, reference, end_nodes=()):
    graph = alls.load_model(model, end_nodes=list(end_nodes))
    assert graph.diagnostics == () and all(layer.supported for layer in graph)
    spec = model.graph.input[0]
    shape = [d.dim_value for d in spec.type.tensor_type.shape.dim]
    x = np.random.default_rng(3).random(shape).astype(np.float32)
    session = ort.InferenceSession(reference.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {spec.name: x})
    got, _ = run_float(graph, {spec.name: x})
    assert len(got) == len(expected)
    for value, want in zip(got.values(), expected):
        assert value.shape == want.shape
        assert np.abs(value - want).max() <= 1e-4 * np.ptp(want)


def test_the_whole_export_has_nothing_unsupported(tmp_path, capsys):
    path = tmp_path / "yolov8n.onnx"
    onnx.save(build_yolov8("n", SIZE), str(path))
    assert main(["layers", str(path)]) == 0
    out = capsys.readouterr().out
    for kind in ("feature_splitter", "slice", "softmax", "resize", "maxpool"):
        assert kind in out
    assert "unsupported" not in out.lower() and "ALS401" not in out


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """YOLOv8n, to be cut at its six head convs as Hailo's parser takes it (``end_nodes``)."""
    path = tmp_path_factory.mktemp("yolo") / "yolov8n.onnx"
    onnx.save(build_yolov8("n", SIZE), str(path))
    return path


def _quantized(model, script, data, end_nodes=HEAD_CONVS):
    runner = Runner(model, end_nodes=list(end_nodes))
    if script:
        runner.load_script(script)
    runner.quantize(data, progress=False)
    return runner


def _agree(runner, x, floor=0.99):
    native = runner.infer(x, target="native").outputs
    numeric = runner.infer(x).outputs
    assert len(numeric) == 6
    for name in native:
        assert cosine(native[name], numeric[name]) > floor, name
    return numeric


@pytest.fixture(scope="module")
def quantized_head(head):
    return _quantized(head, "", _images(64))


def test_the_head_cut_quantizes_with_the_default_script(quantized_head):
    runner = quantized_head
    numeric = _agree(runner, _images(4, seed=1))
    convs = [runner.graph[out.inputs[0]] for out in runner.graph.outputs]
    assert sorted(set(a for layer in convs for a in layer.aliases) & set(HEAD_CONVS)) == sorted(HEAD_CONVS)
    assert {v.shape[1:] for v in numeric.values()} == {(SIZE // s, SIZE // s, c) for s in (8, 16, 32) for c in (64, 80)}


def test_the_head_cut_quantizes_with_the_zoo_script(head):
    """The zoo's yolov8n.alls: normalization by 255, the class convs' sigmoids, its NMS and allocator
    lines; the outputs are the layers the zoo's NMS config reads, and its sigmoids land on the class convs."""
    script = zoo_script("yolov8n")
    config = json.loads((CORPUS.parent / "zoo-config" / "postprocess_config" / "yolov8n_nms_config.json").read_text())
    runner = _quantized(head, script, _images(64, 255.0))
    sources = [runner.graph[out.inputs[0]] for out in runner.graph.outputs]
    wanted = [name.split("/")[-1] for d in config["bbox_decoders"] for name in (d["reg_layer"], d["cls_layer"])]
    assert [layer.short_name for layer in sources] == wanted
    assert {layer.short_name for layer in sources if runner.plan[layer.name].activation == "sigmoid"} == \
        {d["cls_layer"].split("/")[-1] for d in config["bbox_decoders"]}
    _agree(runner, _images(4, 255.0, seed=1))


def test_eval_reports_each_output(quantized_head, tmp_path, capsys):
    runner = quantized_head
    runner.save(tmp_path / "q.npz")
    np.save(tmp_path / "x.npy", _images(4, seed=2))
    assert main(["eval", str(tmp_path / "q.npz"), "--data", str(tmp_path / "x.npy")]) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows == [out.short_name for out in runner.graph.outputs] and len(rows) == 6


def test_analyze_advises_sigmoids_on_the_class_convs():
    """Detect's class prior (bias log(5/nc/(640/s)²)) makes logits far below zero: put the sigmoid in."""
    model = class_priors(build_yolov8("n", SIZE))
    runner = _quantized(model, "model_optimization_config(calibration, batch_size=8, calibset_size=16)\n",
                        _images(16))
    analysis = analyze(runner.quantized, _images(4, seed=4), worst=1, isolation_images=2, progress=False)
    sigmoid = {a.layer for a in analysis.advice if a.key == "sigmoid_output"}
    classes = {runner.graph[out.inputs[0]].name for out in runner.graph.outputs
               if runner.graph[out.inputs[0]].output_shape[1] == 80}
    assert sigmoid == classes


def test_analyze_advises_splitting_a_yolov5_style_output_branch():
    """One 1x1 output conv writing boxes (wide) and objectness/classes (narrow), as YOLOv5's head does:
    split it into box and class convs and write the output at 16 bits."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((85, 16, 1, 1)).astype(np.float32) * 0.05
    w[:4] *= 200.0  # box offsets in pixels
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["h"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Conv", ["r", "w2", "b2"], ["y"])]
    inits = {"w1": rng.standard_normal((16, 3, 3, 3)).astype(np.float32) * 0.3, "b1": np.zeros(16, np.float32),
             "w2": w, "b2": np.zeros(85, np.float32)}
    graph = helper.make_graph(nodes, "v5", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, (1, 3, 16, 16))],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
                              [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    images = np.random.default_rng(1).random((16, 16, 16, 3)).astype(np.float32)
    runner = _quantized(model, "model_optimization_config(calibration, batch_size=8, calibset_size=16)\n", images, ())
    analysis = analyze(runner.quantized, images[:8], worst=1, isolation_images=4, progress=False)
    [advice] = [a for a in analysis.advice if a.key == "split_output_branch"]
    assert advice.layer.endswith("conv2") and advice.figures["wide_channels"] == 4
    assert advice.lines == ("quantization_param(output_layer1, precision_mode=a16_w16)",)
    assert not [d for d in alls.resolve(alls.parse(advice.lines[0]), runner.graph).diagnostics if d.is_error]
