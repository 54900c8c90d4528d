"""`alls check`: the problems of scripts, bound to a model where one is given."""

from __future__ import annotations

import sys

import alls
from alls.commands import common
from alls.render import summary


def run(args) -> int:
    found: list[alls.Diagnostic] = []
    sources: dict[str, str] = {}
    failed = False
    graph = None
    if args.model is not None:
        graph = common.load_graph(args)
        found.extend(graph.diagnostics)
    for path in args.files:
        script, diagnostics = common.read(path, args)
        failed |= common.unreadable(diagnostics)
        if graph is not None:
            checked = list(alls.resolve(script, graph).diagnostics)
            checked = [d for d in checked if d not in graph.diagnostics]
        else:
            checked = alls.check(script)
        found.extend(sorted(diagnostics + checked, key=alls.Diagnostic.sort_key))
        sources[script.filename] = script.source
    out = alls.render([common.for_cli(d) for d in found], sources, args.output_format)
    if args.output_format == "full":
        out += ("\n" if found else "") + summary(found, len(args.files)) + "\n"
    sys.stdout.write(out)
    if failed:
        return common.EXIT_FAILURE
    return common.EXIT_ERRORS if any(d.is_error for d in found) else common.EXIT_OK
