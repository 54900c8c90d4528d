"""Hailo's Dataflow Compiler API, in its own words, over `alls.runtime.Runner`.

A notebook written against Hailo's guide runs with its names, TensorFlow replaced by numpy arrays:

    from alls.hailo import ClientRunner, SdkNative, SdkNumeric, SdkPartialNumeric

    runner = ClientRunner(model="net.onnx", hw_arch="hailo8")
    runner.load_quantization_script("quantization.alls")          # a path, or the script's text
    runner.run_quantization_from_np(calib, batch_size=8, calib_num_batch=8)   # (N, H, W, C) images
    logits = runner.emulate(SdkNumeric(), images)                  # {output layer: array}
    graph = runner.get_tf_graph(SdkNative())                       # the guide's listing 8
    tensors = graph.run(image[None], graph.all_layers_names)       # every layer's tensor, by name
    runner.save_har("net_q.npz"); runner = ClientRunner(har="net_q.npz")

Importing this module loads neither onnx nor numba; the model is read when one is given, and the
integer kernels compile on the first numeric run. The targets are frozen values: `SdkNative()`
(the float graph as imported), `SdkFPOptimized()` (after the float-domain changes),
`SdkNumeric()` (the integer graph) and `SdkPartialNumeric(keep_native=[...])` (the integer graph
with those layers in float: the guide's check that the blamed layers carry the error).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from alls.diagnostics import AllsError, suggestion

__all__ = ["ClientRunner", "Emulation", "SdkNative", "SdkFPOptimized", "SdkNumeric", "SdkPartialNumeric",
           "run_quantization_from_np", "run_quantization", "HW_ARCHS"]

HW_ARCHS = ("hailo8", "hailo8l", "hailo8r", "hailo15h", "hailo15m", "hailo15l", "hailo10h")


@dataclass(frozen=True)
class SdkNative:
    """The float graph as imported (equal to onnxruntime)."""

    target: ClassVar[str] = "native"
    keep_native: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True)
class SdkFPOptimized:
    """The float graph after the float-domain changes (equalization): what the integer layers were made from."""

    target: ClassVar[str] = "fp_optimized"
    keep_native: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True)
class SdkNumeric:
    """The integer graph, bit-exact."""

    target: ClassVar[str] = "numeric"
    keep_native: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True)
class SdkPartialNumeric:
    """The integer graph with the ``keep_native`` layers in float (between their tensors' encodings)."""

    keep_native: tuple[str, ...] = ()
    target: ClassVar[str] = "numeric"

    def __post_init__(self):
        names = (self.keep_native,) if isinstance(self.keep_native, str) else tuple(self.keep_native)
        object.__setattr__(self, "keep_native", names)


Target = SdkNative | SdkFPOptimized | SdkNumeric | SdkPartialNumeric
_TARGETS = (SdkNative, SdkFPOptimized, SdkNumeric, SdkPartialNumeric)


class Emulation:
    """One target of a runner, as the guide's ``get_tf_graph`` returns it: the layer names, and a run."""

    def __init__(self, runner: ClientRunner, target: Target):
        self._runner, self.target = runner, target
        graph = runner.graph
        self.all_layers_names = [layer.name for layer in graph]
        self.output_names = [layer.name for layer in graph.outputs]

    def run(self, images, layers: Iterable[str] | None = None, layout: str = "nhwc") -> dict:
        """The outputs, and the tensors of ``layers`` (for instance ``all_layers_names``), by layer name."""
        result = self._runner._run(self.target, images, layout, taps=list(layers) if layers is not None else None)
        return {**result.taps, **result.outputs}


class ClientRunner:
    """A model, its quantization script and what quantizing it made, in the guide's terms."""

    def __init__(self, model=None, hw_arch: str = "hailo8", *, har: str | os.PathLike | None = None,
                 hn: str | None = None, net_input_shapes=None, progress: bool | None = None):
        """``progress``: progress and the plan's advice on standard error (None: as `alls.progress` says)."""
        if hw_arch not in HW_ARCHS:
            raise AllsError.of("ALS542", f"unknown hw_arch `{hw_arch}`",
                               suggestion(str(hw_arch), HW_ARCHS) or f"one of: {', '.join(HW_ARCHS)}")
        if hn is not None:
            raise AllsError.of("ALS541", "a Hailo network description (HN) cannot be read here",
                               "pass the ONNX model it was parsed from: ClientRunner(model=\"net.onnx\")")
        self.hw_arch, self.progress = hw_arch, progress
        self._runner = None
        self._quantized = None
        if har is not None:
            self.load_har(har)
        elif model is not None:
            self.translate_onnx_model(model, net_input_shapes=net_input_shapes)

    # ------------------------------------------------------------------ the model

    def translate_onnx_model(self, model, net_name: str | None = None, start_node_names: Sequence[str] | None = None,
                             end_node_names: Sequence[str] | None = None, net_input_shapes=None):
        """Import an ONNX model (a path or an `onnx.ModelProto`); the layer `Graph`.

        ``net_input_shapes`` fixes input shapes (one shape, or ``{input name: shape}``);
        ``start_node_names`` / ``end_node_names`` cut the graph at those ONNX nodes, as Hailo's
        parser does (`alls.load_model`'s ``start_nodes`` / ``end_nodes``; the cut is kept in the
        quantized file).
        """
        from alls.runtime import Runner

        self._runner = Runner(model, net_input_shapes, net_name, self.progress, tuple(start_node_names or ()),
                              tuple(end_node_names or ()))
        self._quantized = None
        return self._runner.graph

    @property
    def graph(self):
        """The layer `Graph` of the model."""
        return self._need_model().graph

    @property
    def model_name(self) -> str:
        return self.graph.name

    @property
    def all_layers_names(self) -> list[str]:
        """Every layer's name, in the order the emulator runs them."""
        return [layer.name for layer in self.graph]

    def _need_model(self):
        if self._runner is None:
            raise AllsError.of("ALS506", "the runner has no model",
                               "translate one first: runner.translate_onnx_model(\"net.onnx\")")
        return self._runner

    # --------------------------------------------------------------- quantization

    def load_quantization_script(self, script: str | os.PathLike):
        """Read a quantization script (a path, or its text) and bind it to the model; the `Plan`."""
        return self._need_model().load_script(script)

    load_model_script = load_quantization_script  # the name later versions of the compiler use

    def run_quantization_from_np(self, calib, batch_size: int | None = None, calib_num_batch: int | None = None, *,
                                 quantization_script: str | os.PathLike | None = None, equalize: bool | None = None,
                                 ibc: bool | None = None, finetune: bool | None = None, layout: str = "nhwc"):
        """Calibrate on ``calib`` ((N, H, W, C) images, or a dict per input) and quantize; the quantized model.

        ``batch_size x calib_num_batch`` images calibrate (by default the script's); a
        ``quantization_script`` given here is loaded first; ``equalize``, ``ibc`` and ``finetune``
        override the script for this run, as the guide's flags do.
        """
        runner = self._need_model()
        if quantization_script is not None:
            runner.load_script(quantization_script)
        self._quantized = runner.quantize(calib, batch_size, calib_num_batch, layout, equalize=equalize, ibc=ibc,
                                          finetune=finetune)
        return self._quantized

    def run_quantization(self, dataset: Iterable, batch_size: int | None = None, calib_num_batch: int | None = None,
                         **options):
        """As `run_quantization_from_np`, on an iterable of image batches.

        Items are (B, H, W, C) arrays, single (H, W, C) images, ``(images, anything)`` pairs (as
        a labelled dataset yields them) or dicts per input; the iterable is read only as far as
        the calibration (and finetune) needs, so a repeating one is fine.
        """
        flags = {k: options[k] for k in ("equalize", "ibc", "finetune") if k in options}
        runner = self._need_model()
        if options.get("quantization_script") is not None:
            runner.load_script(options.pop("quantization_script"))
        needed = runner.images_needed(batch_size, calib_num_batch, **flags)
        calib = _gather(dataset, needed, [layer.output_shape for layer in runner.graph.inputs])
        return self.run_quantization_from_np(calib, batch_size, calib_num_batch, **options)

    @property
    def quantized(self):
        """The quantized model (`alls.runtime.QuantizedModel`), or None before quantization."""
        return self._quantized

    # ------------------------------------------------------------------ emulation

    def get_tf_graph(self, target: Target) -> Emulation:
        """The guide's listing 8 without TensorFlow: ``all_layers_names`` and ``run(images, layers)``."""
        _check_target(target)
        return Emulation(self, target)

    def emulate(self, target: Target, images, layout: str = "nhwc", raw_out: bool = False) -> dict:
        """The outputs of ``target`` on ``images``, by output layer name (``raw_out``: integer codes)."""
        _check_target(target)
        return self._run(target, images, layout, raw_out=raw_out).outputs

    def _run(self, target: Target, images, layout: str, taps=None, raw_out: bool = False):
        if raw_out and target.target != "numeric":
            raise AllsError.of("ALS543", f"raw outputs come from the numeric target, not `{target.target}`",
                               "emulate SdkNumeric() for integer codes")
        if self._quantized is None:
            return self._need_model().infer(images, target.target, layout, taps=taps)
        return self._quantized.run(images, target.target, keep_native=target.keep_native, taps=taps, layout=layout,
                                   raw_out=raw_out)

    # ----------------------------------------------------------------- the files

    def save_har(self, path: str | os.PathLike) -> None:
        """Write the quantized model (alls's own `.npz`: the model, the script and every integer constant)."""
        if self._quantized is None:
            raise AllsError.of("ALS506", "nothing to save: the model is not quantized",
                               "call runner.run_quantization_from_np(calib) first")
        self._quantized.save(path)

    def load_har(self, path: str | os.PathLike) -> None:
        """Read a quantized model written by `save_har` or `alls quantize` (ALS541 for a Hailo archive)."""
        from alls.runtime import load

        if str(path).endswith(".har"):
            raise AllsError.of("ALS541", f"`{path}` looks like a Hailo archive (HAR), which alls cannot read",
                               "quantize the ONNX model with alls, and load the .npz it writes")
        self._quantized = load(path)
        self._runner = self._runner_for(self._quantized, self.progress)

    load_params = load_har

    @staticmethod
    def _runner_for(qmodel, progress: bool | None):
        """A `Runner` over a loaded model, holding it, so that a script can be loaded and the model requantized."""
        import onnx

        from alls.runtime import Runner

        graph = qmodel.graph
        runner = Runner(onnx.load_from_string(qmodel.model_bytes), qmodel.input_shapes, graph.name, progress,
                        graph.start_nodes, graph.end_nodes)
        runner.model_bytes = qmodel.model_bytes
        if qmodel.script.strip():
            runner.load_script(qmodel.script)
        runner.quantized = qmodel
        return runner


def _check_target(target) -> None:
    if not isinstance(target, _TARGETS):
        raise AllsError.of("ALS505", f"`{target!r}` is not an emulation target",
                           "pass SdkNative(), SdkFPOptimized(), SdkNumeric() or SdkPartialNumeric(keep_native=[...])")


def _gather(dataset: Iterable, needed: int, shapes: list) -> object:
    """The first ``needed`` images of ``dataset`` as one array (or a dict of arrays, one per input)."""
    import numpy as np

    if isinstance(dataset, (np.ndarray, str, bytes)) or not isinstance(dataset, Iterable):
        raise AllsError.of("ALS546", f"run_quantization takes an iterable of image batches, not {type(dataset).__name__}",
                           "for one array of images use run_quantization_from_np")
    ranks = {len(shape) for shape in shapes}
    parts: dict[str, list] = {}
    count = 0
    for item in dataset:
        if isinstance(item, tuple):
            item = item[0]
        items = dict(item) if isinstance(item, Mapping) else {"": item}
        batch = 0
        for key, value in items.items():
            value = np.asarray(value)
            if value.dtype.kind not in "fiub":
                raise AllsError.of("ALS546", f"a dataset item is not numeric ({value.dtype})")
            if value.ndim + 1 in ranks:
                value = value[None]
            have = parts.setdefault(key, [])
            if have and have[0].shape[1:] != value.shape[1:]:
                raise AllsError.of("ALS546", f"dataset batches of different image shapes: {have[0].shape[1:]} and "
                                   f"{value.shape[1:]}", "give every batch the same image shape")
            have.append(value)
            batch = len(value)
        count += batch
        if count >= needed:
            break
    if not parts or count == 0:
        raise AllsError.of("ALS546", "the dataset is empty", f"give at least {needed} images")
    arrays = {key: np.concatenate(values)[:needed] for key, values in parts.items()}
    return arrays[""] if list(arrays) == [""] else arrays


def run_quantization_from_np(runner: ClientRunner, np_array, batch_size: int | None = None,
                             calib_num_batch: int | None = None, **options):
    """The guide's listing 2: ``run_quantization_from_np(runner, np_array, ...)``."""
    return runner.run_quantization_from_np(np_array, batch_size, calib_num_batch, **options)


def run_quantization(runner: ClientRunner, dataset: Iterable, batch_size: int | None = None,
                     calib_num_batch: int | None = None, **options):
    """``run_quantization(runner, dataset, ...)`` on an iterable of image batches."""
    return runner.run_quantization(dataset, batch_size, calib_num_batch, **options)
