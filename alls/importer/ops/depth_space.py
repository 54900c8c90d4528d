"""DepthToSpace and SpaceToDepth (`depth_to_space`, `space_to_depth`) of NCHW tensors."""

from __future__ import annotations

from alls.importer.registry import handles


@handles("DepthToSpace")
def depth_to_space(imp, n, data_in):
    shape, b = imp.shape(data_in[0]), int(n.attrs.get("blocksize", 0))
    if len(shape) != 4 or b < 1 or shape[1] % (b * b):
        return "DepthToSpace of an NCHW tensor whose channels split into blocksize² parts is a layer"
    out = (shape[0], shape[1] // (b * b), shape[2] * b, shape[3] * b)
    imp.moved(n, data_in, "depth_to_space", out, {"blocksize": b, "mode": n.attrs.get("mode", "DCR")})


@handles("SpaceToDepth")
def space_to_depth(imp, n, data_in):
    shape, b = imp.shape(data_in[0]), int(n.attrs.get("blocksize", 0))
    if len(shape) != 4 or b < 1 or shape[2] % b or shape[3] % b:
        return "SpaceToDepth of an NCHW tensor whose height and width split into blocks is a layer"
    out = (shape[0], shape[1] * b * b, shape[2] // b, shape[3] // b)
    imp.moved(n, data_in, "space_to_depth", out, {"blocksize": b})
