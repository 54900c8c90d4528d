"""`alls plan`: a script bound to a model, as the per-layer plan."""

from __future__ import annotations

import json
import sys

import alls
from alls import files
from alls.commands import common
from alls.render import printable, summary
from alls.tables import explain_layer, plan_table


def run(args) -> int:
    if args.output:
        common.check_output(args.output, args.force, "plan")
    graph = common.load_graph(args)
    script, diagnostics = common.read(args.script, args)
    if common.unreadable(diagnostics):
        raise alls.AllsError(diagnostics)
    plan = alls.resolve(script, graph)
    found = sorted(diagnostics + list(plan.diagnostics), key=alls.Diagnostic.sort_key)
    sources = {script.filename: script.source}
    if args.explain is not None:
        layer = graph.get(args.explain)
        if layer is None:
            hint = alls.diagnostics.suggestion(args.explain, [l.short_name for l in graph])
            raise alls.AllsError.of("ALS201", f"no layer `{args.explain}` in `{graph.name}`", hint)
        print(printable(explain_layer(plan, layer.name)))
    elif args.json or args.output:
        doc = plan.as_dict()
        doc["diagnostics"] = json.loads(alls.render(found, fmt="json"))
        text = json.dumps(doc, indent=2) + "\n"
        if args.output:
            files.write_file(args.output, text, what="plan")
        if args.json:
            sys.stdout.write(text)
    else:
        print(printable(plan_table(plan)))
    if found and args.explain is not None:
        sys.stdout.write(f"\n{summary(found, 1)} (run without --explain to see them)\n")
    elif found and not args.json:
        sys.stdout.write("\n")
        common.report(found, sources, stream=sys.stdout)
        sys.stdout.write("\n" + summary(found, 1) + "\n")
    return common.EXIT_ERRORS if any(d.is_error for d in found) else common.EXIT_OK
