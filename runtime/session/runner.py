"""`Runner`: the API in the terms of Hailo's guide.

    runner = Runner("model.onnx")
    runner.load_script("model.alls")            # or script text
    qmodel = runner.quantize(calib)             # calib: (N, H, W, C), as run_quantization_from_np takes it
    result = runner.infer(images, target="numeric")
    runner.save("model_q.npz")

Calibration reads ``batch_size x calib_num_batch`` images; by default both
come from the script (`model_optimization_config(calibration, batch_size,
calibset_size)`: batches = ceil(calibset_size / batch_size)). Finetune and
adaround read the first ``dataset_size`` images of the same array.

The guide's flags ``equalize``, ``ibc`` and ``finetune`` (None: as the
script says) append the matching statement to the script for this
quantization, so the plan records where the setting came from:

    qmodel = runner.quantize(calib, finetune=True)   # + post_quantization_optimization(finetune, policy=enabled)
"""

from __future__ import annotations

import math
import os
import sys
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

import alls
from alls.diagnostics import AllsError, Diagnostic, Severity
from alls.graph import InputShapes
from alls.memory import available_memory
from alls.parser import parse_partial
from alls.plan import EqualizationTarget
from alls.progress import Progress
from alls.runtime.exec.calibration import calibrate, check_data, input_arrays, normalize
from alls.runtime.session.model import Images, QuantizedModel, Result, modified
from alls.runtime.session.results import QuantizeReport
from alls.runtime.exec.quantize import check_supported, quantize
from alls.runtime.exec.threads import check_threads, runtime_call
from alls.runtime.exec.stream import Source, check_memory_limit

if TYPE_CHECKING:
    import onnx

    from alls.runtime.algorithms.finetune import Trained
    from alls.runtime.algorithms.heldout import Verdict
    from alls.runtime.algorithms.ibc import Corrected

__all__ = ["Runner", "estimate_memory", "available_memory"]



