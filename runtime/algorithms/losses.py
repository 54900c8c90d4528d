"""The reconstruction losses of a layer's output (``def_loss_type`` of finetune): each gives the loss
and its gradient for rows ŷ (the layer's output), y (the float layer's), ν (the target's mean square)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from alls.plan import LossType

__all__ = ["LOSSES", "Loss"]

_EPS = 1e-12


# Each returns (loss, d loss / d ŷ) for rows ŷ, y (R, C); ``nu`` is the target's mean square.


def _l2(yh: np.ndarray, y: np.ndarray, nu: float) -> tuple[float, np.ndarray]:
    e = yh - y
    return float(np.mean(np.sum(e * e, axis=1))), 2.0 * e / len(e)


def _l2rel(yh: np.ndarray, y: np.ndarray, nu: float) -> tuple[float, np.ndarray]:
    loss, grad = _l2(yh, y, nu)
    return loss / nu, grad / nu


def _l1(yh: np.ndarray, y: np.ndarray, nu: float) -> tuple[float, np.ndarray]:
    e = yh - y
    root = math.sqrt(nu)
    return float(np.mean(np.sum(np.abs(e), axis=1))) / root, np.sign(e) / (len(e) * root)


def _cosine(yh: np.ndarray, y: np.ndarray, nu: float) -> tuple[float, np.ndarray]:
    """C · mean(1 − cos(ŷ_r, y_r)): near l2rel's size for small errors."""
    c = yh.shape[1]
    na = np.sqrt(np.sum(yh * yh, axis=1, keepdims=True)) + _EPS
    nb = np.sqrt(np.sum(y * y, axis=1, keepdims=True)) + _EPS
    cos = np.sum(yh * y, axis=1, keepdims=True) / (na * nb)
    grad = -(y / (na * nb) - cos * yh / (na * na)) * c / len(yh)
    return float(c * np.mean(1.0 - cos)), grad


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=1, keepdims=True))
    p: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return p


def _ce(yh: np.ndarray, y: np.ndarray, nu: float) -> tuple[float, np.ndarray]:
    """C · mean KL(softmax(y) ‖ softmax(ŷ)) over the channels: cross-entropy against the float layer."""
    c = yh.shape[1]
    p, q = _softmax(y.astype(np.float64)), _softmax(yh.astype(np.float64))
    kl = np.sum(p * (np.log(p + _EPS) - np.log(q + _EPS)), axis=1)
    return float(c * np.mean(kl)), ((q - p) * c / len(yh)).astype(np.float32)


Loss = Callable[[np.ndarray, np.ndarray, float], tuple[float, np.ndarray]]  # (ŷ, y, ν) → (loss, d loss / d ŷ)

LOSSES: dict[LossType, Loss] = {LossType.L2: _l2, LossType.L2REL: _l2rel, LossType.L1: _l1, LossType.COSINE: _cosine, LossType.CE: _ce}
