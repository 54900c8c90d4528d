"""YOLOv7, NanoDet (RepVGG-A with YOLOX's head) and CenterNet (ResNet-18/50), built as their exporters
write them (tests/zoo_more.py), cut where the zoo cuts them and named as the zoo names them
(docs/naming.md); each imports with nothing unsupported, runs as onnxruntime does and quantizes
with the default script."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest

import alls
from alls.runtime.analysis.metrics import cosine
from test_naming import SCRIPTS, ZOO, decoders, names, needs_zoo
from test_yolo import _images, _matches_onnxruntime, _quantized, cut_at
from zoo_more import (CENTERNET_START, build_centernet_resnet18, build_nanodet_repvgg_a12, build_yolov7,
                      centernet_heads, nanodet_predictions, yolov7_detections)

SIZE = 64
CENTERNET_ENDS = ["centernet0_conv3/BiasAdd", "centernet0_conv5/BiasAdd",
                  "threshold_confidence/threshold_activation/threshold_confidence/re_lu/Relu"]


def _yolov7() -> onnx.ModelProto:
    return build_yolov7(SIZE, width=8)


def _nanodet() -> onnx.ModelProto:
    return build_nanodet_repvgg_a12(SIZE, width=8)


def _centernet(layers: int = 18) -> onnx.ModelProto:
    return build_centernet_resnet18(SIZE, width=8, layers=layers)


# ------------------------------------------------------------------ names


@needs_zoo
def test_yolov7_detection_convs_have_the_zoo_names():
    """92 convs: the stride-8 detection conv reads a RepConv beside the PAN's MP transition and is
    counted after the transition's stride-2 branch conv and before its pooled branch's second conv."""
    model = _yolov7()
    heads = yolov7_detections(model)
    graph = alls.load_model(model, end_nodes=heads)
    assert names(graph, heads) == decoders("yolov7_nms_config.json", "encoded_layer") == ["conv70", "conv82", "conv92"]
    assert sum(layer.kind == "conv" for layer in graph) == 92


@needs_zoo
def test_yolov7_ties_go_by_node_name_not_file_order():
    """Each PAN level's output conv, the MP transition's 1x1 conv and its max pool read the same layer.
    With torch 1.x's names the two convs (``Conv_223``, ``Conv_285``) sort before ``MaxPool_219``;
    torch 1.13's scope names follow the file (``/model.76/m/MaxPool`` before ``/model.78/conv/Conv``)
    and the first count takes the max pool first, but the final count compares the first names as
    strings, ``conv`` before ``maxpool``, so either export has the zoo's conv70/82/92."""
    model = build_yolov7(SIZE, width=8, scope_names=True)
    heads = yolov7_detections(model)
    assert heads[0] == "/model.105/m.0/Conv"
    graph = alls.load_model(model, end_nodes=heads)
    assert names(graph, heads) == ["conv70", "conv82", "conv92"]
    torch1 = _yolov7()
    written = {n.name: n.output[0] for n in torch1.graph.node}
    readers = sorted(n.name for n in torch1.graph.node if written["Mul_218"] in n.input)  # conv66's SiLU
    assert readers == ["Conv_223", "Conv_285", "MaxPool_219"]  # the stride-8 ELAN's output, read three times


@needs_zoo
def test_yolov7x_stride8_detection_conv_is_one_later_here():
    """YOLOv7x (six 3x3 convs per ELAN, plain output convs): strides 16 and 32 have the zoo's names,
    stride 8 comes out conv82 where the zoo has conv81 (docs/naming.md): the zoo counts that level's
    output conv before the transition's 1x1 conv, and at stride 16, and in YOLOv7, after it."""
    model = build_yolov7(SIZE, width=8, variant="x")
    heads = yolov7_detections(model)
    graph = alls.load_model(model, end_nodes=heads)
    zoo = decoders("yolov7x_nms_config.json", "encoded_layer")
    got = names(graph, heads)
    assert got[1:] == zoo[1:] == ["conv96", "conv108"]
    assert (zoo[0], got[0]) == ("conv81", "conv82")
    assert sum(layer.kind == "conv" for layer in graph) == 108
    assert graph.get(heads[0]).name in graph.tie_numbered


@needs_zoo
def test_yolov7_training_form_detect_counts_its_implicit_add():
    """Exported without fusing (IDetect's ImplicitA, an Add of a learned per-channel constant before each
    detection conv, kept), the Add is a layer of its own; yolov7's export.py writes the fused model
    (``attempt_load`` fuses IDetect into its convs). The Add (``ew_add``, after ``conv`` as a string)
    waits behind the convs ready beside it, so the detection convs keep the zoo's numbers."""
    model = build_yolov7(SIZE, width=8, implicit=True)
    heads = yolov7_detections(model)
    graph = alls.load_model(model, end_nodes=heads)
    assert names(graph, heads) == ["conv70", "conv82", "conv92"]
    assert [graph[graph.get(h).inputs[0]].kind for h in heads] == ["ew_add"] * 3
    assert sum(layer.kind == "conv" for layer in graph) == 92  # ImplicitM, a scale after the conv, folds into it


