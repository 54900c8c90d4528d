"""The quantized model: run it on any target, save it, load it.

A `QuantizedModel` holds the layer graph, the plan, the float parameters of
the `fp_optimized` target and the integer layers. `run` takes images and
returns a `Result` (outputs, and the tapped layers by name). `save` writes
one versioned ``.npz`` that holds the ONNX model, the script, the float
parameters and every integer constant; `load` checks its format and
version and refuses a truncated or foreign file with a named error.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from alls.diagnostics import AllsError
from alls.files import expect_kind, write_file
from alls.graph import Graph, InputShapes
from alls.limits import Limits
from alls.parser import parse_partial
from alls.plan import Plan
from alls.runtime import numerics as nx
from alls.runtime.exec.quantize import Encoding, QLayer
from alls.runtime.exec.threads import runtime_call
from alls.runtime.session.results import QuantizeReport

__all__ = ["QuantizedModel", "Result", "TARGETS", "FORMAT", "VERSION", "load", "modified"]

TARGETS = ("native", "fp_optimized", "numeric")
FORMAT = "alls-quantized-model"
VERSION = 4  # 3: the plan carries every value the runtime uses (a batch norm's bias mode, b_range);
# 4: every target runs the activations the script's change_output_activation gives
# Images as `run` takes them: one array (or a folder of images), or {input layer: array}; what
# `alls.runtime.exec.calibration.input_arrays` reads.
Images = Any



@dataclass
class Result:
    """What `QuantizedModel.run` returns: outputs and tapped layers, by layer name.

    With ``raw_out`` the arrays are integer codes and ``encodings`` holds the
    scale, zero point and bits of each (``encodings[name].dequantize(codes)``
    gives the float values), as a device stream returns them.
    """

    outputs: dict[str, np.ndarray]
    taps: dict[str, np.ndarray] = field(default_factory=dict)
    encodings: dict[str, Encoding] = field(default_factory=dict)

    @property
    def output(self) -> np.ndarray:
        """The only output (an error for a model with several)."""
        if len(self.outputs) != 1:
            raise ValueError(f"the model has {len(self.outputs)} outputs: {', '.join(self.outputs)}")
        return next(iter(self.outputs.values()))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Outputs and taps in one ``.npz``, keyed by layer name."""
        arrays: dict[str, Any] = {f"output:{k}": v for k, v in self.outputs.items()}
        arrays.update({f"tap:{k}": v for k, v in self.taps.items()})
        write_file(path, lambda f: np.savez(f, **arrays), what="taps")


