"""Which model a script is written for, and loading it off the editor's path.

A script names its model on its first line::

    # alls: model=path/to/model.onnx input_shape=1,3,320,320 end_nodes=Conv_120,Conv_135

(``model`` relative to the script's folder; ``input_shape`` as
``[NAME=]N,C,H,W``, repeatable; ``end_nodes`` the ONNX nodes where the
network ends, as Hailo's parser takes them; ``name`` the network scope), or
the editor's workspace settings name it (``alls.model``, ``alls.inputShape``,
``alls.endNodes``, relative to the workspace folder).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import alls
from alls.diagnostics import suggestion

__all__ = ["ModelSetting", "read_directive", "from_settings", "load"]

_DIRECTIVE = re.compile(r"#\s*alls:")
_KEYS = ("model", "input_shape", "end_nodes", "name")
E = alls.Severity.ERROR


@dataclass(frozen=True)
class ModelSetting:
    """A model to bind a script to: the path and how to import it."""

    path: str
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    end_nodes: tuple[str, ...] = ()
    name: str | None = None

    def shapes(self):
        """The input shapes as `alls.load_model` takes them."""
        if not self.input_shapes:
            return None
        if len(self.input_shapes) == 1 and self.input_shapes[0][0] == "":
            return self.input_shapes[0][1]
        return dict(self.input_shapes)


def read_directive(text: str, filename: str, folder: str) -> tuple[ModelSetting | None, list[alls.Diagnostic]]:
    """The model named on the first line of ``text``, and what is wrong with the line (ALS050)."""
    first = text.split("\n", 1)[0]
    head = _DIRECTIVE.match(first)
    if head is None:
        return None, []
    values: dict[str, list[str]] = {}
    problems = []
    for token in re.finditer(r"\S+", first[head.end():]):
        column = head.end() + token.start() + 1
        span = alls.Span(filename, 1, column, 1, column + len(token.group()))
        key, eq, value = token.group().partition("=")
        if not eq or key not in _KEYS:
            hint = suggestion(key, _KEYS) or "the settings are " + ", ".join(f"`{k}=`" for k in _KEYS)
            problems.append(alls.Diagnostic("ALS050", E, f"`{token.group()}` is not a model setting", span,
                                            "unknown setting", hint))
            continue
        values.setdefault(key, []).append(value)
    if "model" not in values:
        span = alls.Span(filename, 1, 1, 1, len(first) + 1)
        problems.append(alls.Diagnostic("ALS050", E, "the `# alls:` line names no model", span, "no model=",
                                        "write `# alls: model=path/to/model.onnx`"))
        return None, problems
    shapes, bad = _shapes(values.get("input_shape", []))
    if bad:
        span = alls.Span(filename, 1, 1, 1, len(first) + 1)
        problems.append(alls.Diagnostic("ALS050", E, f"bad input shape `{bad}`", span, "input_shape",
                                        "write N,C,H,W or NAME=N,C,H,W, for example 1,3,320,320"))
    path = values["model"][-1]
    setting = ModelSetting(os.path.normpath(os.path.join(folder, os.path.expanduser(path))), shapes,
                           tuple(n for v in values.get("end_nodes", []) for n in v.split(",") if n),
                           values.get("name", [None])[-1])
    return setting, problems


def from_settings(settings: dict, root: str) -> ModelSetting | None:
    """The model of the workspace settings (``model``, ``inputShape``, ``endNodes``, ``name``), if any."""
    path = settings.get("model") if isinstance(settings, dict) else None
    if not path or not isinstance(path, str):
        return None
    shape = settings.get("inputShape") or []
    shapes, _ = _shapes([shape] if isinstance(shape, str) else [str(s) for s in shape])
    ends = settings.get("endNodes") or ()
    ends = tuple(ends.split(",") if isinstance(ends, str) else (str(e) for e in ends))
    return ModelSetting(os.path.normpath(os.path.join(root, os.path.expanduser(path))), shapes, ends,
                        settings.get("name") if isinstance(settings.get("name"), str) else None)


def _shapes(specs: list[str]) -> tuple[tuple[tuple[str, tuple[int, ...]], ...], str]:
    out = []
    for spec in specs:
        name, _, dims = spec.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(","))
        except ValueError:
            return (), spec
        if not shape or any(d < 1 for d in shape):
            return (), spec
        out.append((name, shape))
    if len(out) > 1 and any(name == "" for name, _ in out):
        return (), " ".join(specs)
    return tuple(out), ""


def load(setting: ModelSetting) -> alls.Graph:
    """Import the model; raise `AllsError` (ALS402 unreadable, ALS051 bad end nodes)."""
    if not setting.end_nodes:
        return alls.load_model(setting.path, setting.shapes(), setting.name)
    import onnx

    try:
        proto = onnx.load(setting.path)
    except FileNotFoundError:
        raise alls.AllsError.of("ALS402", f"cannot read model `{setting.path}`: no such file") from None
    except Exception as exc:  # onnx raises DecodeError, ValueError, OSError, ...
        raise alls.AllsError.of("ALS402", f"`{setting.path}` is not a readable ONNX model: {exc}") from None
    return alls.load_model(_cut(proto, setting.end_nodes), setting.shapes(),
                           setting.name or os.path.splitext(os.path.basename(setting.path))[0])


def _cut(proto, end_nodes: tuple[str, ...]):
    """The part of ``proto`` that ends at ``end_nodes`` (node names, or tensor names):
    the nodes those outputs depend on, with the tensors as the graph's outputs."""
    from onnx import TensorProto, helper

    graph = proto.graph
    by_name = {node.name: node for node in graph.node}
    tensors = {out for node in graph.node for out in node.output}
    outputs: list[str] = []
    for end in end_nodes:
        if end in by_name:
            outputs.extend(by_name[end].output)
        elif end in tensors:
            outputs.append(end)
        else:
            raise alls.AllsError.of("ALS051", f"`{end}` is no node of the model",
                                    suggestion(end, by_name) or "end_nodes names ONNX nodes, as Hailo's parser takes them")
    needed, kept = set(outputs), []
    for node in reversed(graph.node):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(node.input)
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.output)}
    cut = helper.make_graph(
        list(reversed(kept)), graph.name, [i for i in graph.input if i.name in needed],
        [helper.make_tensor_value_info(name, types.get(name, TensorProto.FLOAT), None) for name in outputs],
        initializer=[init for init in graph.initializer if init.name in needed], value_info=graph.value_info)
    model = helper.make_model(cut, opset_imports=proto.opset_import)
    model.ir_version = proto.ir_version
    return model
