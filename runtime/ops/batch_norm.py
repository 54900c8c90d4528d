"""batch_norm: a standalone BatchNormalization (one scale and shift per channel), run in the
integer path as a 1x1 depthwise conv whose weights are the scales."""

from __future__ import annotations

from alls.runtime.ops.base import kernel
from alls.runtime.ops.weighted import kernel_weights, weighted_op

__all__ = ["OPS"]


def _run(layer, xs, p):
    shape = (1, -1) + (1,) * (xs[0].ndim - 2)
    return xs[0] * p["scale"].reshape(shape) + p["shift"].reshape(shape)


def _pack(ConvWeights, q, layer):
    return ConvWeights(q.weights, q.weight_bits, q.weights.shape[0])


def _call(layer, q, x, zx, acc_only, bias=None):
    w = kernel_weights(q, layer, _pack)
    return kernel("dw_acc")(x, w, bias, zero_point=zx) if acc_only else kernel("dw")(x, w, q.bias, q.rq, zero_point=zx)


OPS = (weighted_op("batch_norm", _run, _call),)
