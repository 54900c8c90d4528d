"""Hailo's layer numbering, checked name by name against the zoo's own configs.

Each faithful topology (tests/zoo_models.py) is cut at the zoo's end nodes and imported; the
layers its post-processing config names (reg_layer/cls_layer/... per scale) and the layers its
model script names for known roles must carry the same names here. The evidence is in
docs/naming.md; the networks built for it alone are checked in test_naming_evidence.py.
"""

import json
import pathlib
import re

import pytest

import alls
from alls.naming import NamingNode, disputed_layers, hailo_order, natural_key, number_layers
from zoo_models import (SSD_START, build_ssd_mobilenet_v1, build_yolo11, build_yolov5, build_yolov8, build_yolov10n,
                        build_yolov6n, build_yolov7_tiny, build_yolox, build_yolox_s, yolov6n_predictions,
                        yolox_predictions)

ZOO = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "zoo-config"
SCRIPTS = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / \
    "hailo-ai__hailo_model_zoo" / "hailo_model_zoo" / "cfg" / "alls" / "generic"
needs_zoo = pytest.mark.skipif(not ZOO.is_dir(), reason="../shared/zoo-config is not present")
V8_HEADS = [f"/model.22/{k}.{i}/{k}.{i}.2/Conv" for i in range(3) for k in ("cv2", "cv3")]


def decoders(config: str, *keys: str) -> list[str]:
    """The layer names a post-processing config gives, decoder by decoder, without the net scope."""
    doc = json.loads((ZOO / "postprocess_config" / config).read_text())
    return [d[k].rsplit("/", 1)[-1] for d in doc["bbox_decoders"] for k in keys]


def names(graph, nodes) -> list[str]:
    return [graph.get(n).short_name for n in nodes]


@needs_zoo
@pytest.mark.parametrize("scale", ["n", "s", "m"])
def test_yolov8_heads_have_the_zoo_names(scale):
    graph = alls.load_model(build_yolov8(scale, imgsz=320), end_nodes=V8_HEADS)
    zoo = decoders(f"yolov8{scale}_nms_config.json", "reg_layer", "cls_layer")
    assert names(graph, V8_HEADS) == zoo
    assert [l.short_name for l in graph.outputs] == [f"output_layer{i}" for i in range(1, 7)]
    assert sum(l.kind == "conv" for l in graph) == max(int(n[4:]) for n in zoo)  # the last head conv is the last conv


@needs_zoo
@pytest.mark.parametrize("scale", ["n", "s", "m", "l", "x"])
def test_yolo11_heads_have_the_zoo_names(scale):
    """YOLO11's class branch starts with a depthwise conv: its box branch is counted whole before its
    class convs (conv49-51, then conv52-54 for n): in the final count ``conv`` comes before ``dw`` as a
    string, so the box convs are taken while the depthwise conv waits; interleaved, the box convs would
    be conv52/63/78."""
    heads = [f"/model.23/{k}.{i}/{k}.{i}.2/Conv" for i in range(3) for k in ("cv2", "cv3")]
    graph = alls.load_model(build_yolo11(scale, imgsz=64), end_nodes=heads)
    zoo = decoders(f"yolov11{scale}_nms_config.json", "reg_layer", "cls_layer")
    assert names(graph, heads) == zoo
    assert sum(l.kind == "conv" for l in graph) == max(int(n[4:]) for n in zoo)
    script = (SCRIPTS / f"yolov11{scale}.alls").read_text()
    assert re.findall(r"change_output_activation\((conv\d+), sigmoid\)", script) == zoo[1::2]


@needs_zoo
def test_yolov6n_predictions_have_the_zoo_names():
    """YOLOv6n's head: a stem, then class and box convs side by side; the class, box and objectness
    predictions are consecutive (conv36/37/38), counted breadth-first in the order of their names."""
    model = build_yolov6n(imgsz=64)
    predictions = yolov6n_predictions(model)
    graph = alls.load_model(model, end_nodes=predictions)
    zoo = decoders("nms_config_yolov6n.json", "cls_layer", "reg_layer", "objectness_layer")
    assert names(graph, predictions) == zoo
    assert sum(l.kind == "conv" for l in graph) == 59 and sum(l.kind == "deconv" for l in graph) == 2


