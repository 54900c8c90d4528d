"""The numerics of the integer runtime: every constant the kernels use is derived here.

The specification is ``runtime/NUMERICS.md`` beside this module in the source tree; "(N13)" and
the like refer to its numbered equations. This module runs at quantization time and may use
float (the scales are floats); what it returns is integers and integer arrays, and the
kernels in :mod:`alls.runtime.kernels` use nothing else. Nothing outside this module
derives a multiplier or a shift.

It imports only numpy: no numba, so it can be used by the plan and the checker.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "ACTIVATION_BITS", "WEIGHT_BITS", "BIAS_MANTISSA_BITS", "RESIZE_FRACTION_BITS", "MAX_SHIFT",
    "activation_max", "weight_max", "round_half_up", "round_half_up_real",
    "value_bound", "accumulator_dtype", "multiplier_bits", "quantize_multiplier",
    "quantize_multipliers", "shared_shift_multipliers", "channel_groups",
    "Requant", "AddRequant", "requant", "add_requant", "mul_requant", "avgpool_requant",
    "global_avgpool_requant",
    "bilinear_requant", "clamp_bounds", "activation_bounds",
    "Bias", "quantize_bias", "ACTIVATION_FUNCTIONS", "build_lut",
]

ACTIVATION_BITS = (8, 16)
WEIGHT_BITS = (4, 8, 16)
# Mantissa width of the bias per bias_mode (N10).
BIAS_MANTISSA_BITS = {"single_scale_decomposition": 8, "double_scale_initialization": 16}
RESIZE_FRACTION_BITS = 10  # F of (N30)
_IntOrArray = TypeVar("_IntOrArray", int, np.ndarray)  # round_half_up's operand: a Python int or an int array
MAX_SHIFT = 62  # n of (N4) and (N13)
INT32_MAX = 2**31 - 1
INT64_VALUE_LIMIT = 2**47  # |v| < 2^47 on the int64 path (N9)


def activation_max(bits: int) -> int:
    """The largest activation code, 2^a − 1 (N1)."""
    if bits not in ACTIVATION_BITS:
        raise ValueError(f"activations are 8 or 16 bit, not {bits}")
    return (1 << bits) - 1


def weight_max(bits: int) -> int:
    """The largest weight magnitude, 2^(b−1) − 1 (N2): 7, 127 or 32767."""
    if bits not in WEIGHT_BITS:
        raise ValueError(f"weights are 4, 8 or 16 bit, not {bits}")
    return (1 << (bits - 1)) - 1


# --- rounding --------------------------------------------------------------------------------

def round_half_up(x: _IntOrArray, n: int) -> _IntOrArray:
    """RHU(x, n) = (x + ⌊2^n/2⌋) >> n (N4): Python ints or integer numpy arrays.

    Arithmetic shift, so ``⌊x/2^n + 1/2⌋``; ties go toward +∞ for either sign.
    """
    if not 0 <= n <= MAX_SHIFT:
        raise ValueError(f"shift {n} outside 0..{MAX_SHIFT}")
    if isinstance(x, np.ndarray):
        shifted: np.ndarray = (x + np.int64((1 << n) >> 1)) >> np.int64(n)
        return shifted
    return (x + ((1 << n) >> 1)) >> n


def round_half_up_real(t: float | Fraction) -> int:
    """rhu(t) = ⌊t + 1/2⌋ (N5), exactly, for a float, int or Fraction."""
    return math.floor(Fraction(t) + Fraction(1, 2))


# --- accumulator and multiplier widths -------------------------------------------------------

def value_bound(fan_in: int, act_bits: int, weight_bits: int, bias_max: int = 0) -> int:
    """V = K·(2^a − 1)·(2^(b−1) − 1) + max|B| (N8): bounds every partial sum of (N6)."""
    if fan_in < 0 or bias_max < 0:
        raise ValueError("fan-in and bias bound must be >= 0")
    return fan_in * activation_max(act_bits) * weight_max(weight_bits) + int(bias_max)


def accumulator_dtype(bound: int) -> np.dtype:
    """int32 when V ≤ 2^31 − 1, int64 when V < 2^47 (N9); ValueError otherwise."""
    if bound <= INT32_MAX:
        return np.dtype(np.int32)
    if bound < INT64_VALUE_LIMIT:
        return np.dtype(np.int64)
    raise ValueError(f"accumulator bound {bound} exceeds 2^47: the layer cannot be emulated exactly")


def multiplier_bits(bound: int) -> int:
    """w = min(31, 62 − bitlen(V)) (N14), so that |v·M| < 2^62 (N15)."""
    if not 0 <= bound < INT64_VALUE_LIMIT:
        raise ValueError(f"value bound {bound} outside 0..2^47")
    return min(31, 62 - int(bound).bit_length())


def quantize_multiplier(real: float, bits: int) -> tuple[int, int]:
    """(M, n) with M·2^−n ≈ μ (N16); M < 2^bits, 0 ≤ n ≤ 62.

    Exact rational arithmetic on the float's value. Error ≤ 2^−(n+1), relatively ≤ 2^−bits
    when M ≥ 2^(bits−1) (N17). ValueError for μ < 0, non-finite μ, or μ too large for a
    right shift (μ ≥ 2^bits − 1/2).
    """
    if not 1 <= bits <= 31:
        raise ValueError(f"multiplier width {bits} outside 1..31")
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"multiplier {real!r} must be finite and >= 0")
    if real == 0:
        return 0, 0
    _, k = math.frexp(real)  # μ = f·2^k, f in [1/2, 1)
    n = min(bits - k, MAX_SHIFT)
    if n < 0:
        raise ValueError(f"multiplier {real!r} needs a left shift (> 2^{bits})")
    m = round_half_up_real(Fraction(real) * (1 << n))
    if m == 1 << bits:  # rounded up to the next power of two
        m, n = m >> 1, n - 1
        if n < 0:
            raise ValueError(f"multiplier {real!r} needs a left shift (> 2^{bits})")
    return m, n


def quantize_multipliers(reals: ArrayLike, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (N16): int64 arrays of multipliers and shifts."""
    pairs = [quantize_multiplier(float(r), bits) for r in np.ravel(reals)]
    return (np.array([p[0] for p in pairs], dtype=np.int64),
            np.array([p[1] for p in pairs], dtype=np.int64))


