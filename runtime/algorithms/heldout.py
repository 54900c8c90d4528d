"""The whole network on the images no layer trained on: finetune and adaround are kept only where it gains.

Each layer ends at its best held-out checkpoint (`alls.runtime.algorithms.reconstruct`), which
bounds that layer's own loss, not the network's: a layer's loss is measured against its float
target at its own output, and small gains layer by layer can add up to a network that is worse
at its outputs. Every layer holds out the same images (`held_out_images`), so after training the
network is run on them twice, trained and as it started (round to nearest, or what bias
correction left), and compared with the float network there; the trained layers are kept only
when their error, summed over the outputs each relative to its power, is no larger than the start's.
So finetune never leaves the network worse than round to nearest on images it never trained on.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from alls.graph import Graph
from alls.plan import Plan
from alls.runtime.exec.calibration import normalize
from alls.runtime.exec.native import run_float
from alls.runtime.exec.quantize import QLayer
from alls.runtime.ops.base import Params

__all__ = ["Verdict", "snapshot", "held_images", "judge"]


@dataclass(frozen=True)
class Verdict:
    """The network's error on the held-out images, trained and as it started, and which was kept."""

    images: int
    before: float
    after: float
    kept: bool


def snapshot(layers: Mapping[str, QLayer], names: list[str]) -> dict[str, QLayer]:
    """Copies of the layers ``names`` as they are, to go back to."""
    return {name: copy.deepcopy(layers[name]) for name in names}


def held_images(images: Mapping[str, object], held: np.ndarray, plan: Plan) -> dict[str, np.ndarray]:
    """The held-out images of every input (arrays or `Source` objects, read by slices), normalized."""
    out = {}
    for name, x in images.items():
        picked = np.concatenate([np.asarray(x[int(i):int(i) + 1]) for i in held])  # type: ignore[index]
        out[name] = normalize(picked.astype(np.float32), plan, name)
    return out


def _error(reference: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> float:
    total = 0.0
    for name, ref in reference.items():
        ref64 = np.asarray(ref, np.float64)
        power = float(np.mean(ref64 ** 2)) or 1.0
        total += float(np.mean((np.asarray(outputs[name], np.float64) - ref64) ** 2)) / power
    return total


def judge(graph: Graph, layers: dict[str, QLayer], start: Mapping[str, QLayer], x: Mapping[str, np.ndarray],
          params: Mapping[str, Params]) -> Verdict:
    """Keep the trained layers, or put back ``start`` in place (the same objects, their fields restored),
    whichever is closer to the float network on the held-out images ``x`` (normalized)."""
    from alls.runtime.exec.emulator import run_numeric

    reference = run_float(graph, x, params)[0]
    after = _error(reference, run_numeric(graph, layers, x, params=params)[0])
    before = _error(reference, run_numeric(graph, {**layers, **start}, x, params=params)[0])
    kept = after <= before
    if not kept:
        for name, saved in start.items():
            vars(layers[name]).update(vars(saved))
    return Verdict(len(next(iter(x.values()))), before, after, kept)
