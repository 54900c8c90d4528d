"""The runtime's threads: Numba's count and BLAS's, set for the duration of a call and put back after.

**Numba.** A runtime call (`runtime_call`: `Runner.quantize`, `QuantizedModel.run`, `analyze`, ...)
runs its kernels on at most ``threads`` threads: its ``threads=`` argument, else the object's own
(``Runner(threads=...)``), else the innermost `using_threads` block's (the command line's
``--threads``), else every core the process may run on (`default_threads`). Within that budget each
kernel call takes as many as its work and the machine's load make worth it
(`alls.runtime.kernels._parallel`). Numba's thread count is set with ``numba.set_num_threads``
for the call and put back when it returns, so the host's own count stays as it was.

**BLAS.**
BLAS threads spin between calls and stall Numba's, so the runtime's float
runs are fastest with single-threaded BLAS. Setting ``OPENBLAS_NUM_THREADS``
in ``os.environ`` would change the host's environment (and works only before
numpy is imported); instead the limit is set on the loaded BLAS libraries
for the duration of one runtime call, with threadpoolctl when it is
installed (the ``threads`` extra), and put back when the call returns
(threadpoolctl's own import sets ``KMP_DUPLICATE_LIB_OK``; that is put back
too). Its view of the loaded libraries is made once and kept until a module
is imported (`_controller`).
Without threadpoolctl BLAS keeps its threads: results are the same.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

__all__ = ["single_threaded_blas", "blas_limited", "runtime_call", "using_threads", "check_threads",
           "default_threads", "most_threads"]

P = ParamSpec("P")
R = TypeVar("R")


_depth = 0


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS at one thread in the block (the outermost of nested blocks sets and restores it)."""
    global _depth
    if _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    controller = _controller()
    if controller is None:
        yield
        return
    _depth += 1
    try:
        with controller.limit(limits=1, user_api="blas"):
            yield
    finally:
        _depth -= 1


_controllers: list[tuple[int, Any]] = []  # (modules imported when it was made, threadpoolctl's controller)


def _controller() -> Any:
    """threadpoolctl's controller of the loaded BLAS libraries, or None without threadpoolctl.

    Making one scans every library the process has loaded (tens of milliseconds with Numba's LLVM
    loaded: more than a small network's whole run), and it knows only the libraries loaded when it is
    made. A native library comes with an import, so the controller is made again only after the
    imported modules have changed in number.
    """
    import sys

    if _controllers and _controllers[-1][0] == len(sys.modules):
        return _controllers[-1][1]
    ThreadpoolController = _threadpoolctl()
    if ThreadpoolController is None:
        return None
    controller = ThreadpoolController()
    _controllers[:] = [(len(sys.modules), controller)]
    return controller


def _threadpoolctl() -> Callable[[], Any] | None:
    """threadpoolctl's controller class, or None; importing it sets ``KMP_DUPLICATE_LIB_OK`` in
    ``os.environ``, which is put back as the host had it."""
    import os
    import sys

    if "threadpoolctl" not in sys.modules:
        had = os.environ.get("KMP_DUPLICATE_LIB_OK")
        try:
            import threadpoolctl  # noqa: F401
        except ImportError:
            return None
        finally:
            if had is None:
                os.environ.pop("KMP_DUPLICATE_LIB_OK", None)
            else:
                os.environ["KMP_DUPLICATE_LIB_OK"] = had
    controller: Callable[[], Any] = sys.modules["threadpoolctl"].ThreadpoolController
    return controller


def blas_limited(function: Callable[P, R]) -> Callable[P, R]:
    """``function`` run with single-threaded BLAS (see above)."""
    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with single_threaded_blas():
            return function(*args, **kwargs)
    return run


# ---------------------------------------------------------------------- Numba's threads

_default: list[int] = []  # the `using_threads` blocks' counts, innermost last


def most_threads() -> int:
    """The most threads a runtime call may use: Numba's pool (``NUMBA_NUM_THREADS``, else the cores)."""
    import numba

    # numba.config sets its settings at import, from the environment: they are not declared
    return int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]


def default_threads() -> int:
    """The threads of a runtime call given none: the innermost `using_threads` block's, else the cores
    this process may run on (within Numba's pool)."""
    import os

    if _default:
        return _default[-1]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, most_threads()))


def check_threads(threads: object) -> int | None:
    """``threads`` as an int, or None (the default); anything but a whole number from 1 to `most_threads`
    raises ALS550."""
    import numbers

    from alls.diagnostics import AllsError

    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
        raise AllsError.of("ALS550", f"threads must be a whole number, not {type(threads).__name__} `{threads!r}`",
                           "give a count such as threads=2, or leave it out to use every core")
    most, count = most_threads(), int(threads)
    if not 1 <= count <= most:
        raise AllsError.of("ALS550", f"threads must lie within 1..{most} (the cores Numba may use), not {threads}",
                           f"give a count from 1 to {most}, or leave it out to use every core")
    return count


@contextlib.contextmanager
def using_threads(threads: int | None) -> Iterator[None]:
    """Runtime calls inside the block that are given no ``threads`` use ``threads`` (None: the cores)."""
    threads = check_threads(threads)
    if threads is None:
        yield
        return
    _default.append(threads)
    try:
        yield
    finally:
        _default.pop()


@contextlib.contextmanager
def numba_threads(threads: int | None) -> Iterator[int]:
    """Numba at ``threads`` inside the block, as its kernels' budget; put back after. None: the enclosing
    runtime call's count (a call made by another keeps its budget), else `default_threads`.

    An outermost call that starts while other processes run on every core but one takes one thread
    for its duration (`_parallel.free_cores`): it is then the same run as a 1-thread call, without
    the per-kernel changes of Numba's count and the work split for threads it would not get."""
    import numba

    from alls.runtime.kernels._parallel import free_cores, scoped, set_budget

    outer = scoped() or None  # (`_parallel.UNASKED`: a float run's Numba count, which this call sets anew)
    count = check_threads(threads) or outer or default_threads()
    if outer is None and count > 1:
        count = min(count, free_cores())
    before = numba.get_num_threads()
    budget = set_budget(count)
    numba.set_num_threads(count)
    try:
        yield count
    finally:
        numba.set_num_threads(before)
        set_budget(budget)


def runtime_call(function: Callable[P, R]) -> Callable[P, R]:
    """``function`` (a method or function with a keyword ``threads``) run with single-threaded BLAS and
    Numba's threads scoped: its ``threads`` argument, else its object's ``threads`` attribute. A kernel
    compiling inside it says so on standard error (`alls.runtime.kernels._compiling`), unless its
    ``progress`` argument (or its object's) is False."""
    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        from alls.runtime.kernels._compiling import compile_notes

        # the call's own arguments (or its object's), checked where they are used
        threads: Any = kwargs.get("threads")
        progress: Any = kwargs.get("progress")
        if args:
            threads = getattr(args[0], "threads", None) if threads is None else threads
            progress = getattr(args[0], "progress", None) if progress is None else progress
        with single_threaded_blas(), numba_threads(threads), compile_notes(progress):
            return function(*args, **kwargs)
    return run
