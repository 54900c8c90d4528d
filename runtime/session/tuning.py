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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import alls
from alls.catalogue import POST_SUBCOMMANDS
from alls.plan import BiasMode

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

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


class _Measure:
    """Each step's figures on the evaluation images, a batch at a time within the memory limit: the
    native outputs are run once and kept (`Kept`: within a quarter of the limit, beyond it in temporary
    files); each step runs its numeric target batch by batch into running sums (`AgreementSums`) and
    top-1 counts, so the figures equal those of one run over every image (SNR and cosine to float64
    rounding, the top-1 accuracy exactly)."""

    def __init__(self, runner: Runner, data: Images, labels: ArrayLike | None, layout: str):
        from alls.runtime.analysis.evaluation import check_labels
        from alls.runtime.analysis.passes import Kept, batch_size

        self.data, self.layout, self.count = data, layout, _count(data)
        self.graph, self.memory_limit = runner.graph, runner.memory_limit
        self.labels = None if labels is None else check_labels(labels, self.count)
        self.size = batch_size(runner.graph, runner.memory_limit)
        self.native = Kept(runner.memory_limit // 4)
        self.names: list[str] = []
        for b, batch in enumerate(self._batches()):
            outputs = runner.infer(batch, target="native", layout=layout).outputs
            self.native.put(b, outputs)
            self.names = list(outputs)

    def _batches(self) -> Iterator[Images]:
        for start in range(0, self.count, self.size):
            yield _slice(self.data, start, start + self.size)

    def __call__(self, runner: Runner) -> tuple[float, float, float | None]:
        """The mean SNR (dB) and cosine of the outputs against native, and the top-1 accuracy of the first."""
        import numpy as np

        from alls.runtime.analysis.metrics import AgreementSums, top1

        sums = {name: AgreementSums() for name in self.names}
        right = 0
        for b, batch in enumerate(self._batches()):
            numeric = runner.infer(batch, layout=self.layout).outputs
            native = self.native.get(b, self.names)
            for name, acc in sums.items():
                acc.update(native[name], numeric[name])
            if self.labels is not None:
                scores = numeric[self.names[0]]
                start = b * self.size
                right += int((top1(scores) == self.labels[start:start + len(scores)]).sum())
        figures = [acc.result() for acc in sums.values()]
        accuracy = right / self.count if self.labels is not None else None
        return float(np.mean([f.snr_db for f in figures])), float(np.mean([f.cosine for f in figures])), accuracy

    def close(self) -> None:
        self.native.close()


def _count(data: Images) -> int:
    count = len(next(iter(data.values())) if isinstance(data, dict) else data)
    if count == 0:
        raise alls.AllsError.of("ALS522", "there are no images to evaluate on", "pass at least one image")
    return count


def _slice(data: Images, start: int, stop: int) -> Images:
    """Images ``start:stop`` of an array, a memory-mapped file, a `Folder` or a dict of them, read."""
    from alls.runtime.exec.stream import read

    if isinstance(data, dict):
        return {k: read(v, slice(start, stop)) for k, v in data.items()}
    return read(data, slice(start, stop))


def _head(data: Images, count: int) -> Images:
    from alls.runtime.analysis.evaluation import first

    return {k: first(v, count) for k, v in data.items()} if isinstance(data, dict) else first(data, count)


def _blamed(qmodel: QuantizedModel, data: Images, layout: str, memory_limit: int,
            progress: bool | None) -> tuple[str, ...]:
    """The layers with weights that the analysis of the first `ANALYSIS_IMAGES` images blames for the
    error of ``qmodel``."""
    from alls.graph import WEIGHTED_KINDS
    from alls.runtime.analysis.analyze import analyze

    result = analyze(qmodel, _head(data, ANALYSIS_IMAGES), layout, progress=progress, memory_limit=memory_limit)
    return tuple(r.name for r in result.layers if qmodel.graph[r.name].kind in WEIGHTED_KINDS)[:3]


def tune(runner_factory: Callable[[], Runner], calib: Images, data: Images,
         labels: ArrayLike | None = None, base: str | alls.Script = "",
         layout: str = "nhwc", on_step: Callable[[Step], None] | None = None,
         progress: bool | None = None) -> list[Step]:
    """Run the flow from ``base`` (script text, or a parsed `Script` whose errors then point into its file);
    every step gets its script and figures (or the error that stopped it). ``data`` (an array, a
    memory-mapped ``.npy``, a `Folder`, or a dict per input) is read a batch at a time within the
    runner's memory limit (`_Measure`)."""
    runner = runner_factory()
    if isinstance(base, alls.Script) or base:
        runner.load_script(base)  # the start script's own errors stop the flow before any step
        runner.advise(progress)  # and its advice shows before the first calibration
    base = base.source if isinstance(base, alls.Script) else base
    measure = _Measure(runner, data, labels, layout)
    try:
        return _steps(runner_factory, calib, base, layout, measure, on_step, progress)
    finally:
        measure.close()


def _steps(runner_factory: Callable[[], Runner], calib: Images, base: str, layout: str, measure: _Measure,
           on_step: Callable[[Step], None] | None, progress: bool | None) -> list[Step]:
    from alls.progress import note

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
                wide = _blamed(models[done.index(chosen)], measure.data, layout, measure.memory_limit, progress)
                state = State(base_state.bias16, base_state.equalization, base_state.bias_correction,
                              base_state.finetune, wide)
                step.layers = wide
            step.script = script_for(base, state, measure.graph, name)
            runner = runner_factory()
            runner.load_script(step.script)
            models[i] = runner.quantize(calib, layout=layout, progress=False)
            step.snr_db, step.cosine, step.accuracy = measure(runner)
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