def estimate_memory(graph: alls.Graph, batch: int) -> int:
    """Bytes a float run of ``batch`` images needs at its peak (live tensors and conv buffers), roughly."""
    def size(shape: Sequence[int]) -> int:
        return int(np.prod(shape[1:])) if len(shape) > 1 else 1

    largest = max((size(layer.output_shape) for layer in graph), default=1)
    columns = 0
    for layer in graph:
        if layer.kind == "conv" and layer.params.get("weight") is not None:
            w = layer.params["weight"]
            columns = max(columns, size(layer.output_shape) // w.shape[0] * int(np.prod(w.shape[1:])))
    weights: int = sum(l.params.get("weight", np.zeros(0)).nbytes for l in graph)
    return 4 * batch * (4 * largest + columns) + weights


_FLAGS = (("equalize", "pre_quantization_optimization(equalization, policy={})"),
          ("ibc", "post_quantization_optimization(bias_correction, policy={})"),
          ("finetune", "post_quantization_optimization(finetune, policy={})"))


def _with_flags(script: str, flags: dict[str, bool | None]) -> str:
    """The script with a statement appended for each flag that is not None."""
    lines = [statement.format("enabled" if flags[name] else "disabled") for name, statement in _FLAGS
             if flags[name] is not None]
    if not lines:
        return script
    given = ", ".join(f"{name}={flags[name]}" for name, _ in _FLAGS if flags[name] is not None)
    head = script if not script or script.endswith("\n") else script + "\n"
    return head + f"# Runner.quantize({given})\n" + "\n".join(lines) + "\n"


def _check_images(plan: alls.Plan, feeds: dict[str, np.ndarray]) -> None:
    """ALS508 when finetune or adaround asks for more images than given; then the FAQ's data checks."""
    from alls.runtime.algorithms.finetune import images_needed

    for algo, needed in images_needed(plan).items():
        for data in feeds.values():
            given = data.shape[0]
            if needed > given:
                raise AllsError.of("ALS508", f"{algo} asks for {needed} images (dataset_size) but was given {given}",
                             f"supply at least {needed} images, or lower dataset_size to at most {given}: "
                             f"`post_quantization_optimization({algo}, dataset_size={given})`")
            check_data(data, needed, algo)


def _notes(graph: alls.Graph, plan: alls.Plan) -> list[Diagnostic]:
    """ALS511 for what the layer-wise reconstruction does not apply: meta_arch, dense layers over sequences;
    ALS525 for the tensors equalization cannot reach."""
    from alls.runtime.algorithms.equalize import skipped_note
    from alls.runtime.algorithms.finetune import untrained

    notes = skipped_note(graph, plan)
    ft = plan.settings.finetune
    if any(layer.finetune for layer in plan) and ft.meta_arch:
        notes.append(Diagnostic("ALS511", Severity.INFO, f"finetune's `meta_arch={ft.meta_arch}` has no effect: the "
                                "layer-wise reconstruction has no detection loss", None, "",
                                "weight the layers that matter with `loss_layer_names` and `loss_factors`"))
    skipped = untrained(graph, plan)
    if skipped:
        notes.append(Diagnostic("ALS511", Severity.INFO, "finetune and adaround do not train dense layers over "
                                f"sequences: {', '.join(f'`{name}`' for name in skipped)}", None, "",
                                "they keep round to nearest"))
    return notes


def _check_count(name: str, value: object) -> None:
    """``value`` is None (the script's) or an int of at least 1: TypeError, or ALS523."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int or None, not {type(value).__name__}")
    if value < 1:
        raise AllsError.of("ALS523", f"{name} must be at least 1, not {value}",
                           f"leave {name} out to use the script's, or give a positive count")


def _size(count: int) -> str:
    """Bytes as GiB to a tenth, or below 1 GiB as whole MiB."""
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"


def _embedded(path: pathlib.Path) -> bytes:
    """The model's bytes with any external weights embedded (read from the model's folder, already checked by
    `alls.validate`), so that the quantized file never reads a data file again, nor relative to the working
    folder."""
    import onnx

    data = path.read_bytes()
    proto = onnx.load_from_string(data)
    if not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        return data
    try:
        embedded: bytes = onnx.load(str(path)).SerializeToString()
        return embedded
    except ValueError as exc:  # protobuf's 2 GiB limit
        raise AllsError.of("ALS402", f"`{path}` with its external weights cannot be embedded ({exc})") from None


def _head(x: np.ndarray | Source, count: int) -> np.ndarray | Source:
    """The first ``count`` images of an array or a `Source` (still read lazily)."""
    return x.head(count) if isinstance(x, Source) else x[:count]


def _normalizer(plan: alls.Plan, name: str) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: normalize(x, plan, name)


class Runner:
    """A model, a script, and what quantizing it made."""

    def __init__(self, model: str | os.PathLike[str] | onnx.ModelProto, input_shapes: InputShapes | None = None,
                 name: str | None = None, progress: bool | None = None,
                 start_nodes: Sequence[str] = (), end_nodes: Sequence[str] = (), *, limits: alls.Limits | None = None, threads: int | None = None,
                 memory_limit: int | str | None = None) -> None:
        """``progress``: show progress and the plan's advice on standard error (True), never (False), or as
        `alls.progress.configure` says (None: on unless the command line's --quiet). ``input_shapes``,
        ``name``, ``start_nodes``, ``end_nodes`` and ``limits`` as `alls.load_model` takes them (the cut is
        kept in the quantized file; external weights are embedded in it). ``threads``: the most threads its
        calls and its quantized model's runs use (None: every core; docs/performance.md, Threads).
        ``memory_limit`` (bytes, or text such as "4GiB"; default 4 GiB) bounds what the big jobs hold of the
        data: images larger than a quarter of it (or memory-mapped, or a `Folder`) are read a batch at a
        time, and the tensors of bias correction and finetune beyond their shares of it go to temporary
        files (ALS560 for a bad value)."""
        import onnx

        from alls.limits import check_limits

        self.threads = check_threads(threads)
        self.progress = progress
        self.limits = check_limits(limits)
        self.memory_limit = check_memory_limit(memory_limit)
        if isinstance(model, (str, os.PathLike)):
            path = pathlib.Path(model)
            if not path.is_file():
                raise AllsError.of("ALS402", f"cannot read model `{model}`: no such file")
            self.graph = alls.load_model(path, input_shapes, name or path.stem, start_nodes, end_nodes,
                                         limits=self.limits)
            self.model_bytes = _embedded(path)
        elif isinstance(model, onnx.ModelProto):
            self.model_bytes = model.SerializeToString()
            self.graph = alls.load_model(onnx.load_from_string(self.model_bytes), input_shapes, name, start_nodes,
                                         end_nodes, limits=self.limits)
        else:
            raise TypeError(f"Runner takes a model path or an onnx.ModelProto, not {type(model).__name__}")
        self.input_shapes = input_shapes
        self.script, self.script_name = "", "<script>"
        self.plan = alls.resolve(alls.parse(""), self.graph)
        self.quantized: QuantizedModel | None = None

    def load_script(self, script: str | os.PathLike[str] | alls.Script) -> alls.Plan:
        """Read a script (a parsed `Script`, a path, or the text itself: text has a call's parenthesis
        or a newline, or is empty; a path neither), bind it to the model; errors (ALS001 for a missing
        file) raise `AllsError`."""
        if isinstance(script, alls.Script):
            parsed, problems = script, list[Diagnostic]()
        elif isinstance(script, os.PathLike) or (script and not any(c in script for c in "(\n")):
            parsed, problems = alls.read_script(script)
        else:
            parsed, problems = parse_partial(script, "<script>")
        plan = alls.resolve(parsed, self.graph)
        errors = [d for d in [*problems, *plan.diagnostics] if d.is_error]
        if errors:
            raise AllsError(errors)
        self.script, self.script_name, self.plan = parsed.source, parsed.filename, plan
        return plan

    @runtime_call
    def quantize(self, calib: Images, batch_size: int | None = None, calib_num_batch: int | None = None,
                 layout: str = "nhwc", progress: bool | None = None, *, equalize: bool | None = None,
                 ibc: bool | None = None, finetune: bool | None = None, threads: int | None = None) -> QuantizedModel:
        """Calibrate on ``calib`` and quantize by the script's plan (on at most ``threads`` threads; None: the
        Runner's).

        ``calib`` is (N, H, W, C) images as Hailo's run_quantization_from_np
        takes them (``layout="nchw"`` for (N, C, H, W)), or a dict per input.
        ``equalize``, ``ibc`` and ``finetune`` override the script (None: as
        it says) for this quantization; the quantized model's script and plan
        carry the statements they add.
        """
        progress = self.progress if progress is None else progress
        check_supported(self.graph)
        script = _with_flags(self.script, {"equalize": equalize, "ibc": ibc, "finetune": finetune})
        plan = self.plan if script == self.script else self._resolve(script)
        self._advise(plan, script, progress)
        settings = plan.settings.calibration
        _check_count("batch_size", batch_size)
        _check_count("calib_num_batch", calib_num_batch)
        batch_size = batch_size or settings.batch_size
        calib_num_batch = calib_num_batch or math.ceil(settings.calibset_size / batch_size)
        feeds = self._feeds(calib, layout, batch_size * calib_num_batch)
        _check_images(plan, feeds)
        self._check_memory(plan, batch_size)
        graph = modified(self.graph, plan)
        params, equalization = self._equalize(graph, plan, feeds, batch_size, calib_num_batch, progress)
        stats = calibrate(graph, feeds, batch_size, calib_num_batch, plan, params, progress=progress)
        layers, warnings = quantize(graph, plan, stats, params)
        ibc_report: list[Corrected] = []
        trained: list[Trained] = []
        verdict: Verdict | None = None
        inside = self._inside_finetune(script, plan)
        if inside or any(layer.bias_correction for layer in plan):
            from alls.runtime.algorithms.ibc import bias_correction

            images = {name: _head(x, stats.images).map(_normalizer(plan, name)) if isinstance(x, Source)
                      else normalize(x[:stats.images], plan, name) for name, x in feeds.items()}
            ibc_report = bias_correction(graph, plan, layers, stats, images, params, progress,
                                         self.memory_limit, also=inside)
        if any(layer.finetune or layer.adaround for layer in plan):
            from alls.runtime.algorithms.finetune import images_needed, optimize

            count = max(images_needed(plan).values())
            # A streamed input stays a Source, which optimize reads a batch at a time as it reads an array.
            heads = {name: _head(x, count) for name, x in feeds.items()}
            corrected = {r.layer for r in ibc_report}
            start = "round to nearest" + (" with bias correction" if corrected else "")
            trained, verdict = optimize(graph, plan, layers, heads, params, progress,  # type: ignore[arg-type]
                                        self.memory_limit, start)
        warnings += _notes(self.graph, plan) + self._faq(feeds, stats.images)
        report = QuantizeReport(stats.images, batch_size, calib_num_batch, equalization, ibc_report,
                                [r for r in trained if r.algorithm == "finetune"],
                                [r for r in trained if r.algorithm == "adaround"],
                                [{"code": d.code, "message": d.message, "help": d.help} for d in warnings], verdict)
        self.quantized = QuantizedModel(graph, plan, layers, params, self.model_bytes, self.input_shapes,
                                        script, self.script_name, report)
        self.quantized.threads = self.threads
        self.warnings = warnings
        return self.quantized

    def _inside_finetune(self, script: str, plan: alls.Plan) -> frozenset[str]:
        """The finetuned layers that the flow without finetune corrects and this plan does not (the
        guide's QFT includes their bias correction): corrected before finetune, which starts there."""
        if not any(layer.finetune and not layer.bias_correction for layer in plan):
            return frozenset()
        without = self._resolve(_with_flags(script, {"equalize": None, "ibc": None, "finetune": False}))
        return frozenset(layer.name for layer in plan
                         if layer.finetune and not layer.bias_correction and without[layer.name].bias_correction)

    def _faq(self, feeds: dict[str, np.ndarray], images: int) -> list[Diagnostic]:
        """The FAQ's silent causes: untrained weights (ALS544), calibration data like noise (ALS545)."""
        import onnx

        from alls.runtime.analysis.faq import batch_norms_at_init, noise_like, untrained_weights

        # A streamed input's head is a Source, which noise_like reads as it reads an array.
        return (untrained_weights(self.graph) + batch_norms_at_init(onnx.load_from_string(self.model_bytes))
                + noise_like({name: _head(x, images) for name, x in feeds.items()}))  # type: ignore[misc]

    def images_needed(self, batch_size: int | None = None, calib_num_batch: int | None = None, *,
                      equalize: bool | None = None, ibc: bool | None = None, finetune: bool | None = None) -> int:
        """How many images `quantize` with these arguments reads: calibration's, or finetune's if more."""
        from alls.runtime.algorithms.finetune import images_needed

        script = _with_flags(self.script, {"equalize": equalize, "ibc": ibc, "finetune": finetune})
        plan = self.plan if script == self.script else self._resolve(script)
        batch_size = batch_size or plan.settings.calibration.batch_size
        calib_num_batch = calib_num_batch or math.ceil(plan.settings.calibration.calibset_size / batch_size)
        return max([batch_size * calib_num_batch, *images_needed(plan).values()])

    def advise(self, progress: bool | None = None) -> list[Diagnostic]:
        """The advice of the script's plan (ALS3xx warnings), rendered on standard error unless
        ``progress`` (or the Runner's) turns it off; `quantize` calls it before calibrating."""
        return self._advise(self.plan, self.script, self.progress if progress is None else progress)

    def _advise(self, plan: alls.Plan, script: str, progress: bool | None) -> list[Diagnostic]:
        from alls.progress import enabled

        advice = [d for d in plan.diagnostics if d.code.startswith("ALS3") and not d.is_error]
        if advice and enabled(progress):
            sys.stderr.write(alls.render(advice, {self.script_name: script}))
            sys.stderr.flush()
        return advice

    def _resolve(self, script: str) -> alls.Plan:
        parsed, problems = parse_partial(script, self.script_name)
        plan = alls.resolve(parsed, self.graph)
        errors = [d for d in [*problems, *plan.diagnostics] if d.is_error]
        if errors:
            raise AllsError(errors)
        return plan

    def _feeds(self, calib: Images, layout: str, needed: int) -> dict[str, np.ndarray]:
        """Every input's images as NCHW float32, checked for the calibration's ``needed`` images."""
        feeds = input_arrays(self.graph, calib, layout, stream_over=self.memory_limit // 4)
        for images in feeds.values():
            check_data(images, needed)
        return feeds

    def _check_memory(self, plan: alls.Plan, batch_size: int) -> None:
        """ALS507 before anything runs: calibration's batch, and the reconstruction's images."""
        from alls.runtime.algorithms.finetune import estimate_memory as finetune_memory

        free = available_memory()
        for estimate, fix in ((estimate_memory(self.graph, batch_size), "lower batch_size"),
                              (finetune_memory(self.graph, plan, self.memory_limit),
                               "lower the finetune or adaround dataset_size, or --memory-limit")):
            if estimate > free:
                raise AllsError.of("ALS507", f"this job needs about {_size(estimate)} and {_size(free)} are available",
                                   f"{fix}, or run on a machine with more memory")

    def _equalize(self, graph: alls.Graph, plan: alls.Plan, feeds: Mapping[str, np.ndarray], batch_size: int, calib_num_batch: int,
                  progress: bool | None) -> tuple[dict[str, dict[str, np.ndarray]], list[dict[str, Any]]]:
        """Cross-layer equalization of the layers the plan equalizes (activation-aware: one extra calibration)."""
        from alls.runtime.algorithms.equalize import equalize

        if not any(layer.equalization for layer in plan):
            return {}, []
        target = plan.settings.equalization_target
        ranges = None
        if target is EqualizationTarget.ACTIVATION:
            first = calibrate(graph, feeds, batch_size, calib_num_batch, plan, progress=progress)
            # channel_max is set whenever channel_min is (both per channel, or neither).
            ranges = {name: np.maximum(np.abs(s.output.channel_min), np.abs(s.output.channel_max))  # type: ignore[arg-type]
                      for name, s in first.layers.items() if s.output.channel_min is not None}
        with Progress("equalization", 1, progress, unit=" pass") as bar:
            result = equalize(graph, plan, target, ranges)
            bar.step()
        return result

    @runtime_call
    def infer(self, x: Images, target: str = "numeric", layout: str = "nhwc", **options: Any) -> Result:
        """Run the quantized model (or, before `quantize`, only the native target), on the runner's
        threads (or ``threads=``) with BLAS at one thread, as every runtime call."""
        if self.quantized is None:
            if target != "native":
                raise AllsError.of("ALS506", f"target `{target}` needs a quantized model", "call runner.quantize(calib) first")
            from alls.runtime.exec.native import run_float

            model = QuantizedModel(modified(self.graph, self.plan), self.plan, {}, {})
            feeds = model.feeds(x, layout)
            outputs, taps = run_float(model.graph, feeds, None, options.get("taps"))
            from alls.runtime.session.model import _layout

            return Result({k: _layout(v, layout) for k, v in outputs.items()},
                          {k: _layout(v, layout) for k, v in taps.items()})
        return self.quantized.run(x, target=target, layout=layout, **options)

    def save(self, path: str | os.PathLike[str]) -> None:
        if self.quantized is None:
            raise AllsError.of("ALS506", "nothing to save: the model is not quantized", "call runner.quantize(calib) first")
        self.quantized.save(path)