@needs_zoo
def test_yolov7_tiny_detection_convs_have_the_zoo_names():
    """YOLOv7-tiny's detection convs read 3x3 convs that branch off each PAN level beside the
    stride-2 conv; each is counted before the next ELAN block (conv43, conv51, conv58)."""
    model = build_yolov7_tiny(imgsz=64)
    heads = [n.name for n in model.graph.node if n.op_type == "Conv"][-3:]
    graph = alls.load_model(model, end_nodes=heads)
    assert names(graph, heads) == decoders("yolov7_tiny_nms_config.json", "encoded_layer")
    assert sum(l.kind == "conv" for l in graph) == 58


@needs_zoo
def test_yolov10n_with_the_zoo_cut():
    """YOLOv10n holds depthwise convs in its trunk (SCDown, C2fCIB) and its class branches; cut at the
    zoo's one-to-one head convs, every head has the zoo's name and the last is the last conv."""
    network = alls.read_zoo_network(ZOO / "networks" / "yolov10n.yaml")
    graph = alls.load_model(build_yolov10n(imgsz=64), end_nodes=network.end_nodes)
    zoo = decoders("yolov10n_nms_config.json", "reg_layer", "cls_layer")
    assert names(graph, network.end_nodes) == zoo
    assert sum(l.kind == "conv" for l in graph) == 69
    script = (SCRIPTS / "yolov10n.alls").read_text()
    assert re.findall(r"change_output_activation\((conv\d+), sigmoid\)", script) == zoo[1::2]


@needs_zoo
@pytest.mark.parametrize("scale", ["l", "x"])
def test_yolov8_large_heads_have_the_zoo_names(scale):
    """The l/x configs count the stride-32 box branch whole before the class branch (conv98-100, then
    conv101-103) where the strides 8 and 16 interleave: the first count's names of that head cross
    from two digits to three, and ``conv100`` is smaller than ``conv99`` as a string."""
    graph = alls.load_model(build_yolov8(scale, imgsz=320), end_nodes=V8_HEADS)
    zoo = decoders(f"yolov8{scale}_nms_config.json", "reg_layer", "cls_layer")
    assert names(graph, V8_HEADS) == zoo
    assert sum(l.kind == "conv" for l in graph) == 103
    script = (SCRIPTS / f"yolov8{scale}.alls").read_text()
    assert re.findall(r"change_output_activation\((conv\d+), sigmoid\)", script) == zoo[1::2]
    # the finetune's l2rel layers: the C2f outputs the three heads read, and the backbone's stride-8 C2f
    loss = re.search(r"loss_layer_names\s*=\s*\[([^\]]*)\]", script).group(1).split(",")
    feats = [f"/model.{i}/cv2/act/Mul" for i in (21, 18, 15, 4)]
    assert [graph.get(f).short_name for f in feats] == [n.strip() for n in loss[:4]]
    # the numbers the string comparison decided are marked: the stride-32 head but its first box and
    # last class conv (numbered alike either way)
    disputed = sorted((l.short_name for l in graph if l.name in graph.order_disputed and l.kind == "conv"),
                      key=natural_key)
    assert disputed == ["conv99", "conv100", "conv101", "conv102"]


