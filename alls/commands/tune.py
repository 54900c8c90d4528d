"""`alls tune`: the guide's incremental flow, keeping the script of the best step."""

from __future__ import annotations

import json
import os

import alls
from alls import files
from alls.commands import common


def run(args) -> int:
    from alls.runtime import Runner, best, load_array, tune

    output = args.output or f"{os.path.splitext(os.path.basename(args.model))[0]}_tuned.alls"
    common.check_output(output, args.force, "tuned script")
    shapes, start, end = common.shapes_and_cut(args)
    common.model_file(args.model)
    base = common.read_or_fail(args.script, args) if args.script else ""
    calib = load_array(args.calib, "calibration images", limits=common.limits_of(args))
    data, labels = common.evaluation_data(args)
    widths = [max(len(n) for n, _ in _tune_steps()), 7, 8, 7, 7]
    row = lambda cells: print("  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip(), flush=True)
    header = [("step", "SNR dB", "cosine", "top-1" if labels is not None else "", "seconds")]

    def show(step) -> None:
        if args.json:
            return
        while header:
            row(header.pop())
        if step.error:
            print(f"{step.name}: failed: {step.error}", flush=True)
            return
        accuracy = f"{100 * step.accuracy:.2f}%" if step.accuracy is not None else ""
        row((step.name, f"{step.snr_db:.2f}", f"{step.cosine:.5f}", accuracy, f"{step.seconds:.1f}"))

    done = tune(lambda: Runner(args.model, shapes, args.name, start_nodes=start, end_nodes=end,
                               limits=common.limits_of(args)), calib, data, labels, base, args.layout, show)
    chosen = best(done)
    files.write_file(output, alls.format_text(chosen.script), what="tuned script")
    if args.json:
        print(json.dumps({"best": chosen.name, "output": output, "steps": [s.as_dict() for s in done]}, indent=2))
    else:
        if chosen.layers:
            print(f"16-bit on the layers the analysis blames: {', '.join(n.rsplit('/', 1)[-1] for n in chosen.layers)}")
        print(f"best: {chosen.name} ({chosen.snr_db:.2f} dB); wrote {output}")
    return common.EXIT_OK


def _tune_steps():
    from alls.runtime import STEPS

    return STEPS
