"""`alls taps`: the tensors of a quantized model's layers, one .npy per layer and target."""

from __future__ import annotations

import os

import alls
from alls.commands import common


def run(args) -> int:
    from alls.runtime import TAPS_INDEX, load, load_array, prepare_taps_folder, write_taps

    prepare_taps_folder(args.output, args.force)
    if args.limit is not None and args.limit < 1:
        raise alls.AllsError.of("ALS512", f"--limit must be at least 1, not {args.limit}")
    qmodel = load(args.quantized)
    data = load_array(args.data, "data")
    if args.limit is not None and data.ndim:
        data = data[: args.limit]
    index = write_taps(qmodel, data, args.output, args.layers, args.target or ["numeric"], args.layout, args.force,
                       args.raw)
    targets = sorted({entry["target"] for entry in index["taps"]})
    layers = len({entry["layer"] for entry in index["taps"]})
    print(f"wrote {len(index['taps'])} tensors ({layers} layers x {', '.join(targets)}) on {index['images']} images "
          f"to {args.output}; index in {os.path.join(args.output, TAPS_INDEX)}")
    return common.EXIT_OK
