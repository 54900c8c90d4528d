"""The parts of a pass over many images on the machine's free cores, one Python thread a part.

A layer's kernels split one call's work across threads (`alls.runtime.kernels._parallel`): a
parallel region per layer, whose threads meet at its end. On a pass over many images the parts
(slices of images) are independent instead, so `each` runs every part whole on one thread, as many
parts at once as the call may use threads (its budget, within the cores no other process is running
on now: `_parallel.free_cores`). A part's thread waits for no other: no region to join per layer,
and on a core a neighbour takes, one part runs slower while the others go on. The kernels release
the GIL (`alls.runtime.kernels._common.njit`), as BLAS and NumPy's loops do, so the threads run at
once. Each part runs on Numba at one thread and computes what it computes alone: the same bits as
the parts taken one after another.

Who uses it: the float executor's large batches (`native`), finetune's float pass, an integer
run for a store, whose parts wait on the disk (`emulator._rest`: an integer run in memory keeps each
layer's split, which measured faster), and a trained layer's held-out checks. `ahead` runs a share of
one computation beside the caller (a wide layer's training step). `aside` runs work that is waited for only later (finetune's
check of the start network) on a thread of its own, at a lower priority.

Threads are used only where Numba's threading layer lets two threads start parallel regions at
once (OpenMP, TBB; not the workqueue layer) and after a first part has run (the layer is chosen on
the first parallel kernel call).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

__all__ = ["each", "workers", "ahead", "aside", "aside_running"]

T = TypeVar("T")
R = TypeVar("R")


def workers(parts: int) -> int:
    """Threads for ``parts`` independent parts now: the call's budget, within the free cores and the parts."""
    from alls.runtime.kernels._parallel import budget, free_cores

    if parts < 2 or not _concurrent_regions():
        return 1
    most = min(budget(), parts)
    return max(1, min(most, free_cores())) if most > 1 else 1


def _concurrent_regions() -> bool:
    """Whether two Python threads may run Numba's parallel kernels at once (its threading layer)."""
    import numba

    try:  # numba declares no exports to the type checker
        layer = str(numba.threading_layer())  # type: ignore[attr-defined]
    except ValueError:  # no parallel kernel has run yet
        return False
    return layer in ("omp", "tbb")


def each(items: Sequence[T], work: Callable[[T], R]) -> Iterator[R]:
    """``work(item)`` for every item, in order: on `workers` threads (each item on one, Numba at one
    thread there), as many items in flight as threads; in the calling thread where one."""
    count = workers(len(items))
    if count <= 1:
        yield from map(work, items)
        return
    pool = _threads()
    pending: deque[Future[R]] = deque()
    ahead = iter(items)
    try:
        for item in ahead:
            pending.append(pool.submit(_alone, work, item))
            if len(pending) == count:
                break
        while pending:
            result = pending.popleft().result()
            for item in ahead:
                pending.append(pool.submit(_alone, work, item))
                break
            yield result
    finally:  # an error or a caller that stops early: what is running finishes, what waits is dropped
        for future in pending:
            future.cancel()
        wait(pending)


_pool: list[ThreadPoolExecutor] = []
_pool_lock = threading.Lock()
_asides = [0]  # `aside` works running now


def _threads() -> ThreadPoolExecutor:
    """The process's part threads, started on first use and kept (a layer's parts are a few milliseconds:
    starting threads for each would cost a good share of them)."""
    with _pool_lock:
        if not _pool:
            from alls.runtime.exec.threads import most_threads

            _pool.append(ThreadPoolExecutor(max(2, most_threads()), thread_name_prefix="alls-part"))
        return _pool[0]


def ahead(work: Callable[[], R]) -> Future[R]:
    """``work()`` on a part thread (its kernels on one thread) while the caller goes on with other work: a
    share of one computation that the caller waits for within it (finetune's training step on two cores,
    `alls.runtime.algorithms.reconstruct`). The caller has chosen to use a second thread."""
    return _threads().submit(_alone, lambda _: work(), None)


def aside(work: Callable[[], R]) -> Future[R]:
    """``work()`` on a thread of its own, its kernels on one thread, at a lower priority where the system
    allows one (Linux: a thread's own nice value): work that waits to be asked for, done on a core the
    rest of the run leaves idle. The future's `result` gives it (or raises what it raised)."""
    future: Future[R] = Future()

    def run() -> None:
        _lower_priority()
        try:
            future.set_result(_alone(lambda _: work(), None))
        except BaseException as exc:  # handed to whoever asks for the result
            future.set_exception(exc)
        finally:
            with _pool_lock:
                _asides[0] -= 1

    with _pool_lock:
        _asides[0] += 1

    threading.Thread(target=run, name="alls-aside", daemon=True).start()
    return future


def aside_running() -> bool:
    """Whether an `aside` work is running: it holds the core the rest of the run leaves idle, which
    `_parallel.free_cores` counts as this process's own, so free; work that would take that core beside
    the caller (`ahead`) waits until it is done."""
    return _asides[0] > 0


def _lower_priority() -> None:
    """This thread at nice 10 (Linux takes a thread's id for PRIO_PROCESS); elsewhere as it is."""
    import os

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


def _alone(work: Callable[[T], R], item: T) -> R:
    """``work(item)`` with this thread's kernels at one thread."""
    from alls.runtime.exec.threads import numba_threads

    with numba_threads(1):
        return work(item)
