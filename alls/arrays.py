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

__all__ = ["load_array", "load_npz", "open_array", "Folder"]

_SMALL = 1 << 20  # members smaller than this are never zip bombs, whatever their ratio


def load_array(path: str | os.PathLike[str], what: str = "data", limits: Limits | None = None) -> NDArray[Any]:
    """The array of the `.npy` at ``path``; `AllsError` (ALS001, ALS027, ALS505, ALS507) for anything else."""
    limits = check_limits(limits)
    name = os.fspath(path)
    with _open(name, what) as f:
        shape, dtype, offset = _checked_header(f, name, what, limits)
        _fits_in_memory(_declared(shape, dtype, name, limits), name)
        f.seek(0)
        return _read(f, name, what)


def open_array(path: str | os.PathLike[str], what: str = "data", limits: Limits | None = None) -> NDArray[Any]:
    """The array of the `.npy` at ``path`` memory-mapped read-only (`numpy.memmap`): its header checked
    as `load_array` checks it (ALS001, ALS027, ALS505), but nothing read until it is used, so it need
    not fit in memory (no ALS507)."""
    limits = check_limits(limits)
    name = os.fspath(path)
    with _open(name, what) as f:
        shape, dtype, offset = _checked_header(f, name, what, limits)
    if math.prod(shape) == 0:
        return np.zeros(shape, dtype)
    try:
        return np.memmap(name, dtype=dtype, mode="r", offset=offset, shape=shape,
                         order="F" if _fortran(name) else "C")
    except (ValueError, OSError) as exc:
        raise AllsError.of("ALS505", f"`{name}` cannot be mapped as a .npy array ({exc})",
                           f"save the {what} with numpy.save") from None


def _fortran(name: str) -> bool:
    with open(name, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        return bool(read(f)[1])


def _open(name: str, what: str) -> IO[bytes]:
    """``name`` opened for reading; ALS001 when it cannot be."""
    try:
        return open(name, "rb")
    except FileNotFoundError:
        raise AllsError.of("ALS001", f"cannot read {what} `{name}`: no such file") from None
    except OSError as exc:
        raise AllsError.of("ALS001", f"cannot read {what} `{name}`: {exc.strerror or exc}") from None


def _checked_header(f: IO[bytes], name: str, what: str, limits: Limits) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) of the `.npy` open as ``f``: a regular file whose data are all there
    and within limits (ALS027, ALS505)."""
    info = os.fstat(f.fileno())
    if not stat.S_ISREG(info.st_mode):
        raise AllsError.of("ALS505", f"{what} `{name}` is not a regular file",
                           f"save the {what} with numpy.save to a file")
    shape, dtype, offset = _header(f, name, what)
    nbytes = _declared(shape, dtype, name, limits)
    if info.st_size - offset < nbytes:
        raise AllsError.of("ALS505", f"`{name}` is truncated: its header declares {nbytes:,} bytes of data, "
                           f"the file holds {info.st_size - offset:,}", f"save the {what} again with numpy.save")
    return tuple(shape), dtype, offset


class Folder:
    """The images of a folder of `.npy` files, in the order of their names: each file one image
    (H, W, C) or a batch (n, H, W, C), all of one shape and dtype. Every header is checked when the
    folder is opened (`open_array`; ALS029 for a folder without `.npy` files or with files that
    disagree, ALS027 beyond ``max_array_bytes`` in all); the images are read when sliced."""

    def __init__(self, path: str | os.PathLike[str], what: str = "data", limits: Limits | None = None) -> None:
        limits = check_limits(limits)
        self.path, self.what = os.fspath(path), what
        names = sorted(n for n in os.listdir(self.path) if n.endswith(".npy"))
        if not names:
            raise AllsError.of("ALS029", f"the {what} folder `{self.path}` holds no .npy files",
                               "save each image (H, W, C) or batch (n, H, W, C) with numpy.save into the folder")
        self.files, counts, image, total = [], [], None, 0
        for n in names:
            full = os.path.join(self.path, n)
            with _open(full, what) as f:
                shape, dtype, _ = _checked_header(f, full, what, limits)
            if image is None:
                image, self.dtype, self.batched = shape, dtype, False
                self.batched = len(shape) == 4
                image = shape[1:] if self.batched else shape
            one = shape[1:] if self.batched else shape
            if tuple(one) != tuple(image) or dtype != self.dtype or len(shape) != len(image) + self.batched:
                raise AllsError.of("ALS029", f"`{full}` holds {dtype} {shape}; the first file of `{self.path}` "
                                   f"holds {'batches of ' if self.batched else ''}{self.dtype} {tuple(image)}",
                                   "give the folder images of one shape and dtype (each a .npy of one image, or "
                                   "each a batch)")
            total += math.prod(shape) * dtype.itemsize
            if total > limits.max_array_bytes:
                raise refuse("max_array_bytes", total, limits, f"the .npy files of `{self.path}`")
            self.files.append(full)
            counts.append(shape[0] if self.batched else 1)
        self.limits = limits
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.image_shape: tuple[int, ...] = tuple(image or ())
        self.count = int(self.starts[-1])

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.count, *self.image_shape)

    ndim = property(lambda self: 1 + len(self.image_shape))
    size = property(lambda self: math.prod(self.shape))
    nbytes = property(lambda self: self.size * self.dtype.itemsize)

    def __len__(self) -> int:
        return self.count

    def head(self, count: int) -> Folder:
        """The first ``count`` images, still unread."""
        view = object.__new__(Folder)
        view.__dict__.update(self.__dict__)
        view.count = max(0, min(count, self.count))
        return view

    def __getitem__(self, key: slice) -> NDArray[Any]:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("a Folder is read by slices of images")
        start, stop, _ = key.indices(self.count)
        out = np.empty((max(0, stop - start), *self.image_shape), self.dtype)
        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        for index in range(max(first, 0), len(self.files)):
            lo, hi = int(self.starts[index]), int(self.starts[index + 1])
            if lo >= stop:
                break
            data = load_array(self.files[index], self.what, self.limits)
            data = data if self.batched else data[None]
            if data.shape[1:] != self.image_shape or len(data) != hi - lo:
                raise AllsError.of("ALS029", f"`{self.files[index]}` changed since the folder was opened: it holds "
                                   f"{data.shape}", "leave the folder as it is while it is read")
            a, b = max(lo, start), min(hi, stop)
            out[a - start:b - start] = data[a - lo:b - lo]
        return out

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> NDArray[Any]:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)


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
