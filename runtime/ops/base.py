"""What every layer kind shares: the `Op` record, the integer encoding of a tensor, the
integer form of a layer, the NHWC layout of the integer path, and the way to the kernels.

An `Op` gathers one layer kind in one place: its float run (the `native` target), its
quantization (plan + statistics -> `QLayer`) and its integer run on the kernels of
`alls.runtime.kernels`. The table `alls.runtime.ops.OPS` holds one per kind; the float
executor, the quantizer and the emulator all go through it.

Importing this module loads no Numba: the kernels are looked up on first use (`kernel`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from alls.graph import WEIGHTED_KINDS, Layer
from alls.plan import Activation, LayerPlan
from alls.runtime import numerics as nx

__all__ = ["Op", "Encoding", "QLayer", "MIN_RANGE", "CONST_BITS", "TABLE_BITS", "NHWC_AXIS", "to_nhwc", "to_onnx", "int_axis",
           "kernel", "rescale", "requantize_if", "quantize_passthrough", "RANGE_MARGIN", "activation_range",
           "with_margin"]

MIN_RANGE = 1e-6
CONST_BITS = 16
TABLE_BITS = 16
NHWC_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}

# How far a 16-bit encoding reaches beyond the calibrated range, as a fraction of each side's
# magnitude (docs/accuracy.md): on images the calibration never saw, clamping, not rounding,
# dominates a 16-bit tensor's error, and doubling its range costs one bit of sixteen.
RANGE_MARGIN = {8: 0.0, 16: 0.5}


class Range(Protocol):
    """The extremes a tensor took over the calibration images."""

    @property
    def min(self) -> float: ...

    @property
    def max(self) -> float: ...


class LayerStats(Protocol):
    """What quantization reads of a layer's calibration statistics: the range before its activation."""

    @property
    def before(self) -> Range: ...


# A layer's float constants by name (weight, bias, scale, ...), the encodings by tensor, the
# calibration statistics by layer.
Params = Mapping[str, np.ndarray]
Encodings = Mapping[str, "Encoding"]
StatsByName = Mapping[str, LayerStats]

# Outputs an activation bounds, whatever the data: no margin reaches past them.
_BOUNDED = {Activation.RELU6: (0.0, 6.0), Activation.SIGMOID: (0.0, 1.0), Activation.TANH: (-1.0, 1.0),
            Activation.HARD_SIGMOID: (0.0, 1.0)}


def activation_range(layer: Layer) -> tuple[float, float]:
    """The values ``layer``'s activation can produce (-inf, inf when it does not bound them)."""
    if layer.activation is Activation.CLIP:
        params = dict(layer.activation_params)
        lo, hi = params.get("min"), params.get("max")
        return (-math.inf if lo is None else float(lo)), (math.inf if hi is None else float(hi))
    if layer.activation is Activation.RELU:
        return 0.0, math.inf
    unbounded = (-math.inf, math.inf)
    return unbounded if layer.activation is None else _BOUNDED.get(layer.activation, unbounded)


def with_margin(lo: float, hi: float, bits: int, bounds: tuple[float, float] = (-math.inf, math.inf)
                ) -> tuple[float, float]:
    """The range a ``bits``-bit encoding covers for a tensor calibrated to [lo, hi]: each side
    widened by `RANGE_MARGIN` of its magnitude, within what the activation can produce."""
    margin = RANGE_MARGIN.get(bits, 0.0)
    lo, hi = min(lo, 0.0) * (1.0 + margin), max(hi, 0.0) * (1.0 + margin)
    return max(lo, min(bounds[0], 0.0)), min(hi, max(bounds[1], 0.0))


@dataclass(frozen=True)
class Op:
    """One layer kind.

    ``run(layer, xs, params)`` is the float run (NCHW float32, before the fused activation);
    ``quantize(layer, plan, stats, encodings, params)`` gives the layer's `QLayer`;
    ``run_int(layer, qlayer, xs, encodings)`` runs it on NHWC integers. ``accumulate(layer,
    qlayer, x, zero_point, bias)``, for the kinds that have one, gives the accumulators (N6)
    without requantization. ``keeps_encoding``: the output takes its input's encoding (no
    requantization) unless the plan forces its range or changes its bits. ``encoding(plan)``:
    an output encoding fixed by the kind, whatever the statistics. ``overwrites``: the float run
    takes a fourth argument, the positions of the inputs it may write its result into (inputs
    nobody reads afterwards, which the float executor offers instead of fresh memory).
    ``run_activated(layer, xs, params)``, for the kinds that can, is the float run with the fused
    activation applied as the outputs are written, or None where it cannot fuse this layer's (the
    executor applies it then).

    ``prepare(layer, params)``, for the kinds whose small layers cost more in Python than in their
    kernels, is the layer's float run with its fused activation bound to the layer and to these
    parameter arrays: a callable of the input list that does only the kernel calls and allocates
    its output (fresh memory, no view of an input or a parameter), for any input shape `run`
    takes (the geometry worked out once per shape), with the outputs of `run` or `run_activated`
    then the activation, bit for bit, and the thread choice of `alls.runtime.kernels._parallel`
    for big layers. It reads the arrays on every call, so values changed in place are run (what
    it derives from them, such as packed weights, is checked against them). None where it cannot
    (an activation it does not fuse): the executor runs the layer as `run` and `run_activated` say.
    The float executor prepares a layer once per parameter arrays and runs without ``observe``
    on the prepared call.
    """

    kind: str
    run: Callable[..., np.ndarray]
    quantize: Callable[..., QLayer]
    run_int: Callable[..., np.ndarray]
    accumulate: Callable[..., np.ndarray] | None = None
    keeps_encoding: bool = False
    encoding: Callable[..., Encoding] | None = None
    run_activated: Callable[..., np.ndarray | None] | None = None
    overwrites: bool = False
    prepare: Callable[[Layer, Params], Callable[[list[np.ndarray]], np.ndarray] | None] | None = None

    @property
    def weighted(self) -> bool:
        """Has a weight tensor the script quantizes (`alls.graph.WEIGHTED_KINDS`, the one definition)."""
        return self.kind in WEIGHTED_KINDS

    @property
    def accumulates(self) -> bool:
        """Sums integer products into accumulators with a bias (N6): the weighted kinds and batch norm."""
        return self.accumulate is not None


