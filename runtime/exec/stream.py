"""Data in batches, within a memory limit: images read as they are used, tensors spilled to disk.

The big jobs (calibration, bias correction, finetune, evaluation) read their images a batch at a
time and keep the tensors of a pass over all of them within a memory limit
(`DEFAULT_MEMORY_LIMIT`, ``memory_limit=`` on the Runner, ``--memory-limit`` on the command line):

- `Source`: the images of one input, from an array, a memory-mapped ``.npy`` or a folder of
  ``.npy`` files (`alls.runtime.exec.folder`), read as NCHW float32 one slice at a time. Pages of a
  memory-mapped file are given back after each read, so the file never becomes resident whole.
- `Store`: the live tensors of a pass over many images, held in memory while they fit its budget,
  beyond it written to an unlinked temporary file and read back a part at a time (``pread``;
  never mapped, so what is read back is this process's memory only while it is used), or, for a
  layer cheap to run again on inputs the store holds, computed again at every read
  (`alls.runtime.exec.recompute`).

Reading a slice gives the same bytes as slicing the whole array, and every layer treats its
images independently, so a streamed run computes what the run in memory computes, bit for bit.
"""

from __future__ import annotations

import math
import mmap
import os
import tempfile
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, overload

import numpy as np
from numpy.typing import DTypeLike

from alls.diagnostics import AllsError
from alls.runtime.exec import recompute
from alls.runtime.exec.recompute import Again, Recomputed

__all__ = ["DEFAULT_MEMORY_LIMIT", "Source", "Spill", "Store", "Recomputed", "check_memory_limit", "parse_memory_limit",
           "is_streamed", "part_size", "read", "blocks"]

DEFAULT_MEMORY_LIMIT = 4 << 30
MIN_MEMORY_LIMIT = 64 << 20
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
          "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}


def check_memory_limit(value: object) -> int:
    """``value`` (bytes, or None for the default) as an int of at least `MIN_MEMORY_LIMIT`: TypeError, or ALS560."""
    if value is None:
        return DEFAULT_MEMORY_LIMIT
    if isinstance(value, str):
        return parse_memory_limit(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"memory_limit must be a number of bytes (an int) or None, not {type(value).__name__}")
    if value < MIN_MEMORY_LIMIT:
        raise AllsError.of("ALS560", f"memory_limit of {int(value):,} bytes is below the least a run needs "
                           f"({MIN_MEMORY_LIMIT >> 20} MiB)",
                           "give the limit in bytes, or as text: \"4GiB\", \"512MiB\"")
    return int(value)


def parse_memory_limit(text: str) -> int:
    """``"4GiB"``, ``"512M"``, ``"2.5g"`` or a number of bytes; ALS560 for anything else."""
    body = text.strip().lower().replace(" ", "").replace("_", "")
    number = body.rstrip("kmgtib")
    unit = body[len(number):]
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    if unit not in _UNITS or not math.isfinite(value) or value <= 0:
        raise AllsError.of("ALS560", f"`{text}` is not a memory size",
                           "write a size such as 4GiB, 512MiB or 6000000000 (bytes)")
    return check_memory_limit(int(value * _UNITS[unit]))


# ------------------------------------------------------------------ sources


def _mapping(array: object) -> mmap.mmap | None:
    """The memory map under ``array`` (a `numpy.memmap` or a view of one), if any."""
    seen = 0
    while array is not None and seen < 64:
        if isinstance(array, mmap.mmap):
            return array
        array = getattr(array, "base", None)
        seen += 1
    return None


def _give_back(array: object) -> None:
    """Drop the resident pages of the file mapped under ``array`` (they stay in the page cache)."""
    mapping = _mapping(array)
    if mapping is not None and hasattr(mapping, "madvise"):
        try:
            mapping.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):
            pass


def read(array: Any, key: slice) -> np.ndarray:
    """``array[key]`` as a fresh array; a memory-mapped file's pages are given back after the copy."""
    part = np.array(array[key])
    _give_back(array)
    return part