@needs_zoo
@pytest.mark.parametrize("scale, marked", [("n", []), ("l", ["conv99", "conv100", "conv101", "conv102"])])
def test_numbers_decided_by_string_comparison_are_marked(scale, marked, tmp_path, capsys):
    """`alls layers` marks with `!` the numbers that comparing names as strings decided, and says so:
    YOLOv8l's stride-32 head, none of YOLOv8n's convs."""
    import onnx
    from alls.cli import main

    path = tmp_path / "v8.onnx"
    onnx.save(build_yolov8(scale, imgsz=64), str(path))
    assert main(["layers", str(path), "--end-nodes", ",".join(V8_HEADS)]) == 0
    out = capsys.readouterr().out
    rows = [line.split()[0].split("/")[1] for line in out.splitlines() if " ! " in line or line.endswith(" !")]
    assert sorted((r for r in rows if r.startswith("conv")), key=natural_key) == marked
    assert "as strings" in out.split("\n\n")[-1]


def test_names_compared_as_strings_count_a_branch_whole():
    # a chain to conv7, then two branches b and c of three convs: the first count interleaves them
    # (b0 conv8, c0 conv9, b1 conv10, ...); in the final count conv10 and conv12 come before conv9
    chain = [node(f"t{i}", [f"t{i - 1}"] if i else [], name=f"a/{i}") for i in range(7)]
    branches = [node(f"{b}{j}", [f"{b}{j - 1}" if j else "t6"], name=f"{b}/{j}") for b in "bc" for j in range(3)]
    nodes = chain + branches
    assert hailo_order(nodes, as_strings=False)[0][7:] == ["b0", "c0", "b1", "c1", "b2", "c2"]
    assert hailo_order(nodes)[0][7:] == ["b0", "b1", "b2", "c0", "c1", "c2"]
    _, short, _ = number_layers(nodes)
    assert [short[k] for k in ("b0", "b1", "b2", "c0", "c1", "c2")] == [f"conv{i}" for i in range(8, 14)]
    assert disputed_layers(nodes) == {"b1", "b2", "c0", "c1"}
    # two digits on both sides: interleaved, nothing disputed
    short_chain = chain[:3] + [node(n.key, [i if i != "t6" else "t2" for i in n.inputs], n.kind, n.node_name)
                               for n in branches]
    assert hailo_order(short_chain)[0][3:] == ["b0", "c0", "b1", "c1", "b2", "c2"]
    assert disputed_layers(short_chain) == set()


@needs_zoo
def test_yolov8n_script_roles_and_the_uncut_graph():
    script = (SCRIPTS / "yolov8n.alls").read_text()
    sigmoid = re.findall(r"change_output_activation\((conv\d+), sigmoid\)", script)
    whole = alls.load_model(build_yolov8("n", imgsz=320))
    assert names(whole, V8_HEADS[1::2]) == sigmoid == ["conv42", "conv53", "conv63"]
    assert names(whole, V8_HEADS[0::2]) == ["conv41", "conv52", "conv62"]
    assert whole.get("/model.22/dfl/conv/Conv").short_name == "conv64"  # after every head conv


@needs_zoo
@pytest.mark.parametrize("scale", ["n", "m"])
def test_yolov8_seg_class_convs_follow_node_name_order(scale):
    """Segment runs proto and cv4 before cv2/cv3, so the file's order would number them first; the
    zoo's scripts put the sigmoid on the class convs Hailo numbered in the node names' order."""
    network = alls.read_zoo_network(ZOO / "networks" / f"yolov8{scale}_seg.yaml")
    graph = alls.load_model(build_yolov8(scale, imgsz=320, task="seg"), end_nodes=network.end_nodes)
    script = (SCRIPTS / f"yolov8{scale}_seg.alls").read_text()
    sigmoid = re.findall(r"change_output_activation\((conv\d+), sigmoid\)", script)
    assert names(graph, [f"/model.22/cv3.{i}/cv3.{i}.2/Conv" for i in range(3)]) == sigmoid


@needs_zoo
@pytest.mark.parametrize("scale, version, config", [
    ("s", "spp", "yolov5s_nms_config.json"), ("m", "spp", "yolov5m_spp_nms_config.json"),
    ("s", "6.1", "yolov5s_6.1_nms_config.json"), ("m", "6.1", "yolov5m_6.1_nms_config.json"),
    ("n", "6.1", "yolov5n_6.1_nms_config.json"), ("l", "spp", "yolov5l_nms_config.json"),
    ("x", "spp", "yolov5x_nms_config.json")])
