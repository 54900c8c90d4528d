"""How many threads a parallel kernel call gets: by its work, and by what earlier calls measured.

Every parallel kernel (``prange``) is called through `run`, which sets Numba's thread count for
that one call and puts it back after. The count is chosen so that more threads never cost much
more time than one:

- **the budget**: the most threads the runtime call may use (``threads=`` of the API, ``--threads``
  of the command line, set by `alls.runtime.exec.threads`); outside a runtime call, Numba's
  current count;
- **the work**: a call gets one thread per `WORK_PER_THREAD` multiply-adds, and no more threads
  than it has independent parts (rows, channel blocks), so small layers run on one thread and
  never wake the others;
- **what was measured**: on a machine whose cores are busy, a parallel region waits for a thread
  the system has not scheduled, and a 2-thread call can take several times as long as a 1-thread
  one. So each call site (a kernel at one shape) keeps a running mean of its time on one thread and
  on several, uses the faster (several threads only when at least 10% faster: `MARGIN`), and now
  and then tries the other again (`PROBE_MIN` calls later times how many times slower it was,
  doubling while it keeps losing, up to `PROBE_MAX`), so it follows the machine's load as it changes.
  A call site seen for the first time starts on what the other call sites currently find faster,
  or, before any has been measured, on several threads; its second call tries the other count;
- **the cores free now**: a call never takes more threads than there are cores not running another
  process's task (`free_cores`: the system's runnable tasks less this process's own, sampled at most
  every 0.1 s). A second thread beside a busy neighbour shares a core with it, and a parallel region
  waits for its slowest thread: measured on a 2-core machine with one or two busy neighbours, 2
  threads took 0.9 to 2.6 times as long as 1. So on a machine whose other cores are taken, a call
  runs on one thread, costs what a 1-thread call costs, and is not measured (its time says nothing
  of what several threads give when the cores are free again).

The count never changes a result: every kernel computes each output from the same operations in
the same order whatever the thread count (tested bit for bit).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import numba

__all__ = ["run", "counted", "budget", "scoped", "set_budget", "choose", "split", "free_cores", "WORK_PER_THREAD",
           "UNASKED", "reset"]

UNASKED = 0  # a budget that is Numba's count, not asked yet (`budget` asks it once: it costs a microsecond)
WORK_PER_THREAD = 1 << 21  # about 2 M multiply-adds (20-40 µs on one core): below it, a thread costs more than it gives
PROBE_MIN, PROBE_MAX = 8, 256  # calls between tries of the slower count
_SMOOTH = 0.3  # weight of the newest time in a call site's running mean
MARGIN = 0.9  # several threads are taken only when their mean is below this fraction of one thread's
_SITES = 4096  # call sites remembered (least recently used forgotten)

_local = threading.local()
T = TypeVar("T")


def budget() -> int:
    """The most threads a kernel call may use now: the runtime call's budget, else Numba's count
    (asked here, and kept for the rest of the call where the budget is `UNASKED`)."""
    value = getattr(_local, "budget", None)
    if value is None:
        return numba.get_num_threads()
    if value == UNASKED:
        value = _local.budget = numba.get_num_threads()
    return value


def scoped() -> int | None:
    """This Python thread's budget as a runtime call set it, or None outside one."""
    return getattr(_local, "budget", None)


def set_budget(threads: int | None) -> int | None:
    """Set this Python thread's budget (None: Numba's count); returns the one it replaces."""
    before = getattr(_local, "budget", None)
    _local.budget = threads
    return before


class _Site:
    """One call site's running mean time on one thread (``single``) and on several (``multi``)."""

    __slots__ = ("single", "multi", "calls", "probe_at", "interval")

    def __init__(self) -> None:
        self.single: float | None = None
        self.multi: float | None = None
        self.calls = 0
        self.probe_at = 1
        self.interval = PROBE_MIN


class _Sites:
    """The call sites' measurements, and the evidence across them (``multi_wins``) for new sites."""

    def __init__(self) -> None:
        self.sites: OrderedDict[Hashable, _Site] = OrderedDict()
        self.lock = threading.Lock()
        self.multi_wins = 0  # > 0: several threads were faster at the latest measured sites; < 0: slower

    def get(self, key: Hashable) -> _Site:
        with self.lock:
            site = self.sites.get(key)
            if site is None:
                site = self.sites[key] = _Site()
                if len(self.sites) > _SITES:
                    self.sites.popitem(last=False)
            else:
                self.sites.move_to_end(key)
            return site


_sites = _Sites()


def reset() -> None:
    """Forget every measurement (a benchmark starting a new condition)."""
    global _sites
    _sites = _Sites()


