"""output_layer: a network output, the identity (moved to another encoding only when the plan
changes its bits or forces its range)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alls.graph import Layer
from alls.runtime.ops.base import Encodings, Op, QLayer, quantize_passthrough, requantize_if

__all__ = ["OPS"]


def _run_int(layer: Layer, q: QLayer, xs: Sequence[np.ndarray], enc: Encodings) -> np.ndarray:
    return requantize_if(xs[0], q, enc[layer.inputs[0]].zero_point)


OPS = (Op("output_layer", lambda layer, xs, p: xs[0], quantize_passthrough, _run_int, keeps_encoding=True),)
