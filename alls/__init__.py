"""alls: an open toolchain for `.alls` quantization scripts.

The front end is pure Python and light: ``import alls`` loads neither numba
nor onnx. The model side (`load_model`, `resolve`) and the integer runtime
(`alls.runtime`) are imported on first use.

>>> import alls
>>> script = alls.parse("quantization_param({conv*}, precision_mode=a16_w16)\\n")
>>> script.statements[0].command
'quantization_param'
>>> [d.code for d in alls.check("quantization_param({conv*}, precision_mode=a16_w12)\\n")]
['ALS301']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alls.checker import check_script
from alls.codes import CODES, explain
from alls.diagnostics import AllsError, Diagnostic, Label, Severity
from alls.formatter import format_script
from alls.graph import Graph, InputShapes, Layer
from alls.limits import Limits
from alls.nodes import (
    Argument,
    Boolean,
    Call,
    Comment,
    Glob,
    ListValue,
    Name,
    Null,
    Number,
    Script,
    Span,
    Statement,
    String,
    Value,
    Word,
)
from alls.parser import parse, parse_file, parse_partial, read_script
from alls.plan import Clipping, LayerPlan, Plan, Settings, Source
from alls.render import render

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    from alls.graph import ModelSource
    from alls.zoo import ZooNetwork

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # reading and checking scripts
    "parse",
    "parse_file",
    "read_script",
    "check",
    "format_script",
    "format_text",
    "render",
    "explain",
    "CODES",
    "Limits",
    # models
    "load_model",
    "read_zoo_network",
    "Graph",
    "Layer",
    # plans
    "resolve",
    "Plan",
    "LayerPlan",
    "Settings",
    "Source",
    "Clipping",
    # diagnostics
    "Diagnostic",
    "Severity",
    "Label",
    "Span",
    "AllsError",
    # the syntax tree
    "Script",
    "Statement",
    "Call",
    "Argument",
    "Name",
    "Comment",
    "Value",
    "Word",
    "Number",
    "Boolean",
    "Null",
    "String",
    "Glob",
    "ListValue",
]


def check(script: Script | str, filename: str = "<string>", *, limits: Limits | None = None) -> list[Diagnostic]:
    """Every diagnostic of a script, in source order.

    ``script`` is a parsed `Script`, or text; text is parsed leniently, so its
    syntax errors come back as diagnostics together with everything the
    catalogue finds in the statements that did parse. ``limits`` bounds what
    text may ask of the parser (`Limits`).
    """
    if isinstance(script, str):
        script, diagnostics = parse_partial(script, filename, limits=limits)
    elif isinstance(script, Script):
        diagnostics = []
    else:
        raise TypeError(f"alls.check takes a Script or str, not {type(script).__name__} "
                        "(for a path or bytes: alls.read_script)")
    found = diagnostics + check_script(script)
    found.sort(key=Diagnostic.sort_key)
    return found


def load_model(model: ModelSource, input_shapes: InputShapes | None = None, name: str | None = None,
               start_nodes: Sequence[str] = (), end_nodes: Sequence[str] = (), *,
               limits: Limits | None = None) -> Graph:
    """Import an ONNX model (a path or an `onnx.ModelProto`) as a layer `Graph`.

    ``input_shapes`` overrides fixed input shapes: one shape, or a dict
    ``{input name: shape}``. ``name`` is the network scope of the layer names
    (default: the file's stem). ``start_nodes`` and ``end_nodes`` (ONNX node
    names) cut the graph where Hailo's parser does; only the graph between
    them is imported and named. ``limits`` bounds what the model may ask of
    the import (`Limits`). Raises `AllsError` if the model cannot be read or
    is unsound (ALS440-ALS446), exceeds a limit, or the cut names no such
    node (ALS406) or leaves an input unreachable (ALS407, ALS408);
    unsupported ops are diagnostics on ``graph.diagnostics``.
    """
    from alls.importer import load_model as _load

    return _load(model, input_shapes, name, start_nodes, end_nodes, limits=limits)


def read_zoo_network(path: str | os.PathLike[str]) -> ZooNetwork:
    """Where a Hailo model-zoo network config (``networks/yolov8s_pose.yaml``) cuts its graph and
    its input shape, as `alls.zoo.ZooNetwork` (``start_nodes``, ``end_nodes``, ``input_shape`` in
    NCHW): pass them to `load_model`. Raises `AllsError` (ALS409) for a file it cannot read."""
    from alls.zoo import read_zoo_network as _read

    return _read(path)


def resolve(script: Script | str, model: Graph | ModelSource, input_shapes: InputShapes | None = None, *, advice: bool = True,
            limits: Limits | None = None) -> Plan:
    """Bind a script to a model: the per-layer quantization `Plan`.

    ``script`` is a parsed `Script` or script text; ``model`` a `Graph`, an
    ``.onnx`` path or an `onnx.ModelProto` (loaded with ``input_shapes``).
    The plan's ``diagnostics`` hold the script's syntax and catalogue
    checks, the selector errors, options that cannot apply, the model's
    import findings and, with ``advice``, the advice of Hailo's guide.
    """
    from alls.resolver import resolve as _resolve

    syntax: list[Diagnostic] = []
    if isinstance(script, str):
        script, syntax = parse_partial(script, limits=limits)
    elif not isinstance(script, Script):
        raise TypeError(f"alls.resolve takes a Script or str, not {type(script).__name__} "
                        "(for a path or bytes: alls.read_script)")
    graph = model if isinstance(model, Graph) else load_model(model, input_shapes, limits=limits)
    plan = _resolve(script, graph, advice=advice)
    found = sorted([*syntax, *graph.diagnostics, *plan.diagnostics], key=Diagnostic.sort_key)
    return Plan(plan.network, plan.script, plan.layers, plan.settings, tuple(found))


def format_text(text: str, filename: str = "<string>", *, limits: Limits | None = None) -> str:
    """Format script text; raise `AllsError` if it does not parse."""
    return format_script(parse(text, filename, limits=limits))
