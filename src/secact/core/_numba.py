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

__all__ = ["kernel", "kernel_threads", "njit", "thread_safe_layer", "threads"]

_pinned = threading.local()


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


@contextlib.contextmanager
def _slp_vectorize() -> Iterator[None]:
    """Compile with LLVM's SLP vectoriser (off by default in Numba), then restore the setting.

    The compiler lock keeps other threads from compiling while the setting is changed.
    """
    from numba.core import config
    from numba.core.compiler_lock import global_compiler_lock

    with global_compiler_lock:
        old = config.SLP_VECTORIZE
        config.SLP_VECTORIZE = 1
        try:
            yield
        finally:
            config.SLP_VECTORIZE = old


def _compiled(dispatcher, args: tuple, vectorize: bool):
    if vectorize:
        types = tuple(dispatcher.typeof_pyval(a) for a in args)
        if types not in dispatcher.overloads:
            with _slp_vectorize():
                dispatcher.compile(types)
    return dispatcher


def kernel(fn: F) -> F:
    """A serial kernel called from other kernels: cached, with fused multiply-adds."""
    return numba.njit(fn, cache=True, nogil=True, fastmath={"contract"})


def njit(fn: F | None = None, /, *, nogil: bool = True, vectorize: bool = False, fastmath: bool = False) -> F:
    """``numba.njit(parallel=True, cache=True)`` with a serial fallback in unsafe threads.

    ``vectorize=True`` compiles with LLVM's SLP vectoriser, which packs the scalar running sums
    of the generated sparse kernels into vector registers; ``fastmath=True`` only allows fused
    multiply-adds (``contract``), nothing that changes results beyond rounding.
    """

    def decorate(f: F) -> F:
        flags = {"fastmath": {"contract"}} if fastmath else {}
        parallel = numba.njit(f, parallel=True, cache=True, nogil=nogil, **flags)
        serial = numba.njit(f, parallel=False, cache=True, nogil=nogil, **flags)

        @wraps(f)
        def call(*args):
            if threading.current_thread() is threading.main_thread() or thread_safe_layer():
                return _compiled(parallel, args, vectorize)(*args)
            return _compiled(serial, args, vectorize)(*args)

        call.parallel = parallel  # type: ignore[attr-defined]
        call.serial = serial  # type: ignore[attr-defined]
        return call  # type: ignore[return-value]

    return decorate if fn is None else decorate(fn)


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run the kernels of this thread with ``n`` threads, then restore the previous count.

    Numba's thread count is thread-local, so this changes nothing for other threads and
    nothing process-wide. Inside, :func:`kernel_threads` keeps ``n`` (a dask task pinned to one
    thread stays at one).
    """
    old = numba.get_num_threads()
    outer = getattr(_pinned, "n", None)
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    _pinned.n = n
    try:
        yield
    finally:
        numba.set_num_threads(old)
        _pinned.n = outer


@contextlib.contextmanager
def kernel_threads() -> Iterator[None]:
    """The thread count for the engine's kernels: what :func:`threads` pinned in this thread,
    else ``secact.settings.n_jobs`` (all cores when unset). A set ``n_jobs`` also limits BLAS
    (through threadpoolctl) for the duration, and restores it afterwards."""
    from .._settings import settings

    pinned = getattr(_pinned, "n", None)
    if pinned is not None:
        yield
        return
    with threads(settings.threads), contextlib.ExitStack() as stack:
        if settings.n_jobs is not None:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=settings.n_jobs, user_api="blas"))
        yield