def shared_shift_multipliers(reals: Sequence[float], bits: int) -> tuple[list[int], int]:
    """Signed multipliers sharing one shift (N23): the largest |μ| is normalized, the others
    are rhu(μ·2^n) with the same n."""
    mags = [abs(float(r)) for r in reals]
    _, n = quantize_multiplier(max(mags), bits)
    out = []
    for r in reals:
        m = round_half_up_real(Fraction(abs(float(r))) * (1 << n))
        out.append(-m if r < 0 else m)
    return out, n


def channel_groups(channels: int, groups: int) -> np.ndarray:
    """g(c) = ⌊c·G / C_out⌋ (N3), for G contiguous equal groups of output channels."""
    if not 1 <= groups <= 4 or channels % groups:
        raise ValueError(f"{groups} quantization groups do not divide {channels} channels")
    return (np.arange(channels) * groups) // channels


# --- requantization parameters ---------------------------------------------------------------

def _int_array(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.ascontiguousarray(np.atleast_1d(np.asarray(values)), dtype=np.int64)
    arr.setflags(write=False)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    return arr


@dataclass(frozen=True, eq=False)
class Requant:
    """The constants of (N13): y = clamp(Z + RHU(v·M[c], n[c]), lo, hi), an o-bit output.

    ``multiplier`` and ``shift`` hold one value per channel (or one for all); for average
    pooling they are indexed by the window count κ instead (N27). ``bound`` is the V that
    ``multiplier`` was derived for; kernels refuse a v whose bound exceeds it.
    """

    multiplier: np.ndarray
    shift: np.ndarray
    zero_point: int
    lo: int
    hi: int
    bits: int = 8
    bound: int = INT32_MAX

    def __post_init__(self) -> None:
        mult, shift = _int_array(self.multiplier, "multiplier"), _int_array(self.shift, "shift")
        object.__setattr__(self, "multiplier", mult)
        object.__setattr__(self, "shift", shift)
        top = activation_max(self.bits)
        if mult.shape != shift.shape:
            raise ValueError("multiplier and shift must have the same length")
        if np.any(shift < 0) or np.any(shift > MAX_SHIFT):
            raise ValueError(f"shifts must lie in 0..{MAX_SHIFT}")
        width = multiplier_bits(self.bound)
        if np.any(mult < 0) or np.any(mult >= (1 << width)):
            raise ValueError(f"multipliers must lie in 0..2^{width} − 1 for a value bound of {self.bound}")
        if not (0 <= self.lo <= self.hi <= top and 0 <= self.zero_point <= top):
            raise ValueError(f"need 0 <= lo <= hi <= {top} and zero point in range")

    def per_channel(self, channels: int) -> tuple[np.ndarray, np.ndarray]:
        """``(M, n)`` broadcast to ``channels`` entries (contiguous int64)."""
        cache: dict[int, tuple[np.ndarray, np.ndarray]] = self.__dict__.setdefault("_per_channel", {})
        if channels not in cache:
            if self.multiplier.size not in (1, channels):
                raise ValueError(f"{self.multiplier.size} multipliers for {channels} channels")
            cache[channels] = (np.ascontiguousarray(np.broadcast_to(self.multiplier, channels)),
                               np.ascontiguousarray(np.broadcast_to(self.shift, channels)))
        return cache[channels]

    def out_dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.bits == 8 else np.uint16)