@dataclass(frozen=True)
class Encoding:
    """r = scale·(q − zero_point), q an unsigned ``bits``-bit integer (N1)."""

    scale: float
    zero_point: int
    bits: int

    @classmethod
    def from_range(cls, lo: float, hi: float, bits: int) -> Encoding:
        lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
        if hi - lo < MIN_RANGE:
            hi = lo + MIN_RANGE
        top = nx.activation_max(bits)
        scale = (hi - lo) / top
        zero_point = min(max(int(math.floor(-lo / scale + 0.5)), 0), top)
        return cls(scale, zero_point, bits)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.bits == 8 else np.uint16)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Float to integer at the network's edge: clamp(Z + rhu(x / S)) (N5)."""
        return kernel("quantize")(x, self.scale, self.zero_point, self.bits)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return (self.scale * (np.asarray(q, np.float64) - self.zero_point)).astype(np.float32)

    def as_dict(self) -> dict[str, float]:
        return {"scale": self.scale, "zero_point": self.zero_point, "bits": self.bits}


@dataclass(eq=False)
class QLayer:
    """One layer's integer form: its output encoding and the constants its kernel needs.

    ``rq`` is a `Requant` (or an `AddRequant`, or one `Requant` per concat
    input); ``pre`` is the encoding of the pre-activation of a table
    activation, whose ``table`` maps it to ``out``.
    """

    name: str
    kind: str
    out: Encoding
    pre: Encoding | None = None
    weights: np.ndarray | None = None
    weight_bits: int | None = None
    weight_scale: np.ndarray | None = None
    bias: nx.Bias | None = None
    rq: Any = None
    table: np.ndarray | None = None
    const: np.ndarray | None = None
    const_encoding: Encoding | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def weight_codes(self) -> tuple[np.ndarray, int]:
        """The integer weights and their bits, which every weighted layer has."""
        if self.weights is None or self.weight_bits is None:
            raise ValueError(f"layer `{self.name}` ({self.kind}) has no integer weights")
        return self.weights, self.weight_bits


# ------------------------------------------------------------------ layout


def to_nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def to_onnx(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4 else x


def int_axis(axis: int, rank: int) -> int:
    """An ONNX axis of a rank-``rank`` tensor as the integer path lays it out (NHWC for rank 4)."""
    axis %= rank
    return NHWC_AXIS[axis] if rank == 4 else axis


# ----------------------------------------------------------------- kernels

_KERNELS: Any = None


def kernel(name: str, layer: str | None = None) -> Callable[..., np.ndarray]:
    """The integer kernel registered under ``name`` (`alls.runtime.kernels.get_kernel`), loaded on first use."""
    global _KERNELS
    if _KERNELS is None:
        from alls.runtime import kernels

        _KERNELS = kernels
    found: Callable[..., np.ndarray] = _KERNELS.get_kernel(name, layer)
    return found


# ----------------------------------------------------- shared quantization


def rescale(source: Encoding, out: Encoding, lo: int | None = None, hi: int | None = None) -> nx.Requant:
    """(N25): a tensor moved to another encoding."""
    return nx.requant([source.scale / out.scale], nx.activation_max(source.bits), out.zero_point, out.bits, lo, hi)


def quantize_max(layer: Layer, x: Encoding, out: Encoding, lo: int, hi: int) -> QLayer:
    """A max over codes (maxpool, reduce_max): the codes move as they are when the encoding and the
    clamp leave them unchanged, else one rescale (N25)."""
    keep = x == out and (lo, hi) == (0, nx.activation_max(out.bits))
    return QLayer(layer.name, layer.kind, out, rq=None if keep else rescale(x, out, lo, hi))


def requantize_if(x: np.ndarray, q: QLayer, zero_point: int) -> np.ndarray:
    """``x`` moved to the layer's output encoding, when the layer has a requantization."""
    return x if q.rq is None else kernel("requantize")(x, q.rq, zero_point=zero_point)


def quantize_passthrough(layer: Layer, lp: LayerPlan, stats: StatsByName, enc: Encodings, params: Params) -> QLayer:
    x, out = enc[layer.inputs[0]], enc[layer.name]
    return QLayer(layer.name, layer.kind, out, rq=None if x == out else rescale(x, out))
