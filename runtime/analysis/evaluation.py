"""Arrays from files, and the numeric target measured against the native one (`alls eval`).

`load_array` reads a ``.npy`` and names what is wrong with any other file
(ALS001 missing, ALS007 another kind of file, ALS505 not an array);
`evaluate` checks the labels against the images (ALS008) and compares the
outputs of both targets batch by batch, showing progress.
"""

from __future__ import annotations

import os

import numpy as np

from alls.diagnostics import AllsError
from alls.files import expect_kind
from alls.progress import Progress
from alls.runtime.analysis.metrics import compare

__all__ = ["load_array", "check_labels", "evaluate"]

BATCH = 64


def load_array(path: str | os.PathLike, what: str = "data", *, limits=None) -> np.ndarray:
    """The array saved in the ``.npy`` file ``path`` (``what`` names it in errors: "calibration images"),
    its size read from the header and checked against ``limits`` and the memory available before it is
    loaded (`alls.arrays`)."""
    from alls.arrays import load_array as load_checked

    expect_kind(path, ("npy",), what, f"save the {what} with numpy.save (an .npy file)")
    return load_checked(path, what, limits)


def check_labels(labels, images: int) -> np.ndarray:
    """``labels`` as a 1-D integer array of ``images`` class indices; ALS008 otherwise."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and 1 in labels.shape:
        labels = labels.reshape(-1)
    if labels.ndim != 1 or not (np.issubdtype(labels.dtype, np.integer) or _whole(labels)):
        raise AllsError.of("ALS008", f"labels must be one integer class per image (a 1-D integer array), not an "
                           f"array of shape {labels.shape} and dtype {labels.dtype}",
                           "pass the class indices, not one-hot vectors or scores")
    if len(labels) != images:
        raise AllsError.of("ALS008", f"{len(labels)} labels for {images} images",
                           "pass the labels of the same images, in the same order (`--limit` cuts both)")
    return labels.astype(np.int64)


def _whole(x: np.ndarray) -> bool:
    return np.issubdtype(x.dtype, np.floating) and bool(np.all(np.isfinite(x))) and bool(np.all(x == np.round(x)))


def evaluate(qmodel, data, labels=None, layout: str = "nhwc", limit: int | None = None,
             progress: bool | None = None) -> dict:
    """Figures of the numeric target against the native one per output (`metrics.compare`), on the first
    ``limit`` images of ``data``: ``{"images": N, "outputs": {name: figures}}``."""
    if limit is not None:
        if limit < 1:
            raise AllsError.of("ALS512", f"limit must be at least 1, not {limit}")
        data = data[:limit]
        labels = labels[:limit] if labels is not None else None
    images = len(data)
    if images == 0:
        raise AllsError.of("ALS522", "there are no images to evaluate on", "pass at least one image")
    if labels is not None:
        labels = check_labels(labels, images)
    native: dict[str, list] = {}
    numeric: dict[str, list] = {}
    with Progress("evaluation", images, progress, unit=" images") as bar:
        for start in range(0, images, BATCH):
            chunk = data[start:start + BATCH]
            for target, into in (("native", native), ("numeric", numeric)):
                for name, value in qmodel.run(chunk, target=target, layout=layout).outputs.items():
                    into.setdefault(name, []).append(value)
            bar.step(len(chunk))
    outputs = {name: compare(np.concatenate(native[name]), np.concatenate(numeric[name]), labels) for name in native}
    return {"images": images, "outputs": outputs}