@dataclass(frozen=True, eq=False)
class AddRequant:
    """The constants of (N23): y = clamp(Z + RHU(M_a·(q_a − Z_a) + M_b·(q_b − Z_b), n), lo, hi).

    ``multiplier_b`` is negative for a subtraction. ``bound`` is V = A_a + A_b.
    """

    multiplier_a: int
    multiplier_b: int
    shift: int
    zero_point: int
    lo: int
    hi: int
    bits: int = 8
    bound: int = 2 * 65535

    def __post_init__(self) -> None:
        width = multiplier_bits(self.bound)
        top = activation_max(self.bits)
        if not all(abs(m) < (1 << width) for m in (self.multiplier_a, self.multiplier_b)):
            raise ValueError(f"multipliers must lie within ±(2^{width} − 1)")
        if not 0 <= self.shift <= MAX_SHIFT:
            raise ValueError(f"shift must lie in 0..{MAX_SHIFT}")
        if not (0 <= self.lo <= self.hi <= top and 0 <= self.zero_point <= top):
            raise ValueError(f"need 0 <= lo <= hi <= {top} and zero point in range")

    def out_dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.bits == 8 else np.uint16)


def requant(reals: ArrayLike, bound: int, zero_point: int, bits: int = 8, lo: int | None = None,
            hi: int | None = None) -> Requant:
    """(N13)/(N16): per-channel real multipliers μ → Requant for values bounded by V."""
    m, n = quantize_multipliers(reals, multiplier_bits(bound))
    top = activation_max(bits)
    return Requant(m, n, int(zero_point), 0 if lo is None else int(lo), top if hi is None else int(hi),
                   bits, int(bound))


def add_requant(scale_a: float, scale_b: float, scale_out: float, zero_point: int, bits_a: int = 8,
                bits_b: int = 8, bits: int = 8, lo: int | None = None, hi: int | None = None,
                subtract: bool = False) -> AddRequant:
    """(N23): μ_a = S_a/S_y, μ_b = ±S_b/S_y sharing one shift, V = A_a + A_b."""
    bound = activation_max(bits_a) + activation_max(bits_b)
    (ma, mb), n = shared_shift_multipliers(
        [scale_a / scale_out, (-1 if subtract else 1) * scale_b / scale_out], multiplier_bits(bound))
    top = activation_max(bits)
    return AddRequant(ma, mb, n, int(zero_point), 0 if lo is None else int(lo), top if hi is None else int(hi),
                      bits, bound)