def test_yolov5_heads_have_the_zoo_names(scale, version, config):
    heads = [f"/model.24/m.{i}/Conv" for i in range(3)]
    graph = alls.load_model(build_yolov5(scale, imgsz=320, version=version), end_nodes=heads)
    assert names(graph, heads) == decoders(config, "encoded_layer")


@needs_zoo
def test_yolov5m_script_names_its_heads():
    script = (SCRIPTS / "yolov5m.alls").read_text()
    loss = re.search(r"loss_layer_names=\[([^\]]*)\]", script).group(1)
    heads = [f"/model.24/m.{i}/Conv" for i in (2, 1, 0)]
    graph = alls.load_model(build_yolov5("m", imgsz=320), end_nodes=heads)
    assert names(graph, heads) == [n.strip() for n in loss.split(",")]


@needs_zoo
def test_yolox_s_leaky_with_the_zoo_cut():
    network = alls.read_zoo_network(ZOO / "networks" / "yolox_s_leaky.yaml")
    graph = alls.load_model(build_yolox_s(imgsz=320), end_nodes=network.end_nodes)
    order = [(f"Sigmoid_{b + 3}", f"Conv_{b}", f"Sigmoid_{b + 2}") for b in (197, 213, 229)]  # cls, box, objectness
    got = names(graph, [n for level in order for n in level])
    assert got == decoders("nms_config_yolox_s_leaky.json", "cls_layer", "reg_layer", "objectness_layer")
    assert graph.get("Sigmoid_200").activation == "sigmoid"  # the end node's sigmoid fuses into its conv


@needs_zoo
@pytest.mark.parametrize("scale, config", [("tiny", "nms_config_yolox_tiny.json"),
                                           ("s", "nms_config_yolox_s_leaky.json"),
                                           ("l", "nms_config_yolox_l_leaky.json")])
def test_yolox_predictions_have_the_zoo_names(scale, config):
    model = build_yolox(scale, imgsz=64)
    predictions = yolox_predictions(model)
    graph = alls.load_model(model, end_nodes=predictions)
    assert names(graph, predictions) == decoders(config, "cls_layer", "reg_layer", "objectness_layer")
    if scale == "l":  # the zoo's end nodes are where torch numbered them: Conv_307 is the stride-8 box conv
        network = alls.read_zoo_network(ZOO / "networks" / "yolox_l_leaky.yaml")
        assert set(network.end_nodes) <= {n.name for n in model.graph.node}
        assert predictions[1::3] == ["Conv_307", "Conv_323", "Conv_339"]


@needs_zoo
def test_ssd_mobilenet_v1_with_the_zoo_cut():
    network = alls.read_zoo_network(ZOO / "networks" / "ssd_mobilenet_v1.yaml")
    assert network.start_nodes == (SSD_START,)
    model = build_ssd_mobilenet_v1()
    every = [f"BoxPredictor_{i}/{k}/BiasAdd" for i in range(6) for k in ("BoxEncodingPredictor", "ClassPredictor")]
    zoo = decoders("mobilenet_ssd_nms_postprocess_config.json", "reg_layer", "cls_layer")
    graph = alls.load_model(model, start_nodes=network.start_nodes, end_nodes=every)
    assert names(graph, every) == zoo
    graph = alls.load_model(model, start_nodes=network.start_nodes, end_nodes=network.end_nodes)
    assert names(graph, network.end_nodes) == zoo[:len(network.end_nodes)]
    assert [l.kind for l in graph.layers[:3]] == ["input_layer", "conv", "dw"]  # the preprocessing is cut off


# ------------------------------------------------------------------ the rule on small graphs


