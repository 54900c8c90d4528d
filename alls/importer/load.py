"""`load_model`: read an ONNX model, check it, cut it where asked, and import it."""

from __future__ import annotations

import dataclasses
import os
import re

from alls.cut import Cut, cut_model, suggest_end_nodes
from alls.diagnostics import AllsError, Diagnostic, Severity
from alls.graph import Graph
from alls.importer.driver import Importer
from alls.limits import Limits, check_limits
from alls.validate import check_input_shapes, validate

E = Severity.ERROR


def load_model(model, input_shapes: dict[str, tuple[int, ...]] | tuple[int, ...] | None = None,
               name: str | None = None, start_nodes=(), end_nodes=(), *, limits: Limits | None = None) -> Graph:
    """Import ``model`` (a path or an `onnx.ModelProto`) as a `Graph`.

    ``input_shapes`` overrides fixed input shapes: a shape for the one input,
    or ``{input name: shape}``. ``name`` is the network scope (default: the
    file's stem, else the graph's name). ``start_nodes``/``end_nodes`` cut the
    graph as Hailo's parser does (`alls.cut`): only what lies between them is
    imported. Raises `AllsError` when the model cannot be read (ALS402), is
    unsound (ALS440-ALS446: `alls.validate`, before anything else), exceeds
    ``limits`` (`alls.Limits`), or for a bad cut (ALS406-ALS408); everything
    else is a diagnostic on the graph.
    """
    limits = check_limits(limits)
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be str or None, not {type(name).__name__}")
    check_input_shapes(input_shapes, limits)
    proto, default_name, folder = _read(model)
    validate(proto, limits, folder)
    net = _scope_name(name or default_name or proto.graph.name or "net")
    cut = Cut(tuple(start_nodes or ()), tuple(end_nodes or ()))
    if cut:
        proto = cut_model(proto, cut, input_shapes)
        if cut.start_nodes:  # the new inputs carry the shapes inferred from the original ones
            names = {i.name for i in proto.graph.input}
            input_shapes = {k: v for k, v in input_shapes.items() if k in names} or None \
                if isinstance(input_shapes, dict) else None
    graph = Importer(proto, net, input_shapes, limits).run()
    note = suggest_end_nodes(graph)
    if note is not None:
        graph = dataclasses.replace(graph, diagnostics=graph.diagnostics + (note,))
    return dataclasses.replace(graph, start_nodes=cut.start_nodes, end_nodes=cut.end_nodes) if cut else graph


def _read(model):
    """(proto, default name, folder of its external data); external data are left for `validate` to load."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model, None, None
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"a model is a path or an onnx.ModelProto, not {type(model).__name__}")
    path = os.fspath(model)
    try:
        proto = onnx.load(path, load_external_data=False)
    except FileNotFoundError:
        raise AllsError([Diagnostic("ALS402", E, f"cannot read model `{path}`: no such file")]) from None
    except Exception as exc:  # onnx raises DecodeError, ValueError, OSError, ...
        raise AllsError([Diagnostic("ALS402", E, f"`{path}` is not a readable ONNX model: {exc}",
                                    help="check that the file is complete and is an .onnx model")]) from None
    if not proto.graph.node:
        raise AllsError([Diagnostic("ALS402", E, f"`{path}` holds no ONNX graph",
                                    help="check that the file is complete and is an .onnx model")])
    return proto, os.path.splitext(os.path.basename(path))[0], os.path.dirname(os.path.abspath(path))


def _scope_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-]", "_", text) or "net"
