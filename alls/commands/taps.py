"""`alls taps`: the tensors of a quantized model's layers, one .npy per layer and target."""

from __future__ import annotations

import os
from argparse import Namespace

import alls
from alls.commands import common


def run(args: Namespace) -> int:
    from alls.runtime import TAPS_INDEX, first, load, open_data, prepare_taps_folder, write_taps

    prepare_taps_folder(args.output, args.force)
    if args.limit is not None and args.limit < 1:
        raise alls.AllsError.of("ALS512", f"--limit must be at least 1, not {args.limit}")
    memory_limit = common.memory_limit_of(args)
    qmodel = load(args.quantized)
    data = open_data(args.data, "data")
    if args.limit is not None and data.ndim:
        data = first(data, args.limit)
    index = write_taps(qmodel, data, args.output, args.layers, args.target or ["numeric"], args.layout, args.force,
                       args.raw, memory_limit)
    targets = sorted({entry["target"] for entry in index["taps"]})
    layers = len({entry["layer"] for entry in index["taps"]})
    print(f"wrote {len(index['taps'])} tensors ({layers} layers x {', '.join(targets)}) on {index['images']} images "
          f"to {args.output}; index in {os.path.join(args.output, TAPS_INDEX)}")
    return common.EXIT_OK
