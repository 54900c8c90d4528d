"""Read `.npy` and `.npz` files from anyone: sizes from the headers, checked before loading.

`numpy.load` allocates what a header declares, then reads: a 100-byte
`.npy` that claims terabytes, a sparse file of 16 GiB, or an `.npz` member
that inflates a thousandfold (a zip bomb) all allocate before anything can
object. Here the header is read first and its declared size checked
against the `Limits` (``max_array_bytes``: ALS027; ``max_compression_ratio``:
ALS028), against the bytes the file really holds (a truncated or lying
file: ALS505), and against the memory this process may use (ALS507,
`alls.memory`); objects (pickles) are never loaded.
"""

from __future__ import annotations

import math
import os
import stat
import zipfile
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from alls.diagnostics import AllsError
from alls.limits import Limits, check_limits, refuse
from alls.memory import available_memory

__all__ = ["load_array", "load_npz"]

_SMALL = 1 << 20  # members smaller than this are never zip bombs, whatever their ratio


def load_array(path: str | os.PathLike[str], what: str = "data", limits: Limits | None = None) -> NDArray[Any]:
    """The array of the `.npy` at ``path``; `AllsError` (ALS001, ALS027, ALS505, ALS507) for anything else."""
    limits = check_limits(limits)
    name = os.fspath(path)
    try:
        f = open(name, "rb")
    except FileNotFoundError:
        raise AllsError.of("ALS001", f"cannot read {what} `{name}`: no such file") from None
    except OSError as exc:
        raise AllsError.of("ALS001", f"cannot read {what} `{name}`: {exc.strerror or exc}") from None
    with f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise AllsError.of("ALS505", f"{what} `{name}` is not a regular file",
                               f"save the {what} with numpy.save to a file")
        shape, dtype, offset = _header(f, name, what)
        nbytes = _declared(shape, dtype, name, limits)
        if info.st_size - offset < nbytes:
            raise AllsError.of("ALS505", f"`{name}` is truncated: its header declares {nbytes:,} bytes of data, "
                               f"the file holds {info.st_size - offset:,}", f"save the {what} again with numpy.save")
        _fits_in_memory(nbytes, name)
        f.seek(0)
        return _read(f, name, what)


def load_npz(path: str | os.PathLike[str], limits: Limits | None = None, what: str = "archive") -> dict[str, NDArray[Any]]:
    """Every member of the `.npz` at ``path``, each checked from its header before it is read.

    Raises `AllsError`: ALS001 (no file), ALS509 (not an .npz, damaged),
    ALS027 / ALS028 (limits), ALS507 (memory).
    """
    limits = check_limits(limits)
    name = os.fspath(path)
    if not os.path.exists(name):
        raise AllsError.of("ALS001", f"cannot read `{name}`: no such file")
    try:
        archive = zipfile.ZipFile(name)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise AllsError.of("ALS509", f"`{name}` is not an .npz {what}, or it is truncated ({exc.__class__.__name__})",
                           "write it again") from None
    with archive:
        members = [i for i in archive.infolist() if not i.is_dir()]
        total = sum(i.file_size for i in members)
        if total > limits.max_array_bytes:
            raise refuse("max_array_bytes", total, limits, f"the members of `{name}`")
        for i in members:
            if i.file_size > _SMALL and i.file_size > limits.max_compression_ratio * max(i.compress_size, 1):
                raise refuse("max_compression_ratio", i.file_size // max(i.compress_size, 1), limits,
                             f"member `{i.filename}` of `{name}`")
        _fits_in_memory(total, name)
        arrays = {}
        for i in members:
            key = i.filename[:-4] if i.filename.endswith(".npy") else i.filename
            arrays[key] = _member(archive, i, name, limits)
        return arrays


def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, limits: Limits) -> NDArray[Any]:
    label = f"member `{info.filename}` of `{name}`"
    try:
        with archive.open(info) as f:
            shape, dtype, offset = _header(f, label, "array", bad="ALS509")
            nbytes = _declared(shape, dtype, label, limits)
            if info.file_size - offset != nbytes:
                raise AllsError.of("ALS509", f"{label} declares {nbytes:,} bytes of data and holds "
                                   f"{info.file_size - offset:,}", "the file is damaged; write it again")
        with archive.open(info) as f:
            return _read(f, label, "array", bad="ALS509")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:  # a bad CRC, a short member
        raise AllsError.of("ALS509", f"{label} cannot be read ({exc.__class__.__name__}: {exc})",
                           "the file is damaged; write it again") from None


def _header(f: IO[bytes], name: str, what: str, bad: str = "ALS505") -> tuple[tuple[int, ...], np.dtype[Any], int]:
    """(shape, dtype, data offset) from a .npy header; objects refused."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise AllsError.of(bad, f"`{name}` is not a .npy array ({exc})", f"save the {what} with numpy.save") from None
    if dtype.hasobject:
        raise AllsError.of(bad, f"`{name}` holds Python objects, which are never loaded",
                           f"save the {what} as numbers with numpy.save")
    return shape, dtype, f.tell()


def _declared(shape: tuple[int, ...], dtype: np.dtype[Any], name: str, limits: Limits) -> int:
    if any(d < 0 for d in shape):
        raise AllsError.of("ALS505", f"`{name}` declares a negative dimension {shape}")
    nbytes: int = math.prod(shape) * dtype.itemsize
    if nbytes > limits.max_array_bytes:
        raise refuse("max_array_bytes", nbytes, limits, f"`{name}` declares shape {shape} of {dtype}")
    return nbytes


def _fits_in_memory(nbytes: int, name: str) -> None:
    free = available_memory()
    if nbytes > free:
        raise AllsError.of("ALS507", f"`{name}` needs {nbytes / 2**30:.1f} GiB and {free / 2**30:.1f} GiB are "
                           "available to this process", "use fewer images, or a machine (or limit) with more memory")


def _read(f: IO[bytes], name: str, what: str, bad: str = "ALS505") -> NDArray[Any]:
    try:
        return np.lib.format.read_array(f, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise AllsError.of(bad, f"`{name}` cannot be read as a .npy array ({exc})",
                           f"save the {what} with numpy.save") from None
