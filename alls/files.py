"""Files the tool reads and writes: kinds checked, outputs that cannot destroy.

Every file `alls` writes goes through `write_file`: the bytes go to a
temporary file in the target's folder (``.alls-<pid>-<random>.tmp``), which
is renamed over the target only when complete, with the mode a new file
gets under the user's umask (or the mode of the file it replaces). Only
regular files are written: a folder, FIFO or device is refused, and so is a
symbolic link unless the caller resolves it (`fmt` rewrites the file a link
points to). SIGTERM during a write removes the temporary file, as Ctrl-C
does; temporary files left by a killed process are removed, and reported,
the next time something is written into their folder.

`check_output` runs the same checks before any work starts, so a job that
cannot write its result fails in a second instead of after an hour.
`file_kind` tells a NumPy array from an archive, a model or a script by
their first bytes, so a file given in the wrong place gets a named error.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import IO, NoReturn

from alls.diagnostics import AllsError, Diagnostic, Severity

__all__ = ["check_output", "check_folder", "write_file", "remove_stale", "file_kind", "expect_kind", "KINDS", "umask"]

TEMP_PREFIX = ".alls-"
TEMP_SUFFIX = ".tmp"
_TEMP = re.compile(r"^\.alls-(\d+)-[^/]*\.tmp$")

# What each kind is, for messages.
KINDS = {
    "npy": "a NumPy array (.npy)",
    "npz": "a NumPy archive (.npz)",
    "onnx": "an ONNX model (.onnx)",
    "text": "a text file",
    "binary": "a binary file",
    "empty": "an empty file",
}


def umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------- reading


def file_kind(path: str | os.PathLike[str]) -> str:
    """``npy``, ``npz``, ``onnx``, ``text``, ``binary`` or ``empty``, by the file's first bytes."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        return "empty"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "npz"
    if b"\0" not in head:
        try:
            head.decode("utf-8")
            return "text"
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 3:  # a character cut at the end of the sample
                return "text"
    # An ONNX model is a protobuf whose first field is ir_version (field 1, varint: 0x08).
    if head[:1] == b"\x08" and str(path).lower().endswith(".onnx"):
        return "onnx"
    return "binary"


def expect_kind(path: str | os.PathLike[str], kinds: tuple[str, ...], role: str, help: str = "") -> str:
    """The kind of ``path`` when it is one of ``kinds``; ALS001 when it cannot be read, ALS007 when it is
    another kind of file (``role`` says what the file was given as)."""
    p = pathlib.Path(path)
    try:
        mode = os.stat(p).st_mode
        if stat.S_ISDIR(mode):
            raise AllsError.of("ALS001", f"cannot read {role} `{path}`: it is a directory")
        if not stat.S_ISREG(mode):  # a FIFO would block the read, a device never end
            raise AllsError.of("ALS001", f"cannot read {role} `{path}`: not a regular file (a FIFO, socket or "
                               "device)", "pass a file; `-` reads standard input where a command allows it")
        kind = file_kind(p)
    except FileNotFoundError:
        raise AllsError.of("ALS001", f"cannot read {role} `{path}`: no such file") from None
    except OSError as exc:
        raise AllsError.of("ALS001", f"cannot read {role} `{path}`: {exc.strerror or exc}") from None
    if kind not in kinds:
        wanted = " or ".join(KINDS[k] for k in kinds)
        raise AllsError.of("ALS007", f"{role} `{path}` is {KINDS[kind]}, not {wanted}", help)
    return kind


# ----------------------------------------------------------------- writing


def check_folder(path: str | os.PathLike[str], what: str = "output") -> pathlib.Path:
    """The folder a file will be written into: it must exist and be writable (ALS002, ALS003)."""
    folder = pathlib.Path(os.path.abspath(path)).parent
    if not folder.is_dir():
        raise AllsError.of("ALS002", f"cannot write {what} `{path}`: the folder `{folder}` does not exist",
                           f"create it first (`mkdir -p {folder}`), or write somewhere else")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise AllsError.of("ALS003", f"cannot write {what} `{path}`: the folder `{folder}` is not writable",
                           "write somewhere you have permission to")
    return folder


