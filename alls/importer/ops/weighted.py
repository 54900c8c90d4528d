"""Weighted layers: Conv (`conv`, `dw`), ConvTranspose (`deconv`), Gemm and MatMul by a constant
(`fc`), and the helpers that fold a scale into their weights; a MatMul of two activations is the
`matmul` layer (attention), which has no weights but shares the op's handler."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from alls.importer.drafts import Draft, Node, aliases_of
from alls.importer.registry import handles

if TYPE_CHECKING:
    from alls.importer.driver import Importer


@handles("Conv")
def conv(imp: Importer, n: Node, data_in: list[str]) -> str | None:
    weight = imp.consts.get(imp.resolve(n.inputs[1])) if len(n.inputs) > 1 else None
    if weight is None or len(data_in) != 1:
        return "the weights are not constant"
    bias = imp.consts.get(n.inputs[2]) if len(n.inputs) > 2 and n.inputs[2] else None
    in_shape = imp.shape(data_in[0])
    group = int(n.attrs.get("group", 1))
    c_in, c_out = (in_shape[1] if len(in_shape) > 1 else weight.shape[1] * group), weight.shape[0]
    kind = "dw" if group > 1 and group == c_in and c_out % group == 0 else "conv"
    attrs = conv_attrs(n, weight.shape[2:], in_shape)
    attrs["group"] = group
    draft = Draft(kind, ["Conv"], data_in, n.outputs[0], aliases_of(n), node_name=n.name, attrs=attrs)
    draft.params["weight"] = weight.astype(np.float32)
    draft.params["bias"] = (bias if bias is not None else np.zeros(c_out)).astype(np.float32)
    imp.add(draft)
    return None


@handles("ConvTranspose")
def conv_transpose(imp: Importer, n: Node, data_in: list[str]) -> str | None:
    weight = imp.consts.get(imp.resolve(n.inputs[1])) if len(n.inputs) > 1 else None
    if weight is None or len(data_in) != 1:
        return "the weights are not constant"
    group = int(n.attrs.get("group", 1))
    bias = imp.consts.get(n.inputs[2]) if len(n.inputs) > 2 and n.inputs[2] else None
    attrs = conv_attrs(n, weight.shape[2:], imp.shape(data_in[0]))
    attrs["group"] = group
    for key in ("output_padding", "output_shape"):
        if key in n.attrs:
            attrs[key] = tuple(n.attrs[key])
    draft = Draft("deconv", ["ConvTranspose"], data_in, n.outputs[0], aliases_of(n), node_name=n.name, attrs=attrs)
    draft.params["weight"] = weight.astype(np.float32)
    draft.params["bias"] = (bias if bias is not None else np.zeros(weight.shape[1] * group)).astype(np.float32)
    imp.add(draft)
    return None


@handles("Gemm")
def gemm(imp: Importer, n: Node, data_in: list[str]) -> str | None:
    weight = imp.consts.get(imp.resolve(n.inputs[1]))
    if weight is None or len(data_in) != 1 or n.attrs.get("transA", 0):
        return "only x·W with a constant W is a dense layer"
    w = weight.T if n.attrs.get("transB", 0) else weight  # (in, out)
    w = w * float(n.attrs.get("alpha", 1.0))
    c = imp.consts.get(n.inputs[2]) if len(n.inputs) > 2 and n.inputs[2] else None
    if c is not None and (c.ndim > 2 or c.size not in (1, w.shape[1]) or (c.ndim == 2 and c.shape[0] != 1)):
        return f"a bias C of shape {tuple(c.shape)} differs from row to row; a dense layer's bias is one per output"
    bias = np.broadcast_to(c * float(n.attrs.get("beta", 1.0)), (1, w.shape[1]))[0] if c is not None else np.zeros(w.shape[1])
    _dense(imp, n, data_in, w, bias)
    return None


@handles("MatMul")
def matmul(imp: Importer, n: Node, data_in: list[str]) -> str | None:
    if len(data_in) == 2:  # neither operand constant: a product of activations (attention)
        _product(imp, n, data_in)
        return None
    weight = imp.consts.get(imp.resolve(n.inputs[1]))
    if weight is None or weight.ndim != 2 or len(data_in) != 1:
        return "only x·W with a constant 2-D W is a dense layer"
    _dense(imp, n, data_in, weight, np.zeros(weight.shape[1]))
    return None


def _product(imp: Importer, n: Node, data_in: list[str]) -> None:
    """A `matmul` layer of two activations (..., M, K)·(..., K, N), or ALS416 naming the form it is not."""
    a, b = imp.shape(data_in[0]), imp.shape(data_in[1])
    problem = _product_problem(a, b)
    if problem:
        imp.refuse(n, data_in, "ALS416", problem)
        return
    batch = tuple(max(x, y) for x, y in zip(a[1:-2], b[1:-2]))
    imp.shapes.setdefault(n.outputs[0], (a[0], *batch, a[-2], b[-1]))
    imp.add(Draft("matmul", [n.op], data_in, n.outputs[0], aliases_of(n), node_name=n.name))


def _product_problem(a: tuple[int, ...], b: tuple[int, ...]) -> str:
    """Why operands of shapes ``a`` and ``b`` make no `matmul` layer, or ``""``."""
    shapes = f"{'x'.join(map(str, a)) or '?'} and {'x'.join(map(str, b)) or '?'}"
    if not a or not b:
        return "a product of two tensors whose shapes are not known"
    if len(a) < 3 or len(b) < 3 or len(a) != len(b):
        return (f"a product of two tensors of shapes {shapes}: the layer takes two tensors of one rank of 3 or more "
                "(axis 0 is the images, which a product of rank 1 or 2 or a broadcast across ranks would mix)")
    if a[-1] != b[-2]:
        return f"a product of two tensors of shapes {shapes}, whose inner dimensions differ"
    if a[0] != b[0] or any(x != y and 1 not in (x, y) for x, y in zip(a[1:-2], b[1:-2])):
        return f"a product of two tensors of shapes {shapes}, whose batch axes do not match"
    return ""


def _dense(imp: Importer, n: Node, data_in: list[str], w_in_out: NDArray[Any], bias: ArrayLike) -> None:
    source, absorbed = _unflatten(imp, data_in[0])
    draft = Draft("fc", [n.op], [source], n.outputs[0], aliases_of(n) + absorbed, node_name=n.name)
    draft.params["weight"] = np.ascontiguousarray(w_in_out.T).astype(np.float32)  # (out, in)
    draft.params["bias"] = np.asarray(bias, dtype=np.float32).copy()
    imp.add(draft)


def _unflatten(imp: Importer, tensor: str) -> tuple[str, list[str]]:
    """A Flatten/Reshape [N,C,1,1] -> [N,C] in front of a dense layer is absorbed: (source, its aliases)."""
    draft = imp.single_consumer_producer(tensor, ("format_conversion",))
    if draft is not None and draft.attrs.get("squeeze_only"):
        imp.drafts.remove(draft)
        del imp.producer[draft.output]
        return draft.inputs[0], draft.aliases
    return tensor, []


def conv_attrs(n: Node, kernel: tuple[int, ...], in_shape: tuple[int, ...]) -> dict[str, Any]:
    """Strides, dilations and explicit pads (auto_pad resolved) of a conv or pool."""
    dims = len(kernel)
    strides = tuple(n.attrs.get("strides", (1,) * dims))
    dilations = tuple(n.attrs.get("dilations", (1,) * dims))
    pads = tuple(n.attrs.get("pads", (0,) * (2 * dims)))
    auto_pad = n.attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER") and len(in_shape) == dims + 2:
        begin, end = [], []
        for size, k, s, d in zip(in_shape[2:], kernel, strides, dilations):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            small, large = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else large)
            end.append(large if auto_pad == "SAME_UPPER" else small)
        pads = tuple(begin + end)
    elif auto_pad == "VALID":
        pads = (0,) * (2 * dims)
    return {"kernel_shape": tuple(int(k) for k in kernel), "strides": strides, "dilations": dilations, "pads": pads}


def scale_outputs(draft: Draft, a: NDArray[Any]) -> None:
    """Multiply every output channel of a weighted layer (weights and bias) by ``a`` (one per channel)."""
    weight = draft.params["weight"]
    if draft.kind == "deconv":  # (C_in, C_out/G, KH, KW): the output channels of group g are axis 1 of its slice
        g = draft.attrs["group"]
        w = weight.reshape(g, weight.shape[0] // g, -1, *weight.shape[2:])
        w = w * a.reshape(g, 1, -1, *([1] * (weight.ndim - 2)))
        draft.params["weight"] = w.reshape(weight.shape).astype(np.float32)
    else:
        draft.params["weight"] = (weight * a.reshape(-1, *([1] * (weight.ndim - 1)))).astype(np.float32)
    draft.params["bias"] = (draft.params["bias"] * a).astype(np.float32)
