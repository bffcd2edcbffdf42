"""The one runner: drives blocks of samples through a block function into a sink.

Every path (in-memory, backed, ``.h5ad`` path, dask, GPU) produces blocks of rows and hands
them to the same :class:`BlockJob`, so every path computes the same numbers.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from .engine import BlockStats, Engine

__all__ = ["STATS", "BlockJob", "run_blocks"]

STATS = ("beta", "se", "zscore", "pvalue")


@dataclass(eq=False)
class BlockJob:
    """What to do with one block of samples, given as a picklable object.

    Parameters
    ----------
    engine
        The engine for the run (model, method, permutations, per-gene offset).
    prepare
        Turns a raw block (and its first row index) into the engine's input block over the
        overlap genes and a boolean mask of rows whose results must be NaN.
    row_index
        Model column of each output protein (expansion of signature groups).
    """

    engine: Engine
    prepare: Callable[[object, int], tuple[object, np.ndarray]]
    row_index: np.ndarray

    def __call__(self, block, start: int = 0) -> BlockStats:
        values, invalid = self.prepare(block, start)
        stats = self.engine.run(values)
        out = {k: getattr(stats, k)[:, self.row_index] for k in STATS}
        if invalid.any():
            for v in out.values():
                v[invalid] = np.nan
        return BlockStats(**out)

    def stacked(self, block, start: int = 0) -> np.ndarray:
        """The four statistics stacked as one ``(4, rows, proteins)`` array (for dask)."""
        stats = self(block, start)
        return np.stack([getattr(stats, k) for k in STATS])


def run_blocks(
    job: BlockJob,
    blocks: Iterable[tuple[int, int, object]],
    sink: Callable[[int, int, BlockStats], None],
    *,
    background: bool = False,
) -> None:
    """Run ``job`` on every ``(start, stop, block)`` and give each result to ``sink``, in order.

    With ``background=True`` the sink runs in a second thread (e.g. writing a file) while the
    next block is read and computed; at most two results wait in between. An exception in
    either thread stops both and is raised here.
    """
    if not background:
        for start, stop, block in blocks:
            sink(start, stop, job(block, start))
        return
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
        for start, stop, block in blocks:
            if failure:
                break
            results.put((start, stop, job(block, start)))
    finally:
        results.put(None)
        writer.join()
    if failure:
        raise failure[0]
