"""Layer inputs as rows, at sampled output positions: what layer-wise reconstruction trains on.

A weighted layer computes, at every output position and for every output channel c of group g,
``acc[c] = Σ_k x[k]·w[c, k]`` over the K taps of its group (NUMERICS.md (N6)). This module gathers,
for a set of output positions, the centred integer inputs ``x = q_x − Z_x`` of those taps as rows
``(R, G, K)``, and lays the weights out as ``(G, O, K)`` (O output channels per group, output
channel ``c = g·O + o``), so that ``acc[r, g·O + o] = Σ_k rows[r, g, k]·w[g, o, k]`` for conv,
depthwise, transposed conv and dense layers alike. Only the sampled positions are gathered, never
the whole im2col matrix.

A tap outside the input (padding, or between the strided inputs of a transposed conv) reads
``Z_x``, which centres to 0 (N7).

A depthwise layer (one output channel a group) is trained one tap of every channel at a time: its
rows are gathered straight into that layout (`LaidRows`: (R, K, G), the input codes themselves,
uint8 for 8-bit inputs), a quarter of the bytes of the centred (R, G, K) int16 rows and their copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from alls.graph import Layer

__all__ = ["Positions", "LaidRows", "Rows", "sample_positions", "depthwise", "gather_rows", "join_rows", "tap_means",
           "to_groups", "from_groups", "output_size"]

POSITIONS_PER_IMAGE = 64


class Positions:
    """Sampled output positions of one layer: image ``n``, row ``i`` and column ``j`` of each row.

    Rows are grouped by image, ``per_image`` rows each (all positions when the map is smaller),
    so the rows of image ``n`` are ``n·per_image .. (n+1)·per_image − 1``.
    """

    def __init__(self, n: np.ndarray, i: np.ndarray, j: np.ndarray, per_image: int):
        self.n, self.i, self.j, self.per_image = n, i, j, per_image

    def __len__(self) -> int:
        return len(self.n)

    @property
    def images(self) -> int:
        return len(self.n) // self.per_image


@dataclass(frozen=True)
class LaidRows:
    """A depthwise layer's rows as its training step reads them: ``codes`` (R, K, G), tap k of every
    group side by side, and the ``offset`` that centres them, ``rows[r, g, k] = codes[r, k, g] + offset``
    (the (R, G, K) rows of `gather_rows`). Gathered from 8- or 16-bit inputs the codes are the input's
    own (uint8, uint16), a tap outside the input reading Z_x, and the offset is −Z_x."""

    codes: np.ndarray
    offset: int

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(R, G, K), as the centred rows'."""
        rows, taps, groups = self.codes.shape
        return rows, groups, taps

    def centred(self, index: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The rows ``index`` as (R, G, K) centred integers (int64)."""
        rows: np.ndarray = self.codes[index].transpose(0, 2, 1).astype(np.int64) + self.offset
        return rows

    def sum(self, index: np.ndarray) -> np.ndarray:
        """Σ of the rows ``index``: (G, K) int64, exact."""
        total: np.ndarray = self.codes[index].sum(axis=0, dtype=np.int64).T + np.int64(self.offset) * len(index)
        return total


Rows = np.ndarray | LaidRows  # (R, G, K) centred integers, or a depthwise layer's `LaidRows`


def output_size(layer: Layer) -> tuple[int, int]:
    """(H, W) of a layer's output map; (1, 1) for a dense layer."""
    shape = layer.output_shape
    return (int(shape[2]), int(shape[3])) if len(shape) == 4 else (1, 1)


def sample_positions(layer: Layer, images: int, rng: np.random.Generator,
                     per_image: int = POSITIONS_PER_IMAGE) -> Positions:
    """``per_image`` distinct output positions of every image (all of them on a small map)."""
    h, w = output_size(layer)
    per_image = min(per_image, h * w)
    chosen = np.empty((images, per_image), np.int64)
    step = max(1, _DRAW_VALUES // (h * w))
    for start in range(0, images, step):  # the same draws in parts of images: the generator's stream is one
        chosen[start:start + step] = _smallest(rng.random((min(step, images - start), h * w)), per_image)
    n = np.repeat(np.arange(images), per_image)
    flat = chosen.reshape(-1)
    return Positions(n, flat // w, flat % w, per_image)


_DRAW_VALUES = 1 << 22  # random draws held at once while positions are sampled


def _smallest(keys: np.ndarray, count: int) -> np.ndarray:
    """The columns of each row's ``count`` smallest keys, smallest first (``argsort(keys)[:, :count]``,
    partitioned first so that only those are sorted)."""
    if count >= keys.shape[1]:
        whole: np.ndarray = np.argsort(keys, axis=1)
        return whole
    chosen = np.argpartition(keys, count - 1, axis=1)[:, :count]
    order = np.argsort(np.take_along_axis(keys, chosen, axis=1), axis=1)
    smallest: np.ndarray = np.take_along_axis(chosen, order, axis=1)
    return smallest


def _row_dtype(bits: int) -> np.dtype:
    """Centred inputs fit int16 for 8-bit activations (|q − Z| ≤ 255), int32 for 16-bit ones."""
    return np.dtype(np.int16 if bits == 8 else np.int32)


def _tap_indices(out_index: np.ndarray, taps: int, stride: int, pad: int, dilation: int, size: int,
                 transposed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Input index of every (row, tap) and whether it lies inside the input.

    Conv: ``in = out·s − pad + t·d``. Transposed conv, (N22) read backwards: input ``in``
    reaches output ``in·s − pad + t·d``, so ``in = (out + pad − t·d) / s`` when that divides.
    """
    t = np.arange(taps) * dilation
    if transposed:
        num = out_index[:, None] + pad - t[None, :]
        index = np.floor_divide(num, stride)
        valid = (num % stride == 0) & (index >= 0) & (index < size)
    else:
        index = out_index[:, None] * stride - pad + t[None, :]
        valid = (index >= 0) & (index < size)
    return np.clip(index, 0, size - 1), valid


def _dense_input(x: np.ndarray) -> np.ndarray:
    """A dense layer's input as (N, C): an NHWC map flattens in ONNX (C, H, W) order."""
    return x if x.ndim == 2 else np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(x.shape[0], -1)


def depthwise(layer: Layer) -> bool:
    """A layer of one output channel a group, several groups: its rows are `LaidRows`."""
    group = int(layer.attrs.get("group", 1)) if layer.kind != "fc" else 1
    return group > 1 and int(layer.output_shape[1]) == group


def gather_rows(layer: Layer, x: np.ndarray, zero_point: int, bits: int, positions: Positions,
                kernel: tuple[int, int]) -> Rows:
    """Centred integer inputs at the sampled positions: ``(R, G, K)``, K in the weights' tap order;
    a `depthwise` layer's as `LaidRows`.

    ``x`` is the layer's NHWC integer input (or (N, C) for a dense layer); ``kernel`` the (KH, KW)
    of its weights. The taps are written into the result as they are read (`_patches`).
    """
    if depthwise(layer):
        return _laid_rows(layer, x, zero_point, bits, positions, kernel)
    dtype = _row_dtype(bits)
    if layer.kind == "fc":
        flat = _dense_input(x)
        rows: np.ndarray = (flat[positions.n].astype(dtype) - dtype.type(zero_point))[:, None, :]
        return rows
    group = layer.attrs.get("group", 1)
    c = x.shape[3]
    out = np.empty((len(positions), group, (c // group) * kernel[0] * kernel[1]), dtype)
    _patches(layer, x, zero_point, positions.n, positions.i, positions.j, kernel,
             out.reshape(len(positions), c, *kernel))
    return out


def _laid_rows(layer: Layer, x: np.ndarray, zero_point: int, bits: int, positions: Positions,
               kernel: tuple[int, int]) -> LaidRows:
    """A depthwise layer's `LaidRows`: the input codes where they are unsigned 8 or 16 bits (exact in
    float32 once centred), else centred integers (offset 0)."""
    from alls.runtime.kernels.patches import gather_laid

    codes = x.dtype.kind == "u" and x.dtype.itemsize <= 2
    group, taps = int(layer.attrs["group"]), kernel[0] * kernel[1]
    out = np.empty((len(positions), (x.shape[3] // group) * taps, group), x.dtype if codes else _row_dtype(bits))
    (ii, vi), (jj, vj) = _taps(layer, x, positions.i, positions.j, kernel)
    shift, fill = (0, zero_point) if codes else (zero_point, 0)
    gather_laid(np.ascontiguousarray(x), np.asarray(positions.n, np.int64), ii, jj, vi, vj, int(shift), int(fill), out)
    return LaidRows(out, -int(zero_point) if codes else 0)


def join_rows(parts: Sequence[Rows]) -> Rows:
    """The rows of consecutive parts of the images, gathered apart, as one."""
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], LaidRows):
        laid = [part for part in parts if isinstance(part, LaidRows)]
        assert len(laid) == len(parts) and len({part.offset for part in laid}) == 1, "parts of one layer's rows"
        return LaidRows(np.concatenate([part.codes for part in laid]), laid[0].offset)
    return np.concatenate([np.asarray(part) for part in parts])


_PART_BYTES = 1 << 26  # a spilled input is summed this many bytes at a time


def _image_sum(x: np.ndarray, zero_point: int, view: Callable[[np.ndarray], np.ndarray] = lambda x: x) -> np.ndarray:
    """Σ over images of ``view(x) − zero_point`` as int64, keeping the image axis (of length 1); a
    spilled input (`alls.runtime.exec.stream.Spill`) is read a part at a time (integer sums: exact)."""
    from alls.runtime.exec.stream import blocks, is_streamed

    def summed(part: np.ndarray) -> np.ndarray:  # accumulated in int64 as it is read: no int64 copy of the images
        out: np.ndarray = view(part).sum(axis=0, keepdims=True, dtype=np.int64) - np.int64(zero_point) * len(part)
        return out

    if not is_streamed(x):
        return summed(x)
    total: np.ndarray | None = None
    for block in blocks(len(x), x.nbytes // max(len(x), 1), _PART_BYTES):
        part = summed(x[block])
        total = part if total is None else total + part
    assert total is not None, "a spilled input holds at least one image"
    return total


def tap_means(layer: Layer, x: np.ndarray, zero_point: int, kernel: tuple[int, int], chunk: int = 4096) -> np.ndarray:
    """``M[g, k]``: the mean of the centred input ``q_x − Z_x`` that tap k of group g reads, over every
    image and output position, so that a channel's mean accumulator (without bias) is
    ``Σ_k w[g, o, k]·M[g, k]``.

    ``x`` is the layer's NHWC (or (N, C)) integer input. The images are summed first (every image
    reads the same taps), so the cost is that of one image's patches.
    """
    if layer.kind == "fc":
        total = _image_sum(x, zero_point, _dense_input)
        mean: np.ndarray = (total[0] / len(x))[None, :]
        return mean
    total = _image_sum(x, zero_point)
    h, w = output_size(layer)
    group = layer.attrs.get("group", 1)
    sums = np.zeros((group, (x.shape[3] // group) * kernel[0] * kernel[1]), np.int64)
    flat = np.arange(h * w)
    for start in range(0, h * w, chunk):
        part = flat[start:start + chunk]
        taps = np.empty((len(part), x.shape[3], *kernel), np.int64)
        _patches(layer, total, 0, np.zeros_like(part), part // w, part % w, kernel, taps)
        sums += taps.sum(axis=0).reshape(group, -1)
    means: np.ndarray = sums / float(x.shape[0] * h * w)
    return means


def _patches(layer: Layer, x: np.ndarray, zero_point: int, n: np.ndarray, i: np.ndarray, j: np.ndarray,
             kernel: tuple[int, int], out: np.ndarray) -> None:
    """The centred taps of the rows (n, i, j) into ``out`` (R, C, KH, KW): the weights' (C_in, KH, KW)
    order, zeros where a tap falls outside the input (`alls.runtime.kernels.patches`)."""
    from alls.runtime.kernels.patches import gather_patches

    (ii, vi), (jj, vj) = _taps(layer, x, i, j, kernel)
    gather_patches(np.ascontiguousarray(x), np.asarray(n, np.int64), ii, jj, vi, vj, int(zero_point), out)


def _taps(layer: Layer, x: np.ndarray, i: np.ndarray, j: np.ndarray,
          kernel: tuple[int, int]) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The input row and column (int64) of every row's taps, and whether each lies inside the input."""
    a = layer.attrs
    transposed = layer.kind == "deconv"
    (kh, kw), (sh, sw), (dh, dw) = kernel, a["strides"], a["dilations"]
    top, left = a["pads"][0], a["pads"][1]
    ii, vi = _tap_indices(i, kh, sh, top, dh, x.shape[1], transposed)
    jj, vj = _tap_indices(j, kw, sw, left, dw, x.shape[2], transposed)
    return (ii.astype(np.int64), vi), (jj.astype(np.int64), vj)


def to_groups(weight: np.ndarray, layer: Layer) -> np.ndarray:
    """A weight tensor in ONNX layout as ``(G, O, K)``."""
    if layer.kind == "fc":
        return weight.reshape(1, weight.shape[0], -1)
    group = layer.attrs.get("group", 1)
    if layer.kind == "deconv":  # (C_in, C_out/G, KH, KW)
        ci, og = weight.shape[:2]
        w = weight.reshape(group, ci // group, og, -1).transpose(0, 2, 1, 3)
        return np.ascontiguousarray(w).reshape(group, og, -1)
    return weight.reshape(group, weight.shape[0] // group, -1)


def from_groups(grouped: np.ndarray, layer: Layer, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of `to_groups`: ``(G, O, K)`` back to the ONNX ``shape``."""
    if layer.kind != "deconv":
        return np.ascontiguousarray(grouped.reshape(shape))
    group = grouped.shape[0]
    ci, og, kh, kw = shape
    w = grouped.reshape(group, og, ci // group, kh * kw).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(w).reshape(shape)
