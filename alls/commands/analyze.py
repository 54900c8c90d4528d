"""`alls analyze`: the layers that carry a quantized model's error, as a report with plots and advice."""

from __future__ import annotations

import json
import sys
from argparse import Namespace

import alls
from alls.commands import common


def run(args: Namespace) -> int:
    from alls.runtime import analyze, first, load, open_data, prepare_folder, report_summary, write_report

    folder = prepare_folder(args.output, args.force)
    if args.limit is not None and args.limit < 1:
        raise alls.AllsError.of("ALS512", f"--limit must be at least 1, not {args.limit}")
    memory_limit = common.memory_limit_of(args)
    cut = common.requested_cut(args)
    qmodel = load(args.quantized, cut["start_nodes"], cut["end_nodes"], limits=common.limits_of(args))
    data = open_data(args.data, "data", limits=common.limits_of(args))
    if args.limit is not None and data.ndim:
        data = first(data, args.limit)
    result = analyze(qmodel, data, args.layout, args.worst, args.isolation_images, memory_limit=memory_limit)
    write_report(result, folder, force=args.force)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return common.EXIT_OK
    print(report_summary(result, folder))
    common.report(result.diagnostics, stream=sys.stdout)
    return common.EXIT_OK
