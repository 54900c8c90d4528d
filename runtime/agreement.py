"""How close a tensor is to its reference, accumulated over batches of images.

`AgreementSums` keeps running sums (r·r, e·e, r·e with e = other - r, in
float64) and the largest absolute error, so that figures over many batches
equal the figures of one concatenated run; `Agreement` is the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Agreement", "AgreementSums", "snr_from_powers", "plain"]


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

    def as_dict(self) -> dict:
        return {k: plain(v) for k, v in self.__dict__.items()}


class AgreementSums:
    """Running sums behind an `Agreement`, batch by batch."""

    def __init__(self):
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