class QuantizedModel:
    """A model quantized by a plan: the three emulation targets over one graph."""

    def __init__(self, graph: Graph, plan: Plan, layers: Mapping[str, QLayer], params: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                 model_bytes: bytes = b"", input_shapes: InputShapes | None = None, script: str = "", script_name: str = "<string>",
                 report: QuantizeReport | Mapping[str, Any] | None = None) -> None:
        self.graph, self.plan, self.layers = graph, plan, dict(layers)
        self.params = dict(params or {})
        self.model_bytes, self.input_shapes = model_bytes, input_shapes
        self.script, self.script_name = script, script_name
        self.report = QuantizeReport.from_dict(report)
        self.threads: int | None = None  # the most threads its runs use (None: every core)

    # --------------------------------------------------------------- encodings

    @property
    def input_encodings(self) -> dict[str, Encoding]:
        """Scale, zero point and bits of every input (how a device stream takes it)."""
        return {layer.name: self.layers[layer.name].out for layer in self.graph.inputs}

    @property
    def output_encodings(self) -> dict[str, Encoding]:
        return {layer.name: self.layers[layer.name].out for layer in self.graph.outputs}

    # --------------------------------------------------------------------- run

    def feeds(self, x: Images, layout: str = "nhwc", raw: bool = False) -> dict[str, np.ndarray]:
        """Images as NCHW per input layer, normalized by the script (unless raw integers)."""
        from alls.runtime.exec.calibration import check_values, input_arrays, normalize

        if not raw:
            arrays = input_arrays(self.graph, x, layout)
            for v in arrays.values():
                check_values(v)
            return {name: normalize(v, self.plan, name) for name, v in arrays.items()}
        feeds = input_arrays(self.graph, x, layout, dtype=None)
        for name, codes in feeds.items():
            want = self.layers[name].out.dtype
            if codes.dtype != want:
                raise AllsError.of("ALS505", f"raw input `{name.rsplit('/', 1)[-1]}` must be {want}, not {codes.dtype}")
        return feeds

    @runtime_call
    def run(self, x: Images, target: str = "numeric", keep_native: Iterable[str] = (), taps: Iterable[str] | str | None = None,
            layout: str = "nhwc", raw: bool = False, batch_size: int = 64, raw_out: bool = False,
            threads: int | None = None) -> Result:
        """Run the model on images ``x`` ((N,H,W,C) for layout "nhwc", or a dict per input).

        ``target`` is "native" (the float graph as imported), "fp_optimized"
        (the float graph after float-domain changes) or "numeric" (the
        integer graph). ``keep_native`` runs those layers in float inside the
        numeric target; ``taps`` returns those layers' tensors ("all" for
        every layer). ``raw`` takes integer codes as a device stream would.
        Outputs and taps come back in ``layout`` (4-D tensors) and float, or,
        with ``raw_out`` (numeric target only), as integer codes with their
        encodings in ``Result.encodings``. ``threads``: the most threads the run uses (None: the model's
        ``threads``, else every core); the results are the same for any count.
        """
        from alls.runtime.exec.emulator import run_numeric
        from alls.runtime.exec.native import run_float

        if target not in TARGETS:
            raise AllsError.of("ALS505", f"unknown target `{target}`", f"one of: {', '.join(TARGETS)}")
        if raw_out and target != "numeric":
            raise AllsError.of("ALS543", f"raw outputs come from the numeric target, not `{target}`",
                               "run with target=\"numeric\", or without raw_out for float outputs")
        keep = list(keep_native)
        for name in keep + ([] if taps in (None, "all") else list(taps)):
            if self.graph.get(name) is None:
                from alls.diagnostics import suggestion

                raise AllsError.of("ALS201", f"no layer `{name}` in `{self.graph.name}`",
                             suggestion(name, [l.short_name for l in self.graph]))
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size must be an int, not {type(batch_size).__name__}")
        if batch_size < 1:
            raise AllsError.of("ALS523", f"batch_size must be at least 1, not {batch_size}")
        feeds = self.feeds(x, layout, raw)
        n = len(next(iter(feeds.values())))
        if n == 0:
            raise AllsError.of("ALS522", "there are no images to run on", "pass at least one image")
        parts: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = []
        for start in range(0, n, batch_size):
            chunk = {k: v[start:start + batch_size] for k, v in feeds.items()}
            if target == "numeric":
                parts.append(run_numeric(self.graph, self.layers, chunk, raw, keep, taps, self.params,
                                         raw_out=raw_out))
            else:
                if raw:
                    chunk = {k: self.layers[k].out.dequantize(v) for k, v in chunk.items()}
                params = self.params if target == "fp_optimized" else None
                parts.append(run_float(self.graph, chunk, params, taps))
        outputs = {k: _layout(np.concatenate([p[0][k] for p in parts]), layout) for k in parts[0][0]}
        tapped = {k: _layout(np.concatenate([p[1][k] for p in parts]), layout) for k in parts[0][1]}
        encodings = {k: self.layers[k].out for k in [*outputs, *tapped]} if raw_out else {}
        return Result(outputs, tapped, encodings)

    # -------------------------------------------------------------------- save

    def save(self, path: str | os.PathLike[str]) -> None:
        """One ``.npz`` in the quantized-file format (`FORMAT` `VERSION`, described in `load`)."""
        arrays: dict[str, np.ndarray] = {}
        info: dict[str, Any] = {"network": self.graph.name, "script_name": self.script_name,
                "input_shapes": _shapes_json(self.input_shapes), "layers": {}, "params": sorted(self.params),
                "start_nodes": list(self.graph.start_nodes), "end_nodes": list(self.graph.end_nodes),
                "report": self.report.as_dict()}
        arrays["model.onnx"] = _bytes(self.model_bytes)
        arrays["script.alls"] = _bytes(self.script.encode("utf-8"))
        arrays["plan.json"] = _bytes(json.dumps(_plan_of(self.script, self.script_name, self.graph).as_dict(),
                                                sort_keys=True).encode())
        for name, values in self.params.items():
            for key, value in values.items():
                arrays[f"param|{name}|{key}"] = np.asarray(value)
        for i, (name, q) in enumerate(self.layers.items()):
            info["layers"][name] = _layer_meta(q, f"L{i}", arrays)
        arrays["info.json"] = _bytes(json.dumps(info).encode())
        manifest = {key: _digest(value) for key, value in arrays.items()}
        arrays["meta.json"] = _bytes(json.dumps({"format": FORMAT, "version": VERSION, "manifest": manifest}).encode())
        # numpy's stub matches **arrays against savez's allow_pickle: bool; every key here names a member.
        write_file(path, lambda f: np.savez(f, **arrays), what="quantized model")  # type: ignore[arg-type]


