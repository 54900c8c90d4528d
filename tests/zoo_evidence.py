"""Faithful ONNX topologies of the zoo networks whose numbering weighs on the tie rule (docs/naming.md):
networks whose box and class predictions of one level are not adjacent in the zoo's configs.

- `build_yolov9c(imgsz, width)`: WongKinYiu's YOLOv9-C as the zoo deploys it (GELAN-C: RepNCSPELAN4,
  ADown, SPPELAN; the DualDDetect head's main branches, whose box branch holds grouped convs),
  torch 1.x's ``Conv_12`` names. ``width`` scales the trunk's channels (the zoo's numbers do not
  depend on them); `yolov9c_predictions` names the six prediction convs.

``python tests/zoo_evidence.py OUT_DIR`` writes them as ``.onnx`` files.
"""

from __future__ import annotations

import sys

import numpy as np
import onnx

from zoo_blocks import Net, concat, upsample

__all__ = ["build_yolov9c", "yolov9c_predictions", "EVIDENCE_BUILDERS"]


# ------------------------------------------------------------------ YOLOv9


def build_yolov9c(imgsz: int = 640, width: float = 0.125, nc: int = 80, seed: int = 0) -> onnx.ModelProto:
    """YOLOv9-C (``models/detect/yolov9-c.yaml`` less the auxiliary branch, which lies outside the zoo's
    cut; the same as ``gelan-c.yaml``) as torch 1.x exports it: RepConvN fused into one 3x3 conv, SiLU
    as Sigmoid and Mul, ``chunk`` as Split. The head per level: a box branch of a 3x3 conv, a 3x3 conv
    in 4 groups and a 1x1 conv in 4 groups, a class branch of two 3x3 convs and a 1x1 conv, joined
    by a Concat; then the levels' decoding (flattened and joined here; the zoo cuts before it)."""
    net = Net(seed, torch_names=True)
    net.channels["images"] = 3

    def ch(c: int) -> int:
        return max(int(c * width) // 8 * 8, 8)

    def conv(x: str, c: int, k: int = 1, s: int = 1, group: int = 1) -> str:
        return net.conv(x, c, k, s, "", group=group)

    def elan(x: str, c2: int, c3: int, c4: int) -> str:  # RepNCSPELAN4(c1, c2, c3, c4, 1)
        ys = list(net.op("Split", [conv(x, c3), net.const(np.array([c3 // 2] * 2, np.int64))], "", c3 // 2,
                         outputs=2, axis=1))
        for _ in range(2):
            ys.append(conv(_rep_ncsp(net, ys[-1], c4), c4, 3))
        return conv(concat(net, ys, ""), c2)

    def adown(x: str, c2: int) -> str:
        c = net.channels[x]
        x = net.op("AveragePool", [x], "", c, kernel_shape=[2, 2], strides=[1, 1], pads=[0] * 4)
        x1, x2 = net.op("Split", [x, net.const(np.array([c // 2] * 2, np.int64))], "", c // 2, outputs=2, axis=1)
        x1 = conv(x1, c2 // 2, 3, 2)
        x2 = net.op("MaxPool", [x2], "", c // 2, kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)
        return concat(net, [x1, conv(x2, c2 // 2)], "")

    def sppelan(x: str, c2: int, c3: int) -> str:
        ys = [conv(x, c3)]
        for _ in range(3):
            ys.append(net.op("MaxPool", [ys[-1]], "", c3, kernel_shape=[5, 5], strides=[1, 1], pads=[2] * 4))
        return conv(concat(net, ys, ""), c2)

    x = conv(conv("images", ch(64), 3, 2), ch(128), 3, 2)
    x = elan(x, ch(256), ch(128), ch(64))
    y5 = x = elan(adown(x, ch(256)), ch(512), ch(256), ch(128))
    y7 = x = elan(adown(x, ch(512)), ch(512), ch(512), ch(256))
    x = elan(adown(x, ch(512)), ch(512), ch(512), ch(256))
    y10 = x = sppelan(x, ch(512), ch(256))
    y13 = x = elan(concat(net, [upsample(net, x, ""), y7], ""), ch(512), ch(512), ch(256))
    y16 = x = elan(concat(net, [upsample(net, x, ""), y5], ""), ch(256), ch(256), ch(128))
    y19 = x = elan(concat(net, [adown(x, ch(256)), y13], ""), ch(512), ch(512), ch(256))
    y22 = elan(concat(net, [adown(x, ch(512)), y10], ""), ch(512), ch(512), ch(256))
    reg_max = 16
    c2 = max(net.channels[y16] // 4, reg_max * 4, 16)
    c3 = max(net.channels[y16], min(nc * 2, 128))
    flat = []
    for feat in (y16, y19, y22):
        box = conv(conv(feat, c2, 3), c2, 3, group=4)
        box = net.conv(box, 4 * reg_max, 1, 1, "", act=None, group=4)
        cls = net.conv(conv(conv(feat, c3, 3), c3, 3), nc, 1, 1, "", act=None)
        level = concat(net, [box, cls], "")
        flat.append(net.op("Reshape", [level, net.const(np.array([1, 4 * reg_max + nc, -1], np.int64))], ""))
    out = net.op("Concat", flat, "", axis=2)
    return net.model("images", [1, 3, imgsz, imgsz], [(out, "output0")], "yolov9c")


def _rep_ncsp(net: Net, x: str, c2: int) -> str:
    """RepNCSP(c1, c2, n=1): cv3(cat(m(cv1(x)), cv2(x))), m a RepNBottleneck (a fused RepConvN 3x3
    and a 3x3 conv, with the shortcut)."""
    c_ = c2 // 2
    a = net.conv(x, c_, 1, 1, "")
    h = net.conv(net.conv(a, c_, 3, 1, ""), c_, 3, 1, "")
    a = net.op("Add", [a, h], "", c_)
    b = net.conv(x, c_, 1, 1, "")
    return net.conv(concat(net, [a, b], ""), c2, 1, 1, "")


def yolov9c_predictions(model: onnx.ModelProto) -> list[str]:
    """The box and class prediction convs of each level of `build_yolov9c`, in that order (the zoo's
    ``reg_layer``, ``cls_layer``, and its ``parser.nodes`` end nodes' order)."""
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"][-18:]  # per level: box 3, class 3
    return [convs[6 * level + k] for level in range(3) for k in (2, 5)]


EVIDENCE_BUILDERS = {"yolov9c": build_yolov9c}


if __name__ == "__main__":  # python tests/zoo_evidence.py OUT_DIR
    import pathlib

    folder = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    folder.mkdir(parents=True, exist_ok=True)
    for key, build in EVIDENCE_BUILDERS.items():
        onnx.save(build(), folder / f"{key}.onnx")
        print(folder / f"{key}.onnx")
