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


def class_labels(labels, scores_shape: tuple[int, ...]) -> np.ndarray:
    """``labels`` as class indices for (N, classes) scores: one whole number in 0..classes-1 per image (ALS524)."""
    from alls.diagnostics import AllsError

    labels = np.asarray(labels)
    n, classes = scores_shape
    if labels.dtype.kind not in "iuf" or labels.size != n:
        raise AllsError.of("ALS524", f"expected {n} class labels (one per image), got an array of shape "
                           f"{labels.shape} and dtype {labels.dtype}", "pass one integer class index per image")
    labels = labels.reshape(-1)
    if labels.dtype.kind == "f" and not (np.isfinite(labels).all() and (labels == np.round(labels)).all()):
        raise AllsError.of("ALS524", "the labels are not whole numbers (fractional, NaN or Inf)",
                           "pass class indices, not one-hot rows or probabilities")
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise AllsError.of("ALS524", f"the labels run from {labels.min():g} to {labels.max():g}; the model has "
                           f"{classes} classes (0..{classes - 1})", "pass class indices in the model's range")
    return labels.astype(np.int64)


def compare(native: np.ndarray, numeric: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """Every figure `alls eval` prints for one output."""
    out = {"cosine": cosine(native, numeric), "snr_db": snr_db(native, numeric),
           "max_abs_error": max_abs_error(native, numeric), "range": float(np.ptp(native)) if native.size else 0.0}
    if native.ndim == 2:
        agree = top1(native) == top1(numeric)
        out["top1_agreement"] = float(agree.mean())
        if labels is not None:
            labels = class_labels(labels, native.shape)
            out["native_accuracy"] = float((top1(native) == labels).mean())
            out["numeric_accuracy"] = float((top1(numeric) == labels).mean())
    return out
