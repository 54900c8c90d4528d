"""The whole network on the images no layer trained on: finetune and adaround are kept only where it gains.

Each layer ends at its best held-out checkpoint (`alls.runtime.algorithms.reconstruct`), which
bounds that layer's own loss, not the network's: a layer's loss is measured against its float
target at its own output, and small gains layer by layer can add up to a network that is worse
at its outputs. Every layer holds out the same images (`held_out_images`), so after training the
network is run on them twice, trained and as it started, and compared with the float network
there; the trained layers are kept only when their error, summed over the outputs each relative to
its power, is no larger than the start's. The start is round to nearest with bias correction
wherever the flow without finetune corrects a layer: the runner corrects the finetuned layers
too before training (the guide's QFT includes bias correction), so finetune never leaves the
network worse on images it never trained on than the flow without finetune.

The check takes no pass of its own over the trained network: finetune's passes already run every
image through the float network (for the targets) and through the integer network as it is
trained (each layer runs after its training, so the pass's outputs are the trained network's).
`HeldOut` keeps the float outputs of the held-out images from the first (within its budget,
spilled beyond it) and measures the second's error as it ends; only the start network is run
again, on the held-out images a block at a time. Every image is independent of the others, so
the trained network's outputs are those a separate run gives, bit for bit.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from alls.graph import Graph
from alls.plan import Plan
from alls.records import Record
from alls.runtime.exec.calibration import normalize
from alls.runtime.exec.quantize import QLayer
from alls.runtime.exec.stream import Spill, Store, blocks
from alls.runtime.ops.base import Params, to_onnx

__all__ = ["Verdict", "HeldOut", "Errors", "snapshot", "held_images"]


@dataclass(frozen=True)
class Verdict(Record):
    """The network's error on the held-out images as it started (``start`` says what that was: round
    to nearest, with bias correction or not) and trained, and whether the trained network was kept."""

    images: int
    before: float
    after: float
    kept: bool
    start: str = "round to nearest"

    @property
    def winner(self) -> str:
        """The network kept: ``trained`` or the start's name."""
        return "trained" if self.kept else self.start


def snapshot(layers: Mapping[str, QLayer], names: list[str]) -> dict[str, QLayer]:
    """Copies of the layers ``names`` as they are, to go back to."""
    return {name: copy.deepcopy(layers[name]) for name in names}


def held_images(images: Mapping[str, object], held: np.ndarray, plan: Plan) -> dict[str, np.ndarray]:
    """The held-out images of every input (arrays or `Source` objects, read by slices), normalized."""
    return {name: normalize(_picked(x, held).astype(np.float32), plan, name) for name, x in images.items()}


def _picked(x: Any, indices: np.ndarray) -> np.ndarray:
    """The images ``indices`` (sorted) of an array, a `Source` or a `Spill`, read a run of neighbours at a time."""
    if isinstance(x, np.ndarray):
        picked: np.ndarray = x[indices]
        return picked
    parts, start = [], 0
    while start < len(indices):
        stop = start + 1
        while stop < len(indices) and indices[stop] == indices[stop - 1] + 1:
            stop += 1
        parts.append(np.asarray(x[int(indices[start]):int(indices[stop - 1]) + 1]))
        start = stop
    return np.concatenate(parts)


