"""Progress of long work, for a person at a terminal and for a log.

One display for everything that takes time (calibration, equalization,
bias correction, finetune, evaluation, analysis, tune steps, the first
compilation of the kernels). On a terminal it is a one-line bar redrawn in
place; elsewhere (a log, CI, a pipe) it prints a plain line when the work
starts, one every `INTERVAL` seconds while it runs, and one when it ends:

    calibration: 0/8
    calibration: 5/8 (12.1 s)
    calibration: 8/8 done in 19.4 s

``enabled`` is True (always), False (never) or None (the default set by
`configure`, which the command line's ``--quiet`` turns off; initially on).
Everything goes to standard error, so standard output stays the result.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress", "configure", "note", "enabled"]

INTERVAL = 10.0  # seconds between plain lines
_WIDTH = 24
_default = {"enabled": True}


def configure(enabled: bool) -> None:
    """Turn progress (and `note`) on or off for every display whose ``enabled`` is None."""
    _default["enabled"] = bool(enabled)


def enabled(choice: bool | None = None) -> bool:
    """Whether a display asked for with ``choice`` shows."""
    return _default["enabled"] if choice is None else bool(choice)


def note(message: str, choice: bool | None = None, stream: TextIO | None = None) -> None:
    """One line about the work (``compiling the kernels ...``), shown where progress is."""
    if enabled(choice):
        out = stream or sys.stderr
        out.write(message + "\n")
        out.flush()


class Progress:
    """``total`` steps of work called ``label``; `step` after each, `close` at the end (or use ``with``)."""

    def __init__(self, label: str, total: int, enabled: bool | None = None, stream: TextIO | None = None,
                 unit: str = ""):
        self.stream = stream or sys.stderr
        self.enabled = _default["enabled"] if enabled is None else bool(enabled)
        self.tty = self.enabled and _isatty(self.stream)
        self.label, self.total, self.unit = label, max(int(total), 0), unit
        self.done, self.start, self.closed = 0, time.perf_counter(), False
        self.last = self.start
        if self.enabled and not self.tty:
            self._line(f"{self.label}: 0/{self.total}{self.unit}")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def step(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.tty:
            filled = int(_WIDTH * min(self.done, self.total) / max(self.total, 1))
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (_WIDTH - filled)}] {self.done}/{self.total}"
                              f"{self.unit} {now - self.start:.1f}s")
            self.stream.flush()
        elif now - self.last >= INTERVAL and self.done < self.total:
            self.last = now
            self._line(f"{self.label}: {self.done}/{self.total}{self.unit} ({now - self.start:.1f} s)")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
        else:
            self._line(f"{self.label}: {self.done}/{self.total}{self.unit} done in {elapsed:.1f} s")

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