def choose(work: int, parts: int, limit: int | None = None) -> int:
    """Threads for ``work`` units over ``parts`` independent parts, within ``limit`` (default: `budget`)."""
    limit = budget() if limit is None else limit
    return max(1, min(limit, parts, work // WORK_PER_THREAD))


def split(work: int, rows: int, blocks: int) -> int:
    """The parallel axis of a conv: into how many ranges of its ``blocks`` channel blocks each of its
    ``rows`` output rows is cut, so that there are jobs for every thread it may use (1: rows only)."""
    most = choose(work, rows * blocks)
    return 1 if rows >= most else min(blocks, -(-most // rows))


def _pick(site: _Site, most: int) -> int:
    """1 or ``most`` for the next call at ``site``: the faster so far, or the other when its try is due."""
    site.calls += 1
    if site.single is None and site.multi is None:
        return _prior(most)
    if site.single is None or site.multi is None:
        known = 1 if site.single is not None else most
        return known if site.calls < site.probe_at else (most if known == 1 else 1)
    faster, slower = (most, 1) if _multi_faster(site) else (1, most)
    return faster if site.calls < site.probe_at else slower


def _multi_faster(site: _Site) -> bool:
    """Several threads clearly faster at ``site``: a busy machine's noise is no reason to wake threads."""
    return site.multi is not None and site.single is not None and site.multi < MARGIN * site.single


def _prior(most: int) -> int:
    """The count for a call site not measured yet: as the latest measured sites found, else several."""
    return 1 if _sites.multi_wins < 0 else most


def _record(site: _Site, threads: int, seconds: float) -> None:
    """Fold one call's time into ``site``; schedule the next try of the other count.

    A try replaces the other count's mean (the machine may have changed since it was measured); the
    count in use is smoothed. After a try, the next comes `PROBE_MIN` calls later times how many
    times slower the slower count is, and twice as late as the last while the same count keeps losing,
    so that the tries cost a few percent at most.
    """
    first = site.single is None and site.multi is None
    tried = not first and site.calls >= site.probe_at
    slot = "single" if threads == 1 else "multi"
    old = getattr(site, slot)
    setattr(site, slot, seconds if old is None or tried else (1 - _SMOOTH) * old + _SMOOTH * seconds)
    if first:  # try the other count on the next call, unless the other sites agree with this one
        lean = _sites.multi_wins
        agreed = abs(lean) >= 3 and (lean > 0) == (threads > 1)
        site.probe_at = site.calls + (PROBE_MIN if agreed else 1)
        return
    if not tried or site.single is None or site.multi is None:
        return
    multi_faster = _multi_faster(site)
    ratio = max(site.single, site.multi) / max(min(site.single, site.multi), 1e-9)
    spacing = round(PROBE_MIN * min(ratio, PROBE_MAX))
    tried_won = multi_faster == (threads > 1)
    site.interval = min(PROBE_MAX, spacing if tried_won else max(2 * site.interval, spacing))
    site.probe_at = site.calls + site.interval
    _sites.multi_wins = max(-4, min(4, _sites.multi_wins + (1 if multi_faster else -1)))


_load: dict[str, float] = {"at": -1.0, "free": 1.0}
SAMPLE_EVERY = 0.1  # seconds between two looks at the system's runnable tasks


def free_cores() -> int:
    """The cores this process may run on that no other process's task is running on now (at least 1).

    The system's runnable tasks (``/proc/loadavg``'s fourth field) less this process's own runnable
    threads (``/proc/self/task/*/stat``: the calling thread, and a worker still spinning after the last
    parallel region). Where the system's count covers more cores than this process's (a container on
    a larger host), the figure errs low: fewer threads, never a loss against one. Elsewhere (no
    ``/proc``), the one-minute load average stands for the others' tasks. Sampled at most every
    `SAMPLE_EVERY` seconds.
    """
    now = time.monotonic()
    if now - _load["at"] > SAMPLE_EVERY:
        cores = _cores()
        _load.update(at=now, free=float(max(1, min(cores, cores - _others()))))
    return int(_load["free"])


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _others() -> int:
    """Runnable tasks of other processes now."""
    import os

    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return max(0, round(os.getloadavg()[0]) - 1) if hasattr(os, "getloadavg") else 0
    return max(0, running - _own_running())


def _own_running() -> int:
    """This process's runnable threads (at least the calling one)."""
    import os

    own = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/stat", "rb") as f:
                state = f.read().rpartition(b")")[2][1:2]
        except OSError:
            continue
        own += state == b"R"
    return max(1, own)


def run(key: Hashable, work: int, parts: int, kernel: Callable[..., Any], *args: Any) -> Any:
    """``kernel(*args)`` on the threads `choose` and the call site ``key``'s measurements give.

    ``work`` counts multiply-adds (or elements moved); ``parts`` the independent parts the
    kernel's ``prange`` splits (rows, channel blocks).
    """
    if parts <= 1 or work < 2 * WORK_PER_THREAD:  # `counted`'s first answer, without a closure per small call
        return _on(1, kernel, args)
    return counted(key, work, parts, lambda threads: _on(threads, kernel, args))


def counted(key: Hashable, work: int, parts: int, function: Callable[[int], T]) -> T:
    """``function(threads)``, given the count `run` would choose for the call site ``key`` (1, or the most
    `choose` and the free cores allow) and measured as `run` measures a kernel: for work that spreads
    itself over Python threads (BLAS, NumPy's loops and serial kernels beside each other) rather than
    over a parallel region."""
    if parts <= 1 or work < 2 * WORK_PER_THREAD:  # `choose`'s answer without asking the budget
        return function(1)
    most = choose(work, parts)
    if most > 1:
        most = min(most, free_cores())
    if most == 1:
        return function(1)
    site = _sites.get((key, most))
    threads = _pick(site, most)
    start = time.perf_counter()
    result = function(threads)
    _record(site, threads, time.perf_counter() - start)
    return result


def _on(threads: int, kernel: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    # inside a runtime call Numba's count is the budget (set with it, put back by each call here);
    # asking Numba costs microseconds, which a small layer's kernel call does not
    before = budget()
    if threads == before or (threads == 1 and _serial(kernel)):
        return kernel(*args)  # (a kernel without a parallel region runs on the calling thread whatever the count)
    numba.set_num_threads(threads)
    try:
        return kernel(*args)
    finally:
        numba.set_num_threads(before)


def _serial(kernel: Callable[..., Any]) -> bool:
    """Whether ``kernel`` is compiled without a parallel region (Numba's ``parallel`` option unset): its
    one thread needs no change of Numba's count, which costs microseconds each way."""
    options = getattr(kernel, "targetoptions", None)
    return options is not None and not options.get("parallel")