def mul_requant(scale_a: float, scale_b: float, scale_out: float, zero_point: int, bits_a: int = 8,
                bits_b: int = 8, bits: int = 8, lo: int | None = None, hi: int | None = None) -> Requant:
    """(N24): μ = S_a·S_b/S_y, V = A_a·A_b."""
    bound = activation_max(bits_a) * activation_max(bits_b)
    return requant([scale_a * scale_b / scale_out], bound, zero_point, bits, lo, hi)


def avgpool_requant(max_count: int, scale_in: float, scale_out: float, zero_point: int, act_bits: int = 8,
                    bits: int = 8, lo: int | None = None, hi: int | None = None) -> Requant:
    """(N27): one (M, n) per divisor κ = 0..max_count (entry 0 unused), V = max_count·A."""
    bound = max_count * activation_max(act_bits)
    reals = [0.0] + [scale_in / (scale_out * k) for k in range(1, max_count + 1)]
    return requant(reals, bound, zero_point, bits, lo, hi)


def global_avgpool_requant(pixels: int, scale_in: float, scale_out: float, zero_point: int, act_bits: int = 8,
                           bits: int = 8, lo: int | None = None, hi: int | None = None) -> Requant:
    """(N27) with κ = H·W fixed: one multiplier μ = S_x/(S_y·H·W), V = H·W·A."""
    return requant([scale_in / (scale_out * pixels)], pixels * activation_max(act_bits), zero_point, bits, lo, hi)


def bilinear_requant(scale_in: float, scale_out: float, zero_point: int, act_bits: int = 8, bits: int = 8,
                     lo: int | None = None, hi: int | None = None) -> Requant:
    """(N31): μ = S_x/(S_y·2^(2F)), V = 2^(2F)·A."""
    two_f = 2 * RESIZE_FRACTION_BITS
    bound = (1 << two_f) * activation_max(act_bits)
    return requant([math.ldexp(scale_in / scale_out, -two_f)], bound, zero_point, bits, lo, hi)


# --- clamp folding ---------------------------------------------------------------------------

def clamp_bounds(bits: int, scale: float, zero_point: int, lo: float | None = None,
                 hi: float | None = None) -> tuple[int, int]:
    """[q(α), q(β)] with q(t) = clamp(Z + rhu(t/S), 0, 2^o − 1) (N18); None = unbounded."""
    top = activation_max(bits)

    def q(t: float) -> int:
        return min(max(zero_point + round_half_up_real(Fraction(t) / Fraction(scale)), 0), top)

    return (0 if lo is None or lo == -math.inf else q(lo)), (top if hi is None or hi == math.inf else q(hi))


def activation_bounds(activation: str | None, bits: int, scale: float, zero_point: int,
                      params: dict[str, float] | None = None) -> tuple[int, int]:
    """The clamp of (N19) for none, relu, relu6 and clip(min, max); ValueError for others."""
    params = params or {}
    if activation in (None, "linear", "none"):
        return clamp_bounds(bits, scale, zero_point)
    if activation == "relu":
        return clamp_bounds(bits, scale, zero_point, 0.0)
    if activation == "relu6":
        return clamp_bounds(bits, scale, zero_point, 0.0, 6.0)
    if activation == "clip":
        return clamp_bounds(bits, scale, zero_point, params.get("min"), params.get("max"))
    raise ValueError(f"activation {activation!r} is a lookup table, not a clamp")


