"""A line on standard error while the runtime's kernels compile: on first use, once per machine.

Numba compiles a kernel on its first call with a new signature and caches the machine code on disk
(``cache=True``), so only a first run, or the first run after an upgrade, compiles. Inside a runtime
call (`alls.runtime.exec.threads.runtime_call`), a listener on Numba's ``numba:compile`` event writes
one line when the first of the runtime's kernels starts compiling and one when each finishes, through
`alls.progress.note` (so the command line's ``--quiet``, or the call's ``progress=False``, silences
them):

    compiling the kernels on first use (tens of seconds, once; cached afterwards)
    compiling the kernels (conv_fast in 6.2 s)

Kernels loaded from the cache fire no event, and a compilation over within half a second
(`QUIET_BELOW`) prints nothing: the first line comes from a timer when a compilation has run that
long, and a kernel's own line only if it took that long. The listener is installed for the call and
removed after it; other Numba code of the host is not reported.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from numba.core import event

from alls.progress import note

__all__ = ["compile_notes", "QUIET_BELOW"]

_PACKAGE = "alls.runtime."
_announced = [False]
QUIET_BELOW = 0.5  # seconds: a compilation this short is not worth a line


class _Notes(event.Listener):
    """Times the outermost compilation of each of the runtime's kernels (those it inlines count in it)."""

    def __init__(self, progress: bool | None) -> None:
        self.depth, self.began, self.name, self.progress = 0, 0.0, "", progress
        self.timer: threading.Timer | None = None
        self.lock = threading.Lock()

    def announce(self) -> None:
        with self.lock:
            if not _announced[0]:
                _announced[0] = True
                note("compiling the kernels on first use (tens of seconds, once; cached afterwards)", self.progress)

    def on_start(self, ev: Any) -> None:
        self.depth += 1
        if self.depth > 1:
            return
        func = ev.data["dispatcher"].py_func
        self.name = func.__name__ if func.__module__.startswith(_PACKAGE) else ""
        self.began = time.perf_counter()
        if self.name and not _announced[0]:
            # Numba compiles in LLVM through ctypes, which lets the timer's thread run meanwhile.
            self.timer = threading.Timer(QUIET_BELOW, self.announce)
            self.timer.daemon = True
            self.timer.start()

    def on_end(self, ev: Any) -> None:
        self.depth -= 1
        if self.depth or not self.name:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        took = time.perf_counter() - self.began
        if took >= QUIET_BELOW:
            self.announce()
            note(f"compiling the kernels ({self.name} in {took:.1f} s)", self.progress)


@contextlib.contextmanager
def compile_notes(progress: bool | None = None) -> Iterator[None]:
    """Report the runtime's kernels compiling inside the block (see the module's text); ``progress`` as
    `alls.progress.note` takes it (None: the default, which ``--quiet`` turns off)."""
    with event.install_listener("numba:compile", _Notes(progress)):
        yield