def node(key, inputs=(), kind="conv", name="", index=0):
    return NamingNode(key, tuple(inputs), kind, name or key, index)


def test_branches_are_counted_before_the_trunk_continues_through_a_merge():
    # x -> a (trunk) -> cat(a, x) ; x -> h0 -> h1 (head) ; x -> g0 -> g1 (head)
    nodes = [node("x"), node("a", ["x"], name="m16"), node("cat", ["a", "x"], "concat", "m17"),
             node("d", ["cat"], name="m18"), node("h0", ["x"], name="m22/cv2"), node("h1", ["h0"], name="m22/cv2b"),
             node("g0", ["x"], name="m22/cv3"), node("g1", ["g0"], name="m22/cv3b")]
    order, ties = hailo_order(nodes)
    assert order == ["x", "a", "h0", "g0", "h1", "g1", "cat", "d"]
    assert {"h1", "g1"} <= ties and "d" not in ties


def test_a_depthwise_layer_waits_for_the_convs_beside_it():
    # x -> b0 -> b1 (box) ; x -> d (dw) -> c0 -> c1 (class): "conv3" is smaller than "dw1", so b1 comes before d
    nodes = [node("x"), node("b0", ["x"], name="cv2.0"), node("b1", ["b0"], name="cv2.1"),
             node("d", ["x"], "dw", "cv3.0"), node("c0", ["d"], name="cv3.1"), node("c1", ["c0"], name="cv3.2")]
    order, _ = hailo_order(nodes)
    assert order == ["x", "b0", "b1", "d", "c0", "c1"]
    _, short, _ = number_layers(nodes)
    assert [short[k] for k in ("b0", "b1", "c0", "c1")] == ["conv2", "conv3", "conv4", "conv5"]


def test_readers_join_the_queue_in_natural_name_order():
    nodes = [node("x", name="Conv_9", index=0), node("b", ["x"], name="Conv_100", index=1),
             node("a", ["x"], name="Conv_99", index=2)]
    assert hailo_order(nodes)[0] == ["x", "a", "b"]
    assert natural_key("Conv_99") < natural_key("Conv_100") and natural_key("a/b") < natural_key("a/c")


def test_inputs_first_outputs_last_each_in_their_own_order():
    nodes = [node("in2", kind="input_layer", index=0), node("in1", kind="input_layer", index=1),
             node("c", ["in1", "in2"], index=2), node("o2", ["c"], "output_layer", index=3),
             node("o1", ["c"], "output_layer", index=4)]
    order, short, _ = number_layers(nodes)
    assert order == ["in2", "in1", "c", "o2", "o1"]
    assert [short[k] for k in order] == ["input_layer1", "input_layer2", "conv1", "output_layer1", "output_layer2"]


@needs_zoo
@pytest.mark.parametrize("scale", ["s", "m"])
def test_yolov8_pose_with_the_zoo_cut(scale):
    """Pose runs its keypoint branches first; the zoo's scripts put the sigmoid on the class convs
    and 16 bits on output_layer3/6/9, the keypoints in the order of the end nodes."""
    network = alls.read_zoo_network(ZOO / "networks" / f"yolov8{scale}_pose.yaml")
    graph = alls.load_model(build_yolov8(scale, imgsz=320, task="pose"), end_nodes=network.end_nodes)
    script = (SCRIPTS / f"yolov8{scale}_pose.alls").read_text()
    sigmoid = re.findall(r"change_output_activation\((conv\d+), sigmoid\)", script)
    assert names(graph, [f"/model.22/cv3.{i}/cv3.{i}.2/Conv" for i in (2, 1, 0)]) == sigmoid
    wide = re.findall(r"quantization_param\((output_layer\d+), precision_mode=a16_w16\)", script)
    keypoints = [graph.get(f"/model.22/cv4.{i}/cv4.{i}.2/Conv").name for i in (2, 1, 0)]
    assert [graph[o].inputs[0] for o in wide] == keypoints
