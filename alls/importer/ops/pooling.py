"""Pooling: MaxPool, AveragePool and their global forms (`maxpool`, `avgpool`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alls.importer.drafts import Draft, aliases_of
from alls.importer.ops.weighted import conv_attrs
from alls.importer.registry import handles

if TYPE_CHECKING:
    from alls.importer.drafts import Node
    from alls.importer.driver import Importer


def _pool(imp: Importer, n: Node, data_in: list[str], kind: str, is_global: bool = False) -> str | None:
    in_shape = imp.shape(data_in[0])
    if is_global:
        attrs: dict[str, Any] = {"global": True, "kernel_shape": tuple(in_shape[2:]), "strides": (1, 1), "pads": (0, 0, 0, 0)}
    else:
        attrs = conv_attrs(n, tuple(n.attrs["kernel_shape"]), in_shape)
        attrs["ceil_mode"] = int(n.attrs.get("ceil_mode", 0))
        attrs["count_include_pad"] = int(n.attrs.get("count_include_pad", 0))
        disagreement = _ceil_mode_disagreement(attrs, in_shape, imp.shape(n.outputs[0]))
        if disagreement:
            return disagreement
    imp.add(Draft(kind, [n.op], data_in, n.outputs[0], aliases_of(n), node_name=n.name, attrs=attrs))
    return None


@handles("MaxPool")
def max_pool(imp: Importer, n: Node, data_in: list[str]) -> str | None:
    if len(n.outputs) > 1 and n.outputs[1]:
        return "MaxPool with an indices output has no layer"
    return _pool(imp, n, data_in, "maxpool")


@handles("AveragePool")
def average_pool(imp: Importer, n: Node, data_in: list[str]) -> str | None:
    return _pool(imp, n, data_in, "avgpool")


@handles("GlobalAveragePool")
def global_average_pool(imp: Importer, n: Node, data_in: list[str]) -> str | None:
    return _pool(imp, n, data_in, "avgpool", is_global=True)


@handles("GlobalMaxPool")
def global_max_pool(imp: Importer, n: Node, data_in: list[str]) -> str | None:
    return _pool(imp, n, data_in, "maxpool", is_global=True)


def ceil_mode_size(size: int, kernel: int, stride: int, dilation: int, pad_begin: int, pad_end: int) -> int:
    """A ceil_mode pool's output size as onnxruntime (and PyTorch) run it: the windows are counted
    rounding up, and a last window that would start in the end padding is dropped."""
    out = -(-(size + pad_begin + pad_end - dilation * (kernel - 1) - 1) // stride) + 1
    return out - 1 if (out - 1) * stride >= size + pad_begin else out


def _ceil_mode_disagreement(attrs: dict[str, Any], in_shape: tuple[int, ...] | None,
                            inferred: tuple[int, ...] | None) -> str | None:
    """Why a ceil_mode pool is refused: ONNX's shape inference keeps the last window that starts in
    the end padding, which onnxruntime drops, so the layers after it would be shaped for a tensor
    the network never produces. None when they agree (or ceil_mode is off, or a shape is unknown)."""
    if not attrs["ceil_mode"] or not in_shape or not inferred or len(in_shape) != 4 or len(inferred) != 4:
        return None
    k, s, d, p = (attrs[key] for key in ("kernel_shape", "strides", "dilations", "pads"))
    run = tuple(ceil_mode_size(in_shape[2 + i], k[i], s[i], d[i], p[i], p[i + 2]) for i in range(2))
    if run == tuple(inferred[2:]):
        return None
    return (f"with ceil_mode=1 and these pads, ONNX's shape inference gives {inferred[2]}x{inferred[3]} but "
            f"the pool produces {run[0]}x{run[1]} (its last window would start in the end padding); "
            f"export it with ceil_mode=0 and end pads that give the size meant")
