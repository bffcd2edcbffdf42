"""Numba compilation that stays safe inside thread pools (dask workers, background threads).

Numba's ``workqueue`` threading layer aborts the process when two threads launch parallel
kernels at once. :func:`njit` compiles a parallel and a serial version of a kernel and calls
the serial one from non-main threads whenever the active layer is not thread-safe (``omp``
and ``tbb`` are). fast-array-utils 1.3 has no such wrapper, so it lives here.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from functools import cache, wraps
from typing import TypeVar

import numba

F = TypeVar("F", bound=Callable)

__all__ = ["njit", "thread_safe_layer", "threads"]


@cache
def _layer() -> str:
    @numba.njit(parallel=True, cache=False)
    def _probe(n):  # pragma: no cover - compiled
        s = 0
        for i in numba.prange(n):
            s += i
        return s

    _probe(2)
    return numba.threading_layer()


def thread_safe_layer() -> bool:
    """Whether parallel kernels may be launched from several threads at once."""
    return _layer() in ("omp", "tbb")


def njit(fn: F | None = None, /, *, nogil: bool = True) -> F:
    """``numba.njit(parallel=True, cache=True)`` with a serial fallback in unsafe threads."""

    def decorate(f: F) -> F:
        parallel = numba.njit(f, parallel=True, cache=True, nogil=nogil)
        serial = numba.njit(f, parallel=False, cache=True, nogil=nogil)

        @wraps(f)
        def call(*args):
            if threading.current_thread() is threading.main_thread() or thread_safe_layer():
                return parallel(*args)
            return serial(*args)

        call.parallel = parallel  # type: ignore[attr-defined]
        call.serial = serial  # type: ignore[attr-defined]
        return call  # type: ignore[return-value]

    return decorate if fn is None else decorate(fn)


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run the kernels of this thread with ``n`` threads, then restore the previous count.

    Numba's thread count is thread-local, so this changes nothing for other threads and
    nothing process-wide.
    """
    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(old)
