"""The float conv's weights as its micro-kernels read them (`pack`), made once per parameter array
and layout (`packed`).

`pack`'s layout of a layer's weights is kept with the arrays it came from (by identity, while both
live) and served again only while they hold the same bits (`unchanged`, a comparison that costs a
fraction of the packing): parameters replaced (``params=`` of the executor, equalization) are other
arrays, and parameters changed in place are seen by the comparison.
"""

from __future__ import annotations

import weakref

import numpy as np
import numpy.typing as npt

from alls.runtime.kernels._common import njit

__all__ = ["ROWS", "pack", "packed", "packed_with_copy", "unchanged"]

F32 = npt.NDArray[np.float32]
ROWS = 6  # output channels per block of the micro-kernel

_packs: dict[tuple[int, int, int], tuple[weakref.ref[F32], weakref.ref[F32], F32, F32, F32]] = {}


def packed(weight: F32, bias: F32, rows: int = ROWS) -> tuple[F32, F32]:
    """`pack` of ``weight`` (C_out, C, KH, KW) and ``bias``, as float32, by blocks of ``rows``
    channels, made once per pair of arrays and layout and kept while they live and hold the same
    values (a copy of them is kept to compare)."""
    wp, bp, _ = packed_with_copy(weight, bias, rows)
    return wp, bp


def packed_with_copy(weight: F32, bias: F32, rows: int = ROWS) -> tuple[F32, F32, F32]:
    """`packed`, and the copy of the arrays' values it was packed from (to compare with `unchanged`)."""
    if weight.dtype != np.float32 or not weight.flags.c_contiguous:
        weight = np.ascontiguousarray(weight, np.float32)
    if bias.dtype != np.float32 or not bias.flags.c_contiguous:
        bias = np.ascontiguousarray(bias, np.float32)
    key = (id(weight), id(bias), rows)
    kept = _packs.get(key)
    if kept is not None and kept[0]() is weight and kept[1]() is bias and unchanged(weight, bias, kept[2]):
        return kept[3], kept[4], kept[2]
    wp, bp = pack(weight, bias, rows)
    copy = np.concatenate((weight.reshape(-1), bias.reshape(-1)))

    def forget(_: object, key: tuple[int, int, int] = key) -> None:
        # No lock: the collector may call this in the middle of any code of this thread, this module's
        # included; a dict's get and pop are atomic, and an entry whose arrays live is left alone.
        entry = _packs.get(key)
        if entry is not None and (entry[0]() is None or entry[1]() is None):
            _packs.pop(key, None)

    _packs[key] = (weakref.ref(weight, forget), weakref.ref(bias, forget), copy, wp, bp)
    return wp, bp, copy


@njit(cache=True)
def pack(weight: F32, bias: F32, rows: int = ROWS) -> tuple[F32, F32]:
    """The weights (C_out, C, KH, KW) as a micro-kernel reads them, [block][tap][row] by blocks of
    ``rows`` channels (`ROWS`: `floatconv.block_kernel`'s; 8: `floatlanes.lane_kernel`'s), and the
    bias, both zero-padded to whole blocks."""
    out_c = weight.shape[0]
    taps = weight[0].size
    blocks = (out_c + rows - 1) // rows
    wf = weight.reshape(-1)
    wp = np.zeros(blocks * taps * rows, np.float32)
    bp = np.zeros(blocks * rows, np.float32)
    for o in range(out_c):
        base = (o // rows) * taps * rows + o % rows
        for t in range(taps):
            wp[base + t * rows] = wf[o * taps + t]
        bp[o] = bias[o]
    return wp, bp


@njit(cache=True)
def unchanged(weight: F32, bias: F32, copy: F32) -> bool:
    """Whether ``weight`` and ``bias`` hold the bits of ``copy`` (the two, flat, one after the other)."""
    wf, bf = weight.reshape(-1), bias.reshape(-1)
    if wf.shape[0] + bf.shape[0] != copy.shape[0]:
        return False
    a, b, kept = wf.view(np.int32), bf.view(np.int32), copy.view(np.int32)
    diff = np.int32(0)
    for k in range(a.shape[0]):
        diff |= a[k] ^ kept[k]
    for k in range(b.shape[0]):
        diff |= b[k] ^ kept[a.shape[0] + k]
    same: bool = diff == 0
    return same
