"""The runner: the package's one loop over blocks.

Every pass over data — column totals, library sizes and gene means, pseudo-bulk sums,
inference of cells, the gene chunks of differential expression — is a sequence of items
``(start, stop, block)`` given to :func:`run` with a per-block function ``fn(block, start)``
and a ``sink(start, stop, result)`` that receives the results **in order**. Executors:

``"serial"``
    ``fn`` and ``sink`` one after another in this thread.
``"background"``
    ``fn`` here, ``sink`` in a second thread (e.g. writing a file while the next block is
    read and computed); at most two results wait in between.
``"dask"``
    Blocks are dask objects (chunks of a dask array). With a ``dask.distributed`` client the
    function is scattered to the workers once and each block is read and processed in one
    task there (it never travels between workers), at most
    ``max_in_flight`` at a time, while results reach ``sink`` here in order (so a sidecar is
    written while the cluster computes). Without a client blocks run in a local thread pool
    of ``secact.settings.threads`` threads.

Because all paths share this loop and the same per-block functions, every path gives the
same numbers.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeVar

from .._settings import settings
from ._numba import kernel_threads, threads

__all__ = ["Executor", "run", "tick", "ticking"]

R = TypeVar("R")
Executor = Literal["serial", "background", "dask"]
Item = tuple[int, int, Any]


def run(
    items: Iterable[Item],
    fn: Callable[[Any, int], R],
    sink: Callable[[int, int, R], None],
    *,
    executor: Executor = "serial",
    progress: bool | None = None,
    total: int | None = None,
    desc: str = "secact",
    unit: str = "cells",
) -> None:
    """Apply ``fn(block, start)`` to every ``(start, stop, block)`` and hand results to ``sink``.

    Results reach ``sink`` in the order of ``items`` whatever the executor. An exception in
    ``fn`` or ``sink`` stops the run (pending work is cancelled) and is raised here.
    ``progress`` shows a bar counting ``stop - start`` up to ``total``. Kernels called by ``fn``
    use ``secact.settings.n_jobs`` threads (one per task on dask).
    """
    sink = _with_progress(sink, progress, total, desc, unit)
    if isinstance(sink, _ProgressSink) and executor != "dask":  # dask tasks run elsewhere
        fn = _Ticking(fn, sink)
    try:
        if executor == "serial":
            with kernel_threads():
                for start, stop, block in items:
                    sink(start, stop, fn(block, start))
        elif executor == "background":
            with kernel_threads():
                _run_background(items, fn, sink)
        elif executor == "dask":
            _run_dask(items, fn, sink)
        else:
            msg = f"executor must be 'serial', 'background' or 'dask', got {executor!r}."
            raise ValueError(msg)
    finally:
        close = getattr(sink, "close", None)
        if close is not None:
            close()
        # a source's generator holds its file open until it ends: end it now, also on errors
        stop_items = getattr(items, "close", None)
        if stop_items is not None:
            stop_items()


# ----------------------------------------------------------------------------------------------
# progress
# ----------------------------------------------------------------------------------------------
_local = threading.local()


def tick(n: int) -> None:
    """Report ``n`` more rows of the block being computed in this thread as done.

    Long per-block functions (the permutation engine: seconds per cell) call this between
    parts of a block so that a progress bar moves within the block; the block's remaining
    rows are counted when its result reaches the sink. Without a bar this does nothing.
    """
    report = getattr(_local, "report", None)
    if report is not None and n > 0:
        report(n)


def ticking() -> bool:
    """Whether a progress bar counts :func:`tick` calls in this thread (so that work is worth
    splitting into parts)."""
    return getattr(_local, "report", None) is not None


class _Ticking:
    """``fn`` with :func:`tick` in this thread routed to the bar's count for its block."""

    def __init__(self, fn, bar: _ProgressSink):
        self._fn = fn
        self._bar = bar

    def __call__(self, block, start):
        outer = getattr(_local, "report", None)
        _local.report = self._bar.partial(start)
        try:
            return self._fn(block, start)
        finally:
            _local.report = outer


