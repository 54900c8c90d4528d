"""Arrays from files, and the numeric target measured against the native one (`alls eval`).

`load_array` reads a ``.npy`` and names what is wrong with any other file
(ALS001 missing, ALS007 another kind of file, ALS505 not an array);
`evaluate` checks the labels against the images (ALS008) and compares the
outputs of both targets batch by batch, showing progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from alls.diagnostics import AllsError
from alls.files import expect_kind
from alls.progress import Progress
from alls.records import Record
from alls.runtime.analysis.metrics import AgreementSums, Figures, class_labels, compare, top1
from alls.runtime.exec.stream import DEFAULT_MEMORY_LIMIT, read

if TYPE_CHECKING:
    from alls.arrays import Folder
    from alls.limits import Limits

__all__ = ["load_array", "open_data", "first", "check_labels", "evaluate", "Evaluation"]

BATCH = 64


class Outputs(Protocol):
    """What a model's ``run`` returns: its outputs by name."""

    @property
    def outputs(self) -> dict[str, np.ndarray]: ...


class Model(Protocol):
    """A model with a native and a numeric target (`QuantizedModel`)."""

    def run(self, x: np.ndarray, *, target: str, layout: str) -> Outputs: ...


@dataclass(frozen=True)
class Evaluation(Record):
    """What `evaluate` measured: the images, and the `Figures` of every output."""

    images: int
    outputs: dict[str, Figures]


def load_array(path: str | os.PathLike[str], what: str = "data", *, limits: Limits | None = None) -> np.ndarray:
    """The array saved in the ``.npy`` file ``path`` (``what`` names it in errors: "calibration images"),
    its size read from the header and checked against ``limits`` and the memory available before it is
    loaded (`alls.arrays`)."""
    from alls.arrays import load_array as load_checked

    expect_kind(path, ("npy",), what, f"save the {what} with numpy.save (an .npy file)")
    return load_checked(path, what, limits)


def open_data(path: str | os.PathLike[str], what: str = "data", *, limits: Limits | None = None) -> np.ndarray | Folder:
    """The images of a ``.npy`` file, memory-mapped (read as they are used, never whole), or of a folder
    of ``.npy`` files (`alls.arrays.Folder`); headers checked against ``limits`` as `load_array` does."""
    from alls.arrays import Folder, open_array

    if os.path.isdir(path):
        return Folder(path, what, limits)
    expect_kind(path, ("npy",), what, f"save the {what} with numpy.save (an .npy file), or pass a folder of them")
    return open_array(path, what, limits)


def first(data: np.ndarray | Folder, count: int) -> np.ndarray | Folder:
    """The first ``count`` images of an array or a `Folder`, still unread."""
    return data.head(count) if hasattr(data, "head") else data[:count]


def check_labels(labels: npt.ArrayLike, images: int) -> np.ndarray:
    """``labels`` as a 1-D integer array of ``images`` class indices; ALS008 otherwise."""
    values = np.asarray(labels)
    if values.ndim == 2 and 1 in values.shape:
        values = values.reshape(-1)
    if values.ndim != 1 or not (np.issubdtype(values.dtype, np.integer) or _whole(values)):
        raise AllsError.of("ALS008", f"labels must be one integer class per image (a 1-D integer array), not an "
                           f"array of shape {values.shape} and dtype {values.dtype}",
                           "pass the class indices, not one-hot vectors or scores")
    if len(values) != images:
        raise AllsError.of("ALS008", f"{len(values)} labels for {images} images",
                           "pass the labels of the same images, in the same order (`--limit` cuts both)")
    return values.astype(np.int64)


def _whole(x: np.ndarray) -> bool:
    return np.issubdtype(x.dtype, np.floating) and bool(np.all(np.isfinite(x))) and bool(np.all(x == np.round(x)))


