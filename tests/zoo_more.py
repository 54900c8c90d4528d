"""Faithful ONNX topologies of more detector families in Hailo's model zoo (see `zoo_models`):

- `build_yolov7(imgsz)`: WongKinYiu's YOLOv7 (``cfg/deploy/yolov7.yaml``) as ``export.py`` writes
  the fused model with torch 1.x (``Conv_12`` names): ELAN blocks, MP transitions (a 2x2 max pool
  beside a stride-2 conv), SPPCSPC, the ELAN-H blocks of the PAN, re-parameterized RepConvs and one
  1x1 detection conv per level; `yolov7_detections` names the three detection convs.
- `build_nanodet_repvgg_a12(imgsz)`: the zoo's ``nanodet_repvgg_a12``: a re-parameterized RepVGG-A
  backbone (stages of 1, 2, 4, 14 and 1 3x3 convs with ReLU), NanoDet's PAN (1x1 laterals, then a
  top-down and a bottom-up path of bilinear interpolations and adds, no convs) and YOLOX's decoupled
  head (stem, two class and two box convs, class, box and objectness predictions), torch 1.x names;
  `nanodet_predictions` names the nine prediction convs.
- `build_centernet_resnet18(imgsz)`: GluonCV's ``center_net_resnet18_v1b_coco`` with TensorFlow's
  node names (``centernet0_conv3/BiasAdd``): ResNet-18 v1b, three 3x3 conv + 4x4 stride-2
  ConvTranspose upsampling stages, and the heatmap, size and offset heads (3x3 conv, ReLU, 1x1 conv).
  ``postprocess=True`` adds a peak finder after the heatmap (`_peak_finder`: not published, see there).

Widths may be divided (``width``) where the names do not depend on them, so that the tests stay quick.
"""

from __future__ import annotations

import numpy as np
import onnx

from zoo_blocks import Net, concat, upsample, v5_detect

__all__ = ["CENTERNET_START", "build_centernet_resnet18", "build_nanodet_repvgg_a12", "build_yolov7",
           "centernet_heads", "nanodet_predictions", "yolov7_detections", "YOLOV7_VARIANTS"]


# ------------------------------------------------------------------ YOLOv7


# Per variant (``cfg/deploy/yolov7.yaml``, ``yolov7x.yaml``): the stem's widths; the ELAN blocks' 3x3
# convs and what their concat joins (yaml offsets: -1 the last 3x3 conv, the two 1x1 convs last); the
# backbone's (hidden, out) and MP widths; SPPCSPC's; the PAN's (1x1, ELAN hidden, ELAN 3x3, out) per
# block; the output convs' widths.
YOLOV7_VARIANTS = {
    "": {"stem": (32, 64, 64, 128), "chain": 4, "join": (-1, -3, -5, -6), "head_join": (-1, -2, -3, -4, -5, -6),
         "backbone": ((64, 256), (128, 512), (256, 1024), (256, 1024)), "mp": (128, 256, 512), "spp": 512,
         "pan": ((256, 256, 128, 256), (128, 128, 64, 128), (128, 256, 128, 256), (256, 512, 256, 512)),
         "out": (256, 512, 1024)},
    "x": {"stem": (40, 80, 80, 160), "chain": 6, "join": (-1, -3, -5, -7, -8), "head_join": (-1, -3, -5, -7, -8),
          "backbone": ((64, 320), (128, 640), (256, 1280), (256, 1280)), "mp": (160, 320, 640), "spp": 640,
          "pan": ((320, 256, 256, 320), (160, 128, 128, 160), (160, 256, 256, 320), (320, 512, 512, 640)),
          "out": (320, 640, 1280)},
}


