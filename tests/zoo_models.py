"""Faithful ONNX topologies of the detectors in Hailo's model zoo, built with `onnx.helper`.

Each builder returns an `onnx.ModelProto` with random weights whose layers, widths, depths, node
order and node names follow the published architecture and its exporter, so that Hailo's layer
names (`../shared/zoo-config/postprocess_config/*.json`) and end nodes
(`../shared/zoo-config/networks/*.yaml`, `parser.nodes`) can be checked against the importer:

- `build_yolov8(scale, imgsz)`: ultralytics YOLOv8 n/s/m/l/x as `yolo export format=onnx` writes
  it (node names ``/model.22/cv3.0/cv3.0.2/Conv``; batch norms fused; SiLU as Sigmoid and Mul;
  C2f with Split; SPPF's MaxPool chain; Resize upsampling; the DFL head with Reshape, Transpose,
  Softmax and a Conv; box decoding with Slice, Sub, Add, Div).
- `build_yolov5(scale, imgsz, version)`: ultralytics YOLOv5 s/m, ``"6.1"`` (6x6 stem conv, C3,
  SPPF; the zoo's ``yolov5s_6.1``/``yolov5m_6.1``) or ``"spp"`` (Focus stem as Slice and Concat,
  C3, SPP; the zoo's ``yolov5s``/``yolov5m``, whose configs name ``yolov5s_spp``), with the
  Detect head's Reshape/Transpose/Sigmoid decoding.
- `build_yolox(scale, imgsz)`, `build_yolox_s(imgsz)`: Megvii's YOLOX tiny/s/l as the zoo's
  ``yolox_*_leaky`` (LeakyReLU instead of SiLU; torch's ``Op_index`` node names, so that
  ``Conv_197`` is YOLOX-s's stride-8 box conv).
- `build_yolo11(scale, imgsz)`: ultralytics YOLO11 n/s/m/l/x (C3k2, C3k, SPPF, C2PSA attention with
  MatMul between activations and a depthwise positional conv, the Detect head whose class branch
  holds depthwise convs: ``/model.23/cv3.0/cv3.0.0/cv3.0.0.0/conv/Conv``).
- `build_yolov10n(imgsz)`: ultralytics YOLOv10n (SCDown, PSA, C2fCIB, the one-to-one head).
- `build_yolov6n(imgsz)`: Meituan's YOLOv6n 0.1.0 (the zoo's ``yolov6n``), re-parameterized, with
  torch 1.x's ``Conv_12`` names; `yolov6n_predictions` names its nine prediction convs.
- `build_yolov7_tiny(imgsz)`: YOLOv7-tiny as deployed (ELAN, max-pool downsampling, SPP-CSP, LeakyReLU,
  ``Conv_12`` names); its last three convs are the detection convs.
- `build_ssd_mobilenet_v1(imgsz)`: TF's SSD MobileNet v1 (COCO) with TensorFlow's node names
  (``BoxPredictor_0/BoxEncodingPredictor/BiasAdd``), the box predictors after the whole feature
  extractor, as TensorFlow's graph holds them.

``python tests/zoo_models.py OUT_DIR`` writes them all as ``.onnx`` files.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["build_yolov8", "build_yolov5", "build_yolox_s", "build_ssd_mobilenet_v1", "build_yolo11", "build_yolov10n", "build_yolov6n", "yolov6n_predictions",
           "build_yolov7_tiny", "build_yolox", "yolox_predictions",
           "ZOO_BUILDERS",
           "YOLOV8_SCALES", "YOLOV5_SCALES"]

OPSET = 17
# (depth multiple, width multiple, max channels), from ultralytics' yolov8.yaml and yolov5*.yaml
YOLOV8_SCALES = {"n": (0.33, 0.25, 1024), "s": (0.33, 0.50, 1024), "m": (0.67, 0.75, 768),
                 "l": (1.00, 1.00, 512), "x": (1.00, 1.25, 512)}
YOLOV5_SCALES = {"n": (0.33, 0.25), "s": (0.33, 0.50), "m": (0.67, 0.75), "l": (1.0, 1.0), "x": (1.33, 1.25)}
_ANCHORS_V5 = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))


class _Net:
    """Nodes, initializers and channel counts of a graph being written, in execution order."""

    def __init__(self, seed: int, torch_names: bool = False):
        self.nodes: list = []
        self.inits: list = []
        self.channels: dict[str, int] = {}
        self.rng = np.random.default_rng(seed)
        self.torch_names = torch_names  # `Conv_12` (old torch exports) instead of the scope path
        self._used: set[str] = set()

    def _name(self, name: str, op: str) -> str:
        if self.torch_names:
            return f"{op}_{len(self.nodes)}"
        base, k = name, 0
        while name in self._used:  # torch's rule for repeated names in one scope: `Concat_1`
            k += 1
            name = f"{base}_{k}"
        self._used.add(name)
        return name

    def const(self, value, name: str | None = None) -> str:
        name = name or f"onnx::const_{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op: str, inputs, name: str, channels: int | None = None, outputs: int = 1, **attrs):
        node_name = self._name(name, op)
        outs = [f"{node_name}_output_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=node_name, **attrs))
        if channels is not None:
            for o in outs:
                self.channels[o] = channels
        return outs[0] if outputs == 1 else outs

    def conv(self, x: str, c_out: int, k: int, s: int, scope: str, act: str | None = "silu", group: int = 1,
             pad: int | None = None, name: str | None = None) -> str:
        """A Conv (its batch norm fused, as the exporters write it) and its activation. ``scope`` is the
        module path (``model.2/m.0/cv1``): ultralytics names the conv ``/model.2/m.0/cv1/conv/Conv``
        and its SiLU ``/model.2/m.0/cv1/act/Sigmoid`` and ``.../act/Mul``; a plain conv (no
        activation) is ``/{scope}/Conv``; ``name`` overrides the conv's name."""
        c_in = self.channels[x]
        w = self.rng.normal(0, math.sqrt(2.0 / (c_in // group * k * k)), (c_out, c_in // group, k, k))
        inputs = [x, self.const(w.astype(np.float32)), self.const(self.rng.normal(0, 0.1, c_out).astype(np.float32))]
        p = k // 2 if pad is None else pad
        default = f"/{scope}/conv/Conv" if act else f"/{scope}/Conv"
        y = self.op("Conv", inputs, name or default, c_out, kernel_shape=[k, k], strides=[s, s], pads=[p] * 4,
                    group=group, dilations=[1, 1])
        return self.act(y, act, scope)

    def act(self, y: str, act: str | None, scope: str) -> str:
        c = self.channels[y]
        if act == "silu":
            s = self.op("Sigmoid", [y], f"/{scope}/act/Sigmoid", c)
            return self.op("Mul", [y, s], f"/{scope}/act/Mul", c)
        if act == "leaky":
            return self.op("LeakyRelu", [y], f"/{scope}/act/LeakyRelu", c, alpha=0.1)
        if act == "relu":
            return self.op("Relu", [y], f"/{scope}/act/Relu", c)
        if act == "relu6":  # TensorFlow's names
            return self.op("Clip", [y, self.const(np.float32(0)), self.const(np.float32(6))], f"{scope}/Relu6", c)
        return y

    def model(self, x_name: str, shape, outputs: list[tuple[str, str]], graph_name: str) -> onnx.ModelProto:
        """The model with one float input ``x_name`` and ``outputs`` as (tensor, output name)."""
        nodes = list(self.nodes)
        outs = []
        for tensor, name in outputs:
            nodes.append(helper.make_node("Identity", [tensor], [name], name=f"{name}_identity"))
            outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
        graph = helper.make_graph(nodes, graph_name, [helper.make_tensor_value_info(x_name, TensorProto.FLOAT, shape)],
                                  outs, initializer=self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="pytorch")
        model.ir_version = 8
        inferred = onnx.shape_inference.infer_shapes(model)  # the outputs' shapes, as an exporter writes them
        del model.graph.output[:]
        model.graph.output.extend(inferred.graph.output)
        return model


def _div8(x: float) -> int:
    return int(math.ceil(x / 8) * 8)


# ------------------------------------------------------------------ YOLOv8


def build_yolov8(scale: str = "n", imgsz: int = 640, nc: int = 80, seed: int = 0,
                 task: str = "detect") -> onnx.ModelProto:
    """ultralytics YOLOv8{scale} at ``imgsz`` x ``imgsz``, as ``yolo export format=onnx`` writes it;
    ``task="seg"``: YOLOv8{scale}-seg (the Segment head: Proto on the stride-8 map and cv4 mask
    coefficients, computed before the box and class branches, as its forward runs them)."""
    if task not in ("detect", "seg", "pose"):
        raise ValueError(f"task is 'detect', 'seg' or 'pose', not {task!r}")
    depth, width, max_ch = YOLOV8_SCALES[scale]

    def ch(c):
        return _div8(min(c, max_ch) * width)

    def n(k):
        return max(round(k * depth), 1)

    net = _Net(seed)
    net.channels["images"] = 3
    y = {}
    x = net.conv("images", ch(64), 3, 2, "model.0")
    x = net.conv(x, ch(128), 3, 2, "model.1")
    x = _c2f(net, x, ch(128), n(3), True, "model.2")
    x = net.conv(x, ch(256), 3, 2, "model.3")
    y[4] = x = _c2f(net, x, ch(256), n(6), True, "model.4")
    x = net.conv(x, ch(512), 3, 2, "model.5")
    y[6] = x = _c2f(net, x, ch(512), n(6), True, "model.6")
    x = net.conv(x, ch(1024), 3, 2, "model.7")
    x = _c2f(net, x, ch(1024), n(3), True, "model.8")
    y[9] = x = _sppf(net, x, ch(1024), "model.9")
    x = _concat(net, [_upsample(net, x, "model.10"), y[6]], "model.11")
    y[12] = x = _c2f(net, x, ch(512), n(3), False, "model.12")
    x = _concat(net, [_upsample(net, x, "model.13"), y[4]], "model.14")
    y[15] = x = _c2f(net, x, ch(256), n(3), False, "model.15")
    x = _concat(net, [net.conv(x, ch(256), 3, 2, "model.16"), y[12]], "model.17")
    y[18] = x = _c2f(net, x, ch(512), n(3), False, "model.18")
    x = _concat(net, [net.conv(x, ch(512), 3, 2, "model.19"), y[9]], "model.20")
    y[21] = _c2f(net, x, ch(1024), n(3), False, "model.21")
    feats = [y[15], y[18], y[21]]
    if task == "seg":
        proto, masks = _v8_segment(net, feats, _div8(min(256, max_ch) * width))
        out = net.op("Concat", [_v8_detect(net, feats, nc, imgsz), masks], "/model.22/Concat", axis=1)
        return net.model("images", [1, 3, imgsz, imgsz], [(out, "output0"), (proto, "output1")], f"yolov8{scale}_seg")
    if task == "pose":  # Pose runs its keypoint branches (cv4, 17 x 3 values) before Detect
        kpts = _v8_branches(net, feats, max(net.channels[feats[0]] // 4, 51), 51)
        out = net.op("Concat", [_v8_detect(net, feats, 1, imgsz), kpts], "/model.22/Concat", axis=1)
        return net.model("images", [1, 3, imgsz, imgsz], [(out, "output0")], f"yolov8{scale}_pose")
    out = _v8_detect(net, feats, nc, imgsz)
    return net.model("images", [1, 3, imgsz, imgsz], [(out, "output0")], f"yolov8{scale}")


def _v8_segment(net: _Net, feats: list[str], npr: int, nm: int = 32) -> tuple[str, str]:
    """Segment's Proto (conv, 2x2 stride-2 ConvTranspose, conv, conv) and its cv4 branches."""
    p = net.conv(feats[0], npr, 3, 1, "model.22/proto/cv1")
    c = net.channels[p]
    w = net.const(net.rng.normal(0, 0.1, (c, c, 2, 2)).astype(np.float32))
    p = net.op("ConvTranspose", [p, w, net.const(np.zeros(c, np.float32))], "/model.22/proto/upsample/ConvTranspose",
               c, kernel_shape=[2, 2], strides=[2, 2])
    p = net.conv(net.conv(p, npr, 3, 1, "model.22/proto/cv2"), nm, 1, 1, "model.22/proto/cv3")
    return p, _v8_branches(net, feats, max(net.channels[feats[0]] // 4, nm), nm)


def _v8_branches(net: _Net, feats: list[str], width: int, out: int) -> str:
    """The cv4 branches of Segment (mask coefficients) and Pose (keypoints), flattened and joined."""
    flat = []
    for i, x in enumerate(feats):
        h = net.conv(net.conv(x, width, 3, 1, f"model.22/cv4.{i}/cv4.{i}.0"), width, 3, 1, f"model.22/cv4.{i}/cv4.{i}.1")
        h = net.conv(h, out, 1, 1, f"model.22/cv4.{i}/cv4.{i}.2", act=None)
        flat.append(net.op("Reshape", [h, net.const(np.array([1, out, -1], np.int64))], "/model.22/Reshape", out))
    return net.op("Concat", flat, "/model.22/Concat", out, axis=2)


def _concat(net: _Net, xs: list[str], scope: str) -> str:
    return net.op("Concat", xs, f"/{scope}/Concat", sum(net.channels[x] for x in xs), axis=1)


def _upsample(net: _Net, x: str, scope: str) -> str:
    scales = net.const(np.array([1, 1, 2, 2], np.float32))
    return net.op("Resize", [x, "", scales], f"/{scope}/Resize", net.channels[x], mode="nearest",
                  coordinate_transformation_mode="asymmetric", nearest_mode="floor")


def _c2f(net: _Net, x: str, c2: int, n: int, shortcut: bool, scope: str) -> str:
    c = c2 // 2
    x = net.conv(x, 2 * c, 1, 1, f"{scope}/cv1")
    ys = list(net.op("Split", [x, net.const(np.array([c, c], np.int64))], f"/{scope}/Split", c, outputs=2, axis=1))
    for i in range(n):
        h = net.conv(ys[-1], c, 3, 1, f"{scope}/m.{i}/cv1")
        h = net.conv(h, c, 3, 1, f"{scope}/m.{i}/cv2")
        if shortcut:
            h = net.op("Add", [ys[-1], h], f"/{scope}/m.{i}/Add", c)
        ys.append(h)
    return net.conv(_concat(net, ys, scope), c2, 1, 1, f"{scope}/cv2")


def _sppf(net: _Net, x: str, c2: int, scope: str) -> str:
    c_ = net.channels[x] // 2
    ys = [net.conv(x, c_, 1, 1, f"{scope}/cv1")]
    for suffix in ("m", "m_1", "m_2"):
        ys.append(net.op("MaxPool", [ys[-1]], f"/{scope}/{suffix}/MaxPool", c_, kernel_shape=[5, 5],
                         strides=[1, 1], pads=[2, 2, 2, 2], dilations=[1, 1], ceil_mode=0))
    return net.conv(_concat(net, ys, scope), c2, 1, 1, f"{scope}/cv2")


def _anchor_points(imgsz: int, strides=(8, 16, 32)):
    points, stride_col = [], []
    for s in strides:
        g = imgsz // s
        sy, sx = np.meshgrid(np.arange(g) + 0.5, np.arange(g) + 0.5, indexing="ij")
        points.append(np.stack([sx.ravel(), sy.ravel()], 0))
        stride_col.append(np.full(g * g, s))
    return np.concatenate(points, 1)[None].astype(np.float32), np.concatenate(stride_col)[None, None].astype(np.float32)


def _v8_detect(net: _Net, feats: list[str], nc: int, imgsz: int, reg_max: int = 16, scope: str = "model.22",
               dw_class: bool = False, prefix: str = "") -> str:
    """ultralytics' Detect as exported: per level cv2 (box) and cv3 (class) branches of three convs,
    then the DFL decoding of the concatenated levels. ``dw_class``: YOLO11's class branch, a
    depthwise 3x3 and a 1x1 conv twice before the prediction conv; ``prefix``: YOLOv10's ``one2one_``."""
    c2 = max(16, net.channels[feats[0]] // 4, reg_max * 4)
    c3 = max(net.channels[feats[0]], min(nc, 100))
    no = nc + 4 * reg_max
    flat = []
    for i, x in enumerate(feats):
        box, cls = f"{scope}/{prefix}cv2.{i}/{prefix}cv2.{i}", f"{scope}/{prefix}cv3.{i}/{prefix}cv3.{i}"
        h = net.conv(net.conv(x, c2, 3, 1, f"{box}.0"), c2, 3, 1, f"{box}.1")
        branches = [net.conv(h, 4 * reg_max, 1, 1, f"{box}.2", act=None)]
        h = x
        for j in range(2):
            if dw_class:
                part = f"{cls}.{j}/{prefix}cv3.{i}.{j}"
                h = net.conv(h, net.channels[h], 3, 1, f"{part}.0", group=net.channels[h])
                h = net.conv(h, c3, 1, 1, f"{part}.1")
            else:
                h = net.conv(h, c3, 3, 1, f"{cls}.{j}")
        branches.append(net.conv(h, nc, 1, 1, f"{cls}.2", act=None))
        flat.append(_concat(net, branches, scope))
    flat = [net.op("Reshape", [f, net.const(np.array([1, no, -1], np.int64))], f"/{scope}/Reshape", no) for f in flat]
    x = net.op("Concat", flat, f"/{scope}/Concat", no, axis=2)
    box, cls = net.op("Split", [x, net.const(np.array([4 * reg_max, nc], np.int64))], f"/{scope}/Split", None,
                      outputs=2, axis=1)
    cells = sum((imgsz // s) ** 2 for s in (8, 16, 32))
    d = net.op("Reshape", [box, net.const(np.array([1, 4, reg_max, cells], np.int64))], f"/{scope}/dfl/Reshape")
    d = net.op("Transpose", [d], f"/{scope}/dfl/Transpose", reg_max, perm=[0, 2, 1, 3])
    d = net.op("Softmax", [d], f"/{scope}/dfl/Softmax", reg_max, axis=1)
    dfl_w = net.const(np.arange(reg_max, dtype=np.float32).reshape(1, reg_max, 1, 1), f"{scope}.dfl.conv.weight")
    d = net.op("Conv", [d, dfl_w], f"/{scope}/dfl/conv/Conv", 1, kernel_shape=[1, 1])
    d = net.op("Reshape", [d, net.const(np.array([1, 4, cells], np.int64))], f"/{scope}/dfl/Reshape")
    axis1 = net.const(np.array([1], np.int64))
    lt = net.op("Slice", [d, net.const(np.array([0], np.int64)), net.const(np.array([2], np.int64)), axis1],
                f"/{scope}/Slice")
    rb = net.op("Slice", [d, net.const(np.array([2], np.int64)), net.const(np.array([4], np.int64)), axis1],
                f"/{scope}/Slice")
    anchors, strides = _anchor_points(imgsz)
    anchors = net.const(anchors)
    x1y1 = net.op("Sub", [anchors, lt], f"/{scope}/Sub")
    x2y2 = net.op("Add", [anchors, rb], f"/{scope}/Add")
    c_xy = net.op("Div", [net.op("Add", [x1y1, x2y2], f"/{scope}/Add"), net.const(np.float32(2))], f"/{scope}/Div")
    wh = net.op("Sub", [x2y2, x1y1], f"/{scope}/Sub")
    dbox = net.op("Mul", [net.op("Concat", [c_xy, wh], f"/{scope}/Concat", axis=1), net.const(strides)], f"/{scope}/Mul")
    return net.op("Concat", [dbox, net.op("Sigmoid", [cls], f"/{scope}/Sigmoid")], f"/{scope}/Concat", axis=1)


# ------------------------------------------------------------------ YOLOv5


def build_yolov5(scale: str = "s", imgsz: int = 640, version: str = "spp", nc: int = 80,
                 seed: int = 0) -> onnx.ModelProto:
    """ultralytics YOLOv5{scale}. ``version="spp"``: the layout of the zoo's ``yolov5s``/``yolov5m``
    (``yolov5*_spp`` configs): Focus stem, BottleneckCSP blocks of 3/9/9/3, SPP(5, 9, 13) before the
    last block. ``"6.1"``: the zoo's ``yolov5*_6.1``: 6x6 stem conv, C3 blocks of 3/6/9/3, SPPF."""
    if version not in ("6.1", "spp"):
        raise ValueError(f"version is '6.1' or 'spp', not {version!r}")
    depth, width = YOLOV5_SCALES[scale]

    def ch(c):
        return _div8(c * width)

    def n(k):
        return max(round(k * depth), 1)

    net = _Net(seed)
    net.channels["images"] = 3
    block = _bottleneck_csp if version == "spp" else _c3
    y = {}
    if version == "spp":
        x = net.conv(_focus(net, "images", "model.0"), ch(64), 3, 1, "model.0/conv")
    else:
        x = net.conv("images", ch(64), 6, 2, "model.0", pad=2)
    x = block(net, net.conv(x, ch(128), 3, 2, "model.1"), ch(128), n(3), True, "model.2")
    y[4] = x = block(net, net.conv(x, ch(256), 3, 2, "model.3"), ch(256), n(9 if version == "spp" else 6), True,
                     "model.4")
    y[6] = x = block(net, net.conv(x, ch(512), 3, 2, "model.5"), ch(512), n(9), True, "model.6")
    x = net.conv(x, ch(1024), 3, 2, "model.7")
    if version == "spp":
        x = _bottleneck_csp(net, _spp(net, x, ch(1024), "model.8"), ch(1024), n(3), False, "model.9")
    else:
        x = _sppf(net, _c3(net, x, ch(1024), n(3), True, "model.8"), ch(1024), "model.9")
    y[10] = x = net.conv(x, ch(512), 1, 1, "model.10")
    x = block(net, _concat(net, [_upsample(net, x, "model.11"), y[6]], "model.12"), ch(512), n(3), False, "model.13")
    y[14] = x = net.conv(x, ch(256), 1, 1, "model.14")
    x = block(net, _concat(net, [_upsample(net, x, "model.15"), y[4]], "model.16"), ch(256), n(3), False, "model.17")
    y[17] = x
    x = _concat(net, [net.conv(x, ch(256), 3, 2, "model.18"), y[14]], "model.19")
    y[20] = x = block(net, x, ch(512), n(3), False, "model.20")
    x = _concat(net, [net.conv(x, ch(512), 3, 2, "model.21"), y[10]], "model.22")
    y[23] = block(net, x, ch(1024), n(3), False, "model.23")
    out = _v5_detect(net, [y[17], y[20], y[23]], nc, imgsz)
    return net.model("images", [1, 3, imgsz, imgsz], [(out, "output0")], f"yolov5{scale}")


def _focus(net: _Net, x: str, scope: str) -> str:
    """Space to depth as YOLOv5's Focus exports it: four strided Slice pairs and a Concat."""
    parts = []
    for oy, ox in ((0, 0), (1, 0), (0, 1), (1, 1)):
        for axis, start in ((2, oy), (3, ox)):
            x_in = parts.pop() if axis == 3 else x
            parts.append(net.op("Slice", [x_in, net.const(np.array([start], np.int64)),
                                          net.const(np.array([2**62], np.int64)), net.const(np.array([axis], np.int64)),
                                          net.const(np.array([2], np.int64))], f"/{scope}/Slice", net.channels[x]))
    return _concat(net, parts, scope)


def _bottleneck(net: _Net, x: str, c_: int, k1: int, shortcut: bool, scope: str, c2: int | None = None) -> str:
    """cv2(cv1(x)) (+ x): ``c_`` hidden channels, ``c2`` out (default ``c_``)."""
    c2 = c2 or c_
    h = net.conv(net.conv(x, c_, k1, 1, f"{scope}/cv1"), c2, 3, 1, f"{scope}/cv2")
    return net.op("Add", [x, h], f"/{scope}/Add", c2) if shortcut else h


def _c3(net: _Net, x: str, c2: int, n: int, shortcut: bool, scope: str, k1: int = 1) -> str:
    """C3 (YOLOv5; bottlenecks 1x1 then 3x3), or with ``k1=3`` YOLO11's C3k."""
    c_ = c2 // 2
    a = net.conv(x, c_, 1, 1, f"{scope}/cv1")
    for i in range(n):
        a = _bottleneck(net, a, c_, k1, shortcut, f"{scope}/m/m.{i}")
    b = net.conv(x, c_, 1, 1, f"{scope}/cv2")
    return net.conv(_concat(net, [a, b], scope), c2, 1, 1, f"{scope}/cv3")


def _bottleneck_csp(net: _Net, x: str, c2: int, n: int, shortcut: bool, scope: str) -> str:
    """cv4(act(bn(cat(cv3(m(cv1(x))), cv2(x))))): cv2 and cv3 are plain convs, the batch norm and
    activation after the concat stay in the export."""
    c_ = c2 // 2
    a = net.conv(x, c_, 1, 1, f"{scope}/cv1")
    for i in range(n):
        a = _bottleneck(net, a, c_, 1, shortcut, f"{scope}/m/m.{i}")
    a = net.conv(a, c_, 1, 1, f"{scope}/cv3", act=None)
    b = net.conv(x, c_, 1, 1, f"{scope}/cv2", act=None)
    x = _concat(net, [a, b], scope)
    rng = net.rng
    stats = [net.const(v.astype(np.float32)) for v in (rng.uniform(0.5, 1.5, 2 * c_), rng.normal(0, 0.1, 2 * c_),
                                                       rng.normal(0, 0.1, 2 * c_), rng.uniform(0.5, 1.5, 2 * c_))]
    x = net.op("BatchNormalization", [x, *stats], f"/{scope}/bn/BatchNormalization", 2 * c_)
    x = net.act(x, "silu", scope)
    return net.conv(x, c2, 1, 1, f"{scope}/cv4")


def _spp(net: _Net, x: str, c2: int, scope: str) -> str:
    c_ = net.channels[x] // 2
    x = net.conv(x, c_, 1, 1, f"{scope}/cv1")
    pools = [net.op("MaxPool", [x], f"/{scope}/m.{i}/MaxPool", c_, kernel_shape=[k, k], strides=[1, 1],
                    pads=[k // 2] * 4, dilations=[1, 1], ceil_mode=0) for i, k in enumerate((5, 9, 13))]
    return net.conv(_concat(net, [x, *pools], scope), c2, 1, 1, f"{scope}/cv2")


def _v5_detect(net: _Net, feats: list[str], nc: int, imgsz: int) -> str:
    """One 1x1 conv per level, then the export's decoding (sigmoid, grid and anchors)."""
    no, na = nc + 5, 3
    outs = []
    for i, x in enumerate(feats):
        g, stride = imgsz // (8 * 2**i), 8 * 2**i
        p = net.conv(x, na * no, 1, 1, f"model.24/m.{i}", act=None)
        p = net.op("Reshape", [p, net.const(np.array([1, na, no, g, g], np.int64))], "/model.24/Reshape")
        p = net.op("Sigmoid", [net.op("Transpose", [p], "/model.24/Transpose", perm=[0, 1, 3, 4, 2])], "/model.24/Sigmoid")
        xy, wh, conf = net.op("Split", [p, net.const(np.array([2, 2, no - 4], np.int64))], "/model.24/Split",
                              outputs=3, axis=4)
        grid = np.stack(np.meshgrid(np.arange(g), np.arange(g), indexing="xy"), -1)[None, None].astype(np.float32)
        xy = net.op("Mul", [xy, net.const(np.float32(2))], "/model.24/Mul")
        xy = net.op("Mul", [net.op("Add", [xy, net.const(grid - 0.5)], "/model.24/Add"), net.const(np.float32(stride))],
                    "/model.24/Mul")
        wh = net.op("Mul", [wh, net.const(np.float32(2))], "/model.24/Mul")
        wh = net.op("Pow", [wh, net.const(np.float32(2))], "/model.24/Pow")
        anchor = np.array(_ANCHORS_V5[i], np.float32).reshape(1, na, 1, 1, 2)
        wh = net.op("Mul", [wh, net.const(anchor)], "/model.24/Mul")
        p = net.op("Concat", [xy, wh, conf], "/model.24/Concat", axis=4)
        outs.append(net.op("Reshape", [p, net.const(np.array([1, -1, no], np.int64))], "/model.24/Reshape"))
    return net.op("Concat", outs, "/model.24/Concat", axis=1)


# ------------------------------------------------------------------ YOLOX


YOLOX_SCALES = {"tiny": (0.33, 0.375), "s": (0.33, 0.50), "l": (1.0, 1.0)}  # (depth, width), Megvii's exps


def build_yolox_s(imgsz: int = 640, nc: int = 80, seed: int = 0) -> onnx.ModelProto:
    """Megvii's YOLOX-s as the zoo's ``yolox_s_leaky`` (`build_yolox`)."""
    return build_yolox("s", imgsz, nc, seed)


def build_yolox(scale: str = "s", imgsz: int = 640, nc: int = 80, seed: int = 0) -> onnx.ModelProto:
    """Megvii's YOLOX (tiny, s, l) as the zoo's ``yolox_*_leaky``: CSPDarknet with a Focus stem, PAFPN
    and the decoupled head (stem, two class convs, two box convs; class, box and objectness
    predictions), LeakyReLU(0.1), torch's ``Op_index`` names (``Conv_197`` is YOLOX-s's stride-8 box
    prediction); `yolox_predictions` names the nine prediction convs."""
    depth, width = YOLOX_SCALES[scale]
    n = max(round(3 * depth), 1)
    net = _Net(seed, torch_names=True)
    net.channels["images"] = 3

    def ch(c):
        return int(c * width)

    def base(x, c_out, k=1, s=1):
        return net.conv(x, c_out, k, s, "", act="leaky")

    x = base(_focus(net, "images", ""), ch(64), 3)
    x = _csp(net, base(x, ch(128), 3, 2), ch(128), n, True)
    x2 = x = _csp(net, base(x, ch(256), 3, 2), ch(256), 3 * n, True)
    x1 = x = _csp(net, base(x, ch(512), 3, 2), ch(512), 3 * n, True)
    x = base(x, ch(1024), 3, 2)
    hidden = base(x, ch(512))
    pools = [net.op("MaxPool", [hidden], "", ch(512), kernel_shape=[k, k], strides=[1, 1], pads=[k // 2] * 4)
             for k in (5, 9, 13)]
    x = base(_concat(net, [hidden, *pools], ""), ch(1024))
    x0 = _csp(net, x, ch(1024), n, False)
    fpn_out0 = base(x0, ch(512))
    f = _csp(net, _concat(net, [_upsample_sizes(net, fpn_out0), x1], ""), ch(512), n, False)
    fpn_out1 = base(f, ch(256))
    pan_out2 = _csp(net, _concat(net, [_upsample_sizes(net, fpn_out1), x2], ""), ch(256), n, False)
    pan_out1 = _csp(net, _concat(net, [base(pan_out2, ch(256), 3, 2), fpn_out1], ""), ch(512), n, False)
    pan_out0 = _csp(net, _concat(net, [base(pan_out1, ch(512), 3, 2), fpn_out0], ""), ch(1024), n, False)
    outs = []
    hw = ch(256)
    for feat in (pan_out2, pan_out1, pan_out0):
        s = base(feat, hw)
        cls = net.conv(base(base(s, hw, 3), hw, 3), nc, 1, 1, "", act=None)
        reg = base(base(s, hw, 3), hw, 3)
        box, obj = (net.conv(reg, c, 1, 1, "", act=None) for c in (4, 1))
        outs.append(_concat(net, [box, net.op("Sigmoid", [obj], "", 1), net.op("Sigmoid", [cls], "", nc)], ""))
    outs = [net.op("Reshape", [o, net.const(np.array([1, nc + 5, -1], np.int64))], "") for o in outs]
    o = net.op("Transpose", [net.op("Concat", outs, "", axis=2)], "", perm=[0, 2, 1])
    return net.model("images", [1, 3, imgsz, imgsz], [(o, "output")], f"yolox_{scale}_leaky")


def yolox_predictions(model: onnx.ModelProto) -> list[str]:
    """The class, box and objectness prediction convs of each level of `build_yolox`, in that order
    (the zoo's ``cls_layer``, ``reg_layer``, ``objectness_layer``)."""
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"][-24:]  # per level: stem, cls, cls,
    return [convs[8 * level + k] for level in range(3) for k in (3, 6, 7)]  # cls_pred, reg, reg, box, obj


def _upsample_sizes(net: _Net, x: str) -> str:
    """``nn.Upsample(scale_factor=2)`` as torch 1.x exports it at opset 11: Resize to ``sizes``
    computed from the input's Shape (constant once the input shape is static)."""
    def const(value):
        return net.op("Constant", [], "", value=numpy_helper.from_array(np.asarray(value)))

    shape = net.op("Shape", [x], "")
    hw = net.op("Slice", [shape, const(np.array([2], np.int64)), const(np.array([4], np.int64))], "")
    hw = net.op("Mul", [net.op("Cast", [hw], "", to=TensorProto.FLOAT), const(np.array([2.0, 2.0], np.float32))], "")
    hw = net.op("Cast", [net.op("Floor", [hw], "")], "", to=TensorProto.INT64)
    shape = net.op("Shape", [x], "")
    nc = net.op("Slice", [shape, const(np.array([0], np.int64)), const(np.array([2], np.int64))], "")
    sizes = net.op("Cast", [net.op("Concat", [nc, hw], "", axis=0)], "", to=TensorProto.INT64)
    roi, scales = const(np.zeros(0, np.float32)), const(np.zeros(0, np.float32))
    return net.op("Resize", [x, roi, scales, sizes], "", net.channels[x], mode="nearest",
                  coordinate_transformation_mode="asymmetric", nearest_mode="floor")


def _csp(net: _Net, x: str, c_out: int, n: int, shortcut: bool) -> str:
    hidden = c_out // 2
    a = net.conv(x, hidden, 1, 1, "", act="leaky")
    b = net.conv(x, hidden, 1, 1, "", act="leaky")
    for _ in range(n):
        h = net.conv(net.conv(a, hidden, 1, 1, "", act="leaky"), hidden, 3, 1, "", act="leaky")
        a = net.op("Add", [h, a], "", hidden) if shortcut else h
    return net.conv(_concat(net, [a, b], ""), c_out, 1, 1, "", act="leaky")


# ------------------------------------------------------------------ SSD MobileNet v1

_FE = "FeatureExtractor/MobilenetV1/MobilenetV1"
SSD_START = ";".join(f"{_FE}/{part}" for part in (
    "Conv2d_0/Relu6", "Conv2d_0/BatchNorm/batchnorm/add_1", "Conv2d_1_depthwise/BatchNorm/batchnorm/mul_1",
    "Conv2d_1_depthwise/depthwise", "Conv2d_1_depthwise/BatchNorm/batchnorm/mul", "Conv2d_0/Conv2D",
    "Conv2d_0/BatchNorm/batchnorm/sub"))


def build_ssd_mobilenet_v1(imgsz: int = 300, num_classes: int = 91, seed: int = 0) -> onnx.ModelProto:
    """TF's ssd_mobilenet_v1_coco: MobileNet v1 to Conv2d_13_pointwise, four extra feature maps
    (1x1 then 3x3 stride 2), six box predictors (3 anchors on the first map, 6 on the others),
    ReLU6, TensorFlow's node names; the first conv carries the fused name the zoo's start node uses."""
    net = _Net(seed)
    net.channels["normalized_input_image_tensor"] = 3
    x = net.op("Sub", ["normalized_input_image_tensor", net.const(np.float32(127.5))], "Preprocessor/sub", 3)
    x = net.op("Mul", [x, net.const(np.float32(1 / 127.5))], "Preprocessor/mul", 3)
    x = net.conv(x, 32, 3, 2, f"{_FE}/Conv2d_0", act="relu6", name=SSD_START)
    widths = (64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)
    strides = (1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
    outputs: list[str] = []
    maps: list[str] = []
    for i, (w, s) in enumerate(zip(widths, strides), start=1):
        c_in, scope = net.channels[x], f"{_FE}/Conv2d_{i}_depthwise"
        x = net.conv(x, c_in, 3, s, scope, act="relu6", group=c_in, name=f"{scope}/depthwise")
        scope = f"{_FE}/Conv2d_{i}_pointwise"
        x = net.conv(x, w, 1, 1, scope, act="relu6", name=f"{scope}/Conv2D")
        if i in (11, 13):
            maps.append(x)
    for k, (mid, out) in enumerate(((256, 512), (128, 256), (128, 256), (64, 128)), start=2):
        scope = f"{_FE}/Conv2d_13_pointwise_1_Conv2d_{k}_1x1_{mid}"
        x = net.conv(x, mid, 1, 1, scope, act="relu6", name=f"{scope}/Conv2D")
        scope = f"{_FE}/Conv2d_13_pointwise_2_Conv2d_{k}_3x3_s2_{out}"
        x = net.conv(x, out, 3, 2, scope, act="relu6", name=f"{scope}/Conv2D")
        maps.append(x)
    for level, x in enumerate(maps):  # TF builds the box predictors after the whole feature extractor
        outputs += _ssd_predictor(net, x, level, 6 if level else 3, num_classes)
    named = [(t, t.split("_output_")[0].replace("/", "_")) for t in outputs]
    return net.model("normalized_input_image_tensor", [1, 3, imgsz, imgsz], named, "ssd_mobilenet_v1")


def _ssd_predictor(net: _Net, x: str, level: int, anchors: int, num_classes: int) -> list[str]:
    return [net.conv(x, anchors * width, 1, 1, f"BoxPredictor_{level}/{kind}", act=None,
                     name=f"BoxPredictor_{level}/{kind}/BiasAdd")
            for kind, width in (("BoxEncodingPredictor", 4), ("ClassPredictor", num_classes))]


# ------------------------------------------------------------------ YOLO11 / YOLOv10

# (depth, width, max channels) from ultralytics' yolo11.yaml and yolov10{n,s,m,b,l,x}.yaml
YOLO11_SCALES = {"n": (0.50, 0.25, 1024), "s": (0.50, 0.50, 1024), "m": (0.50, 1.00, 512),
                 "l": (1.00, 1.00, 512), "x": (1.00, 1.50, 512)}


def build_yolo11(scale: str = "n", imgsz: int = 640, nc: int = 80, seed: int = 0) -> onnx.ModelProto:
    """ultralytics YOLO11{scale} as ``yolo export format=onnx`` writes it: C3k2 blocks (C3k inside
    at m/l/x and in layers 6, 8, 22), SPPF, C2PSA attention (MatMul between activations), and the
    Detect head whose class branch runs a depthwise and a pointwise conv twice
    (``/model.23/cv3.0/cv3.0.0/cv3.0.0.0/conv/Conv``)."""
    depth, width, max_ch = YOLO11_SCALES[scale]
    c3k_all = scale in "mlx"

    def ch(c):
        return _div8(min(c, max_ch) * width)

    def n(k):
        return max(round(k * depth), 1)

    net = _Net(seed)
    net.channels["images"] = 3
    y = {}
    x = net.conv("images", ch(64), 3, 2, "model.0")
    x = net.conv(x, ch(128), 3, 2, "model.1")
    x = _c3k2(net, x, ch(256), n(2), c3k_all, 0.25, True, "model.2")
    x = net.conv(x, ch(256), 3, 2, "model.3")
    y[4] = x = _c3k2(net, x, ch(512), n(2), c3k_all, 0.25, True, "model.4")
    x = net.conv(x, ch(512), 3, 2, "model.5")
    y[6] = x = _c3k2(net, x, ch(512), n(2), True, 0.5, True, "model.6")
    x = net.conv(x, ch(1024), 3, 2, "model.7")
    x = _c3k2(net, x, ch(1024), n(2), True, 0.5, True, "model.8")
    x = _sppf(net, x, ch(1024), "model.9")
    y[10] = x = _c2psa(net, x, n(2), imgsz // 32, "model.10")
    x = _concat(net, [_upsample(net, x, "model.11"), y[6]], "model.12")
    y[13] = x = _c3k2(net, x, ch(512), n(2), c3k_all, 0.5, True, "model.13")
    x = _concat(net, [_upsample(net, x, "model.14"), y[4]], "model.15")
    y[16] = x = _c3k2(net, x, ch(256), n(2), c3k_all, 0.5, True, "model.16")
    x = _concat(net, [net.conv(x, ch(256), 3, 2, "model.17"), y[13]], "model.18")
    y[19] = x = _c3k2(net, x, ch(512), n(2), c3k_all, 0.5, True, "model.19")
    x = _concat(net, [net.conv(x, ch(512), 3, 2, "model.20"), y[10]], "model.21")
    y[22] = _c3k2(net, x, ch(1024), n(2), True, 0.5, True, "model.22")
    out = _v8_detect(net, [y[16], y[19], y[22]], nc, imgsz, scope="model.23", dw_class=True)
    return net.model("images", [1, 3, imgsz, imgsz], [(out, "output0")], f"yolo11{scale}")


def _c3k2(net: _Net, x: str, c2: int, n: int, c3k: bool, e: float, shortcut: bool, scope: str) -> str:
    """C2f whose blocks are C3k (a C3 of two 3x3 bottlenecks) or 3x3 bottlenecks of half width."""
    c = int(c2 * e)
    x = net.conv(x, 2 * c, 1, 1, f"{scope}/cv1")
    ys = list(net.op("Split", [x, net.const(np.array([c, c], np.int64))], f"/{scope}/Split", c, outputs=2, axis=1))
    for i in range(n):
        if c3k:
            h = _c3(net, ys[-1], c, 2, shortcut, f"{scope}/m.{i}", k1=3)
        else:
            h = _bottleneck(net, ys[-1], c // 2, 3, shortcut, f"{scope}/m.{i}", c)
        ys.append(h)
    return net.conv(_concat(net, ys, scope), c2, 1, 1, f"{scope}/cv2")


def _c2psa(net: _Net, x: str, n: int, hw: int, scope: str) -> str:
    c1 = net.channels[x]
    c = c1 // 2
    x = net.conv(x, 2 * c, 1, 1, f"{scope}/cv1")
    a, b = net.op("Split", [x, net.const(np.array([c, c], np.int64))], f"/{scope}/Split", c, outputs=2, axis=1)
    for i in range(n):
        b = _psa_block(net, b, hw, f"{scope}/m/m.{i}")
    return net.conv(_concat(net, [a, b], scope), c1, 1, 1, f"{scope}/cv2")


def _psa_block(net: _Net, x: str, hw: int, scope: str) -> str:
    x = net.op("Add", [x, _attention(net, x, hw, f"{scope}/attn")], f"/{scope}/Add", net.channels[x])
    c = net.channels[x]
    h = net.conv(net.conv(x, 2 * c, 1, 1, f"{scope}/ffn/ffn.0"), c, 1, 1, f"{scope}/ffn/ffn.1", act=None,
                 name=f"/{scope}/ffn/ffn.1/conv/Conv")
    return net.op("Add", [x, h], f"/{scope}/Add_1", c)


def _attention(net: _Net, x: str, hw: int, scope: str) -> str:
    """ultralytics' Attention: a 1x1 qkv conv, per-head q·k softmax and v·attn (MatMul between
    activations), a depthwise 3x3 positional conv on v, and a 1x1 projection."""
    c = net.channels[x]
    heads = max(c // 64, 1)
    head_dim, key_dim = c // heads, c // heads // 2
    qkv = net.conv(x, c + 2 * key_dim * heads, 1, 1, f"{scope}/qkv", act=None, name=f"/{scope}/qkv/conv/Conv")
    qkv = net.op("Reshape", [qkv, net.const(np.array([1, heads, 2 * key_dim + head_dim, -1], np.int64))],
                 f"/{scope}/Reshape")
    q, k, v = net.op("Split", [qkv, net.const(np.array([key_dim, key_dim, head_dim], np.int64))], f"/{scope}/Split",
                     outputs=3, axis=2)
    attn = net.op("MatMul", [net.op("Transpose", [q], f"/{scope}/Transpose", perm=[0, 1, 3, 2]), k], f"/{scope}/MatMul")
    attn = net.op("Softmax", [net.op("Mul", [attn, net.const(np.float32(key_dim ** -0.5))], f"/{scope}/Mul")],
                  f"/{scope}/Softmax", axis=-1)
    o = net.op("MatMul", [v, net.op("Transpose", [attn], f"/{scope}/Transpose_1", perm=[0, 1, 3, 2])],
               f"/{scope}/MatMul_1")
    o = net.op("Reshape", [o, net.const(np.array([1, c, hw, hw], np.int64))], f"/{scope}/Reshape_1", c)
    pv = net.op("Reshape", [v, net.const(np.array([1, c, hw, hw], np.int64))], f"/{scope}/Reshape_2", c)
    pe = net.conv(pv, c, 3, 1, f"{scope}/pe", act=None, group=c, name=f"/{scope}/pe/conv/Conv")
    o = net.op("Add", [o, pe], f"/{scope}/Add", c)
    return net.conv(o, c, 1, 1, f"{scope}/proj", act=None, name=f"/{scope}/proj/conv/Conv")


def build_yolov10n(imgsz: int = 640, nc: int = 80, seed: int = 0) -> onnx.ModelProto:
    """ultralytics YOLOv10n as exported: C2f, SCDown (1x1 conv then a depthwise stride-2 conv), SPPF,
    PSA attention, C2fCIB (depthwise 3x3 / pointwise / a fused 7x7 RepVGGDW) and the one-to-one
    head (``/model.23/one2one_cv3.0/one2one_cv3.0.0/one2one_cv3.0.0.0/conv/Conv``); the decoding
    after the head convs is YOLOv8's (the zoo cuts it off)."""
    depth, width, max_ch = YOLOV8_SCALES["n"]

    def ch(c):
        return _div8(min(c, max_ch) * width)

    def n(k):
        return max(round(k * depth), 1)

    net = _Net(seed)
    net.channels["images"] = 3
    y = {}
    x = net.conv("images", ch(64), 3, 2, "model.0")
    x = _c2f(net, net.conv(x, ch(128), 3, 2, "model.1"), ch(128), n(3), True, "model.2")
    y[4] = x = _c2f(net, net.conv(x, ch(256), 3, 2, "model.3"), ch(256), n(6), True, "model.4")
    y[6] = x = _c2f(net, _scdown(net, x, ch(512), "model.5"), ch(512), n(6), True, "model.6")
    x = _c2f(net, _scdown(net, x, ch(1024), "model.7"), ch(1024), n(3), True, "model.8")
    y[10] = x = _psa(net, _sppf(net, x, ch(1024), "model.9"), imgsz // 32, "model.10")
    y[13] = x = _c2f(net, _concat(net, [_upsample(net, x, "model.11"), y[6]], "model.12"), ch(512), n(3), False,
                     "model.13")
    y[16] = x = _c2f(net, _concat(net, [_upsample(net, x, "model.14"), y[4]], "model.15"), ch(256), n(3), False,
                     "model.16")
    x = _concat(net, [net.conv(x, ch(256), 3, 2, "model.17"), y[13]], "model.18")
    y[19] = x = _c2f(net, x, ch(512), n(3), False, "model.19")
    x = _concat(net, [_scdown(net, x, ch(512), "model.20"), y[10]], "model.21")
    y[22] = _c2f_cib(net, x, ch(1024), n(3), "model.22")
    out = _v8_detect(net, [y[16], y[19], y[22]], nc, imgsz, scope="model.23", dw_class=True, prefix="one2one_")
    return net.model("images", [1, 3, imgsz, imgsz], [(out, "output0")], "yolov10n")


def _scdown(net: _Net, x: str, c2: int, scope: str) -> str:
    x = net.conv(x, c2, 1, 1, f"{scope}/cv1")
    return net.conv(x, c2, 3, 2, f"{scope}/cv2", act=None, group=c2, name=f"/{scope}/cv2/conv/Conv")


def _psa(net: _Net, x: str, hw: int, scope: str) -> str:
    """YOLOv10's PSA: half the channels through attention and a feed-forward pair, then joined."""
    c1 = net.channels[x]
    c = c1 // 2
    x = net.conv(x, 2 * c, 1, 1, f"{scope}/cv1")
    a, b = net.op("Split", [x, net.const(np.array([c, c], np.int64))], f"/{scope}/Split", c, outputs=2, axis=1)
    b = _psa_block(net, b, hw, scope)
    return net.conv(_concat(net, [a, b], scope), c1, 1, 1, f"{scope}/cv2")


def _c2f_cib(net: _Net, x: str, c2: int, n: int, scope: str) -> str:
    """C2f whose blocks are CIB: depthwise 3x3, pointwise, RepVGGDW (fused: depthwise 7x7), pointwise,
    depthwise 3x3, with the shortcut."""
    c = c2 // 2
    x = net.conv(x, 2 * c, 1, 1, f"{scope}/cv1")
    ys = list(net.op("Split", [x, net.const(np.array([c, c], np.int64))], f"/{scope}/Split", c, outputs=2, axis=1))
    for i in range(n):
        part = f"{scope}/m.{i}/cv1/cv1"
        h = net.conv(ys[-1], c, 3, 1, f"{part}.0", group=c)
        h = net.conv(h, 2 * c, 1, 1, f"{part}.1")
        h = net.conv(h, 2 * c, 7, 1, f"{part}.2", group=2 * c, name=f"/{part}.2/conv/conv/Conv")
        h = net.conv(net.conv(h, c, 1, 1, f"{part}.3"), c, 3, 1, f"{part}.4", group=c)
        ys.append(net.op("Add", [ys[-1], h], f"/{scope}/m.{i}/Add", c))
    return net.conv(_concat(net, ys, scope), c2, 1, 1, f"{scope}/cv2")

# ------------------------------------------------------------------ YOLOv6


def build_yolov6n(imgsz: int = 640, nc: int = 80, seed: int = 0) -> onnx.ModelProto:
    """Meituan's YOLOv6n of release 0.1.0 (the zoo's ``yolov6n``) as torch 1.x exports it (``Conv_12``
    names): EfficientRep with its RepVGG blocks re-parameterized into 3x3 convs with ReLU, SimSPPF,
    RepPAN upsampling by 2x2 ConvTranspose, and the efficient decoupled head (a 1x1 stem, a class
    and a box conv with SiLU, class, box and objectness predictions)."""
    net = _Net(seed, torch_names=True)
    net.channels["images"] = 3

    def rep(x, c, s=1):
        return net.conv(x, c, 3, s, "", act="relu")

    def block(x, c, n):  # RepBlock: n RepVGG convs
        for _ in range(n):
            x = rep(x, c)
        return x

    def deconv(x):
        c = net.channels[x]
        w = net.const(net.rng.normal(0, 0.1, (c, c, 2, 2)).astype(np.float32))
        return net.op("ConvTranspose", [x, w, net.const(np.zeros(c, np.float32))], "", c, kernel_shape=[2, 2],
                      strides=[2, 2])

    x = rep("images", 16, 2)
    x = block(rep(x, 32, 2), 32, 2)
    x2 = x = block(rep(x, 64, 2), 64, 4)
    x1 = x = block(rep(x, 128, 2), 128, 6)
    x = block(rep(x, 256, 2), 256, 2)
    hidden = net.conv(x, 128, 1, 1, "", act="relu")  # SimSPPF
    pools = [hidden]
    for _ in range(3):
        pools.append(net.op("MaxPool", [pools[-1]], "", 128, kernel_shape=[5, 5], strides=[1, 1], pads=[2] * 4))
    x0 = net.conv(_concat(net, pools, ""), 256, 1, 1, "", act="relu")
    fpn0 = net.conv(x0, 64, 1, 1, "", act="relu")
    f = block(_concat(net, [deconv(fpn0), x1], ""), 64, 4)
    fpn1 = net.conv(f, 32, 1, 1, "", act="relu")
    pan2 = block(_concat(net, [deconv(fpn1), x2], ""), 32, 4)
    pan1 = block(_concat(net, [net.conv(pan2, 32, 3, 2, "", act="relu"), fpn1], ""), 64, 4)
    pan0 = block(_concat(net, [net.conv(pan1, 64, 3, 2, "", act="relu"), fpn0], ""), 128, 4)
    outs = []
    for feat in (pan2, pan1, pan0):
        c = net.channels[feat]
        stem = net.conv(feat, c, 1, 1, "")
        cls = net.conv(net.conv(stem, c, 3, 1, ""), nc, 1, 1, "", act=None)
        reg_feat = net.conv(stem, c, 3, 1, "")
        reg, obj = (net.conv(reg_feat, k, 1, 1, "", act=None) for k in (4, 1))
        outs.append(_concat(net, [reg, net.op("Sigmoid", [obj], "", 1), net.op("Sigmoid", [cls], "", nc)], ""))
    outs = [net.op("Reshape", [o, net.const(np.array([1, nc + 5, -1], np.int64))], "") for o in outs]
    o = net.op("Transpose", [net.op("Concat", outs, "", axis=2)], "", perm=[0, 2, 1])
    return net.model("images", [1, 3, imgsz, imgsz], [(o, "outputs")], "yolov6n")


def yolov6n_predictions(model: onnx.ModelProto) -> list[str]:
    """The class, box and objectness prediction convs of each level of `build_yolov6n`, in that order
    (the order of the zoo's ``cls_layer``, ``reg_layer``, ``objectness_layer``)."""
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"][-18:]  # per level: stem, cls, cls_pred,
    return [convs[6 * level + k] for level in range(3) for k in (2, 4, 5)]  # reg, reg_pred, obj_pred

# ------------------------------------------------------------------ YOLOv7


def build_yolov7_tiny(imgsz: int = 640, nc: int = 80, seed: int = 0) -> onnx.ModelProto:
    """WongKinYiu's YOLOv7-tiny (``cfg/deploy/yolov7-tiny.yaml``) as torch 1.x exports it (``Conv_12``
    names): ELAN blocks of four convs joined by a Concat, 2x2 max-pool downsampling, the SPP-CSP block
    with three max pools, LeakyReLU(0.1), and one 1x1 detection conv per level."""
    net = _Net(seed, torch_names=True)
    net.channels["images"] = 3

    def conv(x, c, k=1, s=1):
        return net.conv(x, c, k, s, "", act="leaky")

    def elan(x, c):  # layers [-1, -2, 3x3, 3x3] concatenated, then a 1x1 to 2c
        a = conv(x, c)
        b = conv(x, c)
        d = conv(b, c, 3)
        e = conv(d, c, 3)
        return conv(_concat(net, [e, d, b, a], ""), 2 * c)

    def pool(x, k, s):
        return net.op("MaxPool", [x], "", net.channels[x], kernel_shape=[k, k], strides=[s, s], pads=[k // 2 if s == 1 else 0] * 4)

    x = conv(conv("images", 32, 3, 2), 64, 3, 2)
    x14 = elan(pool(elan(x, 32), 2, 2), 64)
    x21 = elan(pool(x14, 2, 2), 128)
    x = elan(pool(x21, 2, 2), 256)
    a, b = conv(x, 256), conv(x, 256)  # SPP-CSP
    pools = [pool(b, k, 1) for k in (5, 9, 13)]
    x37 = conv(_concat(net, [conv(_concat(net, [*pools[::-1], b], ""), 256), a], ""), 256)
    up = _upsample(net, conv(x37, 128), "")
    x47 = elan(_concat(net, [conv(x21, 128), up], ""), 64)
    up = _upsample(net, conv(x47, 64), "")
    x57 = elan(_concat(net, [conv(x14, 64), up], ""), 32)
    x65 = elan(_concat(net, [conv(x57, 128, 3, 2), x47], ""), 64)
    x73 = elan(_concat(net, [conv(x65, 256, 3, 2), x37], ""), 128)
    feats = [conv(x57, 128, 3), conv(x65, 256, 3), conv(x73, 512, 3)]
    out = _v5_detect(net, feats, nc, imgsz)
    return net.model("images", [1, 3, imgsz, imgsz], [(out, "output")], "yolov7_tiny")

ZOO_BUILDERS = {
    **{f"yolov8{s}": (lambda s=s: build_yolov8(s)) for s in YOLOV8_SCALES},
    "yolov5s": lambda: build_yolov5("s", version="spp"),
    "yolov5m": lambda: build_yolov5("m", version="spp"),
    "yolov5s_6.1": lambda: build_yolov5("s", version="6.1"),
    "yolov5m_6.1": lambda: build_yolov5("m", version="6.1"),
    **{f"yolo11{s}": (lambda s=s: build_yolo11(s)) for s in ("n", "s", "m")},
    "yolov10n": build_yolov10n,
    "yolov6n": build_yolov6n,
    "yolov7_tiny": build_yolov7_tiny,
    "yolox_s_leaky": build_yolox_s,
    "ssd_mobilenet_v1": build_ssd_mobilenet_v1,
}


if __name__ == "__main__":  # python tests/zoo_models.py OUT_DIR
    import pathlib

    folder = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    folder.mkdir(parents=True, exist_ok=True)
    for key, build in ZOO_BUILDERS.items():
        onnx.save(build(), folder / f"{key}.onnx")
        print(folder / f"{key}.onnx")