def check_output(path: str | os.PathLike[str], force: bool = False, *, what: str = "output",
                 follow_links: bool = False, force_flag: str = "--force") -> list[Diagnostic]:
    """Refuse, before any work, a target that `write_file` would refuse or that needs ``force``.

    ALS002 missing folder, ALS003 folder not writable, ALS004 an existing file without ``force``,
    ALS005 a directory, FIFO or device, ALS006 a symbolic link (unless ``follow_links``). Returns the
    warnings about stale temporary files it removed from the folder (ALS010).
    """
    if str(path) == "":
        raise AllsError.of("ALS002", f"no path given for the {what}")
    if follow_links:
        path = os.path.realpath(path)
    elif os.path.islink(path):
        raise AllsError.of("ALS006", f"{what} `{path}` is a symbolic link; alls does not write through links",
                           f"write to the file it points to (`{os.path.realpath(path)}`), or remove the link")
    folder = check_folder(path, what)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return remove_stale(folder)
    except OSError as exc:
        raise AllsError.of("ALS003", f"cannot write {what} `{path}`: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, socket or device)"
        raise AllsError.of("ALS005", f"{what} `{path}` is {kind}", "name a file to write")
    if not force:
        raise AllsError.of("ALS004", f"{what} `{path}` exists", f"pass {force_flag} to overwrite it")
    return remove_stale(folder)


def remove_stale(folder: str | os.PathLike[str]) -> list[Diagnostic]:
    """Remove the temporary files that processes which no longer run left in ``folder``; ALS010 for each."""
    found = []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    for name in names:
        match = _TEMP.match(name)
        if match is None or _alive(int(match.group(1))):
            continue
        path = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.unlink(path)
                found.append(Diagnostic("ALS010", Severity.WARNING, f"removed `{path}`, a temporary file left by "
                                        "an interrupted run", help="the run that left it wrote nothing"))
    return found


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def write_file(path: str | os.PathLike[str], content: str | bytes | Callable[[IO[bytes]], None], *,
               what: str = "output", follow_links: bool = False) -> pathlib.Path:
    """Write ``content`` (text as UTF-8, bytes, or a function that writes into a binary file) to ``path``
    atomically; the path written. Raises `AllsError` (ALS002-ALS006) where the target cannot take it.

    Existing files are replaced, keeping their mode; `check_output` decides beforehand whether that is
    allowed. ``follow_links`` writes the file a symbolic link points to (for rewriting a file in place).
    """
    target = pathlib.Path(os.path.realpath(path) if follow_links else path)
    check_output(target, force=True, what=what, follow_links=False)
    folder = target.parent if target.is_absolute() else pathlib.Path(os.path.abspath(target)).parent
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~umask()
    with _temporary(folder) as (handle, tmp):
        if callable(content):
            content(handle)
        else:
            handle.write(content.encode("utf-8") if isinstance(content, str) else content)
        handle.flush()
        os.fchmod(handle.fileno(), mode)
        handle.close()
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise AllsError.of("ALS003", f"cannot write {what} `{path}`: {exc.strerror or exc}") from None
    return target


@contextlib.contextmanager
def _temporary(folder: pathlib.Path) -> Iterator[tuple[IO[bytes], str]]:
    """A temporary file in ``folder``, removed unless renamed away, even on SIGTERM or Ctrl-C."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=TEMP_SUFFIX, dir=folder)
    except OSError as exc:
        raise AllsError.of("ALS003", f"cannot write into `{folder}`: {exc.strerror or exc}") from None
    handle = os.fdopen(fd, "wb")
    try:
        with _terminate_as_interrupt():
            yield handle, tmp
    except OSError as exc:
        raise AllsError.of("ALS003", f"cannot write into `{folder}`: {exc.strerror or exc}") from None
    finally:
        handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises KeyboardInterrupt (so cleanup runs); the old handler after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> NoReturn:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
