"""Activations: the float functions, their integer form (a clamp (N19) or a table (N20)),
and the standalone activation layer.

A layer's fused activation (``layer.activation``) runs after its kind's float run
(`activation`); in the integer path it narrows the requantization's clamp or becomes a
lookup table over a 16-bit pre-activation (`table_target`, `table`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from alls.graph import Layer
from alls.plan import Activation, LayerPlan
from alls.runtime import numerics as nx
from alls.runtime.ops.base import (Encoding, Encodings, Op, Params, QLayer, StatsByName, TABLE_BITS, kernel,
    rescale, with_margin)

__all__ = ["ACTIVATIONS", "TABLE_ACTIVATIONS", "activation", "activate_in_place", "table_target", "clamp", "table",
           "OPS"]

Array = np.ndarray

# Activations that are lookup tables over the integer input (the others fold into the clamp).
TABLE_ACTIVATIONS = frozenset((Activation.SIGMOID, Activation.TANH, Activation.LEAKY_RELU, Activation.PRELU,
                               Activation.ELU, Activation.HARD_SIGMOID, Activation.HARDSWISH, Activation.SILU))


def _sigmoid(x: Array) -> Array:
    return (0.5 * (np.tanh(0.5 * x) + 1.0)).astype(x.dtype)  # stable for large |x|


ACTIVATIONS: dict[Activation, Callable[..., Array]] = {
    Activation.RELU: lambda x: np.maximum(x, 0),
    Activation.RELU6: lambda x: np.clip(x, 0, 6),
    Activation.CLIP: lambda x, min=-np.inf, max=np.inf: np.clip(x, min, max),
    Activation.LEAKY_RELU: lambda x, alpha=0.01: np.where(x >= 0, x, x * np.float32(alpha)),
    Activation.ELU: lambda x, alpha=1.0: np.where(x > 0, x, np.float32(alpha) * np.expm1(np.minimum(x, 0))),
    Activation.SIGMOID: _sigmoid,
    Activation.TANH: np.tanh,
    Activation.HARD_SIGMOID: lambda x, alpha=0.2, beta=0.5: np.clip(np.float32(alpha) * x + np.float32(beta), 0, 1),
    Activation.HARDSWISH: lambda x: x * np.clip(x / np.float32(6) + np.float32(0.5), 0, 1),
    Activation.SILU: lambda x: x * _sigmoid(x),
}


def activation(layer: Layer, x: Array, params: Mapping[str, Array] | None = None) -> Array:
    """Apply the layer's fused activation (or nothing) to ``x``."""
    name = layer.activation
    if name is None or name is Activation.LINEAR:
        return x
    if name is Activation.PRELU:
        slope = (params or layer.params)["prelu_slope"]
        slope = slope.reshape(1, -1, *([1] * (x.ndim - 2))) if slope.size > 1 and x.ndim >= 2 else slope
        return np.where(x >= 0, x, x * slope).astype(np.float32)
    fn = ACTIVATIONS[name]
    return fn(x, **dict(layer.activation_params)).astype(np.float32, copy=False)


def _hardswish(x: Array) -> None:
    t = x / np.float32(6)
    t += np.float32(0.5)
    np.clip(t, 0, 1, out=t)
    x *= t


def _sigmoid_into(x: Array, out: Array) -> Array:
    np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


def _hard_sigmoid(x: Array, alpha: float = 0.2, beta: float = 0.5) -> None:
    x *= np.float32(alpha)
    x += np.float32(beta)
    np.clip(x, 0, 1, out=x)


# The same float32 steps as `ACTIVATIONS`, written into the tensor itself: the same bits, fewer passes.
_IN_PLACE: dict[Activation, Callable[..., object]] = {
    Activation.RELU: lambda x: np.maximum(x, 0, out=x),
    Activation.RELU6: lambda x: np.minimum(np.maximum(x, 0, out=x), 6, out=x),  # clip's steps, without its wrapper
    Activation.CLIP: lambda x, min=-np.inf, max=np.inf: np.clip(x, min, max, out=x),
    Activation.SIGMOID: lambda x: _sigmoid_into(x, x),
    Activation.HARD_SIGMOID: _hard_sigmoid,
    Activation.HARDSWISH: _hardswish,
    Activation.SILU: lambda x: np.multiply(x, _sigmoid_into(x, np.empty_like(x)), out=x),
}


