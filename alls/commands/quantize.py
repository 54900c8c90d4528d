"""`alls quantize`: calibrate and quantize a model by a script, write it, and evaluate it where asked."""

from __future__ import annotations

import sys

from alls.commands import common
from alls.tables import algorithm_summary, precision_summary


def run(args) -> int:
    from alls.runtime import Runner, load_array

    common.check_output(args.output, args.force, "quantized model")
    shapes, start, end = common.shapes_and_cut(args)
    runner = Runner(common.model_file(args.model), shapes, args.name, start_nodes=start, end_nodes=end,
                    limits=common.limits_of(args))
    if args.script:
        runner.load_script(common.read_or_fail(args.script, args))
    calib = load_array(args.calib, "calibration images", limits=common.limits_of(args))
    data = common.evaluation_data(args) if args.data else None
    qmodel = runner.quantize(calib, args.batch_size, args.calib_num_batch, args.layout,
                             equalize=args.equalize, ibc=args.ibc, finetune=args.finetune)
    runner.save(args.output)
    report = qmodel.report
    print(f"calibrated `{runner.graph.name}` on {report['calibration_images']} images "
          f"({report['calib_num_batch']} batches of {report['batch_size']})")
    print(precision_summary(qmodel.plan))
    for line in algorithm_summary(report):
        print(line)
    common.report(runner.warnings, stream=sys.stdout)
    print(f"wrote {args.output}")
    if data is not None:
        return common.print_evaluation(qmodel, args, *data)
    return common.EXIT_OK