def evaluate(qmodel: Model, data: np.ndarray | Folder, labels: np.ndarray | None = None, layout: str = "nhwc",
             limit: int | None = None, progress: bool | None = None, memory_limit: int | None = None) -> Evaluation:
    """The figures of the numeric target against the native one per output (`metrics.compare`), on the
    first ``limit`` images of ``data``.

    ``data`` is read ``BATCH`` images at a time (an array, a memory-mapped ``.npy``, a `Folder`).
    While both targets' outputs over every image fit half of ``memory_limit`` (default 4 GiB) they are
    kept and compared whole; beyond it the figures are accumulated batch by batch (`_Sums`)."""
    if limit is not None:
        if limit < 1:
            raise AllsError.of("ALS512", f"limit must be at least 1, not {limit}")
        data = first(data, limit)
        labels = labels[:limit] if labels is not None else None
    images = len(data)
    if images == 0:
        raise AllsError.of("ALS522", "there are no images to evaluate on", "pass at least one image")
    if labels is not None:
        labels = check_labels(labels, images)
    limit_bytes = DEFAULT_MEMORY_LIMIT if memory_limit is None else memory_limit
    kept: dict[str, dict[str, list[np.ndarray]]] = {"native": {}, "numeric": {}}
    sums: dict[str, _Sums] | None = None
    with Progress("evaluation", images, progress, unit=" images") as bar:
        for start in range(0, images, BATCH):
            chunk = read(data, slice(start, start + BATCH))
            got = {target: qmodel.run(chunk, target=target, layout=layout).outputs for target in kept}
            held = 2 * images * sum(v.nbytes for v in got["native"].values()) // len(chunk)
            if start == 0 and held > limit_bytes // 2:
                sums = {name: _Sums() for name in got["native"]}  # every image's outputs would not fit
            if sums is not None:
                for name, sum_ in sums.items():
                    sum_.add(got["native"][name], got["numeric"][name], labels, start)
            else:
                for target, into in kept.items():
                    for name, value in got[target].items():
                        into.setdefault(name, []).append(value)
            bar.step(len(chunk))
    if sums is not None:
        return Evaluation(images, {name: sum_.result() for name, sum_ in sums.items()})
    native, numeric = kept["native"], kept["numeric"]
    outputs = {name: compare(np.concatenate(native[name]), np.concatenate(numeric[name]), labels) for name in native}
    return Evaluation(images, outputs)


class _Sums:
    """`compare`'s figures over batches: the running sums of `AgreementSums` (cosine and SNR equal the
    whole run's to float64 rounding), and the range, largest error and top-1 counts (exactly equal)."""

    def __init__(self) -> None:
        self.agreement = AgreementSums()
        # the outputs' smallest and largest values so far, as scalars of their dtype
        self.low: Any = None
        self.high: Any = None
        self.count = self.agree = self.native_right = self.numeric_right = 0
        self.classes = self.labelled = False

    def add(self, native: np.ndarray, numeric: np.ndarray, labels: np.ndarray | None, start: int) -> None:
        self.agreement.update(native, numeric)
        if native.size:  # kept in the outputs' dtype, so that high - low rounds as np.ptp does
            low, high = native.min(), native.max()
            self.low = low if self.low is None else min(self.low, low)
            self.high = high if self.high is None else max(self.high, high)
        self.classes = native.ndim == 2
        if self.classes:
            a, b = top1(native), top1(numeric)
            self.count += len(a)
            self.agree += int((a == b).sum())
            if labels is not None:
                truth = class_labels(labels[start:start + len(a)], native.shape)
                self.native_right += int((a == truth).sum())
                self.numeric_right += int((b == truth).sum())
        self.labelled = labels is not None

    def result(self) -> Figures:
        figures = self.agreement.result()
        count = max(self.count, 1)
        agreement = self.agree / count if self.classes else None
        native = self.native_right / count if self.classes and self.labelled else None
        numeric = self.numeric_right / count if self.classes and self.labelled else None
        return Figures(figures.cosine, figures.snr_db, figures.max_abs_error,
                       float(self.high - self.low) if self.low is not None else 0.0, agreement, native, numeric)
