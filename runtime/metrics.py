"""Agreement between two runs of a network: pure functions of arrays."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["cosine", "snr_db", "max_abs_error", "top1", "compare"]


def cosine(reference: np.ndarray, other: np.ndarray) -> float:
    """Cosine similarity of the flattened tensors (1.0 for two zero tensors)."""
    a, b = np.ravel(reference).astype(np.float64), np.ravel(other).astype(np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(a @ b / (na * nb))


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """10·log10(power of the reference / power of the difference); inf when they are equal."""
    ref = np.asarray(reference, np.float64)
    noise = float(np.mean((ref - np.asarray(other, np.float64)) ** 2))
    signal = float(np.mean(ref ** 2))
    if noise == 0:
        return math.inf
    if signal == 0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def max_abs_error(reference: np.ndarray, other: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(reference, np.float64) - np.asarray(other, np.float64)), initial=0.0))


def top1(scores: np.ndarray) -> np.ndarray:
    """The class of each row (the last axis is the class axis)."""
    return np.asarray(scores).reshape(len(scores), -1).argmax(axis=1)


def compare(native: np.ndarray, numeric: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """Every figure `alls eval` prints for one output."""
    out = {"cosine": cosine(native, numeric), "snr_db": snr_db(native, numeric),
           "max_abs_error": max_abs_error(native, numeric), "range": float(np.ptp(native)) if native.size else 0.0}
    if native.ndim == 2:
        agree = top1(native) == top1(numeric)
        out["top1_agreement"] = float(agree.mean())
        if labels is not None:
            labels = np.asarray(labels).reshape(-1)
            out["native_accuracy"] = float((top1(native) == labels).mean())
            out["numeric_accuracy"] = float((top1(numeric) == labels).mean())
    return out