def build_yolov7(imgsz: int = 640, nc: int = 80, seed: int = 0, width: int = 1, implicit: bool = False,
                 variant: str = "", scope_names: bool = False) -> onnx.ModelProto:
    """YOLOv7 (``variant="x"``: YOLOv7x) as deployed: the layers of ``cfg/deploy/yolov7{variant}.yaml``
    in its order, channels divided by ``width``. YOLOv7: 92 convs (41 in the backbone, 7 in SPPCSPC,
    41 in the PAN, 3 detection convs); YOLOv7x: 108 (its ELAN blocks hold six 3x3 convs, its output
    convs are plain convs where YOLOv7's are RepConvs). Node names as torch 1.x writes them
    (``Conv_12``), or with ``scope_names`` as torch 1.13+ does (``/model.90/conv/Conv``,
    ``/model.88/m/MaxPool``, ``/model.105/m.0/Conv``). ``implicit``: the training form's IDetect
    exported unfused, ImplicitA (an Add of a per-channel constant) before each detection conv and
    ImplicitM (a Mul) after it."""
    v = YOLOV7_VARIANTS[variant]
    net = Net(seed, torch_names=not scope_names)
    net.channels["images"] = 3
    count = iter(range(1000))

    def layer() -> str:  # the next line of the yaml: its module's scope
        return f"model.{next(count)}"

    def conv(x: str, c: int, k: int = 1, s: int = 1, scope: str = "") -> str:
        return net.conv(x, max(c // width, 8), k, s, scope or layer())

    def elan(x: str, c: int, c_chain: int, c_out: int, join: tuple[int, ...]) -> str:
        """Two 1x1 convs on the input, a chain of 3x3 convs after the second, the layers ``join``
        names concatenated, a 1x1 conv."""
        layers = [conv(x, c), conv(x, c)]
        for _ in range(v["chain"]):
            layers.append(conv(layers[-1], c_chain, 3))
        return conv(concat(net, [layers[k] for k in join], layer()), c_out)

    def mp(x: str, c: int, extra: str | None = None) -> str:
        """MP-1: max pool then 1x1 conv, beside a 1x1 then 3x3 stride-2 conv; joined (with ``extra``)."""
        pool = net.op("MaxPool", [x], f"/{layer()}/m/MaxPool", net.channels[x], kernel_shape=[2, 2], strides=[2, 2])
        pooled = conv(pool, c)
        down = conv(conv(x, c), c, 3, 2)
        return concat(net, [down, pooled] + ([extra] if extra else []), layer())

    s0, s1, s2, s3 = v["stem"]
    x = conv(conv(conv(conv("images", s0, 3), s1, 3, 2), s2, 3), s3, 3, 2)
    levels = []
    for i, (c, c_out) in enumerate(v["backbone"]):
        x = elan(mp(x, v["mp"][i - 1]) if i else x, c, c, c_out, v["join"])
        levels.append(x)
    p5 = _sppcspc(net, x, conv, v["spp"], layer())
    (c1, ch, cc, co), (d1, dh, dc, do), (e1, eh, ec, eo), (f1, fh, fc, fo) = v["pan"]
    up = upsample(net, conv(p5, c1), layer())
    p4 = elan(concat(net, [conv(levels[2], c1), up], layer()), ch, cc, co, v["head_join"])
    up = upsample(net, conv(p4, d1), layer())
    p3 = elan(concat(net, [conv(levels[1], d1), up], layer()), dh, dc, do, v["head_join"])
    n4 = elan(mp(p3, e1, p4), eh, ec, eo, v["head_join"])
    n5 = elan(mp(n4, f1, p5), fh, fc, fo, v["head_join"])
    rep = "/rbr_reparam" if not variant else ""  # YOLOv7's RepConvs, fused; YOLOv7x's plain convs
    feats = [conv(f, c, 3, scope=f"{layer()}{rep}") for f, c in zip((p3, n4, n5), v["out"])]
    if implicit:
        feats = [net.op("Add", [f, net.const(net.rng.normal(0, 0.02, (1, net.channels[f], 1, 1)).astype(np.float32))],
                        "", net.channels[f]) for f in feats]
    out = v5_detect(net, feats, nc, imgsz, scope=layer())
    if implicit:
        _implicit_m(net)
    return net.model("images", [1, 3, imgsz, imgsz], [(out, "output")], f"yolov7{variant}")


def _sppcspc(net: Net, x: str, conv, c2: int, scope: str) -> str:
    """cv7(cat(cv6(cv5(cat(x1, pools of x1))), cv2(x))), x1 = cv4(cv3(cv1(x))): cv2 is computed after
    the pooled branch, as its forward runs it."""
    x1 = conv(conv(conv(x, c2, scope=f"{scope}/cv1"), c2, 3, scope=f"{scope}/cv3"), c2, scope=f"{scope}/cv4")
    pools = [net.op("MaxPool", [x1], f"/{scope}/m.{i}/MaxPool", net.channels[x1], kernel_shape=[k, k], strides=[1, 1],
                    pads=[k // 2] * 4) for i, k in enumerate((5, 9, 13))]
    y1 = conv(conv(concat(net, [x1, *pools], scope), c2, scope=f"{scope}/cv5"), c2, 3, scope=f"{scope}/cv6")
    return conv(concat(net, [y1, conv(x, c2, scope=f"{scope}/cv2")], scope), c2, scope=f"{scope}/cv7")


def _implicit_m(net: Net) -> None:
    """A Mul by a per-channel constant after each of the last three convs (IDetect's ImplicitM)."""
    convs = [i for i, n in enumerate(net.nodes) if n.op_type == "Conv"][-3:]
    for i in reversed(convs):
        conv = net.nodes[i]
        out, channels = conv.output[0], net.channels[conv.output[0]]
        conv.output[0] = f"{out}_implicit"
        scale = net.const(net.rng.uniform(0.9, 1.1, (1, channels, 1, 1)).astype(np.float32))
        net.nodes.insert(i + 1, onnx.helper.make_node("Mul", [conv.output[0], scale], [out], name=f"{conv.name}_implicit"))


def yolov7_detections(model: onnx.ModelProto) -> list[str]:
    """The detection convs of `build_yolov7`, strides 8, 16, 32 (the zoo's ``encoded_layer``)."""
    return [n.name for n in model.graph.node if n.op_type == "Conv"][-3:]


# ------------------------------------------------------------------ NanoDet (RepVGG-A, YOLOX head)


def build_nanodet_repvgg_a12(imgsz: int = 640, nc: int = 80, seed: int = 0, width: int = 1) -> onnx.ModelProto:
    """The zoo's ``nanodet_repvgg_a12``: a RepVGG-A backbone (re-parameterized: one 3x3 conv and a
    ReLU per block; RepVGG-A1's stage widths, divided by ``width``), NanoDet's PAN
    (``nanodet/model/fpn/pan.py``: 1x1 lateral convs; top-down ``laterals[i-1] +=
    interpolate(laterals[i], 2x, bilinear)``; bottom-up ``outs[i+1] += interpolate(outs[i], 0.5x,
    bilinear)``) and YOLOX's head (``yolo_head.py``, SiLU as Sigmoid and Mul)."""
    net = Net(seed, torch_names=True)
    net.channels["images"] = 3

    def ch(c: int) -> int:
        return max(c // width, 8)

    def rep(x: str, c: int, s: int = 1) -> str:
        return net.conv(x, ch(c), 3, s, "", act="relu")

    stages = [(1, 64), (2, 64), (4, 128), (14, 256), (1, 1280)]  # RepVGG-A1: blocks, width
    feats, x = [], "images"
    for blocks, c in stages:
        x = rep(x, c, 2)
        for _ in range(blocks - 1):
            x = rep(x, c)
        feats.append(x)
    feats = feats[2:]  # strides 8, 16, 32
    hidden = ch(128)
    laterals = [net.conv(f, hidden, 1, 1, "", act=None) for f in feats]
    for i in (2, 1):
        laterals[i - 1] = net.op("Add", [laterals[i - 1], _bilinear(net, laterals[i], 2.0)], "", hidden)
    outs = list(laterals)
    for i in (0, 1):
        outs[i + 1] = net.op("Add", [outs[i + 1], _bilinear(net, outs[i], 0.5)], "", hidden)
    preds = []
    for feat in outs:  # YOLOX's head, level by level: stem, class convs and prediction, box convs and predictions
        s = net.conv(feat, hidden, 1, 1, "")
        cls = net.conv(net.conv(net.conv(s, hidden, 3, 1, ""), hidden, 3, 1, ""), nc, 1, 1, "", act=None)
        reg = net.conv(net.conv(s, hidden, 3, 1, ""), hidden, 3, 1, "")
        box, obj = (net.conv(reg, c, 1, 1, "", act=None) for c in (4, 1))
        preds.append(concat(net, [box, net.op("Sigmoid", [obj], "", 1), net.op("Sigmoid", [cls], "", nc)], ""))
    preds = [net.op("Reshape", [p, net.const(np.array([1, nc + 5, -1], np.int64))], "") for p in preds]
    o = net.op("Transpose", [net.op("Concat", preds, "", axis=2)], "", perm=[0, 2, 1])
    return net.model("images", [1, 3, imgsz, imgsz], [(o, "output")], "nanodet_repvgg_a12")


def _bilinear(net: Net, x: str, scale: float) -> str:
    """``F.interpolate(x, scale_factor=scale, mode="bilinear")`` as torch exports it at opset 11+."""
    scales = net.const(np.array([1, 1, scale, scale], np.float32))
    return net.op("Resize", [x, "", scales], "", net.channels[x], mode="linear",
                  coordinate_transformation_mode="half_pixel")


def nanodet_predictions(model: onnx.ModelProto) -> list[str]:
    """The class, box and objectness prediction convs of each level of `build_nanodet_repvgg_a12`, in
    that order (the zoo's ``cls_layer``, ``reg_layer``, ``objectness_layer``)."""
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"][-24:]  # per level: stem, cls, cls,
    return [convs[8 * level + k] for level in range(3) for k in (3, 6, 7)]  # cls_pred, reg, reg, box, obj


# ------------------------------------------------------------------ CenterNet (GluonCV ResNet-18 v1b)


CENTERNET_START = "zero_padding2d/Pad"


def build_centernet_resnet18(imgsz: int = 512, nc: int = 80, seed: int = 0, width: int = 1,
                             postprocess: bool = True, layers: int = 18) -> onnx.ModelProto:
    """GluonCV's CenterNet on ResNet-18 v1b (``center_net_resnet18_v1b_coco``; ``layers=50``: on
    ResNet-50 v1b), TensorFlow names: the normalization, then ``zero_padding2d/Pad`` (the zoo's start
    node) before the 7x7 stem; basic (18) or bottleneck (50) blocks whose stride-2 3x3 conv reads an
    explicit pad, as TensorFlow pads symmetrically; three upsampling
    stages (3x3 conv, ReLU, 4x4 stride-2 ConvTranspose, ReLU; 256, 128, 64 channels); the heatmap,
    size (``wh``) and offset (``reg``) heads, ``centernet0_conv0`` ... ``centernet0_conv5``."""
    net = Net(seed)
    net.channels["images"] = 3

    def ch(c: int) -> int:
        return max(c // width, 8)

    def pad(x: str, p: int, name: str) -> str:
        return net.op("Pad", [x, net.const(np.array([0, 0, p, p, 0, 0, p, p], np.int64))], name, net.channels[x])

    mean = net.const(np.array([123.675, 116.28, 103.53], np.float32).reshape(1, 3, 1, 1))
    std = net.const(np.array([58.395, 57.12, 57.375], np.float32).reshape(1, 3, 1, 1))
    x = net.op("Div", [net.op("Sub", ["images", mean], "normalize/sub", 3), std], "normalize/truediv", 3)
    x = pad(x, 3, CENTERNET_START)
    x = net.conv(x, ch(64), 7, 2, "resnetv1b0_conv0", act="relu", pad=0, name="resnetv1b0_conv0/BiasAdd")
    x = pad(x, 1, "zero_padding2d_1/Pad")
    x = net.op("MaxPool", [x], "resnetv1b0_pool0/MaxPool", net.channels[x], kernel_shape=[3, 3], strides=[2, 2])
    blocks = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3)}[layers]
    for stage, c in enumerate((64, 128, 256, 512)):
        scope = f"resnetv1b0_layers{stage + 1}_conv"
        for i in range(blocks[stage]):
            stride = 2 if stage and not i else 1
            if layers == 18:
                x = _basic_block(net, x, ch(c), stride, scope, i, pad)
            else:
                x = _bottleneck_block(net, x, ch(c), stride, scope, i, pad)
    for i, c in enumerate((256, 128, 64)):
        x = net.conv(x, ch(c), 3, 1, f"deconv_conv{i}", act="relu", name=f"deconv_conv{i}/BiasAdd")
        w = net.const(net.rng.normal(0, 0.05, (ch(c), ch(c), 4, 4)).astype(np.float32))
        x = net.op("ConvTranspose", [x, w, net.const(np.zeros(ch(c), np.float32))], f"deconv_upsample{i}/conv2d_transpose",
                   ch(c), kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1])
        x = net.op("Relu", [x], f"deconv_upsample{i}/Relu", ch(c))
    heads = []
    for k, (head, c_out) in enumerate((("heatmap", nc), ("wh", 2), ("reg", 2))):
        h = net.conv(x, ch(64), 3, 1, f"centernet0_conv{2 * k}", act="relu", name=f"centernet0_conv{2 * k}/BiasAdd")
        heads.append(net.conv(h, c_out, 1, 1, head, act=None, name=f"centernet0_conv{2 * k + 1}/BiasAdd"))
    heat, wh, reg = heads
    outputs = [(wh, "wh"), (reg, "reg")]
    outputs.append((_peak_finder(net, heat) if postprocess else heat, "heatmap"))
    return net.model("images", [1, 3, imgsz, imgsz], outputs, f"centernet_resnet_v1_{layers}_postprocess")


def _basic_block(net: Net, x: str, c: int, stride: int, scope: str, block: int, pad) -> str:
    """ResNet v1b's BasicBlock: 3x3 (stride) and 3x3 convs with ReLU, a 1x1 stride-2 downsample where
    the shape changes, the add and a ReLU."""
    names = [f"{scope}{2 * block + k}" for k in range(2)]
    h = pad(x, 1, f"{names[0]}/Pad") if stride == 2 else x
    h = net.conv(h, c, 3, stride, names[0], act="relu", pad=0 if stride == 2 else 1, name=f"{names[0]}/BiasAdd")
    h = net.conv(h, c, 3, 1, names[1], act=None, name=f"{names[1]}/BiasAdd")
    skip = x
    if stride == 2 or net.channels[x] != c:
        skip = net.conv(x, c, 1, stride, f"{scope}_down{block}", act=None, name=f"{scope}_down{block}/BiasAdd")
    return net.op("Relu", [net.op("Add", [h, skip], f"{scope}_add{block}/add", c)], f"{scope}_add{block}/Relu", c)


def _bottleneck_block(net: Net, x: str, c: int, stride: int, scope: str, block: int, pad) -> str:
    """ResNet v1b's Bottleneck: 1x1, 3x3 (stride), 1x1 to 4c, a 1x1 downsample where the shape changes."""
    names = [f"{scope}{3 * block + k}" for k in range(3)]
    h = net.conv(x, c, 1, 1, names[0], act="relu", name=f"{names[0]}/BiasAdd")
    h = pad(h, 1, f"{names[1]}/Pad") if stride == 2 else h
    h = net.conv(h, c, 3, stride, names[1], act="relu", pad=0 if stride == 2 else 1, name=f"{names[1]}/BiasAdd")
    h = net.conv(h, 4 * c, 1, 1, names[2], act=None, name=f"{names[2]}/BiasAdd")
    skip = x
    if stride == 2 or net.channels[x] != 4 * c:
        skip = net.conv(x, 4 * c, 1, stride, f"{scope}_down{block}", act=None, name=f"{scope}_down{block}/BiasAdd")
    return net.op("Relu", [net.op("Add", [h, skip], f"{scope}_add{block}/add", 4 * c)], f"{scope}_add{block}/Relu", 4 * c)


def _peak_finder(net: Net, heat: str, threshold: float = 0.2) -> str:
    """The post-processing the zoo's ``centernet_*_postprocess`` models end with (end node
    ``threshold_confidence/.../re_lu/Relu``). Hailo does not publish its layers; this is one reading
    of what its config and script name there (maxpool2, conv30, ew_add9, and ew_add10 as the class
    output, all at 16 bits): the sigmoid heatmap ``s``, its 3x3 max pool ``p``, ``-p - threshold`` as a
    1x1 conv, and ``relu((s - p - threshold) + s)``: a peak keeps its score less the threshold, any
    other cell is lowered by its gap to the peak beside it."""
    c = net.channels[heat]
    score = net.op("Sigmoid", [heat], "threshold_confidence/Sigmoid", c)
    pooled = net.op("MaxPool", [score], "max_finder/MaxPool", c, kernel_shape=[3, 3], strides=[1, 1], pads=[1] * 4)
    negate = np.zeros((c, c, 1, 1), np.float32)
    negate[np.arange(c), np.arange(c)] = -1.0
    neg = net.op("Conv", [pooled, net.const(negate), net.const(np.full(c, -threshold, np.float32))],
                 "max_finder/negate/BiasAdd", c, kernel_shape=[1, 1])
    gap = net.op("Add", [score, neg], "max_finder/add", c)
    kept = net.op("Add", [gap, score], "threshold_confidence/add", c)
    return net.op("Relu", [kept], "threshold_confidence/threshold_activation/threshold_confidence/re_lu/Relu", c)


def centernet_heads() -> list[str]:
    """The heatmap, size and offset output convs of `build_centernet_resnet18`."""
    return [f"centernet0_conv{k}/BiasAdd" for k in (1, 3, 5)]
