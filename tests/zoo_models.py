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
The newer families are written in `zoo_recent` and exported from here too:

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

import sys

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from zoo_blocks import Net, bottleneck, c2f, c3, concat, div8, focus, scaling, sppf, upsample, v5_detect, v8_detect
from zoo_recent import build_yolo11, build_yolov6n, build_yolov7_tiny, build_yolov10n, yolov6n_predictions

__all__ = ["build_ssd_mobilenet_v1", "build_yolo11", "build_yolov5", "build_yolov6n", "build_yolov7_tiny",
           "build_yolov8", "build_yolov10n", "build_yolox", "build_yolox_s", "yolov6n_predictions",
           "yolox_predictions", "ZOO_BUILDERS", "YOLOV5_SCALES", "YOLOV8_SCALES"]

# (depth multiple, width multiple, max channels), from ultralytics' yolov8.yaml and yolov5*.yaml
YOLOV8_SCALES = {"n": (0.33, 0.25, 1024), "s": (0.33, 0.50, 1024), "m": (0.67, 0.75, 768),
                 "l": (1.00, 1.00, 512), "x": (1.00, 1.25, 512)}
YOLOV5_SCALES = {"n": (0.33, 0.25), "s": (0.33, 0.50), "m": (0.67, 0.75), "l": (1.0, 1.0), "x": (1.33, 1.25)}


# ------------------------------------------------------------------ YOLOv8


