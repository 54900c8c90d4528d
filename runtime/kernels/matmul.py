"""The product of two activation tensors (attention's Q·Kᵀ and ·V): NUMERICS.md §15, (N37).

Both operands are uint8/uint16 codes in ONNX order with the same batch axes: ``a`` (..., M, K)
and ``b`` (..., K, N). Each is centred by its zero point first (exact: a 16-bit code minus its zero
point fits int32), so every product is of two centred integers and no cross term is left to
correct. The sums are exact integers (BLAS in float64, exact below 2^53: `sums`); the bound
V = K·A_a·A_b < 2^47 of (N37) keeps every partial sum and the requantization's product (N15) inside
int64 and float64's integers, and a larger K is refused before anything runs.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from alls.runtime.kernels._common import _requant1, act_bits, as_activation, check_requant, njit
from alls.runtime.numerics import Requant, accumulator_dtype, activation_max

__all__ = ["matmul", "matmul_acc", "matmul_bound", "sums", "FLOAT32_EXACT"]


FLOAT32_EXACT = 1 << 24  # float32 holds every integer of magnitude up to 2^24


def sums(ca: np.ndarray, cbt: np.ndarray, bound: int) -> np.ndarray:
    """Σ of (N37): out[p, i, j] = Σ_k ca[p, i, k]·cbt[p, j, k], int64 (P, M, N), exact.

    ``ca`` (P, M, K) and ``cbt`` (P, N, K) are centred codes, ``bound`` their V = K·A_a·A_b. The
    products are summed by BLAS in float64 (float32 when V < 2^24), which is exact here in any order
    of summation: every term is an integer of magnitude at most A_a·A_b, and every partial sum, a sum
    of some of the terms, an integer of magnitude at most V < 2^47 (refused beforehand otherwise),
    below 2^53 (2^24), where float64 (float32) holds every integer; a fused multiply-add is exact for
    the same reason. So the result is the int64 sum of the definition, at BLAS's speed instead of a
    scalar loop's.
    """
    product = _float_sums(ca, cbt, bound)
    out = np.empty(product.shape, dtype=np.int64)
    _to_int64(product.reshape(-1), out.reshape(-1))  # NumPy's own cast is 20x slower: it checks every value
    return out


def _float_sums(ca: np.ndarray, cbt: np.ndarray, bound: int) -> np.ndarray:
    """The sums of `sums` as float integers (P, M, N): float32 where the bound V is below 2^24 (float32
    holds every integer up to 2^24: an 8-bit Q·Kᵀ over K < 258), else float64 (every integer up to 2^53)."""
    dtype = np.float32 if bound < FLOAT32_EXACT else np.float64
    product: np.ndarray = np.matmul(ca.astype(dtype), np.ascontiguousarray(cbt.astype(dtype).transpose(0, 2, 1)))
    return product


@njit(cache=True)
def _to_int64(v: np.ndarray, out: np.ndarray) -> None:
    for i in range(v.shape[0]):
        out[i] = np.int64(v[i])


@njit(cache=True)
def requant_all(v: np.ndarray, mult: np.int64, shift: np.int64, zo: np.int64, lo: np.int64, hi: np.int64,
                out: np.ndarray) -> None:
    """(N13) with one multiplier: out[i] = clamp(zo + RHU(v[i]·M, n), lo, hi) over flat sums (float64
    integers below 2^47, taken as int64 exactly)."""
    for i in range(v.shape[0]):
        out[i] = _requant1(np.int64(v[i]), mult, shift, zo, lo, hi)


def matmul_bound(inner: int, bits_a: int, bits_b: int) -> int:
    """V = K·A_a·A_b of (N37): bounds |Σ| and every partial sum."""
    return int(inner) * activation_max(bits_a) * activation_max(bits_b)


def _centred(a: ArrayLike, b: ArrayLike, zero_points: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, int]:
    """(a − Z_a) as (P, M, K) and (b − Z_b)ᵀ as (P, N, K), int32, and the bound V; ValueError for
    shapes that do not multiply or a V of 2^47 or more (N9)."""
    a, b = as_activation(a, "matmul input a"), as_activation(b, "matmul input b")
    if a.ndim < 2 or a.ndim != b.ndim or a.shape[:-2] != b.shape[:-2] or a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul needs (..., M, K) and (..., K, N) with the same batch axes, not {a.shape} and "
                         f"{b.shape}")
    bound = matmul_bound(a.shape[-1], act_bits(a), act_bits(b))
    accumulator_dtype(bound)
    za, zb = (int(z) for z in zero_points)
    if not (0 <= za <= activation_max(act_bits(a)) and 0 <= zb <= activation_max(act_bits(b))):
        raise ValueError(f"zero points {za}, {zb} outside the operands' codes")
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    ca = (a.reshape(-1, m, k).astype(np.int32) - np.int32(za))
    cb = np.ascontiguousarray((b.reshape(-1, k, n).astype(np.int32) - np.int32(zb)).transpose(0, 2, 1))
    return ca, cb, bound


def matmul(a: ArrayLike, b: ArrayLike, rq: Requant, *, zero_points: tuple[int, int]) -> np.ndarray:
    """(N37): the product of ``a`` (..., M, K) and ``b`` (..., K, N), requantized by ``rq`` (one
    multiplier, derived for a bound ≥ K·A_a·A_b), as (..., M, N) codes."""
    ca, cb, bound = _centred(a, b, zero_points)
    (mult,), (shift,) = check_requant(rq, bound, 1)
    if rq.multiplier.size != 1:
        raise ValueError("matmul has one multiplier for the whole tensor")
    acc = _float_sums(ca, cb, bound)
    out = np.empty(acc.shape, dtype=rq.out_dtype())
    requant_all(acc.reshape(-1), np.int64(mult), np.int64(shift), np.int64(rq.zero_point), np.int64(rq.lo),
                np.int64(rq.hi), out.reshape(-1))
    return out.reshape(*np.shape(a)[:-1], cb.shape[1])


def matmul_acc(a: ArrayLike, b: ArrayLike, *, zero_points: tuple[int, int]) -> np.ndarray:
    """Σ of (N37), int64 (..., M, N): what `matmul` requantizes."""
    ca, cb, bound = _centred(a, b, zero_points)
    return sums(ca, cb, bound).reshape(*np.shape(a)[:-1], cb.shape[1])
