"""The product of two activation tensors (attention's Q·Kᵀ and ·V): NUMERICS.md §15, (N37).

Both operands are uint8/uint16 codes in ONNX order with the same batch axes: ``a`` (..., M, K)
and ``b`` (..., K, N). Each is centred by its zero point first (exact: a 16-bit code minus its zero
point fits int32), so every product is of two centred integers and no cross term is left to
correct. The sums are int64; the bound V = K·A_a·A_b < 2^47 of (N37) keeps every partial sum and
the requantization's product (N15) inside it, and a larger K is refused before anything runs.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from alls.runtime.kernels._common import _requant1, act_bits, as_activation, check_requant, njit
from alls.runtime.numerics import Requant, accumulator_dtype, activation_max

__all__ = ["matmul", "matmul_acc", "matmul_bound"]


@njit(inline="always", cache=True)
def _dot(row: np.ndarray, col: np.ndarray) -> int:
    """Σ_k row[k]·col[k] in int64, in order."""
    s = np.int64(0)
    for k in range(row.shape[0]):
        s += np.int64(row[k]) * np.int64(col[k])
    return int(s)  # an int64 in compiled code


@njit(cache=True)
def matmul_rows(a: np.ndarray, bt: np.ndarray, mult: np.int64, shift: np.int64, zo: np.int64, lo: np.int64,
                hi: np.int64, out: np.ndarray) -> None:
    """(N37): out[p, i, j] = clamp(zo + RHU(Σ_k a[p, i, k]·bt[p, j, k] · M, n), lo, hi).

    a: (P, M, K) int32 centred codes; bt: (P, N, K) int32, the centred ``b`` transposed so that
    both rows are contiguous; out: (P, M, N) uint8/uint16. The int64 sum is bounded by V < 2^47.
    """
    for p in range(a.shape[0]):
        for i in range(a.shape[1]):
            for j in range(bt.shape[1]):
                out[p, i, j] = _requant1(_dot(a[p, i], bt[p, j]), mult, shift, zo, lo, hi)


@njit(cache=True)
def matmul_sums(a: np.ndarray, bt: np.ndarray, out: np.ndarray) -> None:
    """Σ of (N37) without its requantization: out[p, i, j] = Σ_k a[p, i, k]·bt[p, j, k], int64."""
    for p in range(a.shape[0]):
        for i in range(a.shape[1]):
            for j in range(bt.shape[1]):
                out[p, i, j] = _dot(a[p, i], bt[p, j])


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
    out = np.empty((ca.shape[0], ca.shape[1], cb.shape[1]), dtype=rq.out_dtype())
    matmul_rows(ca, cb, np.int64(mult), np.int64(shift), np.int64(rq.zero_point), np.int64(rq.lo), np.int64(rq.hi),
                out)
    return out.reshape(*np.shape(a)[:-1], cb.shape[1])


def matmul_acc(a: ArrayLike, b: ArrayLike, *, zero_points: tuple[int, int]) -> np.ndarray:
    """Σ of (N37), int64 (..., M, N): what `matmul` requantizes."""
    ca, cb, _ = _centred(a, b, zero_points)
    out = np.empty((ca.shape[0], ca.shape[1], cb.shape[1]), dtype=np.int64)
    matmul_sums(ca, cb, out)
    return out.reshape(*np.shape(a)[:-1], cb.shape[1])