def modified(graph: Graph, plan: Plan) -> Graph:
    """The graph every target runs: ``graph`` with the activations the script's
    ``change_output_activation`` gives (`Plan.modify`). ALS551 where the runtime has no such layer: an
    activation asked of a layer kind that carries none, or a softmax (a layer of its own in Hailo's model,
    not a fused activation)."""
    from alls.graph import ACTIVATION_KINDS
    from alls.values import Activation

    changed = plan.modify(graph)
    for layer in changed:
        if layer.activation is graph[layer.name].activation:
            continue
        if layer.kind not in ACTIVATION_KINDS or layer.activation is Activation.SOFTMAX:
            source = plan[layer.name].source("activation")
            raise AllsError.of(
                "ALS551", f"the runtime cannot give `{layer.short_name}` ({layer.kind}) the activation "
                f"{layer.activation} that `{source.text}` ({source.where()}) asks for",
                f"the emulation fuses an activation into {', '.join(ACTIVATION_KINDS)} layers, and not a softmax; "
                "change the activation in the model, or end the network before it (--end-nodes)")
    return changed


def _bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)


def _digest(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes: a member cannot change in any of them unseen."""
    array = np.ascontiguousarray(array)
    head = f"{array.dtype.str}{array.shape}".encode()
    return hashlib.sha256(head + array.tobytes()).hexdigest()


def _layout(x: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "nhwc" and x.ndim == 4 else x


def _shapes_json(shapes: InputShapes | None) -> dict[str, list[int]] | list[int] | None:
    if shapes is None:
        return None
    if isinstance(shapes, Mapping):
        return {k: list(v) for k, v in shapes.items()}
    return list(shapes)


# ------------------------------------------------------------ serialization


def _rq_meta(rq: Any, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any] | list[Any] | None:
    if rq is None:
        return None
    if isinstance(rq, list):
        return [_rq_meta(r, f"{key}.{i}", arrays) for i, r in enumerate(rq)]
    if isinstance(rq, nx.AddRequant):
        return {"type": "add", "multiplier_a": rq.multiplier_a, "multiplier_b": rq.multiplier_b, "shift": rq.shift,
                "zero_point": rq.zero_point, "lo": rq.lo, "hi": rq.hi, "bits": rq.bits, "bound": rq.bound}
    arrays[f"{key}|multiplier"], arrays[f"{key}|shift"] = rq.multiplier, rq.shift
    return {"type": "requant", "key": key, "zero_point": rq.zero_point, "lo": rq.lo, "hi": rq.hi, "bits": rq.bits,
            "bound": rq.bound}


def _rq_load(meta: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    if meta is None:
        return None
    if isinstance(meta, list):
        return [_rq_load(m, arrays) for m in meta]
    if meta["type"] == "add":
        return nx.AddRequant(**{k: v for k, v in meta.items() if k != "type"})
    key = meta["key"]
    return nx.Requant(_member(arrays, f"{key}|multiplier", _INTEGER), _member(arrays, f"{key}|shift", _INTEGER),
                      meta["zero_point"], meta["lo"],
                      meta["hi"], meta["bits"], meta["bound"])


def _enc(e: Encoding | None) -> dict[str, Any] | None:
    return None if e is None else e.as_dict()


def _layer_meta(q: QLayer, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    meta: dict[str, Any] = {"kind": q.kind, "out": _enc(q.out), "pre": _enc(q.pre), "weight_bits": q.weight_bits,
            "const_encoding": _enc(q.const_encoding), "rq": _rq_meta(q.rq, f"{key}|rq", arrays),
            "info": {k: v for k, v in q.info.items() if not k.startswith("_")}, "key": key}
    for name in ("weights", "weight_scale", "table", "const"):
        value = getattr(q, name)
        if value is not None:
            arrays[f"{key}|{name}"] = np.asarray(value)
    if q.bias is not None:
        arrays[f"{key}|bias"] = q.bias.mantissa
        meta["bias"] = {"exponent": q.bias.exponent, "mantissa_bits": q.bias.mantissa_bits}
    return meta


_INTEGER, _FLOAT = "iu", "f"
_FIELD_KINDS = {"weights": _INTEGER, "weight_scale": _FLOAT, "table": _INTEGER, "const": _INTEGER}


def _member(arrays: Mapping[str, np.ndarray], key: str, kinds: str) -> np.ndarray:
    """Member ``key``, whose dtype must be of ``kinds``; ALS509 otherwise."""
    if key not in arrays:
        raise _damaged(f"member `{key}` is missing")
    value = arrays[key]
    if value.dtype.kind not in kinds:
        raise _damaged(f"member `{key}` is {value.dtype}, not {'an integer' if kinds == _INTEGER else 'a float'} array")
    return value


def _layer_load(name: str, meta: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> QLayer:
    key = meta["key"]

    def get(field_name: str) -> np.ndarray | None:
        member = f"{key}|{field_name}"
        return _member(arrays, member, _FIELD_KINDS[field_name]) if member in arrays else None

    bias = None
    if "bias" in meta:
        bias = nx.Bias(_member(arrays, f"{key}|bias", _INTEGER), int(meta["bias"]["exponent"]),
                       int(meta["bias"]["mantissa_bits"]))
    def enc(e: Mapping[str, Any] | None) -> Encoding | None:
        return None if e is None else Encoding(**e)

    # "out" was saved from QLayer.out, which is never None.
    return QLayer(name, str(meta["kind"]), cast(Encoding, enc(meta["out"])), enc(meta["pre"]), get("weights"), meta["weight_bits"],
                  get("weight_scale"), bias, _rq_load(meta["rq"], arrays), get("table"), get("const"),
                  enc(meta["const_encoding"]), dict(meta["info"]))


def _damaged(why: str) -> AllsError:
    return AllsError.of("ALS509", f"the quantized file is damaged or was edited: {why}",
                        "quantize the model again with `alls quantize`")



def _json(arrays: Mapping[str, np.ndarray], key: str) -> Any:
    try:
        return json.loads(_member(arrays, key, "u").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(f"member `{key}` is not JSON ({exc})") from None


def _verified(path: str | os.PathLike[str], arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The file's members after its format, version and manifest checked out: every member listed, each
    matching its checksum, nothing more."""
    if "meta.json" not in arrays or "model.onnx" not in arrays:
        raise AllsError.of("ALS509", f"`{path}` is an .npz file but not a quantized model",
                           "quantize the model with `alls quantize`")
    meta = _json(arrays, "meta.json")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        found = meta if isinstance(meta, dict) else {}
        raise AllsError.of("ALS509", f"`{path}` is format {found.get('format')} version {found.get('version')}; this "
                           f"alls reads {FORMAT} version {VERSION}", "quantize the model again with this version of alls")
    manifest = meta.get("manifest")
    if not isinstance(manifest, dict):
        raise _damaged("it has no manifest")
    members = set(arrays) - {"meta.json"}
    if set(manifest) != members:
        missing, extra = sorted(set(manifest) - members), sorted(members - set(manifest))
        raise _damaged("members " + ", ".join(f"`{m}`" for m in missing) + " missing" if missing
                       else "members " + ", ".join(f"`{m}`" for m in extra) + " not in its manifest")
    for key in sorted(members):
        if _digest(arrays[key]) != manifest[key]:
            raise _damaged(f"member `{key}` does not match its checksum")
    return arrays


def load(path: str | os.PathLike[str], start_nodes: Iterable[str] | None = (), end_nodes: Iterable[str] | None = (), *,
         limits: Limits | None = None) -> QuantizedModel:
    """Read a quantized model saved by `QuantizedModel.save`; ALS509 for anything else.

    The file is an ``.npz`` (read within ``limits``, `alls.Limits`):
    ``meta.json`` holds the format, the version and a manifest with the
    SHA-256 of every other member (dtype, shape and bytes): ``model.onnx``
    (with its weights embedded), ``script.alls``, ``plan.json``,
    ``info.json`` (network, input shapes, cut, layer encodings, report) and
    the arrays. A member missing, added or changed, a dtype that is not the
    field's, or a plan that the script no longer gives, is ALS509. The
    model is cut where it was when quantized; ``start_nodes``/``end_nodes``,
    when given, must be that cut (ALS410 otherwise).
    """
    from alls.arrays import load_npz

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"a quantized model is read from a path, not {type(path).__name__}")
    expect_kind(path, ("npz",), "quantized model", "pass the .npz that `alls quantize` wrote")
    arrays = _verified(path, load_npz(path, limits, "quantized model"))
    try:
        return _assemble(path, arrays, limits, (tuple(start_nodes or ()), tuple(end_nodes or ())))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise _damaged(f"{exc.__class__.__name__}: {exc}") from None


