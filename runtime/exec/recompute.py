"""Tensors computed again from their inputs when they are read, instead of written to disk.

A pass over many images for a store (`alls.runtime.exec.stream.Store`: finetune's and bias
correction's integer passes) holds every live tensor whole; beyond the store's budget a tensor is
written to a temporary file and read back (`Spill`). The largest tensors of a MobileNet-style
network are the expansions of its blocks (a 1x1 convolution to six times the channels, then a
depthwise 3x3 on them): CenterFace's ``conv3`` is 4.69 GiB of codes over 2048 images at 320x320,
made from an input of 0.8 GiB and read by the next layer only. Writing it and reading it back
costs about 16 s of a shared disk; computing it again from its input, which stays in memory, costs
its 16 MACs per output element, about 6 s of one thread. So where the store would spill a tensor,
a layer that is cheap to compute again from inputs the store holds gives a `Recomputed` instead: a
tensor of the same shape and dtype read by slices of images, each read running the layer's
integer run on the same slices of its inputs (which may themselves be `Recomputed`, a chain, or
spilled, each read then reading theirs from disk).

**The rule** (`worth`): per image, with ``c`` the layer's own run (`run_seconds`: its MACs at
`MAC_SECONDS`, its output elements at `ELEMENT_SECONDS`, its input elements at `INPUT_SECONDS`),
``C`` a run with its inputs read (``c``, every `Recomputed` input's ``C`` and every spilled input's
bytes at `DISK_READ_SECONDS`), ``B`` the output's bytes and ``k`` the full reads it will get, a
spilled tensor costs ``C + B·(DISK_WRITE_SECONDS + k·DISK_READ_SECONDS)`` (run once, written, read
back k times) and a recomputed one ``k·C``. The arithmetic is weighed at `COMPUTE_WEIGHT` times
the disk's time: a pass for a store runs its parts a part a thread so that one part's wait for the
disk is another's arithmetic, and the training and the whole-network check beside it use a core
the disk leaves idle, while arithmetic added takes a core from them; so the tensor is computed
again where ``(k − 1)·C·COMPUTE_WEIGHT ≤ B·(DISK_WRITE_SECONDS + k·DISK_READ_SECONDS)``. A
tensor read once is always computed again (its run is only moved to where it is read); an
expansion's 1x1 convolution on inputs held in memory, read by a layer that is trained on it
(twice), is (1.1 ns a byte, twice that weighed, against 4.0 ns of disk). A chain (a layer on a
`Recomputed` input) is weighed as if read twice at least, so its run, the runs of the chain before
it included, never costs more than the disk's write and two reads of its output: that bounds the
chain, and what a miscounted read can cost (CenterFace's depthwise layers on a recomputed
expansion, 2.8-3.0 ns a byte with the expansion, are spilled). The constants:

- `DISK_WRITE_SECONDS`, `DISK_READ_SECONDS`: CenterFace's 2048-image finetune wrote 12.3 GiB
  to ``/tmp`` in 27-35 s and read it back in about 10 s (a disk shared with other work, about
  400 MB/s): 2.4 ns and 0.8 ns a byte.
- `MAC_SECONDS`, `ELEMENT_SECONDS`, `INPUT_SECONDS`: CenterFace's integer layers of at least
  0.1 MiB a image, over 16 images at 320x320, timed layer by layer on one thread and fitted as
  ``a·MACs + b + c·inputs`` per output element (``inputs``: input elements per output element):
  0.0205 ns, 0.69 ns and 0.62 ns. Measured, per output element: ``conv3`` (1x1, 16 to 96
  channels, 16 MACs) 1.11 ns, the depthwise 3x3 layers of stride 1 1.3-2.1 ns, of stride 2
  (4 input elements each) 3.8-5.0 ns, the 1x1 projections of 64-96 MACs 1.7-2.2 ns, ``conv1``
  (3x3 on 3 channels, stride 2) 2.5 ns, the additions 1.1-1.7 ns. So a 1x1 expansion costs
  about 1.1 ns a byte of its output to compute, a third of the disk's 3.2 ns to write and read it
  once.

**Lifetimes**: a `Recomputed` holds its inputs; the store keeps them (and counts their bytes in
its ``used``) until the `Recomputed` itself is deleted, even after their names are dropped
(`Store.__delitem__`). **Constants**: the run is made from a copy of the layer's integer
constants (`QLayer`) as they were for its first part (the hooks that change a layer, bias
correction and finetune, do so before it runs, never after), so a read gives the bits the pass
computed. Reads run on the reading thread, one part after another (never through
`alls.runtime.exec.pool.each`: a read in a pool thread waits for no other part).

`RECOMPUTE` switches it off (every tensor beyond the budget spilled, as before).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["RECOMPUTE", "Again", "Recomputed", "worth", "run_seconds", "chain_seconds", "read_seconds"]

RECOMPUTE = True

DISK_WRITE_SECONDS = 2.4e-9  # a byte written to the temporary folder (12.3 GiB in 27-35 s)
DISK_READ_SECONDS = 0.8e-9  # a byte read back (12.3 GiB in about 10 s)
MAC_SECONDS = 0.021e-9  # an integer multiply-accumulate, on one thread
ELEMENT_SECONDS = 0.7e-9  # an output element's own work (requantization, the write), on one thread
INPUT_SECONDS = 0.6e-9  # an input element read (centred, padded), on one thread
COMPUTE_WEIGHT = 2.0  # a second of arithmetic weighed as this many of the disk's (see the rule)

Run = Callable[[list[np.ndarray]], np.ndarray]


def run_seconds(macs: float, elements: float, inputs: float) -> float:
    """Seconds of one thread to run a layer of ``macs`` MACs making ``elements`` output elements from
    ``inputs`` input elements."""
    return macs * MAC_SECONDS + elements * ELEMENT_SECONDS + inputs * INPUT_SECONDS


@dataclass(frozen=True)
class Again:
    """How to compute a tensor again: ``freeze()`` gives its run (on a slice of every input, from a
    copy of the layer's constants as they are now), ``inputs`` are what it reads (sliceable by images:
    arrays, `Recomputed`, spilled tensors), ``seconds`` its own run's time per image (`run_seconds`)
    and ``reads`` how many times the tensor will be read whole."""

    freeze: Callable[[], Run]
    inputs: tuple[Any, ...]
    seconds: float
    reads: int


class Recomputed:
    """A tensor computed again from its inputs at every read, by slices of images, as a `Spill` is read."""

    def __init__(self, shape: tuple[int, ...], dtype: DTypeLike, run: Run, inputs: Sequence[Any], seconds: float):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.run, self.inputs = run, tuple(inputs)
        self.seconds = seconds  # a read's time per image: this run's and its inputs' reads (`chain_seconds`)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: object) -> np.ndarray:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("a recomputed tensor is read by slices of images")
        start, stop, _ = key.indices(self.shape[0])
        stop = max(start, stop)
        if start == stop:
            return np.empty((0, *self.shape[1:]), self.dtype)
        out = self.run([np.asarray(x[start:stop]) for x in self.inputs])
        if out.shape != (stop - start, *self.shape[1:]) or out.dtype != self.dtype:
            raise AssertionError(f"a recomputed tensor gave {out.shape} {out.dtype} for images {start}:{stop} "
                                 f"of {self.shape} {self.dtype}")
        return out

    def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)


def read_seconds(x: Any) -> float:
    """Seconds to read an image of an input: nothing for an array, the chain's runs for a `Recomputed`,
    the disk's read of its bytes for anything else (a `Spill`)."""
    if isinstance(x, np.ndarray):
        return 0.0
    if isinstance(x, Recomputed):
        return x.seconds
    return float(x.nbytes) / max(len(x), 1) * DISK_READ_SECONDS


def chain_seconds(again: Again) -> float:
    """Seconds per image to compute the tensor again: its run and the reads of its inputs (`read_seconds`)."""
    return again.seconds + sum(read_seconds(x) for x in again.inputs)


def worth(again: Again, image_bytes: int) -> bool:
    """Whether computing a tensor of ``image_bytes`` a image again at each of its reads costs no more
    than writing it to disk and reading it back (the module's rule)."""
    reads, chain = max(1, again.reads), chain_seconds(again)
    if any(isinstance(x, Recomputed) for x in again.inputs):  # a chain: as if read twice at least
        reads = max(2, reads)
    return (reads - 1) * chain * COMPUTE_WEIGHT <= image_bytes * (DISK_WRITE_SECONDS + reads * DISK_READ_SECONDS)