def build_yolov8(scale: str = "n", imgsz: int = 640, nc: int = 80, seed: int = 0,
                 task: str = "detect") -> onnx.ModelProto:
    """ultralytics YOLOv8{scale} at ``imgsz`` x ``imgsz``, as ``yolo export format=onnx`` writes it;
    ``task="seg"``: YOLOv8{scale}-seg (the Segment head: Proto on the stride-8 map and cv4 mask
    coefficients, computed before the box and class branches, as its forward runs them)."""
    if task not in ("detect", "seg", "pose"):
        raise ValueError(f"task is 'detect', 'seg' or 'pose', not {task!r}")
    depth, width, max_ch = YOLOV8_SCALES[scale]

    ch, n = scaling(depth, width, max_ch)

    net = Net(seed)
    net.channels["images"] = 3
    y = {}
    x = net.conv("images", ch(64), 3, 2, "model.0")
    x = net.conv(x, ch(128), 3, 2, "model.1")
    x = c2f(net, x, ch(128), n(3), True, "model.2")
    x = net.conv(x, ch(256), 3, 2, "model.3")
    y[4] = x = c2f(net, x, ch(256), n(6), True, "model.4")
    x = net.conv(x, ch(512), 3, 2, "model.5")
    y[6] = x = c2f(net, x, ch(512), n(6), True, "model.6")
    x = net.conv(x, ch(1024), 3, 2, "model.7")
    x = c2f(net, x, ch(1024), n(3), True, "model.8")
    y[9] = x = sppf(net, x, ch(1024), "model.9")
    x = concat(net, [upsample(net, x, "model.10"), y[6]], "model.11")
    y[12] = x = c2f(net, x, ch(512), n(3), False, "model.12")
    x = concat(net, [upsample(net, x, "model.13"), y[4]], "model.14")
    y[15] = x = c2f(net, x, ch(256), n(3), False, "model.15")
    x = concat(net, [net.conv(x, ch(256), 3, 2, "model.16"), y[12]], "model.17")
    y[18] = x = c2f(net, x, ch(512), n(3), False, "model.18")
    x = concat(net, [net.conv(x, ch(512), 3, 2, "model.19"), y[9]], "model.20")
    y[21] = c2f(net, x, ch(1024), n(3), False, "model.21")
    feats = [y[15], y[18], y[21]]
    if task == "seg":
        proto, masks = _v8_segment(net, feats, div8(min(256, max_ch) * width))
        out = net.op("Concat", [v8_detect(net, feats, nc, imgsz), masks], "/model.22/Concat", axis=1)
        return net.model("images", [1, 3, imgsz, imgsz], [(out, "output0"), (proto, "output1")], f"yolov8{scale}_seg")
    if task == "pose":  # Pose runs its keypoint branches (cv4, 17 x 3 values) before Detect
        kpts = _v8_branches(net, feats, max(net.channels[feats[0]] // 4, 51), 51)
        out = net.op("Concat", [v8_detect(net, feats, 1, imgsz), kpts], "/model.22/Concat", axis=1)
        return net.model("images", [1, 3, imgsz, imgsz], [(out, "output0")], f"yolov8{scale}_pose")
    out = v8_detect(net, feats, nc, imgsz)
    return net.model("images", [1, 3, imgsz, imgsz], [(out, "output0")], f"yolov8{scale}")


def _v8_segment(net: Net, feats: list[str], npr: int, nm: int = 32) -> tuple[str, str]:
    """Segment's Proto (conv, 2x2 stride-2 ConvTranspose, conv, conv) and its cv4 branches."""
    p = net.conv(feats[0], npr, 3, 1, "model.22/proto/cv1")
    c = net.channels[p]
    w = net.const(net.rng.normal(0, 0.1, (c, c, 2, 2)).astype(np.float32))
    p = net.op("ConvTranspose", [p, w, net.const(np.zeros(c, np.float32))], "/model.22/proto/upsample/ConvTranspose",
               c, kernel_shape=[2, 2], strides=[2, 2])
    p = net.conv(net.conv(p, npr, 3, 1, "model.22/proto/cv2"), nm, 1, 1, "model.22/proto/cv3")
    return p, _v8_branches(net, feats, max(net.channels[feats[0]] // 4, nm), nm)


def _v8_branches(net: Net, feats: list[str], width: int, out: int) -> str:
    """The cv4 branches of Segment (mask coefficients) and Pose (keypoints), flattened and joined."""
    flat = []
    for i, x in enumerate(feats):
        h = net.conv(net.conv(x, width, 3, 1, f"model.22/cv4.{i}/cv4.{i}.0"), width, 3, 1, f"model.22/cv4.{i}/cv4.{i}.1")
        h = net.conv(h, out, 1, 1, f"model.22/cv4.{i}/cv4.{i}.2", act=None)
        flat.append(net.op("Reshape", [h, net.const(np.array([1, out, -1], np.int64))], "/model.22/Reshape", out))
    return net.op("Concat", flat, "/model.22/Concat", out, axis=2)


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
        return div8(c * width)

    def n(k):
        return max(round(k * depth), 1)

    net = Net(seed)
    net.channels["images"] = 3
    block = _bottleneck_csp if version == "spp" else c3
    y = {}
    if version == "spp":
        x = net.conv(focus(net, "images", "model.0"), ch(64), 3, 1, "model.0/conv")
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
        x = sppf(net, c3(net, x, ch(1024), n(3), True, "model.8"), ch(1024), "model.9")
    y[10] = x = net.conv(x, ch(512), 1, 1, "model.10")
    x = block(net, concat(net, [upsample(net, x, "model.11"), y[6]], "model.12"), ch(512), n(3), False, "model.13")
    y[14] = x = net.conv(x, ch(256), 1, 1, "model.14")
    x = block(net, concat(net, [upsample(net, x, "model.15"), y[4]], "model.16"), ch(256), n(3), False, "model.17")
    y[17] = x
    x = concat(net, [net.conv(x, ch(256), 3, 2, "model.18"), y[14]], "model.19")
    y[20] = x = block(net, x, ch(512), n(3), False, "model.20")
    x = concat(net, [net.conv(x, ch(512), 3, 2, "model.21"), y[10]], "model.22")
    y[23] = block(net, x, ch(1024), n(3), False, "model.23")
    out = v5_detect(net, [y[17], y[20], y[23]], nc, imgsz)
    return net.model("images", [1, 3, imgsz, imgsz], [(out, "output0")], f"yolov5{scale}")


def _bottleneck_csp(net: Net, x: str, c2: int, n: int, shortcut: bool, scope: str) -> str:
    """cv4(act(bn(cat(cv3(m(cv1(x))), cv2(x))))): cv2 and cv3 are plain convs, the batch norm and
    activation after the concat stay in the export."""
    c_ = c2 // 2
    a = net.conv(x, c_, 1, 1, f"{scope}/cv1")
    for i in range(n):
        a = bottleneck(net, a, c_, 1, shortcut, f"{scope}/m/m.{i}")
    a = net.conv(a, c_, 1, 1, f"{scope}/cv3", act=None)
    b = net.conv(x, c_, 1, 1, f"{scope}/cv2", act=None)
    x = concat(net, [a, b], scope)
    rng = net.rng
    stats = [net.const(v.astype(np.float32)) for v in (rng.uniform(0.5, 1.5, 2 * c_), rng.normal(0, 0.1, 2 * c_),
                                                       rng.normal(0, 0.1, 2 * c_), rng.uniform(0.5, 1.5, 2 * c_))]
    x = net.op("BatchNormalization", [x, *stats], f"/{scope}/bn/BatchNormalization", 2 * c_)
    x = net.act(x, "silu", scope)
    return net.conv(x, c2, 1, 1, f"{scope}/cv4")


def _spp(net: Net, x: str, c2: int, scope: str) -> str:
    c_ = net.channels[x] // 2
    x = net.conv(x, c_, 1, 1, f"{scope}/cv1")
    pools = [net.op("MaxPool", [x], f"/{scope}/m.{i}/MaxPool", c_, kernel_shape=[k, k], strides=[1, 1],
                    pads=[k // 2] * 4, dilations=[1, 1], ceil_mode=0) for i, k in enumerate((5, 9, 13))]
    return net.conv(concat(net, [x, *pools], scope), c2, 1, 1, f"{scope}/cv2")


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
    net = Net(seed, torch_names=True)
    net.channels["images"] = 3

    def ch(c):
        return int(c * width)

    def base(x, c_out, k=1, s=1):
        return net.conv(x, c_out, k, s, "", act="leaky")

    x = base(focus(net, "images", ""), ch(64), 3)
    x = _csp(net, base(x, ch(128), 3, 2), ch(128), n, True)
    x2 = x = _csp(net, base(x, ch(256), 3, 2), ch(256), 3 * n, True)
    x1 = x = _csp(net, base(x, ch(512), 3, 2), ch(512), 3 * n, True)
    x = base(x, ch(1024), 3, 2)
    hidden = base(x, ch(512))
    pools = [net.op("MaxPool", [hidden], "", ch(512), kernel_shape=[k, k], strides=[1, 1], pads=[k // 2] * 4)
             for k in (5, 9, 13)]
    x = base(concat(net, [hidden, *pools], ""), ch(1024))
    x0 = _csp(net, x, ch(1024), n, False)
    fpn_out0 = base(x0, ch(512))
    f = _csp(net, concat(net, [_upsample_sizes(net, fpn_out0), x1], ""), ch(512), n, False)
    fpn_out1 = base(f, ch(256))
    pan_out2 = _csp(net, concat(net, [_upsample_sizes(net, fpn_out1), x2], ""), ch(256), n, False)
    pan_out1 = _csp(net, concat(net, [base(pan_out2, ch(256), 3, 2), fpn_out1], ""), ch(512), n, False)
    pan_out0 = _csp(net, concat(net, [base(pan_out1, ch(512), 3, 2), fpn_out0], ""), ch(1024), n, False)
    outs = []
    hw = ch(256)
    for feat in (pan_out2, pan_out1, pan_out0):
        s = base(feat, hw)
        cls = net.conv(base(base(s, hw, 3), hw, 3), nc, 1, 1, "", act=None)
        reg = base(base(s, hw, 3), hw, 3)
        box, obj = (net.conv(reg, c, 1, 1, "", act=None) for c in (4, 1))
        outs.append(concat(net, [box, net.op("Sigmoid", [obj], "", 1), net.op("Sigmoid", [cls], "", nc)], ""))
    outs = [net.op("Reshape", [o, net.const(np.array([1, nc + 5, -1], np.int64))], "") for o in outs]
    o = net.op("Transpose", [net.op("Concat", outs, "", axis=2)], "", perm=[0, 2, 1])
    return net.model("images", [1, 3, imgsz, imgsz], [(o, "output")], f"yolox_{scale}_leaky")


def yolox_predictions(model: onnx.ModelProto) -> list[str]:
    """The class, box and objectness prediction convs of each level of `build_yolox`, in that order
    (the zoo's ``cls_layer``, ``reg_layer``, ``objectness_layer``)."""
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"][-24:]  # per level: stem, cls, cls,
    return [convs[8 * level + k] for level in range(3) for k in (3, 6, 7)]  # cls_pred, reg, reg, box, obj


def _upsample_sizes(net: Net, x: str) -> str:
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


def _csp(net: Net, x: str, c_out: int, n: int, shortcut: bool) -> str:
    hidden = c_out // 2
    a = net.conv(x, hidden, 1, 1, "", act="leaky")
    b = net.conv(x, hidden, 1, 1, "", act="leaky")
    for _ in range(n):
        h = net.conv(net.conv(a, hidden, 1, 1, "", act="leaky"), hidden, 3, 1, "", act="leaky")
        a = net.op("Add", [h, a], "", hidden) if shortcut else h
    return net.conv(concat(net, [a, b], ""), c_out, 1, 1, "", act="leaky")


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
    net = Net(seed)
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


def _ssd_predictor(net: Net, x: str, level: int, anchors: int, num_classes: int) -> list[str]:
    return [net.conv(x, anchors * width, 1, 1, f"BoxPredictor_{level}/{kind}", act=None,
                     name=f"BoxPredictor_{level}/{kind}/BiasAdd")
            for kind, width in (("BoxEncodingPredictor", 4), ("ClassPredictor", num_classes))]


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
