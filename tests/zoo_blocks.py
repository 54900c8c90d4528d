"""The pieces the zoo topologies (`zoo_models`, `zoo_recent`) are written with: a graph writer that
names nodes as the exporters do, and the blocks several families share (ultralytics' C2f, C3,
bottleneck, SPPF, Focus and detection heads)."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
ANCHORS_V5 = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))


class Net:
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


def div8(x: float) -> int:
    return int(math.ceil(x / 8) * 8)


def scaling(depth: float, width: float, max_ch: int = 1 << 30):
    """ultralytics' model scaling: a layer's channels (``ch``) and a block's repeats (``n``)."""
    def ch(c: int) -> int:
        return div8(min(c, max_ch) * width)

    def n(k: int) -> int:
        return max(round(k * depth), 1)

    return ch, n


def concat(net: Net, xs: list[str], scope: str) -> str:
    return net.op("Concat", xs, f"/{scope}/Concat", sum(net.channels[x] for x in xs), axis=1)


def upsample(net: Net, x: str, scope: str) -> str:
    scales = net.const(np.array([1, 1, 2, 2], np.float32))
    return net.op("Resize", [x, "", scales], f"/{scope}/Resize", net.channels[x], mode="nearest",
                  coordinate_transformation_mode="asymmetric", nearest_mode="floor")


def c2f(net: Net, x: str, c2: int, n: int, shortcut: bool, scope: str) -> str:
    c = c2 // 2
    x = net.conv(x, 2 * c, 1, 1, f"{scope}/cv1")
    ys = list(net.op("Split", [x, net.const(np.array([c, c], np.int64))], f"/{scope}/Split", c, outputs=2, axis=1))
    for i in range(n):
        h = net.conv(ys[-1], c, 3, 1, f"{scope}/m.{i}/cv1")
        h = net.conv(h, c, 3, 1, f"{scope}/m.{i}/cv2")
        if shortcut:
            h = net.op("Add", [ys[-1], h], f"/{scope}/m.{i}/Add", c)
        ys.append(h)
    return net.conv(concat(net, ys, scope), c2, 1, 1, f"{scope}/cv2")


def sppf(net: Net, x: str, c2: int, scope: str) -> str:
    c_ = net.channels[x] // 2
    ys = [net.conv(x, c_, 1, 1, f"{scope}/cv1")]
    for suffix in ("m", "m_1", "m_2"):
        ys.append(net.op("MaxPool", [ys[-1]], f"/{scope}/{suffix}/MaxPool", c_, kernel_shape=[5, 5],
                         strides=[1, 1], pads=[2, 2, 2, 2], dilations=[1, 1], ceil_mode=0))
    return net.conv(concat(net, ys, scope), c2, 1, 1, f"{scope}/cv2")


def anchor_points(imgsz: int, strides=(8, 16, 32)):
    points, stride_col = [], []
    for s in strides:
        g = imgsz // s
        sy, sx = np.meshgrid(np.arange(g) + 0.5, np.arange(g) + 0.5, indexing="ij")
        points.append(np.stack([sx.ravel(), sy.ravel()], 0))
        stride_col.append(np.full(g * g, s))
    return np.concatenate(points, 1)[None].astype(np.float32), np.concatenate(stride_col)[None, None].astype(np.float32)


