"""batch_norm: a standalone BatchNormalization (one scale and shift per channel), run in the
integer path as a 1x1 depthwise conv whose weights are the scales."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from alls.graph import Layer
from alls.runtime import numerics as nx
from alls.runtime.ops.base import Params, QLayer, kernel
from alls.runtime.ops.weighted import kernel_weights, weighted_op

if TYPE_CHECKING:
    from alls.runtime.kernels import ConvWeights

__all__ = ["OPS"]


def _run(layer: Layer, xs: Sequence[np.ndarray], p: Params) -> np.ndarray:
    shape = (1, -1) + (1,) * (xs[0].ndim - 2)
    return xs[0] * p["scale"].reshape(shape) + p["shift"].reshape(shape)


def _pack(ConvWeights: type[ConvWeights], q: QLayer, layer: Layer) -> ConvWeights:
    weights, bits = q.weight_codes()
    return ConvWeights(weights, bits, weights.shape[0])


def _call(layer: Layer, q: QLayer, x: np.ndarray, zx: int, acc_only: bool, bias: nx.Bias | None = None
          ) -> np.ndarray:
    w = kernel_weights(q, layer, _pack)
    return kernel("dw_acc")(x, w, bias, zero_point=zx) if acc_only else kernel("dw")(x, w, q.bias, q.rq, zero_point=zx)


OPS = (weighted_op("batch_norm", _run, _call),)