def _assemble(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], limits: Limits | None,
              asked_cut: tuple[tuple[str, ...], tuple[str, ...]]) -> QuantizedModel:
    import onnx

    import alls

    info = _json(arrays, "info.json")
    try:
        script = _member(arrays, "script.alls", "u").tobytes().decode("utf-8")
        proto = onnx.load_from_string(_member(arrays, "model.onnx", "u").tobytes())
    except Exception as exc:  # UnicodeDecodeError, protobuf's DecodeError
        raise _damaged(f"{exc.__class__.__name__}") from None
    shapes = info["input_shapes"]
    shapes = {k: tuple(v) for k, v in shapes.items()} if isinstance(shapes, dict) else (tuple(shapes) if shapes else None)
    cut = tuple(info.get("start_nodes", ())), tuple(info.get("end_nodes", ()))
    _check_cut(path, cut, asked_cut)
    graph = alls.load_model(proto, shapes, info["network"], *cut, limits=limits)
    plan = _plan_of(script, info["script_name"], graph, limits)
    graph = modified(graph, plan)
    if json.loads(json.dumps(plan.as_dict(), sort_keys=True)) != _json(arrays, "plan.json"):
        raise _damaged("its plan is not the one its script gives")
    if set(info["layers"]) != {layer.name for layer in graph}:
        raise AllsError.of("ALS506", f"`{path}`: the quantized layers do not match the model's layers")
    layers = {name: _layer_load(name, m, arrays) for name, m in info["layers"].items()}
    params: dict[str, dict[str, np.ndarray]] = {}
    for key in arrays:
        if key.startswith("param|"):
            _, name, field_name = key.split("|", 2)
            params.setdefault(name, {})[field_name] = _member(arrays, key, _FLOAT)
    return QuantizedModel(graph, plan, layers, params, arrays["model.onnx"].tobytes(), shapes, script,
                          info["script_name"], info.get("report", {}))


def _plan_of(script: str, script_name: str, graph: Graph, limits: Limits | None = None) -> Plan:
    """The plan the script gives on the graph, as saving and loading both work it out."""
    import alls

    return alls.resolve(parse_partial(script, script_name, limits=limits)[0], graph, limits=limits)


def _check_cut(path: str | os.PathLike[str], stored: tuple[tuple[str, ...], tuple[str, ...]],
               asked: tuple[tuple[str, ...], tuple[str, ...]]) -> None:
    """Start or end nodes asked of a quantized file are the ones it was quantized with."""
    for kind, had, want in zip(("start", "end"), stored, asked):
        if want and want != had:
            had_text = ",".join(had) or "(none: the whole graph)"
            raise AllsError.of("ALS410", f"`{path}` was quantized with {kind} nodes {had_text}, not {','.join(want)}",
                               f"quantize the model again with --{kind}-nodes {','.join(want)}, or leave the option out")
