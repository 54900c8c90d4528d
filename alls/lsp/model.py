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
from typing import Any

import alls
from alls.diagnostics import suggestion
from alls.graph import InputShapes

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

    def shapes(self) -> InputShapes | None:
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


def from_settings(settings: dict[str, Any], root: str) -> ModelSetting | None:
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
    """Import the model, cut at its end nodes as `alls.load_model` cuts (Hailo's parser's rule); raise
    `AllsError` (ALS402 unreadable, ALS406 an end node the model lacks, with the nearest names)."""
    return alls.load_model(setting.path, setting.shapes(), setting.name or None, end_nodes=setting.end_nodes)
