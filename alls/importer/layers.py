"""What the naming pass checks and counts of each finished layer: its output shape where ONNX
inference gave none, shapes that cannot hold together, and its multiply-accumulates."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from alls.importer.drafts import Draft

# The input shapes of a layer, ``()`` where unknown.
Shapes = Sequence[tuple[int, ...]]


def shape_conflict(draft: Draft, input_shapes: Shapes, out_shape: tuple[int, ...]) -> str:
    """Why a layer's shapes cannot hold together, or ``""``. ONNX shape inference does not check that
    a constant target shape (or a concat's parts) fits the inputs it is given; a model exported for
    one input size and imported at another would otherwise run on garbled shapes."""
    known = [s for s in input_shapes if s]
    if not draft.supported or not out_shape or len(known) != len(input_shapes) or not known:
        return ""
    if draft.kind == "format_conversion":
        values_in, values_out = math.prod(known[0]), math.prod(out_shape)
        if values_in != values_out:
            return (f"{draft.ops[0]} of {_dims(known[0])} ({values_in:,} values) to {_dims(out_shape)} "
                    f"({values_out:,}): a target shape fixed for another input shape")
    if draft.kind == "concat" and "axis" in draft.attrs:
        axis = draft.attrs["axis"] % len(out_shape)
        rest = {tuple(d for i, d in enumerate(s) if i != axis) for s in known if len(s) == len(out_shape)}
        if len(rest) != 1 or sum(s[axis] for s in known if len(s) == len(out_shape)) != out_shape[axis]:
            return f"parts {', '.join(_dims(s) for s in known)} do not join into {_dims(out_shape)} on axis {axis}"
    return ""


def _dims(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def computed_shape(draft: Draft, input_shapes: Shapes) -> tuple[int, ...]:
    """The output shape when ONNX inference gave none (a fallback); unknown, ``()``, for an
    unsupported layer, whose output need not be shaped like its input."""
    if not input_shapes or not input_shapes[0] or not draft.supported:
        return ()
    shape = input_shapes[0]
    if draft.kind in ("conv", "dw") and len(shape) == 4:
        k, s, d, p = (draft.attrs[key] for key in ("kernel_shape", "strides", "dilations", "pads"))
        spatial = [(size + p[i] + p[i + 2] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i, size in enumerate(shape[2:])]
        return (shape[0], draft.params["weight"].shape[0], *spatial)
    if draft.kind == "fc":
        return (shape[0], draft.params["weight"].shape[0])
    return shape


def macs(draft: Draft, input_shapes: Shapes, out_shape: tuple[int, ...]) -> int:
    if draft.kind == "matmul" and draft.supported and out_shape and input_shapes and input_shapes[0]:
        return int(np.prod(out_shape[1:])) * int(input_shapes[0][-1])  # K per output value
    weight = draft.params.get("weight")
    if weight is None or not out_shape:
        return 0
    if draft.kind in ("conv", "dw"):
        return int(np.prod(out_shape[1:]) * np.prod(weight.shape[1:]))
    if draft.kind == "deconv":
        return int(np.prod(input_shapes[0][1:]) * np.prod(weight.shape[1:]))
    return int(np.prod(out_shape[1:-1])) * int(weight.size)  # fc: once per position of an (N, ..., out) output