class Source:
    """The images of one input as NCHW float32, read one slice at a time.

    ``array`` is anything sliceable along its first axis with ``shape`` and ``dtype`` (an array, a
    `numpy.memmap`, a `Folder`); ``convert`` turns a slice of it into NCHW float32 (the layout
    and dtype checks of `to_nchw`); ``transform`` is applied to every batch after that (the
    script's normalization). Slicing a `Source` with a slice gives an array; `head` and `map`
    give new sources.
    """

    def __init__(self, array: Any, convert: Callable[[np.ndarray], np.ndarray], shape: tuple[int, ...],
                 transform: Callable[[np.ndarray], np.ndarray] | None = None, count: int | None = None):
        self.array, self.convert, self.transform = array, convert, transform
        self.count = len(array) if count is None else min(count, len(array))
        self.image_shape = tuple(shape)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.count, *self.image_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.image_shape)

    dtype = np.dtype(np.float32)

    @property
    def nbytes(self) -> int:
        return 4 * math.prod(self.shape)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, key: object) -> np.ndarray:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("a Source is read by slices of images")
        start, stop, _ = key.indices(self.count)
        x = self.convert(read(self.array, slice(start, max(start, stop))))
        return self.transform(x) if self.transform is not None else x

    def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)

    def head(self, count: int) -> Source:
        """The first ``count`` images, still read lazily."""
        return Source(self.array, self.convert, self.image_shape, self.transform, min(count, self.count))

    def map(self, transform: Callable[[np.ndarray], np.ndarray]) -> Source:
        """The same images with ``transform`` applied to every batch read (after any earlier one)."""
        first = self.transform
        both = transform if first is None else (lambda x: transform(first(x)))
        return Source(self.array, self.convert, self.image_shape, both, self.count)


def is_streamed(x: object) -> bool:
    """Whether ``x`` is read in parts (a `Source`, a `Spill` or a `Recomputed`) rather than held as an array."""
    return isinstance(x, (Source, Spill, Recomputed))


def blocks(count: int, image_bytes: int, budget: int) -> Iterator[slice]:
    """Slices of at most ``budget`` bytes of images (at least one image each) covering ``count`` images."""
    step = part_size(count, image_bytes, budget)
    for start in range(0, count, step):
        yield slice(start, min(start + step, count))


