"""`alls layers`: the layers of an ONNX model with their Hailo-style names."""

from __future__ import annotations

import json
import sys

import alls
from alls.commands import common
from alls.render import printable
from alls.tables import layer_row, layer_table


def run(args) -> int:
    graph = common.load_graph(args)
    if args.json:
        rows = [layer_row(layer) for layer in graph]
        doc = {"network": graph.name, "opset": graph.opset, "layers": rows, "tie_numbered": sorted(graph.tie_numbered),
               "start_nodes": list(graph.start_nodes), "end_nodes": list(graph.end_nodes),
               "diagnostics": json.loads(alls.render(list(graph.diagnostics), fmt="json"))}
        print(json.dumps(doc, indent=2))
    else:
        print(printable(layer_table(graph)))
        if graph.diagnostics:
            sys.stdout.write("\n")
            common.report(graph.diagnostics, stream=sys.stdout)
    return common.EXIT_ERRORS if any(d.is_error for d in graph.diagnostics) else common.EXIT_OK
