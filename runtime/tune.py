"""The incremental flow of Hailo's guide, as one command (`alls tune`).

Starting from the user's script (or an empty one), each step adds one
measure and quantizes again; the metric after each step shows what the
step is worth:

0. round to nearest: calibration only, no algorithm;
1. + a 16-bit bias on every layer with weights;
2. + equalization;
3. + iterative bias correction;
4. + finetune (on as many images as were given, at most its default 2048);
5. + 16-bit output layers.

The metric is top-1 accuracy of the numeric target when labels are given,
and otherwise the mean cosine of the outputs against the native target. The
best step's script (the earliest among equals) is the result, formatted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import alls
from alls.graph import WEIGHTED_KINDS
from alls.runtime.metrics import cosine, top1

__all__ = ["Step", "steps", "tune"]

_OFF = ("model_optimization_flavor(optimization_level=0)\n"
        "pre_quantization_optimization(equalization, policy=disabled)\n")


@dataclass
class Step:
    """One step of the flow: its name, the statements it adds, and (after it ran) its figures."""

    name: str
    statements: str
    script: str = ""
    metric: float | None = None
    cosine: float | None = None
    seconds: float = 0.0
    error: str = ""


def _weighted_selector(graph: alls.Graph) -> str:
    kinds = sorted({layer.kind for layer in graph if layer.kind in WEIGHTED_KINDS})
    return "[" + ", ".join(f"{{{kind}*}}" for kind in kinds) + "]"


def steps(graph: alls.Graph, images: int) -> list[Step]:
    """The steps of the flow for ``graph``, given ``images`` images to train finetune on."""
    finetune = min(images, 2048)
    return [
        Step("round to nearest", _OFF),
        Step("+ 16-bit bias", f"quantization_param({_weighted_selector(graph)}, "
                              "bias_mode=double_scale_initialization)\n"),
        Step("+ equalization", "pre_quantization_optimization(equalization, policy=enabled)\n"),
        Step("+ bias correction", "post_quantization_optimization(bias_correction, policy=enabled)\n"),
        Step("+ finetune", f"post_quantization_optimization(finetune, policy=enabled, dataset_size={finetune})\n"),
        Step("+ 16-bit outputs", "quantization_param({output_layer*}, precision_mode=a16_w16)\n"),
    ]


def _metric(native: dict, numeric: dict, labels) -> tuple[float, float]:
    cos = float(np.mean([cosine(native[k], numeric[k]) for k in native]))
    if labels is not None:
        first = next(iter(numeric.values()))
        return float((top1(first) == np.asarray(labels).reshape(-1)).mean()), cos
    return cos, cos


def tune(runner_factory: Callable[[], "alls.runtime.Runner"], calib, data, labels=None, base: str = "",
         layout: str = "nhwc", progress: Callable[[Step], None] | None = None) -> list[Step]:
    """Run the flow; every step gets its script and figures (or the error that stopped it)."""
    import time

    runner = runner_factory()
    native = runner.infer(data, target="native", layout=layout).outputs
    script = base + ("" if not base or base.endswith("\n") else "\n")
    done: list[Step] = []
    for step in steps(runner.graph, len(calib)):
        script += step.statements
        step.script = script
        start = time.perf_counter()
        try:
            runner = runner_factory()
            runner.load_script(script)
            runner.quantize(calib, layout=layout, progress=False)
            numeric = runner.infer(data, layout=layout).outputs
            step.metric, step.cosine = _metric(native, numeric, labels)
        except alls.AllsError as error:
            step.error = "; ".join(f"{d.code}: {d.message}" for d in error.diagnostics)
        step.seconds = time.perf_counter() - start
        done.append(step)
        if progress is not None:
            progress(step)
    return done


def best(done: list[Step]) -> Step:
    """The step with the best metric (the earliest among equals)."""
    scored = [s for s in done if s.metric is not None]
    return max(scored, key=lambda s: (s.metric, -done.index(s)))
