"""Faithful ONNX topologies of the newer detectors in Hailo's model zoo (see `zoo_models`, which
exports them too): YOLO11 n/s/m/l/x, YOLOv10n, YOLOv6n 0.1.0 and YOLOv7-tiny."""

from __future__ import annotations

import numpy as np
import onnx

from zoo_blocks import Net, bottleneck, c2f, c3, concat, scaling, sppf, upsample, v5_detect, v8_detect

__all__ = ["build_yolo11", "build_yolov10n", "build_yolov6n", "build_yolov7_tiny", "yolov6n_predictions",
           "YOLO11_SCALES"]


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

    ch, n = scaling(depth, width, max_ch)

    net = Net(seed)
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
    x = sppf(net, x, ch(1024), "model.9")
    y[10] = x = _c2psa(net, x, n(2), imgsz // 32, "model.10")
    x = concat(net, [upsample(net, x, "model.11"), y[6]], "model.12")
    y[13] = x = _c3k2(net, x, ch(512), n(2), c3k_all, 0.5, True, "model.13")
    x = concat(net, [upsample(net, x, "model.14"), y[4]], "model.15")
    y[16] = x = _c3k2(net, x, ch(256), n(2), c3k_all, 0.5, True, "model.16")
    x = concat(net, [net.conv(x, ch(256), 3, 2, "model.17"), y[13]], "model.18")
    y[19] = x = _c3k2(net, x, ch(512), n(2), c3k_all, 0.5, True, "model.19")
    x = concat(net, [net.conv(x, ch(512), 3, 2, "model.20"), y[10]], "model.21")
    y[22] = _c3k2(net, x, ch(1024), n(2), True, 0.5, True, "model.22")
    out = v8_detect(net, [y[16], y[19], y[22]], nc, imgsz, scope="model.23", dw_class=True)
    return net.model("images", [1, 3, imgsz, imgsz], [(out, "output0")], f"yolo11{scale}")


def _c3k2(net: Net, x: str, c2: int, n: int, c3k: bool, e: float, shortcut: bool, scope: str) -> str:
    """C2f whose blocks are C3k (a C3 of two 3x3 bottlenecks) or 3x3 bottlenecks of half width."""
    c = int(c2 * e)
    x = net.conv(x, 2 * c, 1, 1, f"{scope}/cv1")
    ys = list(net.op("Split", [x, net.const(np.array([c, c], np.int64))], f"/{scope}/Split", c, outputs=2, axis=1))
    for i in range(n):
        if c3k:
            h = c3(net, ys[-1], c, 2, shortcut, f"{scope}/m.{i}", k1=3)
        else:
            h = bottleneck(net, ys[-1], c // 2, 3, shortcut, f"{scope}/m.{i}", c)
        ys.append(h)
    return net.conv(concat(net, ys, scope), c2, 1, 1, f"{scope}/cv2")


def _c2psa(net: Net, x: str, n: int, hw: int, scope: str) -> str:
    c1 = net.channels[x]
    c = c1 // 2
    x = net.conv(x, 2 * c, 1, 1, f"{scope}/cv1")
    a, b = net.op("Split", [x, net.const(np.array([c, c], np.int64))], f"/{scope}/Split", c, outputs=2, axis=1)
    for i in range(n):
        b = _psa_block(net, b, hw, f"{scope}/m/m.{i}")
    return net.conv(concat(net, [a, b], scope), c1, 1, 1, f"{scope}/cv2")


def _psa_block(net: Net, x: str, hw: int, scope: str) -> str:
    x = net.op("Add", [x, _attention(net, x, hw, f"{scope}/attn")], f"/{scope}/Add", net.channels[x])
    c = net.channels[x]
    h = net.conv(net.conv(x, 2 * c, 1, 1, f"{scope}/ffn/ffn.0"), c, 1, 1, f"{scope}/ffn/ffn.1", act=None,
                 name=f"/{scope}/ffn/ffn.1/conv/Conv")
    return net.op("Add", [x, h], f"/{scope}/Add_1", c)


def _attention(net: Net, x: str, hw: int, scope: str) -> str:
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
    depth, width, max_ch = 0.33, 0.25, 1024  # yolov10n.yaml

    ch, n = scaling(depth, width, max_ch)

    net = Net(seed)
    net.channels["images"] = 3
    y = {}
    x = net.conv("images", ch(64), 3, 2, "model.0")
    x = c2f(net, net.conv(x, ch(128), 3, 2, "model.1"), ch(128), n(3), True, "model.2")
    y[4] = x = c2f(net, net.conv(x, ch(256), 3, 2, "model.3"), ch(256), n(6), True, "model.4")
    y[6] = x = c2f(net, _scdown(net, x, ch(512), "model.5"), ch(512), n(6), True, "model.6")
    x = c2f(net, _scdown(net, x, ch(1024), "model.7"), ch(1024), n(3), True, "model.8")
    y[10] = x = _psa(net, sppf(net, x, ch(1024), "model.9"), imgsz // 32, "model.10")
    y[13] = x = c2f(net, concat(net, [upsample(net, x, "model.11"), y[6]], "model.12"), ch(512), n(3), False,
                     "model.13")
    y[16] = x = c2f(net, concat(net, [upsample(net, x, "model.14"), y[4]], "model.15"), ch(256), n(3), False,
                     "model.16")
    x = concat(net, [net.conv(x, ch(256), 3, 2, "model.17"), y[13]], "model.18")
    y[19] = x = c2f(net, x, ch(512), n(3), False, "model.19")
    x = concat(net, [_scdown(net, x, ch(512), "model.20"), y[10]], "model.21")
    y[22] = _c2f_cib(net, x, ch(1024), n(3), "model.22")
    out = v8_detect(net, [y[16], y[19], y[22]], nc, imgsz, scope="model.23", dw_class=True, prefix="one2one_")
    return net.model("images", [1, 3, imgsz, imgsz], [(out, "output0")], "yolov10n")


def _scdown(net: Net, x: str, c2: int, scope: str) -> str:
    x = net.conv(x, c2, 1, 1, f"{scope}/cv1")
    return net.conv(x, c2, 3, 2, f"{scope}/cv2", act=None, group=c2, name=f"/{scope}/cv2/conv/Conv")


def _psa(net: Net, x: str, hw: int, scope: str) -> str:
    """YOLOv10's PSA: half the channels through attention and a feed-forward pair, then joined."""
    c1 = net.channels[x]
    c = c1 // 2
    x = net.conv(x, 2 * c, 1, 1, f"{scope}/cv1")
    a, b = net.op("Split", [x, net.const(np.array([c, c], np.int64))], f"/{scope}/Split", c, outputs=2, axis=1)
    b = _psa_block(net, b, hw, scope)
    return net.conv(concat(net, [a, b], scope), c1, 1, 1, f"{scope}/cv2")


def _c2f_cib(net: Net, x: str, c2: int, n: int, scope: str) -> str:
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
    return net.conv(concat(net, ys, scope), c2, 1, 1, f"{scope}/cv2")

# ------------------------------------------------------------------ YOLOv6


def build_yolov6n(imgsz: int = 640, nc: int = 80, seed: int = 0) -> onnx.ModelProto:
    """Meituan's YOLOv6n of release 0.1.0 (the zoo's ``yolov6n``) as torch 1.x exports it (``Conv_12``
    names): EfficientRep with its RepVGG blocks re-parameterized into 3x3 convs with ReLU, SimSPPF,
    RepPAN upsampling by 2x2 ConvTranspose, and the efficient decoupled head (a 1x1 stem, a class
    and a box conv with SiLU, class, box and objectness predictions)."""
    net = Net(seed, torch_names=True)
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
    x0 = net.conv(concat(net, pools, ""), 256, 1, 1, "", act="relu")
    fpn0 = net.conv(x0, 64, 1, 1, "", act="relu")
    f = block(concat(net, [deconv(fpn0), x1], ""), 64, 4)
    fpn1 = net.conv(f, 32, 1, 1, "", act="relu")
    pan2 = block(concat(net, [deconv(fpn1), x2], ""), 32, 4)
    pan1 = block(concat(net, [net.conv(pan2, 32, 3, 2, "", act="relu"), fpn1], ""), 64, 4)
    pan0 = block(concat(net, [net.conv(pan1, 64, 3, 2, "", act="relu"), fpn0], ""), 128, 4)
    outs = []
    for feat in (pan2, pan1, pan0):
        c = net.channels[feat]
        stem = net.conv(feat, c, 1, 1, "")
        cls = net.conv(net.conv(stem, c, 3, 1, ""), nc, 1, 1, "", act=None)
        reg_feat = net.conv(stem, c, 3, 1, "")
        reg, obj = (net.conv(reg_feat, k, 1, 1, "", act=None) for k in (4, 1))
        outs.append(concat(net, [reg, net.op("Sigmoid", [obj], "", 1), net.op("Sigmoid", [cls], "", nc)], ""))
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
    net = Net(seed, torch_names=True)
    net.channels["images"] = 3

    def conv(x, c, k=1, s=1):
        return net.conv(x, c, k, s, "", act="leaky")

    def elan(x, c):  # layers [-1, -2, 3x3, 3x3] concatenated, then a 1x1 to 2c
        a = conv(x, c)
        b = conv(x, c)
        d = conv(b, c, 3)
        e = conv(d, c, 3)
        return conv(concat(net, [e, d, b, a], ""), 2 * c)

    def pool(x, k, s):
        pad = k // 2 if s == 1 else 0
        return net.op("MaxPool", [x], "", net.channels[x], kernel_shape=[k, k], strides=[s, s], pads=[pad] * 4)

    x = conv(conv("images", 32, 3, 2), 64, 3, 2)
    x14 = elan(pool(elan(x, 32), 2, 2), 64)
    x21 = elan(pool(x14, 2, 2), 128)
    x = elan(pool(x21, 2, 2), 256)
    a, b = conv(x, 256), conv(x, 256)  # SPP-CSP
    pools = [pool(b, k, 1) for k in (5, 9, 13)]
    x37 = conv(concat(net, [conv(concat(net, [*pools[::-1], b], ""), 256), a], ""), 256)
    up = upsample(net, conv(x37, 128), "")
    x47 = elan(concat(net, [conv(x21, 128), up], ""), 64)
    up = upsample(net, conv(x47, 64), "")
    x57 = elan(concat(net, [conv(x14, 64), up], ""), 32)
    x65 = elan(concat(net, [conv(x57, 128, 3, 2), x47], ""), 64)
    x73 = elan(concat(net, [conv(x65, 256, 3, 2), x37], ""), 128)
    feats = [conv(x57, 128, 3), conv(x65, 256, 3), conv(x73, 512, 3)]
    out = v5_detect(net, feats, nc, imgsz)
    return net.model("images", [1, 3, imgsz, imgsz], [(out, "output")], "yolov7_tiny")
