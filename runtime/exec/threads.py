"""BLAS threads, limited for the duration of a call and put back after.

BLAS threads spin between calls and stall Numba's, so the runtime's float
runs are fastest with single-threaded BLAS. Setting ``OPENBLAS_NUM_THREADS``
in ``os.environ`` would change the host's environment (and works only before
numpy is imported); instead the limit is set on the loaded BLAS libraries
for the duration of one runtime call, with threadpoolctl when it is
installed (the ``threads`` extra), and put back when the call returns
(threadpoolctl's own import sets ``KMP_DUPLICATE_LIB_OK``; that is put back
too).
Without threadpoolctl BLAS keeps its threads: results are the same.
"""

from __future__ import annotations

import contextlib
import functools

__all__ = ["single_threaded_blas", "blas_limited"]


_depth = 0


@contextlib.contextmanager
def single_threaded_blas():
    """BLAS at one thread in the block (the outermost of nested blocks sets and restores it)."""
    global _depth
    if _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    ThreadpoolController = _threadpoolctl()
    if ThreadpoolController is None:
        yield
        return
    _depth += 1
    try:  # a new controller each time: it knows only the libraries loaded when it is made
        with ThreadpoolController().limit(limits=1, user_api="blas"):
            yield
    finally:
        _depth -= 1


def _threadpoolctl():
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
    return sys.modules["threadpoolctl"].ThreadpoolController


def blas_limited(function):
    """``function`` run with single-threaded BLAS (see above)."""
    @functools.wraps(function)
    def run(*args, **kwargs):
        with single_threaded_blas():
            return function(*args, **kwargs)
    return run
