"""A faithful small topology of MobileNetV3-small and PP-LCNet blocks, made with `onnx.helper`.

Every block kind those backbones (and PP-OCRv4's detector) are made of, with batch norms after the
convs as exported models have them, channel gains spread over two decades (as trained batch norms
leave them), and random weights:

1. stem: 3x3 conv, stride 2, hard-swish;
2. MobileNetV3 bneck with ReLU and a squeeze-excite gate: depthwise 3x3 (ReLU), SE (global average
   pool, 1x1 conv + ReLU, 1x1 conv + HardSigmoid, multiply), linear 1x1 projection;
3. MobileNetV3 bneck with ReLU and a residual: 1x1 expansion (ReLU), depthwise (ReLU), linear
   projection, add;
4. MobileNetV3 bneck with hard-swish and SE: expansion and depthwise 5x5 with HardSwish;
5. PP-LCNet block: depthwise (hard-swish), SE, 1x1 conv (hard-swish) followed by PP-LCNetV3's
   learnable affine (a scalar multiply and add); then PP-LCNetV3's linear depthwise into a 1x1 conv;
6. PP-OCRv4's residual SE (RSE) of its neck: a linear 1x1 conv x, then x + x·gate(x), into a 3x3
   conv with ReLU;
7. head: global average pool, flatten, dense.

    model = lcnet.blocks()          # onnx.ModelProto, input "input" (N, 3, 32, 32), output "logits"
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

__all__ = ["blocks", "save", "SIZE"]

SIZE = 32


class _Builder:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def const(self, value: np.ndarray, stem: str = "c") -> str:
        from onnx import numpy_helper

        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        from onnx import helper

        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int = 1, stride: int = 1, group: int = 1, act: str | None = None,
             bn: bool = True) -> str:
        w = self.rng.normal(0, 1 / np.sqrt(cin // group * k * k), (cout, cin // group, k, k))
        y = self.node("Conv", [x, self.const(w, "w"), self.const(self.rng.normal(0, 0.05, cout), "b")],
                      kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=group)
        if bn:
            gain = np.exp(self.rng.uniform(np.log(0.05), np.log(3.0), cout))
            y = self.node("BatchNormalization", [y, self.const(gain), self.const(self.rng.normal(0.1, 0.3, cout)),
                                                 self.const(self.rng.normal(0, 0.1, cout)),
                                                 self.const(self.rng.uniform(0.5, 2.0, cout))])
        return self.activation(y, act)

    def activation(self, x: str, act: str | None) -> str:
        if act is None:
            return x
        if act == "hard_sigmoid":
            return self.node("HardSigmoid", [x], alpha=1 / 6, beta=0.5)
        return self.node({"relu": "Relu", "hardswish": "HardSwish"}[act], [x])

    def se(self, x: str, channels: int, squeeze: int) -> str:
        pooled = self.node("GlobalAveragePool", [x])
        gate = self.conv(self.conv(pooled, channels, squeeze, act="relu", bn=False), squeeze, channels,
                         act="hard_sigmoid", bn=False)
        return self.node("Mul", [x, gate])


def blocks(seed: int = 0):
    """The block model (onnx.ModelProto, opset 14)."""
    from onnx import TensorProto, helper

    b = _Builder(seed)
    x = b.conv("input", 3, 16, 3, 2, act="hardswish")                      # 1. stem
    dw = b.conv(x, 16, 16, 3, 2, group=16, act="relu")                       # 2. bneck, ReLU, SE
    x = b.conv(b.se(dw, 16, 8), 16, 16)
    y = b.conv(b.conv(b.conv(x, 16, 48, act="relu"), 48, 48, 3, group=48, act="relu"), 48, 16)  # 3. residual
    x = b.node("Add", [x, y])
    x = b.conv(x, 16, 64, act="hardswish")                                   # 4. bneck, hard-swish, SE
    x = b.conv(b.se(b.conv(x, 64, 64, 5, group=64, act="hardswish"), 64, 16), 64, 24)
    x = b.se(b.conv(x, 24, 24, 3, group=24, act="hardswish"), 24, 8)         # 5. PP-LCNet
    x = b.conv(x, 24, 48, act="hardswish")
    x = b.node("Add", [b.node("Mul", [x, b.const(np.array(0.9))]), b.const(np.array(0.05))])
    x = b.conv(b.conv(x, 48, 48, 3, group=48), 48, 48, act="hardswish")
    r = b.conv(x, 48, 24, bn=False)                                          # 6. RSE
    x = b.conv(b.node("Add", [r, b.se(r, 24, 6)]), 24, 32, 3, act="relu")
    flat = b.node("Flatten", [b.node("GlobalAveragePool", [x])])             # 7. head
    w = b.rng.normal(0, 1 / np.sqrt(32), (10, 32))
    logits = b.node("Gemm", [flat, b.const(w, "w"), b.const(np.zeros(10), "b")], transB=1)
    b.nodes.append(helper.make_node("Identity", [logits], ["logits"], name="logits"))
    graph = helper.make_graph(b.nodes, "lcnet_blocks",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


def save(path: Path | None = None, seed: int = 0) -> Path:
    """The block model written to ``path`` (a temporary file when None)."""
    import onnx

    path = Path(path or Path(tempfile.mkdtemp()) / "lcnet_blocks.onnx")
    onnx.save(blocks(seed), str(path))
    return path
