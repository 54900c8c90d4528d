"""A YOLOv8 detector built with `onnx.helper` as ultralytics exports it (random weights).

The topology follows ultralytics' ``yolov8.yaml`` (backbone of Conv/C2f/SPPF, PAN neck, anchor-free
Detect head with DFL) at any of its scales, with the node names the exporter writes
(``/model.22/cv3.0/cv3.0.2/Conv``): batch norms already folded into the convs, SiLU as
``x * Sigmoid(x)``, C2f's chunk as a Split, the neck's upsampling as a nearest Resize.

``yolov8(scale, imgsz, head_only=True)`` ends at the six head convs, as Hailo's parser cuts it
(``parser.nodes`` of the zoo's ``yolov8*.yaml``); ``head_only=False`` keeps the DFL decoding,
the anchors and the class sigmoid, ending at ``output0`` of shape (1, 4 + nc, anchors).
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["yolov8", "SCALES", "HEAD_CONVS"]

# depth, width, max channels (ultralytics/cfg/models/v8/yolov8.yaml)
SCALES = {"n": (0.33, 0.25, 1024), "s": (0.33, 0.50, 1024), "m": (0.67, 0.75, 768), "l": (1.00, 1.00, 512),
          "x": (1.00, 1.25, 512)}
# the six convs Hailo's parser ends at: box (cv2) and class (cv3) of strides 8, 16, 32
HEAD_CONVS = tuple(f"/model.22/{branch}.{i}/{branch}.{i}.2/Conv" for i in range(3) for branch in ("cv2", "cv3"))


class _Builder:
    def __init__(self, seed: int):
        self.nodes: list = []
        self.inits: dict[str, np.ndarray] = {}
        self.rng = np.random.default_rng(seed)

    def node(self, op: str, name: str, inputs, outputs=None, **attrs) -> list[str]:
        outputs = outputs or [f"{name}_output_0"]
        self.nodes.append(helper.make_node(op, list(inputs), list(outputs), name=name, **attrs))
        return outputs

    def const(self, name: str, value) -> str:
        self.inits[name] = np.asarray(value)
        return name

    def conv2d(self, scope: str, x: str, c_in: int, c_out: int, k: int, s: int = 1, bias: float | None = None) -> str:
        """A conv with He-scaled random weights; ``bias`` one value for all (Detect's bias_init), else random."""
        fan_in = c_in * k * k
        w = self.rng.standard_normal((c_out, c_in, k, k)).astype(np.float32) * np.float32(math.sqrt(2.0 / fan_in))
        b = (self.rng.standard_normal(c_out).astype(np.float32) * np.float32(0.1) if bias is None
             else np.full(c_out, bias, np.float32))
        key = scope.strip('/').replace('/', '.')
        wn, bn = self.const(f"{key}.weight", w), self.const(f"{key}.bias", b)
        return self.node("Conv", f"{scope}/Conv", [x, wn, bn], kernel_shape=[k, k], strides=[s, s],
                         pads=[k // 2] * 4, dilations=[1, 1], group=1)[0]

    def conv(self, scope: str, x: str, c_in: int, c_out: int, k: int = 1, s: int = 1) -> str:
        """ultralytics' Conv: conv (batch norm folded) and SiLU written as x * Sigmoid(x)."""
        y = self.conv2d(f"{scope}/conv", x, c_in, c_out, k, s)
        gate = self.node("Sigmoid", f"{scope}/act/Sigmoid", [y])[0]
        return self.node("Mul", f"{scope}/act/Mul", [y, gate])[0]

    def c2f(self, scope: str, x: str, c_in: int, c_out: int, n: int, shortcut: bool) -> str:
        c = c_out // 2
        y = self.conv(f"{scope}/cv1", x, c_in, 2 * c)
        parts = self.node("Split", f"{scope}/Split", [y, self.const(f"{scope}.split", np.array([c, c], np.int64))],
                          [f"{scope}/Split_output_0", f"{scope}/Split_output_1"], axis=1)
        for i in range(n):
            h = self.conv(f"{scope}/m.{i}/cv1", parts[-1], c, c, 3)
            h = self.conv(f"{scope}/m.{i}/cv2", h, c, c, 3)
            if shortcut:
                h = self.node("Add", f"{scope}/m.{i}/Add", [parts[-1], h])[0]
            parts.append(h)
        cat = self.node("Concat", f"{scope}/Concat", parts, axis=1)[0]
        return self.conv(f"{scope}/cv2", cat, (2 + n) * c, c_out)

    def sppf(self, scope: str, x: str, c_in: int, c_out: int) -> str:
        c = c_in // 2
        ys = [self.conv(f"{scope}/cv1", x, c_in, c)]
        for i, suffix in enumerate(("", "_1", "_2")):
            ys.append(self.node("MaxPool", f"{scope}/m{suffix}/MaxPool", [ys[-1]], kernel_shape=[5, 5],
                                strides=[1, 1], pads=[2, 2, 2, 2], dilations=[1, 1], ceil_mode=0)[0])
        cat = self.node("Concat", f"{scope}/Concat", ys, axis=1)[0]
        return self.conv(f"{scope}/cv2", cat, 4 * c, c_out)

    def upsample(self, scope: str, x: str) -> str:
        scales = self.const(f"{scope}.scales", np.array([1, 1, 2, 2], np.float32))
        return self.node("Resize", f"{scope}/Resize", [x, "", scales], mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor")[0]


def _channels(c: int, width: float, max_channels: int) -> int:
    return int(math.ceil(min(c, max_channels) * width / 8) * 8)


def _repeats(n: int, depth: float) -> int:
    return max(round(n * depth), 1)


def yolov8(scale: str = "n", imgsz: int = 320, nc: int = 80, head_only: bool = True, seed: int = 0) -> onnx.ModelProto:
    """YOLOv8-``scale`` at ``imgsz`` x ``imgsz``, cut at its six head convs or (``head_only=False``) whole."""
    depth, width, top = SCALES[scale]
    ch = {c: _channels(c, width, top) for c in (64, 128, 256, 512, 1024)}
    b = _Builder(seed)
    x = b.conv("/model.0", "images", 3, ch[64], 3, 2)
    x = b.conv("/model.1", x, ch[64], ch[128], 3, 2)
    x = b.c2f("/model.2", x, ch[128], ch[128], _repeats(3, depth), True)
    x = b.conv("/model.3", x, ch[128], ch[256], 3, 2)
    p3 = b.c2f("/model.4", x, ch[256], ch[256], _repeats(6, depth), True)
    x = b.conv("/model.5", p3, ch[256], ch[512], 3, 2)
    p4 = b.c2f("/model.6", x, ch[512], ch[512], _repeats(6, depth), True)
    x = b.conv("/model.7", p4, ch[512], ch[1024], 3, 2)
    x = b.c2f("/model.8", x, ch[1024], ch[1024], _repeats(3, depth), True)
    p5 = b.sppf("/model.9", x, ch[1024], ch[1024])
    x = b.upsample("/model.10", p5)
    x = b.node("Concat", "/model.11/Concat", [x, p4], axis=1)[0]
    n12 = b.c2f("/model.12", x, ch[1024] + ch[512], ch[512], _repeats(3, depth), False)
    x = b.upsample("/model.13", n12)
    x = b.node("Concat", "/model.14/Concat", [x, p3], axis=1)[0]
    out3 = b.c2f("/model.15", x, ch[512] + ch[256], ch[256], _repeats(3, depth), False)
    x = b.conv("/model.16", out3, ch[256], ch[256], 3, 2)
    x = b.node("Concat", "/model.17/Concat", [x, n12], axis=1)[0]
    out4 = b.c2f("/model.18", x, ch[256] + ch[512], ch[512], _repeats(3, depth), False)
    x = b.conv("/model.19", out4, ch[512], ch[512], 3, 2)
    x = b.node("Concat", "/model.20/Concat", [x, p5], axis=1)[0]
    out5 = b.c2f("/model.21", x, ch[512] + ch[1024], ch[1024], _repeats(3, depth), False)

    levels = (out3, out4, out5)
    widths = (ch[256], ch[512], ch[1024])
    reg_max = 16
    c2, c3 = max(16, widths[0] // 4, 4 * reg_max), max(widths[0], min(nc, 100))
    heads = []
    for i, (feature, c_in) in enumerate(zip(levels, widths)):
        box = b.conv(f"/model.22/cv2.{i}/cv2.{i}.0", feature, c_in, c2, 3)
        box = b.conv(f"/model.22/cv2.{i}/cv2.{i}.1", box, c2, c2, 3)
        box = b.conv2d(f"/model.22/cv2.{i}/cv2.{i}.2", box, c2, 4 * reg_max, 1, bias=1.0)
        cls = b.conv(f"/model.22/cv3.{i}/cv3.{i}.0", feature, c_in, c3, 3)
        cls = b.conv(f"/model.22/cv3.{i}/cv3.{i}.1", cls, c3, c3, 3)
        prior = math.log(5 / nc / (640 / (8 << i)) ** 2)  # ultralytics' Detect.bias_init: few objects per image
        cls = b.conv2d(f"/model.22/cv3.{i}/cv3.{i}.2", cls, c3, nc, 1, bias=prior)
        heads.append((box, cls))
    if head_only:
        outputs = [t for pair in heads for t in pair]
    else:
        outputs = [_decode(b, heads, imgsz, nc, reg_max)]
    graph = helper.make_graph(b.nodes, f"yolov8{scale}",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, imgsz, imgsz])],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
                              [numpy_helper.from_array(v, k) for k, v in b.inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch")
    model.ir_version = 8
    return model


def _decode(b: _Builder, heads, imgsz: int, nc: int, reg_max: int) -> str:
    """Detect's inference path: DFL over the box logits, dist2bbox against the anchors, class sigmoid."""
    rows, anchors, strides = [], [], []
    for i, (box, cls) in enumerate(heads):
        cat = b.node("Concat", f"/model.22/Concat{'' if i == 0 else f'_{i}'}", [box, cls], axis=1)[0]
        shape = b.const(f"/model.22/Constant_{i}", np.array([1, 4 * reg_max + nc, -1], np.int64))
        rows.append(b.node("Reshape", f"/model.22/Reshape{'' if i == 0 else f'_{i}'}", [cat, shape])[0])
        stride = 8 << i
        side = imgsz // stride
        sy, sx = np.meshgrid(np.arange(side) + 0.5, np.arange(side) + 0.5, indexing="ij")
        anchors.append(np.stack([sx.reshape(-1), sy.reshape(-1)]))
        strides.append(np.full(side * side, stride))
    x = b.node("Concat", "/model.22/Concat_3", rows, axis=2)[0]
    count = sum(a.shape[1] for a in anchors)
    box, cls = b.node("Split", "/model.22/Split", [x, b.const("/model.22/split", np.array([4 * reg_max, nc], np.int64))],
                      ["/model.22/Split_output_0", "/model.22/Split_output_1"], axis=1)
    d = b.node("Reshape", "/model.22/dfl/Reshape", [box, b.const("/model.22/dfl/shape", np.array([1, 4, reg_max, count]))])
    d = b.node("Transpose", "/model.22/dfl/Transpose", d, perm=[0, 2, 1, 3])
    d = b.node("Softmax", "/model.22/dfl/Softmax", d, axis=1)
    dfl_w = b.const("model.22.dfl.conv.weight", np.arange(reg_max, dtype=np.float32).reshape(1, reg_max, 1, 1))
    d = b.node("Conv", "/model.22/dfl/conv/Conv", [d[0], dfl_w], kernel_shape=[1, 1])
    d = b.node("Reshape", "/model.22/dfl/Reshape_1", [d[0], b.const("/model.22/dfl/shape_1", np.array([1, 4, count]))])[0]
    lt = b.node("Slice", "/model.22/Slice", [d, b.const("/model.22/s0", np.array([0])), b.const("/model.22/e0", np.array([2])),
                                             b.const("/model.22/ax", np.array([1]))])[0]
    rb = b.node("Slice", "/model.22/Slice_1", [d, b.const("/model.22/s1", np.array([2])),
                                               b.const("/model.22/e1", np.array([4])), "/model.22/ax"])[0]
    anchor = b.const("/model.22/anchors", np.concatenate(anchors, axis=1)[None].astype(np.float32))
    x1y1 = b.node("Sub", "/model.22/Sub", [anchor, lt])[0]
    x2y2 = b.node("Add", "/model.22/Add", [anchor, rb])[0]
    centre = b.node("Add", "/model.22/Add_1", [x1y1, x2y2])[0]
    centre = b.node("Div", "/model.22/Div", [centre, b.const("/model.22/two", np.array(2.0, np.float32))])[0]
    wh = b.node("Sub", "/model.22/Sub_1", [x2y2, x1y1])[0]
    dbox = b.node("Concat", "/model.22/Concat_4", [centre, wh], axis=1)[0]
    stride = b.const("/model.22/strides", np.concatenate(strides)[None].astype(np.float32))
    dbox = b.node("Mul", "/model.22/Mul", [dbox, stride])[0]
    score = b.node("Sigmoid", "/model.22/Sigmoid", [cls])[0]
    return b.node("Concat", "/model.22/Concat_5", [dbox, score], ["output0"], axis=1)[0]