class _ProgressSink:
    def __init__(self, sink, total, desc, unit, show):
        from tqdm.auto import tqdm

        self._sink = sink
        self._lock = threading.Lock()
        self._ticked: dict[int, int] = {}  # rows already counted per block start
        self._bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            unit_scale=True,
            disable=None if show is None else not show,
            leave=False,
            mininterval=0.5,
        )

    def __call__(self, start, stop, result):
        self._sink(start, stop, result)
        with self._lock:
            done = self._ticked.pop(start, 0)
            self._bar.update(max(stop - start - done, 0))

    def partial(self, start: int) -> Callable[[int], None]:
        """A callback counting rows of the block at ``start`` before its result arrives."""

        def report(n: int) -> None:
            with self._lock:
                self._ticked[start] = self._ticked.get(start, 0) + n
                self._bar.update(n)

        return report

    def close(self):
        self._bar.close()


def want_progress(progress: bool | None) -> bool | None:
    """Resolve a ``progress`` argument: explicit values win, then ``secact.settings.progress``,
    then scanpy's verbosity (bars from 'info' up) when scanpy is imported; ``None`` lets tqdm
    show bars on terminals only. scanpy is never imported here (it is slow to import)."""
    if progress is None:
        progress = settings.progress
    if progress is not None:
        return bool(progress)
    import sys

    sc = sys.modules.get("scanpy")
    if sc is not None:
        try:
            return int(sc.settings.verbosity) >= 2
        except (AttributeError, TypeError, ValueError):  # pragma: no cover - odd verbosity
            return False
    return None


def _with_progress(sink, progress, total, desc, unit):
    show = want_progress(progress)
    if show is False:
        return sink
    return _ProgressSink(sink, total, desc, unit, show)


# ----------------------------------------------------------------------------------------------
# executors
# ----------------------------------------------------------------------------------------------
def _run_background(items: Iterable[Item], fn, sink) -> None:
    results: queue.Queue = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def drain() -> None:
        while True:
            item = results.get()
            if item is None:
                return
            if failure:
                continue
            try:
                sink(*item)
            except BaseException as err:
                failure.append(err)

    writer = threading.Thread(target=drain, name="secact-sink", daemon=True)
    writer.start()
    try:
        for start, stop, block in items:
            if failure:
                break
            results.put((start, stop, fn(block, start)))
    finally:
        results.put(None)
        writer.join()
    if failure:
        raise failure[0]


def _apply(fn, block, start):
    """Run on a dask worker or a local pool thread: compute the block there (synchronously),
    then apply ``fn`` with one kernel thread — a worker's parallelism is its threads
    (``threads_per_worker``), as for BLAS, which dask limits too."""
    if hasattr(block, "compute"):
        block = block.compute(scheduler="sync")
    with threads(1):
        return fn(block, start)


def _client():
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


def _ordered(submit: Callable[[Any, int], Any], result: Callable[[Any], Any], cancel, items, sink, window):
    """Keep at most ``window`` submitted blocks in flight; hand results to ``sink`` in order."""
    pending: deque = deque()
    try:
        for start, stop, block in items:
            pending.append((start, stop, submit(block, start)))
            while len(pending) >= window:
                a, b, fut = pending.popleft()
                sink(a, b, result(fut))
        while pending:
            a, b, fut = pending.popleft()
            sink(a, b, result(fut))
    except BaseException:
        for _a, _b, fut in pending:
            cancel(fut)
        raise


def _run_dask(items: Iterable[Item], fn, sink) -> None:
    client = _client()
    if client is not None:
        n_threads = sum(client.nthreads().values()) or 1
        window = settings.max_in_flight or 2 * n_threads
        [fn_remote] = client.scatter([fn], broadcast=True, hash=False)

        def submit(block, start):
            # one task reads and processes its block, so the block never travels between workers
            return client.submit(_apply, fn_remote, block, start, pure=False)

        try:
            _ordered(submit, lambda f: f.result(), lambda f: f.cancel(), items, sink, window)
        finally:
            fn_remote.release()
        return
    from concurrent.futures import ThreadPoolExecutor

    n_threads = settings.threads
    window = settings.max_in_flight or 2 * n_threads
    with ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="secact-block") as pool:
        _ordered(
            lambda block, start: pool.submit(_apply, fn, block, start),
            lambda f: f.result(),
            lambda f: f.cancel(),
            items,
            sink,
            window,
        )