@needs_zoo
def test_nanodet_repvgg_a12_predictions_have_the_zoo_names():
    """22 RepVGG convs and 3 laterals; the PAN has no conv between its levels, so each level's head
    (8 convs) is counted whole before the bottom-up add that leads to the next level's."""
    model = _nanodet()
    predictions = nanodet_predictions(model)
    graph = alls.load_model(model, end_nodes=predictions)
    assert names(graph, predictions) == decoders("nms_config_nanodet_repvgg_a12.json", "cls_layer", "reg_layer",
                                                 "objectness_layer")
    assert sum(layer.kind == "conv" for layer in graph) == 49


@needs_zoo
def test_centernet_resnet18_with_the_zoo_cut():
    """The zoo's start and end nodes; the size and offset convs and the post-processing's class output
    carry the config's names, and every layer its script puts at 16 bits is the heatmap conv or after it."""
    network = alls.read_zoo_network(ZOO / "networks" / "centernet_resnet_v1_18_postprocess.yaml")
    assert network.start_nodes == (CENTERNET_START,) and list(network.end_nodes) == CENTERNET_ENDS
    graph = alls.load_model(_centernet(), start_nodes=network.start_nodes, end_nodes=network.end_nodes)
    sources = [graph[out.inputs[0]].short_name for out in graph.outputs]
    assert sources == decoders("centernet_res18_with_division_nms_for_AP_test_threshold_0.json",
                               "reg_layer_w", "reg_layer_h", "cls_layer") == ["conv28", "conv29", "ew_add10"]
    heatmap = graph.get(centernet_heads()[0])
    assert heatmap.short_name == "conv27" and heatmap.activation == "sigmoid"
    script = (SCRIPTS / "centernet_resnet_v1_18_postprocess.alls").read_text()
    wide = re.search(r"quantization_param\(\[([^\]]*)\], precision_mode=a16_w16\)", script).group(1).split(", ")
    assert wide == ["conv27", "maxpool2", "conv30", "ew_add9", "ew_add10", "output_layer3"]
    after = {graph[name].short_name for name in _after(graph, heatmap.name)}
    assert set(wide[1:]) <= after
    assert sum(layer.kind == "conv" for layer in graph) == 30 and sum(layer.kind == "ew_add" for layer in graph) == 10


@needs_zoo
def test_centernet_resnet50_script_loss_layers():
    """ResNet-50's 53 convs and 16 adds: the script's finetune loss layers [ew_add18, conv61, conv63]
    are the class output, the size conv and the post-processing's conv (R18's conv30, at 16 bits there)."""
    graph = alls.load_model(_centernet(50), start_nodes=[CENTERNET_START], end_nodes=CENTERNET_ENDS)
    script = (SCRIPTS / "centernet_resnet_v1_50_postprocess.alls").read_text()
    loss = re.search(r"loss_layer_names=\[([^\]]*)\]", script).group(1).split(", ")
    assert loss == ["ew_add18", "conv61", "conv63"]
    assert [graph[out.inputs[0]].short_name for out in graph.outputs] == ["conv61", "conv62", "ew_add18"]
    assert graph.get("max_finder/negate/BiasAdd").short_name == "conv63"
    assert graph.get(centernet_heads()[0]).short_name == "conv60"


def _after(graph, name: str) -> set[str]:
    """The layers that read ``name``, directly or through others."""
    found, todo = set(), [name]
    while todo:
        current = todo.pop()
        for layer in graph:
            if current in layer.inputs and layer.name not in found:
                found.add(layer.name)
                todo.append(layer.name)
    return found


# ------------------------------------------------------------------ import, float and quantized runs


CUTS = {"yolov7": (_yolov7, yolov7_detections), "nanodet_repvgg_a12": (_nanodet, nanodet_predictions),
        "centernet_resnet_v1_18": (_centernet, lambda model: CENTERNET_ENDS)}


@pytest.mark.parametrize("name", sorted(CUTS))
def test_float_target_matches_onnxruntime(name):
    """Whole, and cut at the zoo's end nodes (against onnx's own extraction of that subgraph): nothing
    unsupported, each output within 1e-4 of its range of onnxruntime's."""
    build, ends = CUTS[name]
    model = build()
    _matches_onnxruntime(model, model)
    _matches_onnxruntime(model, cut_at(model, ends(model)), ends(model))


@pytest.mark.parametrize("name", sorted(CUTS))
def test_the_zoo_cut_quantizes_with_the_default_script(name):
    build, ends = CUTS[name]
    model = build()
    runner = _quantized(model, "", _images(64, 255.0), ends(model))
    x = _images(2, 255.0, seed=1)
    native = runner.infer(x, target="native").outputs
    numeric = runner.infer(x).outputs
    assert len(numeric) == len(ends(model))
    for key, value in numeric.items():
        assert np.isfinite(value).all() and cosine(native[key], value) > 0.99, key
