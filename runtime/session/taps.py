"""Inter-layer tensors to files: the guide's section 5.2, one ``.npy`` per layer and target.

    from alls.runtime.session.taps import write_taps
    index = write_taps(qmodel, images, "taps/", layers="{conv*}", targets=("native", "numeric"))

writes ``taps/<target>/<layer>.npy`` (the layer's short name; 4-D tensors in the data's layout,
float values, or integer codes with ``raw_out``) and ``taps/index.json``, which lists each file
with its layer, target, shape and dtype (and, for codes, the encoding). A folder that is not
empty is refused without ``force``, so nothing is overwritten unasked.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

import alls
from alls import files
from alls.diagnostics import AllsError
from alls.parser import parse_partial
from alls.runtime.session.model import TARGETS, Images, QuantizedModel, Result

__all__ = ["select_layers", "prepare_taps_folder", "write_taps", "INDEX"]

INDEX = "index.json"


def select_layers(graph: alls.Graph, selector: str | Iterable[str] | None) -> list[str]:
    """Layer names for a selector as scripts write it (``{conv*}``, ``conv1``, ``[conv1, {dw*}]``), a list
    of names, or None for every layer; in graph order. ALS201 for what matches nothing."""
    from alls.selectors import select

    if selector is None:
        return [layer.name for layer in graph]
    if not isinstance(selector, str):
        selector = "[" + ", ".join(selector) + "]"
    parsed, problems = parse_partial(f"taps({selector})\n", "--layers")
    calls = [st.call for st in parsed.statements if st.call is not None and st.call.positional]
    if problems or len(calls) != 1 or len(calls[0].positional) != 1:
        raise AllsError.of("ALS201", f"`{selector}` is not a layer selector",
                           "write layer names or brace globs, for instance `{conv*}` or `[conv1, {dw*}]`")
    matches, diagnostics = select(calls[0].positional[0].value, graph)
    errors = [dataclasses.replace(d, span=None) for d in diagnostics if d.is_error]  # the span is in `taps(...)`
    if errors:
        raise AllsError(errors)
    chosen = {layer.name for match in matches for layer in match.layers}
    return [layer.name for layer in graph if layer.name in chosen]


def prepare_taps_folder(path: str | os.PathLike[str], force: bool = False) -> pathlib.Path:
    """The folder, checked before anything runs: its parent must exist and be writable (ALS002, ALS003); it
    must be a directory (ALS005), not a link (ALS006), and empty unless ``force`` (ALS004)."""
    folder = pathlib.Path(path)
    if folder.is_symlink():
        raise AllsError.of("ALS006", f"taps folder `{folder}` is a symbolic link", "name the folder it points to")
    if folder.exists() and not folder.is_dir():
        raise AllsError.of("ALS005", f"taps folder `{folder}` exists and is not a directory",
                           "name a new folder, or an existing one")
    if not folder.exists():
        files.check_folder(folder, "taps folder")
    elif any(folder.iterdir()) and not force:
        raise AllsError.of("ALS004", f"taps folder `{folder}` exists and is not empty",
                           "pass --force to write the tensors into it")
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise AllsError.of("ALS003", f"taps folder `{folder}` is not writable")
    return folder


def _write(folder: pathlib.Path, target: str, short: str, name: str, result: Result) -> dict[str, Any]:
    """One tensor's file, and its index entry."""
    array = result.taps[name]
    file = f"{target}/{short}.npy"
    files.write_file(folder / file, lambda f: np.save(f, array), what="tensor")
    entry: dict[str, Any] = {"layer": name, "target": target, "shape": list(array.shape), "dtype": str(array.dtype), "file": file}
    if name in result.encodings:
        entry["encoding"] = result.encodings[name].as_dict()
    return entry


def _check_memory(qmodel: QuantizedModel, images: Images, names: list[str], layout: str) -> int:
    """The number of images; ALS507 before anything runs when one target's tensors would not fit in memory."""
    from alls.runtime.session.runner import available_memory

    count = len(next(iter(images.values())) if isinstance(images, dict) else images)
    per_image = sum(math.prod(d for d in qmodel.graph[name].output_shape[1:] if isinstance(d, int)) for name in names)
    needed = 4 * count * per_image * 2  # the float tensors, and their copy in the output layout
    free = available_memory()
    if needed > free:
        raise AllsError.of("ALS507", f"the tensors of {len(names)} layers on {count} images need about "
                           f"{_size(needed)} and {_size(free)} are available",
                           "select fewer layers (--layers) or fewer images (--limit)")
    return count


def _size(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


def write_taps(qmodel: QuantizedModel, images: Images, path: str | os.PathLike[str],
               layers: str | Iterable[str] | None = None,
               targets: Sequence[str] = ("numeric",), layout: str = "nhwc", force: bool = False,
               raw_out: bool = False) -> dict[str, Any]:
    """Run ``images`` on each target, tapping ``layers`` (see `select_layers`), and write one ``.npy``
    per layer and target and the index; the index as written."""
    for target in targets:
        if target not in TARGETS:
            raise AllsError.of("ALS505", f"unknown target `{target}`", f"one of: {', '.join(TARGETS)}")
    folder = prepare_taps_folder(path, force)
    names = select_layers(qmodel.graph, layers)
    count = _check_memory(qmodel, images, names, layout)
    entries = []
    try:
        for target in dict.fromkeys(targets):  # one target's tensors in memory at a time
            result = qmodel.run(images, target, taps=names, layout=layout, raw_out=raw_out and target == "numeric")
            (folder / target).mkdir(parents=True, exist_ok=True)
            for name in names:
                entries.append(_write(folder, target, qmodel.graph[name].short_name, name, result))
            del result
        index = {"network": qmodel.graph.name, "images": count, "layout": layout, "taps": entries}
        files.write_file(folder / INDEX, json.dumps(index, indent=2) + "\n", what="taps index")
    except OSError as exc:
        raise AllsError.of("ALS003", f"cannot write the tensors into `{folder}`: {exc.strerror or exc}") from None
    return index