# --- bias ------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Bias:
    """B[c] = m[c]·2^e (N10): a signed β-bit mantissa per channel, one exponent per layer."""

    mantissa: np.ndarray
    exponent: int
    mantissa_bits: int = 16

    def __post_init__(self) -> None:
        m = _int_array(self.mantissa, "mantissa")
        object.__setattr__(self, "mantissa", m)
        if self.mantissa_bits not in (8, 16) or self.exponent < 0 or self.exponent > 40:
            raise ValueError("bias mantissa is 8 or 16 bit with an exponent in 0..40")
        if np.any(np.abs(m) > (1 << (self.mantissa_bits - 1)) - 1):
            raise ValueError(f"bias mantissas exceed ±{(1 << (self.mantissa_bits - 1)) - 1}")

    def accumulator(self) -> np.ndarray:
        """B = m << e in int64 accumulator units (read-only, computed once)."""
        if "_acc" not in self.__dict__:
            acc = self.mantissa << np.int64(self.exponent)
            acc.setflags(write=False)
            self.__dict__["_acc"] = acc
        cached: np.ndarray = self.__dict__["_acc"]
        return cached

    def max_abs(self) -> int:
        """max_c |B[c]|, the bias term of the bound (N8)."""
        return int(np.max(np.abs(self.mantissa), initial=0)) << self.exponent

    def error(self, bias: np.ndarray, acc_scale: np.ndarray) -> np.ndarray:
        """The real representation error per channel, B·S_acc − b; |error| ≤ 2^(e−1)·S_acc (N12)."""
        return self.accumulator() * np.asarray(acc_scale, dtype=np.float64) - np.asarray(bias, dtype=np.float64)


def quantize_bias(bias: ArrayLike, acc_scale: ArrayLike, mantissa_bits: int = 16) -> Bias:
    """(N11): t = b/S_acc, the smallest e ≥ 0 whose mantissas rhu(t/2^e) all fit β bits."""
    t = np.asarray(bias, dtype=np.float64) / np.asarray(acc_scale, dtype=np.float64)
    if not np.all(np.isfinite(t)):
        raise ValueError("bias or accumulator scale is not finite")
    limit = (1 << (mantissa_bits - 1)) - 1
    for e in range(41):
        m = np.floor(np.ldexp(t, -e) + 0.5)  # exact for |m| < 2^52
        if np.all(np.abs(m) <= limit):
            return Bias(m.astype(np.int64), e, mantissa_bits)
    raise ValueError("bias too large for a 40-bit exponent")


# --- lookup tables ---------------------------------------------------------------------------

def _sigmoid(r: np.ndarray, **_: float) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * r))


ACTIVATION_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "sigmoid": _sigmoid,
    "tanh": lambda r, **_: np.tanh(r),
    "leaky_relu": lambda r, alpha=0.01, **_: np.where(r >= 0, r, alpha * r),
    "prelu": lambda r, slope=0.25, **_: np.where(r >= 0, r, slope * r),
    "elu": lambda r, alpha=1.0, **_: np.where(r >= 0, r, alpha * np.expm1(np.minimum(r, 0))),
    "hard_sigmoid": lambda r, alpha=0.2, beta=0.5, **_: np.clip(alpha * r + beta, 0.0, 1.0),
    "hardswish": lambda r, **_: r * np.clip(r / 6.0 + 0.5, 0.0, 1.0),
    "silu": lambda r, **_: r * _sigmoid(r),
    "relu": lambda r, **_: np.maximum(r, 0.0),
    "relu6": lambda r, **_: np.clip(r, 0.0, 6.0),
}


def build_lut(fn: Callable[[np.ndarray], np.ndarray] | str, in_bits: int, in_scale: float, in_zero_point: int,
              out_bits: int, out_scale: float, out_zero_point: int, **params: float) -> np.ndarray:
    """T[j] = clamp(Z_y + rhu(f(S_p·(j − Z_p))/S_y), 0, 2^o − 1), j = 0..2^a_p − 1 (N20).

    ``fn`` is a float function of a float64 array, or a name of ACTIVATION_FUNCTIONS (its
    parameters as keywords). Returns a read-only uint8/uint16 array of 2^a_p entries.
    """
    f = ACTIVATION_FUNCTIONS[fn] if isinstance(fn, str) else fn
    j = np.arange(activation_max(in_bits) + 1, dtype=np.float64)
    y = np.asarray(f(in_scale * (j - in_zero_point), **params), dtype=np.float64)
    if not np.all(np.isfinite(y)):
        raise ValueError("the activation is not finite over the input's range")
    q = np.floor(y / out_scale + 0.5) + out_zero_point  # rhu (N5); exact below 2^52
    table: np.ndarray = np.clip(q, 0, activation_max(out_bits)).astype(np.uint8 if out_bits == 8 else np.uint16)
    table.setflags(write=False)
    return table
