"""Resize and Upsample (`resize`): nearest or linear, to a constant size or scale.

With ``scales`` given, ONNX takes floor(size · scale) as the output size and the given scale in the
coordinate transform; where the two disagree (width 7 at scale 1.5: 10 columns, read at 1/1.5, not
7/10) the layer carries the scale of each spatial axis as its ``scales`` attribute. Without it the
runtime takes output / input, which is then the same number. align_corners maps the corners of the
sizes (as onnxruntime does; `onnx.reference` divides by scale · size − 1), so it carries none.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from alls.importer.drafts import Draft, aliases_of
from alls.importer.registry import handles

if TYPE_CHECKING:
    from alls.importer.drafts import Node
    from alls.importer.driver import Importer

COORDINATE_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _constants(imp: Importer, n: Node, in_shape: tuple[int, ...]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(sizes, scales) over all axes of ``in_shape`` where the node gives them as constants (ONNX's
    ``axes`` spread out: the axes it leaves out keep their size), else None."""
    sizes = scales = None
    rank = len(in_shape)
    axes = [int(a) % rank for a in n.attrs.get("axes", range(rank))]
    given = [np.asarray(n.attrs["scales"], np.float32)] if "scales" in n.attrs else []  # Upsample-7
    given += [v for i in n.inputs[1:] if i and (v := imp.consts.get(imp.resolve(i))) is not None]
    for value in given:
        if value.size == len(axes) and value.size:
            if value.dtype.kind in "iu":
                sizes = np.array(in_shape, np.int64)
                sizes[axes] = value.reshape(-1)
            else:
                scales = np.ones(rank, np.float32)
                scales[axes] = value.reshape(-1)
    return sizes, scales


def _refusal(n: Node, mode: str, ctm: str, in_shape: tuple[int, ...]) -> str | None:
    if mode not in ("nearest", "linear", "bilinear"):
        return f"resize mode `{mode}` has no layer"
    if ctm not in COORDINATE_MODES:
        return f"resize coordinate_transformation_mode `{ctm}` has no layer"
    if n.attrs.get("nearest_mode", "round_prefer_floor") not in NEAREST_MODES:
        return f"resize nearest_mode `{n.attrs['nearest_mode']}` has no layer"
    if n.attrs.get("antialias", 0):
        return "an antialiased resize has no layer"
    if n.attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        return f"resize keep_aspect_ratio_policy `{n.attrs['keep_aspect_ratio_policy']}` has no layer"
    if not in_shape:
        return "the input shape is not known"
    if len(in_shape) != 4:
        return f"a resize of a rank-{len(in_shape)} tensor has no layer (it resizes H and W of NCHW)"
    return None


def _nearest_mode(imp: Importer, n: Node, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                  scales: np.ndarray | None) -> str | None:
    """Resize from opset 11 names its rounding. Upsample and Resize-10 name none; onnxruntime (and
    `onnx.reference`'s Upsample) rounds down where an axis grows and up where it shrinks: one
    rounding for both axes, or None."""
    if n.op == "Resize" and imp.opset >= 11:
        return str(n.attrs.get("nearest_mode", "round_prefer_floor"))
    grows = {float(s) >= 1 for s in scales[2:]} if scales is not None else {
        o >= i for i, o in zip(in_shape[2:], out_shape[2:])}
    return None if len(grows) > 1 else "floor" if grows == {True} else "ceil"


@handles("Resize", "Upsample")
def resize(imp: Importer, n: Node, data_in: list[str]) -> str | None:
    mode = n.attrs.get("mode", "nearest")
    default_ctm = "half_pixel" if n.op == "Resize" and imp.opset >= 11 else "asymmetric"
    ctm = n.attrs.get("coordinate_transformation_mode", default_ctm)
    in_shape, out_shape = tuple(imp.shape(data_in[0])), tuple(imp.shape(n.outputs[0]) or ())
    if (problem := _refusal(n, mode, ctm, in_shape)) is not None:
        return problem
    sizes, scales = _constants(imp, n, in_shape)
    if scales is not None and not (np.all(np.isfinite(scales)) and np.all(scales > 0)):
        return f"resize scales {scales.tolist()} are not all finite and positive"
    if sizes is not None:
        out_shape, scales = tuple(int(s) for s in sizes), None
    elif scales is not None:
        out_shape = tuple(int(np.floor(d * float(s))) for d, s in zip(in_shape, scales))
    elif not out_shape:
        return "the output size is not constant"
    if min(out_shape) <= 0 or math.prod(out_shape) > imp.limits.max_tensor_elements:
        return f"a resize to {out_shape} (empty, or more than --max-tensor-elements) has no layer"
    if out_shape[:2] != in_shape[:2]:
        return f"a resize of the batch or channel axis ({in_shape} to {out_shape}) has no layer"
    nearest_mode = (_nearest_mode(imp, n, in_shape, out_shape, scales) if mode == "nearest"
                    else str(n.attrs.get("nearest_mode", "round_prefer_floor")))
    if nearest_mode is None:
        return f"a nearest {n.op} that grows one axis and shrinks the other (opset {imp.opset}) has no layer"
    imp.shapes[n.outputs[0]] = out_shape
    attrs = {"mode": "nearest" if mode == "nearest" else "bilinear", "coordinate_transformation_mode": ctm,
             "nearest_mode": nearest_mode}
    if ctm != "align_corners" and scales is not None and any(
            Fraction(float(s)) * d != o for s, d, o in zip(scales, in_shape, out_shape)):
        attrs["scales"] = (float(scales[2]), float(scales[3]))
    imp.add(Draft("resize", [n.op], data_in, n.outputs[0], aliases_of(n), node_name=n.name, attrs=attrs))
    return None