def v8_detect(net: Net, feats: list[str], nc: int, imgsz: int, reg_max: int = 16, scope: str = "model.22",
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
        flat.append(concat(net, branches, scope))
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
    anchors, strides = anchor_points(imgsz)
    anchors = net.const(anchors)
    x1y1 = net.op("Sub", [anchors, lt], f"/{scope}/Sub")
    x2y2 = net.op("Add", [anchors, rb], f"/{scope}/Add")
    c_xy = net.op("Div", [net.op("Add", [x1y1, x2y2], f"/{scope}/Add"), net.const(np.float32(2))], f"/{scope}/Div")
    wh = net.op("Sub", [x2y2, x1y1], f"/{scope}/Sub")
    dbox = net.op("Mul", [net.op("Concat", [c_xy, wh], f"/{scope}/Concat", axis=1), net.const(strides)], f"/{scope}/Mul")
    return net.op("Concat", [dbox, net.op("Sigmoid", [cls], f"/{scope}/Sigmoid")], f"/{scope}/Concat", axis=1)


def focus(net: Net, x: str, scope: str) -> str:
    """Space to depth as YOLOv5's Focus exports it: four strided Slice pairs and a Concat."""
    parts = []
    for oy, ox in ((0, 0), (1, 0), (0, 1), (1, 1)):
        for axis, start in ((2, oy), (3, ox)):
            x_in = parts.pop() if axis == 3 else x
            parts.append(net.op("Slice", [x_in, net.const(np.array([start], np.int64)),
                                          net.const(np.array([2**62], np.int64)), net.const(np.array([axis], np.int64)),
                                          net.const(np.array([2], np.int64))], f"/{scope}/Slice", net.channels[x]))
    return concat(net, parts, scope)


def bottleneck(net: Net, x: str, c_: int, k1: int, shortcut: bool, scope: str, c2: int | None = None) -> str:
    """cv2(cv1(x)) (+ x): ``c_`` hidden channels, ``c2`` out (default ``c_``)."""
    c2 = c2 or c_
    h = net.conv(net.conv(x, c_, k1, 1, f"{scope}/cv1"), c2, 3, 1, f"{scope}/cv2")
    return net.op("Add", [x, h], f"/{scope}/Add", c2) if shortcut else h


def c3(net: Net, x: str, c2: int, n: int, shortcut: bool, scope: str, k1: int = 1) -> str:
    """C3 (YOLOv5; bottlenecks 1x1 then 3x3), or with ``k1=3`` YOLO11's C3k."""
    c_ = c2 // 2
    a = net.conv(x, c_, 1, 1, f"{scope}/cv1")
    for i in range(n):
        a = bottleneck(net, a, c_, k1, shortcut, f"{scope}/m/m.{i}")
    b = net.conv(x, c_, 1, 1, f"{scope}/cv2")
    return net.conv(concat(net, [a, b], scope), c2, 1, 1, f"{scope}/cv3")


def v5_detect(net: Net, feats: list[str], nc: int, imgsz: int, scope: str = "model.24") -> str:
    """One 1x1 conv per level, then the export's decoding (sigmoid, grid and anchors); ``scope``: the
    Detect module's (YOLOv5's ``model.24``)."""
    no, na = nc + 5, 3
    outs = []
    for i, x in enumerate(feats):
        g, stride = imgsz // (8 * 2**i), 8 * 2**i
        p = net.conv(x, na * no, 1, 1, f"{scope}/m.{i}", act=None)
        p = net.op("Reshape", [p, net.const(np.array([1, na, no, g, g], np.int64))], f"/{scope}/Reshape")
        p = net.op("Sigmoid", [net.op("Transpose", [p], f"/{scope}/Transpose", perm=[0, 1, 3, 4, 2])], f"/{scope}/Sigmoid")
        xy, wh, conf = net.op("Split", [p, net.const(np.array([2, 2, no - 4], np.int64))], f"/{scope}/Split",
                              outputs=3, axis=4)
        grid = np.stack(np.meshgrid(np.arange(g), np.arange(g), indexing="xy"), -1)[None, None].astype(np.float32)
        xy = net.op("Mul", [xy, net.const(np.float32(2))], f"/{scope}/Mul")
        xy = net.op("Mul", [net.op("Add", [xy, net.const(grid - 0.5)], f"/{scope}/Add"), net.const(np.float32(stride))],
                    f"/{scope}/Mul")
        wh = net.op("Mul", [wh, net.const(np.float32(2))], f"/{scope}/Mul")
        wh = net.op("Pow", [wh, net.const(np.float32(2))], f"/{scope}/Pow")
        anchor = np.array(ANCHORS_V5[i], np.float32).reshape(1, na, 1, 1, 2)
        wh = net.op("Mul", [wh, net.const(anchor)], f"/{scope}/Mul")
        p = net.op("Concat", [xy, wh, conf], f"/{scope}/Concat", axis=4)
        outs.append(net.op("Reshape", [p, net.const(np.array([1, -1, no], np.int64))], f"/{scope}/Reshape"))
    return net.op("Concat", outs, f"/{scope}/Concat", axis=1)
