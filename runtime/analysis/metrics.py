"""How close a tensor is to its reference.

The figures of one pair of arrays (`cosine`, `snr_db`, `max_abs_error`, `top1`, `compare`, which
`alls eval` prints), and the same figures accumulated over batches of images: `AgreementSums` keeps
running sums (r·r, e·e, r·e with e = other - r, in float64) and the largest absolute error, so that
figures over many batches equal the figures of one concatenated run; `Agreement` is the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from alls.records import Record

__all__ = ["cosine", "snr_db", "max_abs_error", "top1", "compare", "Figures", "Agreement", "AgreementSums",
           "snr_from_powers", "plain"]


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
    return snr_from_powers(noise, float(np.mean(ref ** 2)))


def max_abs_error(reference: np.ndarray, other: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(reference, np.float64) - np.asarray(other, np.float64)), initial=0.0))


def top1(scores: np.ndarray) -> np.ndarray:
    """The class of each row (the last axis is the class axis)."""
    classes: np.ndarray = np.asarray(scores).reshape(len(scores), -1).argmax(axis=1)
    return classes


def class_labels(labels: npt.ArrayLike, scores_shape: tuple[int, ...]) -> np.ndarray:
    """``labels`` as class indices for (N, classes) scores: one whole number in 0..classes-1 per image (ALS524)."""
    from alls.diagnostics import AllsError

    values = np.asarray(labels)
    n, classes = scores_shape
    if values.dtype.kind not in "iuf" or values.size != n:
        raise AllsError.of("ALS524", f"expected {n} class labels (one per image), got an array of shape "
                           f"{values.shape} and dtype {values.dtype}", "pass one integer class index per image")
    values = values.reshape(-1)
    if values.dtype.kind == "f" and not (np.isfinite(values).all() and (values == np.round(values)).all()):
        raise AllsError.of("ALS524", "the labels are not whole numbers (fractional, NaN or Inf)",
                           "pass class indices, not one-hot rows or probabilities")
    if values.size and (values.min() < 0 or values.max() >= classes):
        raise AllsError.of("ALS524", f"the labels run from {values.min():g} to {values.max():g}; the model has "
                           f"{classes} classes (0..{classes - 1})", "pass class indices in the model's range")
    return values.astype(np.int64)


@dataclass(frozen=True)
class Figures(Record):
    """Every figure `alls eval` prints for one output; the top-1 figures only for scores (N, C),
    the accuracies only with labels."""

    cosine: float
    snr_db: float
    max_abs_error: float
    range: float
    top1_agreement: float | None = None
    native_accuracy: float | None = None
    numeric_accuracy: float | None = None


def compare(native: np.ndarray, numeric: np.ndarray, labels: np.ndarray | None = None) -> Figures:
    """The `Figures` of the numeric target's output against the native one's."""
    agreement = native_accuracy = numeric_accuracy = None
    if native.ndim == 2:
        agreement = float((top1(native) == top1(numeric)).mean())
        if labels is not None:
            labels = class_labels(labels, native.shape)
            native_accuracy = float((top1(native) == labels).mean())
            numeric_accuracy = float((top1(numeric) == labels).mean())
    return Figures(cosine(native, numeric), snr_db(native, numeric), max_abs_error(native, numeric),
                   float(np.ptp(native)) if native.size else 0.0, agreement, native_accuracy, numeric_accuracy)


def plain(x: float) -> float | str | None:
    """A float for JSON: infinities as strings, NaN as null."""
    x = float(x)
    return x if math.isfinite(x) else (None if math.isnan(x) else ("inf" if x > 0 else "-inf"))


def snr_from_powers(noise: float, signal: float) -> float:
    """10·log10(signal / noise) from mean powers; inf without noise."""
    if noise == 0:
        return math.inf
    return 10 * math.log10(signal / noise) if signal > 0 else -math.inf


@dataclass(frozen=True)
class Agreement:
    """How close a tensor is to its reference: SNR (dB), cosine, MSE, largest absolute error, and the
    relative error (RMS of the error / RMS of the reference)."""

    snr_db: float
    cosine: float
    mse: float
    max_abs_error: float
    relative_error: float

    def as_dict(self) -> dict[str, float | str | None]:
        return {k: plain(v) for k, v in self.__dict__.items()}


class AgreementSums:
    """Running sums behind an `Agreement`, batch by batch."""

    def __init__(self) -> None:
        self.count, self.ref2, self.err2, self.dot, self.other2, self.max_abs = 0, 0.0, 0.0, 0.0, 0.0, 0.0

    def update(self, reference: np.ndarray, other: np.ndarray) -> None:
        r = np.asarray(reference, np.float64).ravel()
        self.add(r, np.asarray(other, np.float64).ravel() - r)

    def add(self, r: np.ndarray, e: np.ndarray) -> None:
        """One batch, as the flat reference ``r`` and error ``e`` (float64): o·o and r·o follow from
        r·r, r·e and e·e."""
        rr, rerr, ee = float(r @ r), float(r @ e), float(e @ e)
        self.count += r.size
        self.ref2 += rr
        self.err2 += ee
        self.dot += rr + rerr
        self.other2 += rr + 2 * rerr + ee
        if e.size:
            self.max_abs = max(self.max_abs, float(e.max()), -float(e.min()))

    def result(self) -> Agreement:
        n = max(self.count, 1)
        snr = snr_from_powers(self.err2, self.ref2)
        norms = math.sqrt(self.ref2 * self.other2)
        cosine = 1.0 if self.ref2 == self.other2 == 0 else (self.dot / norms if norms > 0 else 0.0)
        relative = math.sqrt(self.err2 / self.ref2) if self.ref2 > 0 else (0.0 if self.err2 == 0 else math.inf)
        return Agreement(snr, cosine, self.err2 / n, self.max_abs, relative)
