"""`alls eval`: a quantized model's numeric target against its native one."""

from __future__ import annotations

from alls.commands import common


def run(args) -> int:
    from alls.runtime import load

    data, labels = common.evaluation_data(args)
    cut = common.requested_cut(args)
    qmodel = load(args.quantized, cut["start_nodes"], cut["end_nodes"], limits=common.limits_of(args))
    return common.print_evaluation(qmodel, args, data, labels)