def activate_in_place(layer: Layer, x: Array) -> bool:
    """Apply the layer's fused activation to float32 ``x`` itself, when it has an in-place form
    (the same values `activation` gives); False, and ``x`` untouched, when it has not."""
    fn = _IN_PLACE.get(layer.activation) if layer.activation is not None else None
    if fn is None or x.dtype != np.float32 or not x.flags.writeable:
        return False
    fn(x, **dict(layer.activation_params))
    return True


# ------------------------------------------------------------ quantization


def table_target(layer: Layer, lp: LayerPlan, stats: StatsByName, out: Encoding) -> Encoding | None:
    """The pre-activation encoding of a table activation, or None when the activation is a clamp."""
    if layer.activation not in TABLE_ACTIVATIONS:
        return None

    before = stats[layer.name].before
    bits = 8 if layer.activation is Activation.PRELU and out.bits == 8 else TABLE_BITS  # per channel: 256 or 2^16 each
    return Encoding.from_range(*with_margin(before.min, before.max, bits), bits)


def clamp(layer: Layer, enc: Encoding) -> tuple[int, int]:
    name = layer.activation if layer.activation not in TABLE_ACTIVATIONS else None
    return nx.activation_bounds(name, enc.bits, enc.scale, enc.zero_point, dict(layer.activation_params))


def table(layer: Layer, pre: Encoding, out: Encoding, params: Params) -> np.ndarray:
    """(N20) from the layer's own float activation (the one the native target runs)."""
    def fn(r: np.ndarray, channel: int | None = None) -> np.ndarray:
        x = np.asarray(r, np.float32)
        if layer.activation is Activation.PRELU:
            slope = params["prelu_slope"]
            s = float(slope[channel] if slope.size > 1 else slope[0])
            slanted: np.ndarray = np.where(x >= 0, x, x * s)
            return slanted
        return activation(layer, x, params).astype(np.float64)

    if layer.activation is Activation.PRELU and params["prelu_slope"].size > 1:
        rows = [nx.build_lut(functools.partial(fn, channel=c), pre.bits, pre.scale, pre.zero_point, out.bits,
                             out.scale, out.zero_point) for c in range(params["prelu_slope"].size)]
        return np.stack(rows)
    return nx.build_lut(fn, pre.bits, pre.scale, pre.zero_point, out.bits, out.scale, out.zero_point)


def finish(q: QLayer, y: np.ndarray) -> np.ndarray:
    """The table activation after a requantization to the pre-activation, if the layer has one."""
    return kernel("lut")(y, q.table) if q.pre is not None and q.table is not None else y


# ---------------------------------------------------- the activation layer


def _quantize(layer: Layer, lp: LayerPlan, stats: StatsByName, enc: Encodings, params: Params) -> QLayer:
    x, out = enc[layer.inputs[0]], enc[layer.name]
    if layer.activation in TABLE_ACTIVATIONS:
        return QLayer(layer.name, layer.kind, out, pre=x, table=table(layer, x, out, params))
    lo, hi = clamp(layer, out)
    return QLayer(layer.name, layer.kind, out, rq=rescale(x, out, lo, hi))


def _run_int(layer: Layer, q: QLayer, xs: Sequence[np.ndarray], enc: Encodings) -> np.ndarray:
    if q.table is not None:
        return kernel("lut")(xs[0], q.table)
    return kernel("requantize")(xs[0], q.rq, zero_point=enc[layer.inputs[0]].zero_point)


OPS = (Op("activation", lambda layer, xs, p: xs[0], _quantize, _run_int),)