class Errors:
    """A network's error against the float network's outputs, summed a block of images at a time: per
    output, the mean square of the difference relative to the float output's mean square (1 where
    that is 0), summed over the outputs."""

    def __init__(self) -> None:
        self.sums: dict[str, tuple[float, float, int]] = {}  # output: (Σ difference², Σ reference², values)

    def add(self, reference: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> None:
        for name, ref in reference.items():
            ref64 = np.asarray(ref, np.float64)
            difference, power, count = self.sums.get(name, (0.0, 0.0, 0))
            self.sums[name] = (difference + float(np.sum((np.asarray(outputs[name], np.float64) - ref64) ** 2)),
                               power + float(np.sum(ref64 ** 2)), count + ref64.size)

    @property
    def total(self) -> float:
        return sum((d / max(n, 1)) / ((p / max(n, 1)) or 1.0) for d, p, n in self.sums.values())


class HeldOut:
    """The whole-network check on the held-out images ``indices`` (sorted), fed by finetune's passes.

    `record` takes the float network's outputs of a batch of the float pass (those of held-out
    images are kept, allocated by ``store``: spilled beyond its budget); `trained` measures the
    integer pass's outputs (the trained network's, as the pass left them in its store); `judge`
    runs the start network on the held-out images, ``block`` of them at a time, and decides.
    """

    def __init__(self, graph: Graph, indices: np.ndarray, store: Store, block: int):
        self.graph, self.indices, self.store, self.block = graph, indices, store, max(1, block)
        self.reference: dict[str, np.ndarray | Spill] = {}
        self.after: Errors | None = None
        self._lock = threading.Lock()

    def record(self, start: int, outputs: Mapping[str, np.ndarray]) -> None:
        """The float outputs of images ``start`` .. ``start + len(batch) − 1``: keep the held-out ones."""
        count = len(next(iter(outputs.values())))
        first, last = np.searchsorted(self.indices, [start, start + count])
        if first == last:
            return
        for name, y in outputs.items():
            with self._lock:  # batches may be recorded from several threads: each writes its own rows
                if name not in self.reference:
                    self.reference[name] = self.store[name] = self.store.allocate(
                        (len(self.indices), *y.shape[1:]), np.float32)
            self.reference[name][first:last] = y[self.indices[first:last] - start]

    def _references(self, part: slice) -> dict[str, np.ndarray]:
        return {name: np.asarray(ref[part]) for name, ref in self.reference.items()}

    def trained(self, layers: Mapping[str, QLayer], values: Mapping[str, Any]) -> None:
        """The trained network's error, from the integer pass's outputs ``values`` (codes, NHWC, every image)."""
        self.after = Errors()
        for part in blocks(len(self.indices), 1, self.block):
            outputs = {name: layers[name].out.dequantize(to_onnx(_picked(values[name], self.indices[part])))
                       for name in self.reference}
            self.after.add(self._references(part), outputs)

    def started(self, layers: Mapping[str, QLayer], start: Mapping[str, QLayer], images: Mapping[str, object],
                plan: Plan, params: Mapping[str, Params], block: int | None = None) -> Errors:
        """The start network's error: ``layers`` with ``start`` in place of the trained ones, run on the
        held-out images (``images``: every image, before normalization) ``block`` of them at a time
        (default: the check's). It reads only the start's layers and the float outputs `record` kept,
        so it may run while the layers train."""
        from alls.runtime.exec.emulator import run_numeric

        network = {**layers, **start}
        errors = Errors()
        for part in blocks(len(self.indices), 1, block or self.block):
            x = held_images(images, self.indices[part], plan)
            errors.add(self._references(part), run_numeric(self.graph, network, x, params=params)[0])
        return errors

    def judge(self, layers: dict[str, QLayer], start: Mapping[str, QLayer], images: Mapping[str, object],
              plan: Plan, params: Mapping[str, Params], label: str = "round to nearest",
              before: Errors | None = None) -> Verdict:
        """Keep the trained layers, or put back ``start`` in place (the same objects, their fields restored),
        whichever is closer to the float network on the held-out images (``images``: every image, before
        normalization); ``label`` names the start in the verdict. ``before``: the start's error, where
        `started` has measured it already."""
        if self.after is None:
            raise ValueError("the trained network's error is measured (`trained`) before the check")
        if before is None:
            before = self.started(layers, start, images, plan, params)
        kept = self.after.total <= before.total
        if not kept:
            for name, saved in start.items():
                vars(layers[name]).update(vars(saved))
        return Verdict(len(self.indices), before.total, self.after.total, kept, label)
