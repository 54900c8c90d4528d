"""How much memory this process may still use: the tightest of the machine's, the process limit's
and the control group's.

`/proc/meminfo` tells what the machine has free; a job can still be killed
long before that by its own limits: the address-space limit (``ulimit -v``,
RLIMIT_AS) or the memory limit of its control group (a container, a
systemd unit, a batch scheduler). `available_memory` takes the smallest of
them, so a check (ALS507) made before a job starts holds for the job.
"""

from __future__ import annotations

import os
import pathlib

__all__ = ["available_memory", "machine_available", "rlimit_available", "cgroup_available"]

_UNKNOWN = 1 << 62


def available_memory() -> int:
    """Bytes this process can still allocate, as far as the machine, RLIMIT_AS and the cgroup tell."""
    return min(machine_available(), rlimit_available(), cgroup_available())


def machine_available() -> int:
    """MemAvailable, or the physical memory where that is unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return _UNKNOWN


def rlimit_available() -> int:
    """The address-space limit less the address space in use (VmSize), or unknown (a very large number)."""
    try:
        import resource
    except ImportError:  # not POSIX
        return _UNKNOWN
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft < 0:
        return _UNKNOWN
    return max(0, soft - _vm_size())


def _vm_size() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def cgroup_available(proc_cgroup: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> int:
    """The tightest (limit - usage) of this process's control group and its ancestors (v2 ``memory.max``,
    v1 ``memory.limit_in_bytes``), or unknown (a very large number)."""
    try:
        lines = pathlib.Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return _UNKNOWN
    best = _UNKNOWN
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # v2: the unified hierarchy
            best = min(best, _walk(pathlib.Path(root), path, "memory.max", "memory.current"))
        elif "memory" in controllers.split(","):  # v1
            best = min(best, _walk(pathlib.Path(root) / "memory", path, "memory.limit_in_bytes",
                                   "memory.usage_in_bytes"))
    return best


def _walk(base: pathlib.Path, path: str, limit_file: str, usage_file: str) -> int:
    """min(limit - usage) from the group at ``path`` up to the root of ``base``."""
    best = _UNKNOWN
    folder = base / path.strip("/")
    while True:
        limit, usage = _read_number(folder / limit_file), _read_number(folder / usage_file)
        if limit is not None and limit < _UNKNOWN:
            best = min(best, max(0, limit - (usage or 0)))
        if folder == base or base not in folder.parents:
            return best
        folder = folder.parent


def _read_number(path: pathlib.Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None
