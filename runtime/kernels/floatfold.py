"""The float executor's dense conv on small planes: the batch folded into the positions, so that the
micro-kernel's lanes are filled where an image's plane alone would leave most of them empty.

The direct conv (`floatconv`) runs an image's plane as one run of positions over its padded width:
a 4x4 output padded to 6x6 is 22 positions, two blocks of ``LANES`` (32 lanes) for 16 outputs, and
an 8x8 one 78 positions for 64. Here a group of images is copied once into scratch laid out so that
every tap (c, a, b) is one fixed offset and the outputs of the whole group one dense run: for each
used stride phase ``ph`` of the rows, each kernel column ``b`` and each channel ``c``, a plane of
``Hr`` rows of the group's images side by side, each ``Wo`` columns wide::

    scratch[((ph·KW + b)·C + c)·pitch + (R·G + i)·Wo + z] = x[i, c, R·sh + ph - top, z·sw + b·dw - left]

(zero in the padding), ``G`` images in the group. Output (i, y, z) is position ``(y·G + i)·Wo + z``
and tap (c, a, b) reads it at ``((ph·KW + b)·C + c)·pitch + ((a·dh) // sh)·G·Wo``, ph = (a·dh) mod sh:
the column shift and stride are in the copy, the row stride in the phases, so the positions are
dense whatever the geometry, the last block of the group the only one with lanes to drop. The
copy is about KW times the input (less at a row stride), against im2col's columns, KH·KW times.

The blocks go through `floatconv.block_kernel` with the direct conv's packed weights (`floatpack.
packed`) into a buffer of (C_out, positions) and are scattered to (N, C_out, Ho, Wo); a group of
one image stores its whole blocks straight into the output plane. Every output is therefore the
same chain of fused multiply-adds as the direct conv's, the taps in (c, a, b) order, then + bias
and the activation: the same bits (tested).

Where a plane is a whole number of blocks the images are stacked instead (`stacked`, below): no
scatter. Groups are as many images as keep the scratch and the outputs' buffer within
`FOLD_FLOATS` (the L2 cache); their blocks are the parallel jobs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import prange

from alls.runtime.kernels._common import njit
from alls.runtime.kernels.floatconv import LANES, _odd_lines, run_block, run_laid, run_masked
from alls.runtime.kernels.floatpack import ROWS

__all__ = ["fold_offsets", "fold_direct", "fold_part", "stack_direct", "stack_part", "stacked", "group_size",
           "pointwise", "pointwise_offsets", "in_place", "in_place_masks", "in_place_part", "in_place_direct",
           "FOLD_FLOATS", "IN_PLACE_UP_TO"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
FOLD_FLOATS = 1 << 18  # a group's scratch: 1 MiB, within the L2 cache


def group_size(n: int, c: int, out_c: int, kh: int, kw: int, sh: int, dh: int, ho: int, wo: int) -> int:
    """How many images a group holds: as many as keep its scratch and its outputs' buffer within
    `FOLD_FLOATS` (at least one)."""
    rows = ho + ((kh - 1) * dh) // sh
    per_image = (min(sh, kh) * kw * c * rows + -(-out_c // ROWS) * ROWS * ho) * wo
    return max(1, min(n, FOLD_FLOATS // max(1, per_image)))


@njit(cache=True)
def fold_offsets(c: int, kh: int, kw: int, sh: int, dh: int, step: int,
                 pitch: int) -> tuple[I64, npt.NDArray[np.bool_]]:
    """Each tap's (c, a, b) offset into a group's scratch (a row ``step`` floats below the one above,
    planes ``pitch`` floats apart) and which row phases the taps read."""
    toff = np.empty(c * kh * kw, np.int64)
    used = np.zeros(sh, np.bool_)
    for ch in range(c):
        for a in range(kh):
            ph = (a * dh) % sh
            used[ph] = True
            for b in range(kw):
                toff[(ch * kh + a) * kw + b] = ((ph * kw + b) * c + ch) * pitch + ((a * dh) // sh) * step
    return toff, used


@njit(parallel=True, cache=True)
def fold_direct(x: F32, wp: F32, bp: F32, toff: I64, used: npt.NDArray[np.bool_], out: F32, kw: int, sh: int,
                sw: int, dw: int, top: int, left: int, g: int, rows: int, pitch: int, code: int, act: F32,
                parts: int) -> None:
    """`fold_part` of every group, the blocks of each in ``parts`` ranges on parallel threads (the copy
    and the scatter serial: they are a small part of a conv worth threads)."""
    n, c = x.shape[0], x.shape[1]
    scratch = np.empty(sh * kw * c * pitch + LANES, np.float32)
    blocks = (out.shape[2] * g * out.shape[3] + LANES - 1) // LANES  # a short last group: its rows as long
    width = _odd_lines(blocks * LANES)
    tmp = np.empty(bp.shape[0] * width, np.float32)
    for i0 in range(0, n, g):
        i1 = min(n, i0 + g)
        _fill(x, scratch, used, i0, i1, g, kw, sh, sw, dw, top, left, rows, pitch, out.shape[3])
        for part in prange(parts):
            _blocks(scratch, wp, bp, toff, out, tmp, width, i0, g, code, act, part * blocks // parts,
                    (part + 1) * blocks // parts)
        _scatter(tmp, width, out, i0, i1, g)


@njit(cache=True)
def fold_part(x: F32, wp: F32, bp: F32, toff: I64, used: npt.NDArray[np.bool_], out: F32, kw: int, sh: int, sw: int,
              dw: int, top: int, left: int, g: int, rows: int, pitch: int, code: int, act: F32) -> None:
    """The folded conv of NCHW float32 ``x`` into ``out`` (N, C_out, Ho, Wo), on the calling thread:
    ``wp`` and ``bp`` as `floatpack.packed` makes them, ``toff`` and ``used`` as `fold_offsets` for groups of
    ``g`` images, planes of ``rows`` rows ``pitch`` floats apart; activated as ``code`` and ``act`` say."""
    n, c = x.shape[0], x.shape[1]
    scratch = np.empty(sh * kw * c * pitch + LANES, np.float32)
    blocks = (out.shape[2] * g * out.shape[3] + LANES - 1) // LANES  # a short last group: its rows as long
    width = _odd_lines(blocks * LANES)
    tmp = np.empty(bp.shape[0] * width, np.float32)
    for i0 in range(0, n, g):
        i1 = min(n, i0 + g)
        _fill(x, scratch, used, i0, i1, g, kw, sh, sw, dw, top, left, rows, pitch, out.shape[3])
        _blocks(scratch, wp, bp, toff, out, tmp, width, i0, g, code, act, 0, blocks)
        _scatter(tmp, width, out, i0, i1, g)


@njit(cache=True)
def _fill(x: F32, scratch: F32, used: npt.NDArray[np.bool_], i0: int, i1: int, g: int, kw: int, sh: int, sw: int,
          dw: int, top: int, left: int, rows: int, pitch: int, wo: int) -> None:
    """Images ``i0`` to ``i1`` into ``scratch`` as the module's layout says, zeros in the padding, the
    planes' ends (up to the next plane, read by the last block's dropped lanes) zeroed too. A row of a
    small plane is a few values: a row of the group (its images' rows side by side) is copied through
    a map of where each value comes from (-1: the padding), one plain loop, where a loop a row of
    each image, vectorized with its tests, would cost more to enter than it copies."""
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    xf, span = x.reshape(-1), rows * g * wo
    run = g * wo  # a row of the group: its images' rows side by side (zeros for those a short group lacks)
    cols = np.empty(kw * run, np.int64)
    for b in range(kw):
        for i in range(g):
            for z in range(wo):
                col = z * sw + b * dw - left
                cols[(b * g + i) * wo + z] = i * c * h * w + col if 0 <= col < w and i < i1 - i0 else -1
    for ph in range(sh):
        if not used[ph]:
            continue
        for b in range(kw):
            cmap = cols[b * run:(b + 1) * run]
            for ch in range(c):
                base = ((ph * kw + b) * c + ch) * pitch
                for r in range(rows):
                    yy = r * sh + ph - top
                    dst = np.uint64(base + r * run)  # unsigned indices: no test for a negative one to wrap
                    if yy < 0 or yy >= h:
                        for q in range(np.uint64(run)):
                            scratch[dst + q] = 0
                        continue
                    src = np.uint64(((i0 * c + ch) * h + yy) * w)
                    for q in range(np.uint64(run)):
                        col = cmap[q]
                        scratch[dst + q] = xf[src + np.uint64(col)] if col >= 0 else np.float32(0)
                for q in range(base + span, base + pitch):
                    scratch[q] = 0
    end = scratch.shape[0]
    for q in range(end - LANES, end):
        scratch[q] = 0


@njit(cache=True)
def _blocks(scratch: F32, wp: F32, bp: F32, toff: I64, out: F32, tmp: F32, width: int, i0: int, g: int, code: int,
            act: F32, k0: int, k1: int) -> None:
    """Blocks ``k0`` to ``k1`` of the group's positions, every channel block of each while its inputs
    are in the L1 cache: into ``tmp`` (a row of ``width`` a channel), or, for a group of one image,
    its whole blocks straight into the output plane."""
    out_c, plane = out.shape[1], out.shape[2] * out.shape[3]
    taps, nblocks = toff.shape[0], bp.shape[0] // ROWS
    whole = plane // LANES if g == 1 else 0
    of = out.reshape(-1)
    for k in range(k0, k1):
        for blk in range(nblocks):
            rows = min(ROWS, out_c - blk * ROWS)
            if k < whole:
                run_block(scratch, k * LANES, toff, wp, blk * taps * ROWS, bp[blk * ROWS:], of,
                    (i0 * out_c + blk * ROWS) * plane + k * LANES, plane, rows, code, act)
            else:
                run_block(scratch, k * LANES, toff, wp, blk * taps * ROWS, bp[blk * ROWS:], tmp, blk * ROWS * width + k * LANES,
                    width, rows, code, act)


@njit(cache=True)
def _scatter(tmp: F32, width: int, out: F32, i0: int, i1: int, g: int) -> None:
    """The group's outputs from ``tmp`` (channel o's position (y·G + i)·Wo + z at o·width + ...) into
    ``out``, a row of the group at a time through a map of where each of its values goes; for a group
    of one image, only the outputs past its whole blocks (the rest are in place)."""
    out_c, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    plane, images = ho * wo, i1 - i0
    of = out.reshape(-1)
    if g == 1:
        for o in range(out_c):
            row, dst = o * width, (i0 * out_c + o) * plane
            for q in range((plane // LANES) * LANES, plane):
                of[dst + q] = tmp[row + q]
        return
    run = images * wo  # the group's images of a row (a short group's are the first of its rows)
    where = np.empty(run, np.uint64)
    for i in range(images):
        for z in range(wo):
            where[i * wo + z] = i * out_c * plane + z
    for o in range(out_c):
        for y in range(ho):
            src, dst = np.uint64(o * width + y * g * wo), np.uint64((i0 * out_c + o) * plane + y * wo)
            for q in range(np.uint64(run)):
                of[dst + where[q]] = tmp[src + q]


# ------------------------------------------------------------------ planes of whole blocks: stacked
#
# Where an output plane is a whole number of blocks (Ho·Wo a multiple of ``LANES``: 4x4, 8x8, 12x12,
# 20x20...), the group's images are stacked instead, each its ``rows`` padded rows of ``Wo`` columns
# ``stride`` floats apart (``rows``·Wo rounded up to whole blocks): output (i, y, z) is position
# i·stride + y·Wo + z, tap (c, a, b) reads it at ``((ph·KW + b)·C + c)·pitch + ((a·dh) // sh)·Wo``, an
# image's blocks are its plane's and are stored straight into the output (the blocks of the padding
# rows between images are not run). No scatter, and no lane computed for nothing.


def stacked(ho: int, wo: int) -> bool:
    """Whether a plane of ``ho`` x ``wo`` outputs is stacked (whole blocks) rather than interleaved."""
    return ho * wo % LANES == 0


@njit(parallel=True, cache=True)
def stack_direct(x: F32, wp: F32, bp: F32, toff: I64, used: npt.NDArray[np.bool_], out: F32, kw: int, sh: int,
                 sw: int, dw: int, top: int, left: int, g: int, rows: int, pitch: int, code: int, act: F32,
                 parts: int) -> None:
    """`stack_part` with every group's blocks in ``parts`` ranges on parallel threads (the copy serial)."""
    n, c, wo = x.shape[0], x.shape[1], out.shape[3]
    stride = -(-rows * wo // LANES) * LANES
    scratch = np.empty(sh * kw * c * pitch + LANES, np.float32)
    for i0 in range(0, n, g):
        i1 = min(n, i0 + g)
        _fill_stacked(x, scratch, used, i0, i1, kw, sh, sw, dw, top, left, rows, pitch, wo, stride)
        jobs = (i1 - i0) * (out.shape[2] * wo // LANES)
        for part in prange(parts):
            _blocks_stacked(scratch, wp, bp, toff, out, stride, i0, code, act, part * jobs // parts,
                            (part + 1) * jobs // parts)


@njit(cache=True)
def stack_part(x: F32, wp: F32, bp: F32, toff: I64, used: npt.NDArray[np.bool_], out: F32, kw: int, sh: int,
               sw: int, dw: int, top: int, left: int, g: int, rows: int, pitch: int, code: int, act: F32) -> None:
    """The stacked form of `fold_part` (planes of whole blocks), on the calling thread."""
    n, c, wo = x.shape[0], x.shape[1], out.shape[3]
    stride = -(-rows * wo // LANES) * LANES
    scratch = np.empty(sh * kw * c * pitch + LANES, np.float32)
    for i0 in range(0, n, g):
        i1 = min(n, i0 + g)
        _fill_stacked(x, scratch, used, i0, i1, kw, sh, sw, dw, top, left, rows, pitch, wo, stride)
        _blocks_stacked(scratch, wp, bp, toff, out, stride, i0, code, act, 0, (i1 - i0) * (out.shape[2] * wo // LANES))


@njit(cache=True)
def _fill_stacked(x: F32, scratch: F32, used: npt.NDArray[np.bool_], i0: int, i1: int, kw: int, sh: int, sw: int,
                  dw: int, top: int, left: int, rows: int, pitch: int, wo: int, stride: int) -> None:
    """Images ``i0`` to ``i1`` into ``scratch``, stacked: an image's rows of a plane in one loop through a
    map of where each value comes from in its channel (-1: the padding), the rest of the plane zero."""
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    g, run = i1 - i0, rows * wo
    xf = x.reshape(-1)
    where = np.empty(run, np.int64)
    for ph in range(sh):
        if not used[ph]:
            continue
        for b in range(kw):
            for r in range(rows):
                yy = r * sh + ph - top
                for z in range(wo):
                    col = z * sw + b * dw - left
                    where[r * wo + z] = yy * w + col if 0 <= yy < h and 0 <= col < w else -1
            for ch in range(c):
                base = ((ph * kw + b) * c + ch) * pitch
                for i in range(g):
                    src, dst = np.uint64(((i0 + i) * c + ch) * h * w), np.uint64(base + i * stride)
                    for q in range(np.uint64(run)):
                        at = where[q]
                        scratch[dst + q] = xf[src + np.uint64(at)] if at >= 0 else np.float32(0)
                    for q in range(np.uint64(run), np.uint64(stride)):
                        scratch[dst + q] = 0
                for q in range(base + g * stride, base + pitch):
                    scratch[q] = 0
    end = scratch.shape[0]
    for q in range(end - LANES, end):
        scratch[q] = 0


@njit(cache=True)
def _blocks_stacked(scratch: F32, wp: F32, bp: F32, toff: I64, out: F32, stride: int, i0: int, code: int, act: F32,
                    j0: int, j1: int) -> None:
    """Jobs ``j0`` to ``j1`` (image of the group, block of its plane) of the stacked form, every channel
    block of each, stored straight into the output planes."""
    out_c, plane = out.shape[1], out.shape[2] * out.shape[3]
    taps, nblocks, per = toff.shape[0], bp.shape[0] // ROWS, plane // LANES
    of = out.reshape(-1)
    for j in range(j0, j1):
        i, k = j // per, j % per
        for blk in range(nblocks):
            run_block(scratch, i * stride + k * LANES, toff, wp, blk * taps * ROWS, bp[blk * ROWS:], of,
                ((i0 + i) * out_c + blk * ROWS) * plane + k * LANES, plane, min(ROWS, out_c - blk * ROWS), code, act)


# ------------------------------------------------------------- a 1x1 conv read in place
#
# A 1x1 conv of stride 1 without pads reads its input as it lies: output (i, y, z) is input position
# (y, z) of every channel of image i, so with the planes a whole number of blocks, an image's block
# k is at i·C·plane + k·LANES and tap (channel) c a fixed offset c·plane from it: the micro-kernel
# runs on the input itself, no copy, and stores into the output planes. The same FMA chain as the
# direct conv (channels in order, then + bias and the activation), so the same bits as `conv` of
# the layer, whatever the batch.


def pointwise_offsets(c: int, plane: int) -> I64:
    """The taps' offsets of `pointwise`: channel ``c`` at ``c``·``plane``."""
    return np.arange(c, dtype=np.int64) * plane


@njit(cache=True)
def pointwise(x: F32, weight: F32, bias: F32, toff: I64, out: F32, code: int, act: F32) -> None:
    """The 1x1 conv (stride 1, no pads) of NCHW float32 ``x`` into ``out`` (N, C_out, H, W), H·W a
    multiple of `LANES`: ``weight`` (C_out, C) and ``bias`` (C_out,) as the layer holds them, float32
    in C order (read as they are: nothing packed), ``toff`` as `pointwise_offsets`; activated as
    ``code`` and ``act`` say. On the calling thread."""
    n, c = x.shape[0], x.shape[1]
    out_c, plane = out.shape[1], out.shape[2] * out.shape[3]
    nblocks = -(-out_c // ROWS)
    xf, wf, of = x.reshape(-1), weight.reshape(-1), out.reshape(-1)
    for i in range(n):
        for k in range(plane // LANES):
            for blk in range(nblocks):
                run_laid(xf, i * c * plane + k * LANES, toff, wf, blk * ROWS * c, bias[blk * ROWS:], of,
                         (i * out_c + blk * ROWS) * plane + k * LANES, plane, min(ROWS, out_c - blk * ROWS), code, act)


# ------------------------------------------------------------- a small "same" conv read in place
#
# A stride-1 conv whose output rows are as wide as its input's (Wo = W: "same" padding of the
# columns) puts output (y, z) and input (y, z) at the same flat place y·W + z of their planes, so
# that tap (c, a, b) of an image's block of positions is one offset into the input itself, c·H·W +
# (a·dh - top)·W + b·dw - left, as for the 1x1 conv above. What the offset would read from the
# padding, across a row's end or past the plane is masked off the loads (`block_kernel`'s
# ``masked``: zeros, as the padding's), the masks worked out once a geometry, by kernel position
# (a, b) and block. No copy at all: on the digits CNN's 4x4 planes of 32 channels the copy of the
# stacked form took a quarter of the conv. The same FMA chain, so the same bits.

IN_PLACE_UP_TO = 256  # outputs a plane: the masks, (KH·KW) x plane int32, stay in the L1 cache


def in_place(h: int, w: int, ho: int, wo: int, sh: int, sw: int) -> bool:
    """Whether a conv of these planes runs in place: stride 1, Wo = W, a plane of whole blocks of at
    most `IN_PLACE_UP_TO` outputs."""
    return sh == sw == 1 and wo == w and ho * wo % LANES == 0 and ho * wo <= IN_PLACE_UP_TO


@njit(cache=True)
def in_place_masks(c: int, h: int, w: int, ho: int, kh: int, kw: int, dh: int, dw: int, top: int,
                   left: int) -> tuple[I64, npt.NDArray[np.int32]]:
    """The taps' offsets, then each tap's mask offset (``toff``, 2·C·KH·KW), and the masks: by kernel
    position (a, b), the lanes of the plane whose input lies inside it."""
    plane, kk = ho * w, kh * kw
    toff = np.empty(2 * c * kk, np.int64)
    masks = np.zeros(kk * plane, np.int32)
    for a in range(kh):
        for b in range(kw):
            for q in range(plane):
                y, z = q // w + a * dh - top, q % w + b * dw - left
                if 0 <= y < h and 0 <= z < w:
                    masks[(a * kw + b) * plane + q] = -1
    for ch in range(c):
        for a in range(kh):
            for b in range(kw):
                t = (ch * kh + a) * kw + b
                toff[t] = ch * h * w + (a * dh - top) * w + b * dw - left
                toff[c * kk + t] = (a * kw + b) * plane
    return toff, masks


@njit(parallel=True, cache=True)
def in_place_direct(x: F32, weight: F32, bias: F32, toff: I64, masks: npt.NDArray[np.int32], out: F32, code: int,
                    act: F32, parts: int) -> None:
    """`in_place_part` with the jobs (image, block) in ``parts`` ranges on parallel threads."""
    jobs = x.shape[0] * (out.shape[2] * out.shape[3] // LANES)
    for part in prange(parts):
        _in_place_jobs(x, weight, bias, toff, masks, out, code, act, part * jobs // parts, (part + 1) * jobs // parts)


@njit(cache=True)
def in_place_part(x: F32, weight: F32, bias: F32, toff: I64, masks: npt.NDArray[np.int32], out: F32, code: int,
                  act: F32) -> None:
    """The conv of NCHW float32 ``x`` into ``out`` read in place (``toff`` and ``masks`` as
    `in_place_masks` makes them; ``weight`` (C_out, C, KH, KW) and ``bias`` as the layer holds them,
    float32 in C order, read as they are: nothing packed), on the calling thread."""
    _in_place_jobs(x, weight, bias, toff, masks, out, code, act, 0, x.shape[0] * (out.shape[2] * out.shape[3] // LANES))


@njit(cache=True)
def _in_place_jobs(x: F32, weight: F32, bias: F32, toff: I64, masks: npt.NDArray[np.int32], out: F32, code: int,
                   act: F32, j0: int, j1: int) -> None:
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    out_c, plane = out.shape[1], out.shape[2] * out.shape[3]
    taps, nblocks, per = toff.shape[0] // 2, -(-out_c // ROWS), plane // LANES
    xf, wf, of = x.reshape(-1), weight.reshape(-1), out.reshape(-1)
    for j in range(j0, j1):
        i, k = j // per, j % per
        for blk in range(nblocks):
            run_masked(xf, i * c * h * w + k * LANES, toff, masks, k * LANES, wf, blk * ROWS * taps, bias[blk * ROWS:], of,
                       (i * out_c + blk * ROWS) * plane + k * LANES, plane, min(ROWS, out_c - blk * ROWS), code, act)
