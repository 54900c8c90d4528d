"""Data-movement kernels: slices, pads, depth/space rearrangements, and reductions.

Slices, pads and the depth/space rearrangements only move codes: the output keeps the input's
encoding (S, Z) exactly (N32)-(N34). A max reduction keeps it too, because the max of the codes
is the code of the max (N35). A sum or mean reduction is one exact int64 sum of the centred codes
and one requantization (N36). All take NHWC (4-D) or ONNX-layout (other ranks) uint8/uint16
arrays with the axes already in that layout.
"""

from __future__ import annotations

from collections.abc import Sequence

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from alls.runtime.kernels._common import as_activation, requantize
from alls.runtime.numerics import Requant, activation_max

__all__ = ["slice_axes", "pad", "depth_to_space", "space_to_depth", "reduce_max", "reduce_sum"]

# The pad modes besides "constant", by the names ONNX and numpy share.
_PAD_MODES: dict[str, Literal["reflect", "edge", "wrap"]] = {"reflect": "reflect", "edge": "edge", "wrap": "wrap"}


def slice_axes(x: ArrayLike, slices: Sequence[tuple[int, int, int, int]]) -> np.ndarray:
    """x[..., start:stop:step, ...] on each ``(axis, start, stop, step)`` (N32); ``stop`` −1 with a
    negative step runs through index 0 (ONNX's clamped end)."""
    x = as_activation(x)
    index = [slice(None)] * x.ndim
    for axis, start, stop, step in slices:
        index[axis] = slice(start, stop if stop >= 0 else None, step)
    return np.ascontiguousarray(x[tuple(index)])


def pad(x: ArrayLike, pads: Sequence[tuple[int, int]], *, mode: str = "constant", value: int = 0) -> np.ndarray:
    """ONNX Pad (N33): ``pads`` one (before, after) per axis; a constant pad writes the code ``value``."""
    x = as_activation(x)
    if any(b < 0 or a < 0 for b, a in pads):
        raise ValueError("negative pads (a crop) are a slice")
    if mode == "constant":
        return np.pad(x, pads, mode="constant", constant_values=x.dtype.type(value))
    if mode not in _PAD_MODES:
        raise ValueError(f"pad mode `{mode}` is not supported")
    return np.pad(x, pads, mode=_PAD_MODES[mode])


def depth_to_space(x: ArrayLike, *, blocksize: int, mode: str = "DCR") -> np.ndarray:
    """ONNX DepthToSpace on NHWC (N34): channel (i·b + j)·C' + c (DCR) or c·b² + i·b + j (CRD) of
    pixel (h, w) goes to channel c of pixel (h·b + i, w·b + j)."""
    x = as_activation(x)
    n, h, w, c = x.shape
    b = blocksize
    if c % (b * b):
        raise ValueError(f"{c} channels do not split into blocks of {b}x{b}")
    if mode == "DCR":
        y = x.reshape(n, h, w, b, b, c // (b * b)).transpose(0, 1, 3, 2, 4, 5)
    elif mode == "CRD":
        y = x.reshape(n, h, w, c // (b * b), b, b).transpose(0, 1, 4, 2, 5, 3)
    else:
        raise ValueError(f"DepthToSpace mode `{mode}` is not supported")
    return np.ascontiguousarray(y).reshape(n, h * b, w * b, c // (b * b))


def space_to_depth(x: ArrayLike, *, blocksize: int) -> np.ndarray:
    """ONNX SpaceToDepth on NHWC (N34): pixel (h·b + i, w·b + j), channel c goes to channel
    (i·b + j)·C + c of pixel (h, w)."""
    x = as_activation(x)
    n, h, w, c = x.shape
    b = blocksize
    if h % b or w % b:
        raise ValueError(f"a {h}x{w} image does not split into blocks of {b}x{b}")
    y = x.reshape(n, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5)
    return np.ascontiguousarray(y).reshape(n, h // b, w // b, b * b * c)


def reduce_max(x: ArrayLike, *, axes: Sequence[int]) -> np.ndarray:
    """The max of the codes over ``axes``, kept as size-1 axes (N35)."""
    x = as_activation(x)
    return np.ascontiguousarray(x.max(axis=tuple(axes), keepdims=True))


def reduce_sum(x: ArrayLike, rq: Requant, *, zero_point: int, axes: Sequence[int]) -> np.ndarray:
    """(N36): y = clamp(Z_y + RHU((Σ q − κ·Z_x)·M, n), lo, hi) over the κ elements of ``axes``, kept
    as size-1 axes. A mean has the 1/κ in its multiplier; |Σ (q − Z_x)| ≤ κ·A = V."""
    x = as_activation(x)
    axes = tuple(axes)
    count = int(np.prod([x.shape[a] for a in axes])) if axes else 1
    total = x.sum(axis=axes, keepdims=True, dtype=np.int64) - np.int64(count) * np.int64(zero_point)
    bound = count * activation_max(8 if x.dtype == np.uint8 else 16)
    return requantize(np.ascontiguousarray(total), rq, bound=bound)