def part_size(count: int, image_bytes: int, budget: int) -> int:
    """Images per part so that a part holds about ``budget`` bytes (at least one image)."""
    return max(1, min(count, budget // max(image_bytes, 1)))


# ------------------------------------------------------------------- spills


class Spill:
    """A tensor written to an unlinked temporary file, read and written by slices of images."""

    def __init__(self, shape: tuple[int, ...], dtype: DTypeLike, folder: str | None = None):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.row = math.prod(self.shape[1:]) * self.dtype.itemsize
        try:
            self.file = tempfile.TemporaryFile(dir=folder, prefix="alls-spill-")
        except OSError as exc:
            raise AllsError.of("ALS561", f"cannot make a temporary file for a tensor beyond the memory limit "
                               f"({exc.strerror or exc})", "point TMPDIR at a folder this process may write, "
                               "or raise --memory-limit") from None
        try:
            os.ftruncate(self.file.fileno(), self.row * self.shape[0])
        except OSError as exc:
            self.file.close()
            raise AllsError.of("ALS561", f"cannot make a temporary file of {self.row * self.shape[0] / 2**30:.1f} GiB "
                               f"for a tensor beyond the memory limit ({exc.strerror or exc})",
                               "free disk space in the temporary folder (TMPDIR), or raise --memory-limit") from None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return self.row * self.shape[0]

    def __len__(self) -> int:
        return self.shape[0]

    def _range(self, key: object) -> tuple[int, int]:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("a spilled tensor is read and written by slices of images")
        start, stop, _ = key.indices(self.shape[0])
        return start, max(start, stop)

    def __getitem__(self, key: object) -> np.ndarray:
        start, stop = self._range(key)
        out = np.empty((stop - start, *self.shape[1:]), self.dtype)
        # numpy declares the buffer protocol to the type checker for Python 3.12 and later only
        view, done, offset = memoryview(out.reshape(-1).view(np.uint8)), 0, start * self.row  # type: ignore[arg-type]
        while done < out.nbytes:
            got = os.preadv(self.file.fileno(), [view[done:]], offset + done)
            if got <= 0:
                raise AllsError.of("ALS561", "a temporary file of a tensor beyond the memory limit came back short",
                                   "check the temporary folder (TMPDIR) and its disk")
            done += got
        return out

    def __setitem__(self, key: object, value: np.ndarray) -> None:
        start, stop = self._range(key)
        data = np.ascontiguousarray(value, self.dtype)
        if data.shape != (stop - start, *self.shape[1:]):
            raise ValueError(f"cannot write {data.shape} into images {start}:{stop} of {self.shape}")
        view, done, offset = memoryview(data.reshape(-1).view(np.uint8)), 0, start * self.row  # type: ignore[arg-type]
        try:
            while done < data.nbytes:
                done += os.pwritev(self.file.fileno(), [view[done:]], offset + done)
        except OSError as exc:
            raise AllsError.of("ALS561", f"cannot write a tensor beyond the memory limit to the temporary folder "
                               f"({exc.strerror or exc})", "free disk space in the temporary folder (TMPDIR), "
                               "or raise --memory-limit") from None

    def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)

    def close(self) -> None:
        self.file.close()


class Store(MutableMapping[str, Any]):
    """Tensors by name, in memory while their bytes stay within ``budget``, spilled beyond it.

    `allocate` gives an array when the tensor fits what is left, else a `Spill`, or, given how to
    compute the tensor again (`Again`) where that is worth it (`recompute.worth`) and its inputs
    are this store's (arrays, `Recomputed` or `Spill` tensors), a `Recomputed`. Deleting a name (the run's
    `Readers` does, once the last reader has run) frees its memory or closes its file, but not while a
    `Recomputed` reads it: the inputs of a `Recomputed` stay (and stay counted in ``used``) until
    it is deleted itself. ``spilled`` and ``recomputed`` count the bytes of the tensors given each way.
    """

    def __init__(self, budget: int, folder: str | None = None):
        self.budget, self.folder = budget, folder
        self.used = self.peak = self.spilled = self.recomputed = 0
        self._values: dict[str, object] = {}
        self._readers: dict[int, list[Any]] = {}  # id: [Recomputed reading it, the value, its name dropped]

    @overload
    def allocate(self, shape: tuple[int, ...], dtype: DTypeLike) -> np.ndarray | Spill: ...

    @overload
    def allocate(self, shape: tuple[int, ...], dtype: DTypeLike, again: Again | None) -> np.ndarray | Spill | Recomputed: ...

    def allocate(self, shape: tuple[int, ...], dtype: DTypeLike,
                 again: Again | None = None) -> np.ndarray | Spill | Recomputed:
        """A tensor of ``shape``: an array within the budget, else a `Recomputed` (``again`` given and worth
        it; its inputs are held until it is deleted, so it is to be stored), else a `Spill`."""
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if self.used + nbytes <= self.budget:
            return np.empty(shape, dtype)
        if again is not None and self._may_recompute(again, nbytes // max(shape[0], 1)):
            made = Recomputed(shape, dtype, again.freeze(), again.inputs, recompute.chain_seconds(again))
            for x in {id(x): x for x in made.inputs}.values():
                self._readers.setdefault(id(x), [0, x, False])[0] += 1
            self.recomputed += nbytes
            return made
        self.spilled += nbytes
        return Spill(shape, dtype, self.folder)

    def _may_recompute(self, again: Again, image_bytes: int) -> bool:
        """Whether ``again``'s inputs are all held here (arrays, `Recomputed` or `Spill`) and it is worth it."""
        if not recompute.RECOMPUTE:
            return False
        held = {id(value) for value in self._values.values()}
        return (all(isinstance(x, (np.ndarray, Recomputed, Spill)) and id(x) in held for x in again.inputs)
                and recompute.worth(again, image_bytes))

    def __setitem__(self, name: str, value: Any) -> None:
        if name in self._values:
            del self[name]
        self._values[name] = value
        if isinstance(value, np.ndarray):
            self.used += value.nbytes
            self.peak = max(self.peak, self.used)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __delitem__(self, name: str) -> None:
        value = self._values.pop(name)
        read = self._readers.get(id(value))
        if read is not None:  # a Recomputed reads it: freed when the last one is
            read[2] = True
        else:
            self._free(value)

    def _free(self, value: object) -> None:
        if isinstance(value, np.ndarray):
            self.used -= value.nbytes
        elif isinstance(value, Spill):
            value.close()
        elif isinstance(value, Recomputed):
            for x in {id(x): x for x in value.inputs}.values():
                read = self._readers[id(x)]
                read[0] -= 1
                if read[0] == 0:
                    del self._readers[id(x)]
                    if read[2]:
                        self._free(x)

    @property
    def held(self) -> int:
        """Values held for a `Recomputed` after their names were dropped."""
        return sum(1 for read in self._readers.values() if read[2])

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def close(self) -> None:
        for name in list(self._values):
            del self[name]
