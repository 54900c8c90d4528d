"""Inter-layer tensors to files: the guide's section 5.2, one ``.npy`` per layer and target.

    from alls.runtime.session.taps import write_taps
    index = write_taps(qmodel, images, "taps/", layers="{conv*}", targets=("native", "numeric"))

writes ``taps/<target>/<layer>.npy`` (the layer's short name; 4-D tensors in the data's layout,
float values, or integer codes with ``raw_out``) and ``taps/index.json``, which lists each file
with its layer, target, shape and dtype (and, for codes, the encoding). A folder that is not
empty is refused without ``force``, so nothing is overwritten unasked.

The images are run a batch at a time (`alls.runtime.analysis.passes.batch_size`, within the memory
limit) and each batch's rows are appended to the files, whose headers are written first for every
image: what is held is one batch's tensors, whatever the number of images, and the files are those
`numpy.save` writes of the whole run. Each file is written under a temporary name and renamed over
its target when every image is in it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pathlib
import shutil
import stat
import tempfile
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


class _Rows:
    """One tensor's ``.npy``, written a batch of images at a time: the header for all ``count`` images
    first (as `numpy.save` writes it), then each batch's rows appended, into a temporary file in the
    target's folder (`alls.files`' naming) that `finish` renames over the target."""

    def __init__(self, path: pathlib.Path, count: int, first: np.ndarray):
        self.path, self.shape, self.dtype, self.rows = path, (count, *first.shape[1:]), first.dtype, 0
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=f"{files.TEMP_PREFIX}{os.getpid()}-", suffix=files.TEMP_SUFFIX,
                                            dir=path.parent)
        except OSError as exc:
            raise AllsError.of("ALS003", f"cannot write into `{path.parent}`: {exc.strerror or exc}") from None
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        with os.fdopen(fd, "wb") as f:
            try:
                np.lib.format.write_array_header_1_0(f, header)
            except ValueError:  # a header beyond 64 KiB, as numpy.save switches to
                np.lib.format.write_array_header_2_0(f, header)

    def append(self, rows: np.ndarray) -> None:
        if rows.shape[1:] != self.shape[1:] or rows.dtype != self.dtype or self.rows + len(rows) > self.shape[0]:
            raise ValueError(f"rows {rows.dtype} {rows.shape} do not continue {self.dtype} {self.shape}")
        with open(self.tmp, "ab") as f:
            f.write(np.ascontiguousarray(rows).tobytes())
        self.rows += len(rows)

    def finish(self) -> None:
        if self.rows != self.shape[0]:
            raise ValueError(f"{self.rows} of {self.shape[0]} images written to `{self.path}`")
        try:
            mode = stat.S_IMODE(os.stat(self.path).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~files.umask()
        os.chmod(self.tmp, mode)
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def _entry(target: str, short: str, name: str, rows: _Rows, result: Result) -> dict[str, Any]:
    """One tensor's index entry."""
    entry: dict[str, Any] = {"layer": name, "target": target, "shape": list(rows.shape), "dtype": str(rows.dtype),
                             "file": f"{target}/{short}.npy"}
    if name in result.encodings:
        entry["encoding"] = result.encodings[name].as_dict()
    return entry


def _count(images: Images) -> int:
    count = len(next(iter(images.values())) if isinstance(images, dict) else images)
    if count == 0:
        raise AllsError.of("ALS522", "there are no images to run on", "pass at least one image")
    return count


def _check_room(qmodel: QuantizedModel, names: list[str], count: int, batch: int, folder: pathlib.Path,
                targets: int) -> None:
    """Before anything runs: ALS507 when one batch's tensors would not fit in memory, ALS565 when the
    files would not fit on the disk."""
    from alls.runtime.session.runner import available_memory

    per_image = sum(math.prod(d for d in qmodel.graph[name].output_shape[1:] if isinstance(d, int)) for name in names)
    needed = 4 * batch * per_image * 2  # the float tensors, and their copy in the output layout
    free = available_memory()
    if needed > free:
        raise AllsError.of("ALS507", f"the tensors of {len(names)} layers on {batch} images need about "
                           f"{_size(needed)} and {_size(free)} are available",
                           "select fewer layers (--layers), or lower --memory-limit")
    writing = 4 * count * per_image * targets
    where = folder if folder.exists() else folder.parent
    disk = shutil.disk_usage(os.path.abspath(where)).free
    if writing > disk:
        raise AllsError.of("ALS565", f"the tensors of {len(names)} layers on {count} images take up to "
                           f"{_size(writing)} and `{where}` has {_size(disk)} free",
                           "select fewer layers (--layers), targets (--target) or images (--limit), or write to "
                           "a larger disk")


def _size(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


def write_taps(qmodel: QuantizedModel, images: Images, path: str | os.PathLike[str],
               layers: str | Iterable[str] | None = None,
               targets: Sequence[str] = ("numeric",), layout: str = "nhwc", force: bool = False,
               raw_out: bool = False, memory_limit: int | str | None = None) -> dict[str, Any]:
    """Run ``images`` (an array, a memory-mapped ``.npy``, an `alls.arrays.Folder`, or a dict per input) on
    each target, tapping ``layers`` (see `select_layers`), and write one ``.npy`` per layer and target and
    the index; the index as written. The images are run a batch at a time and each batch's rows appended
    to the files, so what is held is bounded by ``memory_limit`` (bytes or text; default 4 GiB), not by
    the number of images."""
    from alls.runtime.analysis.passes import batch_size
    from alls.runtime.exec.stream import check_memory_limit

    for target in targets:
        if target not in TARGETS:
            raise AllsError.of("ALS505", f"unknown target `{target}`", f"one of: {', '.join(TARGETS)}")
    limit = check_memory_limit(memory_limit)
    folder = prepare_taps_folder(path, force)
    names = select_layers(qmodel.graph, layers)
    count, size, chosen = _count(images), batch_size(qmodel.graph, limit), list(dict.fromkeys(targets))
    _check_room(qmodel, names, count, min(size, count), folder, len(chosen))
    written: dict[tuple[str, str], _Rows] = {}
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        for start in range(0, count, size):
            batch = _slice(images, start, start + size)
            for target in chosen:  # one target's tensors of one batch in memory at a time
                result = qmodel.run(batch, target, taps=names, layout=layout, raw_out=raw_out and target == "numeric")
                for name in names:
                    if (target, name) not in written:
                        (folder / target).mkdir(parents=True, exist_ok=True)
                        short = qmodel.graph[name].short_name
                        rows = written[target, name] = _Rows(folder / target / f"{short}.npy", count, result.taps[name])
                        entries[target, name] = _entry(target, short, name, rows, result)
                    written[target, name].append(result.taps[name])
                del result
        for rows in written.values():
            rows.finish()
        index = {"network": qmodel.graph.name, "images": count, "layout": layout,
                 "taps": [entries[target, name] for target in chosen for name in names]}
        files.write_file(folder / INDEX, json.dumps(index, indent=2) + "\n", what="taps index")
    except OSError as exc:
        raise AllsError.of("ALS003", f"cannot write the tensors into `{folder}`: {exc.strerror or exc}") from None
    finally:
        for rows in written.values():
            rows.discard()
    return index


def _slice(images: Images, start: int, stop: int) -> Images:
    """Images ``start:stop`` of an array, a memory-mapped file, a `Folder` or a dict of them, read."""
    from alls.runtime.exec.stream import read

    if isinstance(images, dict):
        return {k: read(v, slice(start, stop)) for k, v in images.items()}
    return read(images, slice(start, stop))
