"""The incremental flow of Hailo's guide, as one command (`alls tune`).

Starting from the user's script (or an empty one), each step adds one
measure and quantizes again (see `STEPS`). Each step is measured on the
evaluation images by the SNR of the outputs against the native target (the
mean over the outputs, in dB), a continuous measure that a single image
cannot flip; the cosine, and the top-1 accuracy when labels are given, are
reported beside it. The last step asks the analysis which layers carry the
error of the best step so far and puts 16-bit weights and activations on
them, as the guide's last step does.

Every step's script is the start script followed by one block that states
each switch once (equalization, bias correction and finetune enabled or
disabled), so the script written is clean: no line contradicts another.
The best step (the earliest within `TIE_DB` of the highest SNR) is the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import alls
from alls.catalogue import POST_SUBCOMMANDS
from alls.plan import BiasMode

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from alls.runtime.ops.base import Params
    from alls.runtime.session.model import Images, QuantizedModel
    from alls.runtime.session.runner import Runner

__all__ = ["STEPS", "Step", "describe", "script_for", "tune", "best", "TIE_DB"]

TIE_DB = 0.05  # steps closer than this in SNR are equal; the earlier one wins
ANALYSIS_IMAGES = 64
FINETUNE_IMAGES = cast(int, POST_SUBCOMMANDS["finetune"].keywords["dataset_size"].default)  # finetune's own default

STEPS = (
    ("round to nearest", "calibration only: equalization, bias correction and finetune disabled"),
    ("+ 16-bit bias", f"bias_mode={BiasMode.DOUBLE} on every layer with weights"),
    ("+ equalization", "pre_quantization_optimization(equalization, policy=enabled)"),
    ("+ bias correction", "post_quantization_optimization(bias_correction, policy=enabled)"),
    ("+ finetune",
     f"post_quantization_optimization(finetune, ...) on the calibration images (at most {FINETUNE_IMAGES})"),
    ("+ 16-bit where the error is", "precision_mode=a16_w16 on the layers the analysis of the best step blames"),
)


def describe() -> str:
    """The steps, one a line, for `alls tune --help`."""
    width = max(len(name) for name, _ in STEPS)
    return "\n".join(f"  {i}. {name:{width}}  {what}" for i, (name, what) in enumerate(STEPS))


@dataclass(frozen=True)
class State:
    """What a step has switched on."""

    bias16: bool = False
    equalization: bool = False
    bias_correction: bool = False
    finetune: int = 0  # dataset_size; 0: disabled
    wide: tuple[str, ...] = ()


@dataclass
class Step:
    """One step of the flow: its name and script, and (after it ran) its figures or the error that stopped it."""

    name: str
    script: str = ""
    snr_db: float | None = None
    cosine: float | None = None
    accuracy: float | None = None
    seconds: float = 0.0
    error: str = ""
    layers: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "snr_db": self.snr_db, "cosine": self.cosine, "accuracy": self.accuracy,
                "seconds": round(self.seconds, 3), "error": self.error or None, "layers": list(self.layers),
                "script": self.script}


def _weighted_selector(graph: alls.Graph) -> str:
    from alls.graph import WEIGHTED_KINDS

    kinds = sorted({layer.kind for layer in graph if layer.kind in WEIGHTED_KINDS})
    return "[" + ", ".join(f"{{{kind}*}}" for kind in kinds) + "]"


def script_for(base: str, state: State, graph: alls.Graph, name: str) -> str:
    """The start script and one block stating every switch of ``state`` once."""
    lines = [f"# alls tune: {name}",
             f"pre_quantization_optimization(equalization, policy={_policy(state.equalization)})",
             f"post_quantization_optimization(bias_correction, policy={_policy(state.bias_correction)})"]
    if state.finetune:
        lines.append(f"post_quantization_optimization(finetune, policy=enabled, dataset_size={state.finetune})")
    else:
        lines.append("post_quantization_optimization(finetune, policy=disabled)")
    if state.bias16:
        lines.append(f"quantization_param({_weighted_selector(graph)}, bias_mode={BiasMode.DOUBLE})")
    if state.wide:
        short = ", ".join(n.rsplit("/", 1)[-1] for n in state.wide)
        lines.append(f"quantization_param([{short}], precision_mode=a16_w16)")
    head = base if not base or base.endswith("\n") else base + "\n"
    return head + "\n".join(lines) + "\n"


def _policy(on: bool) -> str:
    return "enabled" if on else "disabled"


def _measure(native: Params, numeric: Params, labels: ArrayLike | None) -> tuple[float, float, float | None]:
    import numpy as np

    from alls.runtime.analysis.metrics import cosine, snr_db, top1

    snr = float(np.mean([snr_db(native[k], numeric[k]) for k in native]))
    cos = float(np.mean([cosine(native[k], numeric[k]) for k in native]))
    accuracy = None
    if labels is not None:
        first = next(iter(numeric.values()))
        accuracy = float((top1(first) == np.asarray(labels).reshape(-1)).mean())
    return snr, cos, accuracy


def _blamed(qmodel: QuantizedModel, data: Images, layout: str, progress: bool | None) -> tuple[str, ...]:
    """The layers with weights that the analysis blames for the error of ``qmodel``."""
    from alls.graph import WEIGHTED_KINDS
    from alls.runtime.analysis.analyze import analyze

    result = analyze(qmodel, data[:ANALYSIS_IMAGES], layout, progress=progress)
    return tuple(r.name for r in result.layers if qmodel.graph[r.name].kind in WEIGHTED_KINDS)[:3]


def tune(runner_factory: Callable[[], Runner], calib: Images, data: Images,
         labels: ArrayLike | None = None, base: str | alls.Script = "",
         layout: str = "nhwc", on_step: Callable[[Step], None] | None = None,
         progress: bool | None = None) -> list[Step]:
    """Run the flow from ``base`` (script text, or a parsed `Script` whose errors then point into its file);
    every step gets its script and figures (or the error that stopped it)."""
    from alls.progress import note

    runner = runner_factory()
    graph = runner.graph
    if isinstance(base, alls.Script) or base:
        runner.load_script(base)  # the start script's own errors stop the flow before any step
        runner.advise(progress)  # and its advice shows before the first calibration
    base = base.source if isinstance(base, alls.Script) else base
    native = runner.infer(data, target="native", layout=layout).outputs
    states = [State(), State(bias16=True), State(bias16=True, equalization=True),
              State(bias16=True, equalization=True, bias_correction=True),
              State(bias16=True, equalization=True, bias_correction=True,
                    finetune=min(len(calib), FINETUNE_IMAGES))]
    done: list[Step] = []
    models: dict[int, QuantizedModel] = {}
    for i, (name, _) in enumerate(STEPS):
        note(f"tune: step {i}/{len(STEPS) - 1}: {name}", progress)
        start = time.perf_counter()
        step = Step(name)
        try:
            if i < len(states):
                state = states[i]
            else:
                chosen = best(done)
                base_state = states[done.index(chosen)]
                wide = _blamed(models[done.index(chosen)], data, layout, progress)
                state = State(base_state.bias16, base_state.equalization, base_state.bias_correction,
                              base_state.finetune, wide)
                step.layers = wide
            step.script = script_for(base, state, graph, name)
            runner = runner_factory()
            runner.load_script(step.script)
            models[i] = runner.quantize(calib, layout=layout, progress=False)
            numeric = runner.infer(data, layout=layout).outputs
            step.snr_db, step.cosine, step.accuracy = _measure(native, numeric, labels)
        except alls.AllsError as error:
            step.error = "; ".join(f"{d.code}: {d.message}" for d in error.diagnostics)
        step.seconds = time.perf_counter() - start
        done.append(step)
        if on_step is not None:
            on_step(step)
    return done


def best(done: list[Step]) -> Step:
    """The step with the highest SNR, the earliest among those within `TIE_DB` of it."""
    scored = [(s, s.snr_db) for s in done if s.snr_db is not None]
    if not scored:
        raise alls.AllsError.of("ALS506", "no step of the flow could run", "each step's error is printed above")
    top = max(snr for _, snr in scored)
    return next(s for s, snr in scored if snr >= top - TIE_DB)
