"""The activity pipeline: pure per-block functions and the passes that drive them.

Each per-block function is a small picklable object called as ``fn(block, start)`` (the same
objects run in this process, in a background thread, or on dask workers). Each pass hands
a block source's items to :func:`secact.core.runner.run` with one of them and a sink:

* :func:`column_totals` — each input gene's total (to resolve duplicated symbols as R);
* :func:`cell_means` — library sizes and each overlap gene's (weighted) mean after
  normalisation: the centre of the cell-level response;
* :func:`group_profiles` — pseudo-bulk sums per group;
* :func:`cell_activity` — the engine on every block of cells;
* :func:`infer_matrix` — the engine on a small samples x genes matrix (bulk and groups).

A *block source* is any object with ``n_obs``, ``executor`` (``"serial"`` or ``"dask"``)
and ``row_blocks(batch_size, columns)`` yielding ``(start, stop, block)`` (see
:mod:`secact.io`). Gene mapping is given as a callable ``block -> block`` (``None``: the
columns are used as they are).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from fast_array_utils import types

from .._checks import EmptyLibraryWarning
from .._settings import settings
from . import runner
from ._kernels import expand_columns
from ._numba import kernel_threads
from .engine import NEAR_CONSTANT, BlockStats, Engine
from .normalize import check_counts, check_finite, cpm_log2, group_sums, library_sizes, log_normalize
from .plan import Plan

__all__ = [
    "STATS",
    "BlockJob",
    "Input",
    "cell_activity",
    "cell_means",
    "column_totals",
    "group_profiles",
    "infer_matrix",
]

Input = Literal["counts", "log", "differential"]
STATS = ("beta", "se", "zscore", "pvalue")
Mapper = Callable[[Any], Any] | None


def _columns(block, idx: np.ndarray | None):
    if idx is None:
        return block
    out = block[:, idx]
    return out.tocsr() if isinstance(out, types.CSBase) else np.asarray(out, dtype=np.float64)


def _map(mapper: Mapper, block):
    return block if mapper is None else mapper(block)


# ----------------------------------------------------------------------------------------------
# per-block functions
# ----------------------------------------------------------------------------------------------
@dataclass(eq=False)
class Totals:
    """Column sums of a block (after the finite check)."""

    def __call__(self, block, start: int) -> np.ndarray:
        check_finite(block, start)
        return np.asarray(block.sum(axis=0), dtype=np.float64).ravel()


@dataclass(eq=False)
class CellMeans:
    """Library sizes of a block's cells and the weighted sums of their normalised values."""

    mapper: Mapper
    overlap: np.ndarray  # mapped-gene positions of the overlap genes
    input: Input
    scale_factor: float
    weights: np.ndarray | None  # per cell (reference mask), or None

    def __call__(self, block, start: int):
        check_finite(block, start)
        if self.input == "counts":
            check_counts(block, start)
        mapped = _map(self.mapper, block)
        lib = library_sizes(mapped)
        ov = _columns(mapped, self.overlap)
        if self.input == "counts":
            ov = log_normalize(ov, lib, self.scale_factor)
            w = (lib > 0).astype(np.float64)
        else:
            w = np.ones(block.shape[0])
        if self.weights is not None:
            w = w * self.weights[start : start + block.shape[0]]
        return lib, np.asarray(ov.T @ w).ravel(), float(w.sum())


@dataclass(eq=False)
class GroupSums:
    """Sums of a block's rows by group (pseudo-bulk)."""

    mapper: Mapper
    codes: np.ndarray  # group code of every cell (-1: none)
    n_groups: int
    input: Input

    def __call__(self, block, start: int) -> np.ndarray:
        check_finite(block, start)
        if self.input == "counts":
            check_counts(block, start)
        codes = self.codes[start : start + block.shape[0]]
        return group_sums(_map(self.mapper, block), codes, self.n_groups)


@dataclass(eq=False)
class Prepare:
    """A block of the overlap genes' columns -> the engine's input and the rows to blank."""

    mapper: Mapper  # the pass-2 columns -> the overlap genes
    input: Input
    scale_factor: float
    library: np.ndarray | None  # library size of every cell (counts input)

    def __call__(self, block, start: int):
        ov = _map(self.mapper, block)
        if self.input == "counts":
            lib = self.library[start : start + block.shape[0]]
            return log_normalize(ov, lib, self.scale_factor), ~(lib > 0)
        check_finite(ov, start)
        return ov, np.zeros(block.shape[0], dtype=bool)


@dataclass(eq=False)
class BlockJob:
    """Inference of one block of cells: prepare, run the engine, expand groups, keep ``stats``.

    Returns a dict of ``cells x proteins`` arrays in ``dtype``.
    """

    engine: Engine
    prepare: Callable[[Any, int], tuple[Any, np.ndarray]]
    row_index: np.ndarray
    stats: tuple[str, ...] = STATS
    dtype: Any = np.float64

    def __call__(self, block, start: int = 0) -> dict[str, np.ndarray]:
        result, invalid = self._run(block, start)
        out = np.empty((len(self.stats), invalid.size, self.row_index.size), dtype=self.dtype)
        self._expand(result, invalid, list(out))
        return dict(zip(self.stats, out, strict=True))

    def stacked(self, block, start: int = 0) -> np.ndarray:
        """The kept statistics side by side: ``cells x (len(stats) * proteins)`` (for dask)."""
        result, invalid = self._run(block, start)
        p = self.row_index.size
        out = np.empty((invalid.size, len(self.stats) * p), dtype=self.dtype)
        self._expand(result, invalid, [out[:, i * p : (i + 1) * p] for i in range(len(self.stats))])
        return out

    def each(self, block, start: int, buffer: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(stat, rows)`` with each statistic expanded into ``buffer`` (``cells x
        proteins``, reused: consume one before asking for the next)."""
        result, invalid = self._run(block, start)
        index = np.ascontiguousarray(self.row_index, dtype=np.intp)
        for k in self.stats:
            with kernel_threads():
                expand_columns(np.ascontiguousarray(getattr(result, k)), index, invalid, buffer)
            yield k, buffer

    def _run(self, block, start: int) -> tuple[BlockStats, np.ndarray]:
        values, invalid = self.prepare(block, start)
        return self.engine.run(values), np.ascontiguousarray(invalid, dtype=np.bool_)

    def _expand(self, result: BlockStats, invalid: np.ndarray, outs: list[np.ndarray]) -> None:
        index = np.ascontiguousarray(self.row_index, dtype=np.intp)
        with kernel_threads():
            for k, out in zip(self.stats, outs, strict=True):
                expand_columns(np.ascontiguousarray(getattr(result, k)), index, invalid, out)


# ----------------------------------------------------------------------------------------------
# passes
# ----------------------------------------------------------------------------------------------
def _run(
    source,
    fn,
    sink,
    *,
    batch_size: int | None,
    columns=None,
    progress=None,
    desc="secact",
    executor=None,
    start: int = 0,
):
    runner.run(
        source.row_blocks(batch_size or settings.batch_size, columns, start),
        fn,
        sink,
        executor=executor or source.executor,
        progress=progress,
        total=source.n_obs - start,
        desc=desc,
    )


def column_totals(source, *, batch_size: int | None = None, progress: bool | None = None) -> np.ndarray:
    """Each column's total over all rows."""
    totals = np.zeros(source.n_vars)

    def sink(_a, _b, part):
        totals[:] += part

    _run(
        source,
        Totals(),
        sink,
        batch_size=batch_size,
        progress=progress,
        desc="secact totals",
    )
    return totals


def cell_means(
    source,
    *,
    mapper: Mapper,
    overlap: np.ndarray,
    input: Input,
    scale_factor: float,
    weights: np.ndarray | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Library sizes (``None`` unless ``input="counts"``) and the centre of every overlap gene.

    The centre is the mean of the normalised values over cells with counts (weighted by
    ``weights``, e.g. a reference mask).
    """
    library = np.empty(source.n_obs)
    sums = np.zeros(overlap.size)
    total = [0.0]

    def sink(a, b, part):
        lib, s, t = part
        library[a:b] = lib
        sums[:] += s
        total[0] += t

    fn = CellMeans(mapper, overlap, input, scale_factor, weights)
    _run(
        source,
        fn,
        sink,
        batch_size=batch_size,
        progress=progress,
        desc="secact pass 1",
    )
    if total[0] == 0:
        msg = "no cell with counts to centre on (all library sizes are zero, or the reference is empty)."
        raise ValueError(msg)
    n_zero = int((library == 0).sum()) if input == "counts" else 0
    if n_zero:
        warnings.warn(
            EmptyLibraryWarning(f"{n_zero} cells have a library size of 0; their results are NaN.", n_zero),
            stacklevel=3,
        )
    return (library if input == "counts" else None), sums / total[0]


def group_profiles(
    source,
    *,
    mapper: Mapper,
    codes: np.ndarray,
    n_groups: int,
    n_genes: int,
    input: Input,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """Groups x mapped genes sums of the cells of each group."""
    sums = np.zeros((n_groups, n_genes))

    def sink(_a, _b, part):
        sums[:] += part

    fn = GroupSums(mapper, codes, n_groups, input)
    _run(
        source,
        fn,
        sink,
        batch_size=batch_size,
        progress=progress,
        desc="secact pseudo-bulk",
    )
    return sums


def group_values(sums: np.ndarray, counts: np.ndarray, names: Sequence[str], input: Input) -> np.ndarray:
    """Pseudo-bulk sums -> ``log2(CPM + 1)`` for counts, group means otherwise."""
    if input != "counts":
        return sums / counts[:, None]
    empty = sums.sum(axis=1) == 0
    if empty.any():
        msg = f"groups {[names[i] for i in np.flatnonzero(empty)]} have no counts; remove them."
        raise ValueError(msg)
    return cpm_log2(sums)


def cell_activity(
    source,
    job: BlockJob,
    sink: Callable[[int, int, dict], None],
    *,
    columns: np.ndarray | None,
    batch_size: int | None = None,
    progress: bool | None = None,
    background: bool = False,
    start: int = 0,
) -> None:
    """Run ``job`` on every block of cells from row ``start`` (restricted to ``columns``) into ``sink``."""
    executor = source.executor if source.executor != "serial" else ("background" if background else "serial")
    _run(
        source,
        job,
        sink,
        batch_size=batch_size,
        columns=columns,
        progress=progress,
        desc="secact",
        executor=executor,
        start=start,
    )


def infer_matrix(
    plan: Plan, values: np.ndarray, names: Sequence[str], *, offset=None, scale=None
) -> BlockStats:
    """The engine on samples x profile genes (all genes of the plan's profile), expanded to proteins.

    Samples that are constant over the overlap genes are an error naming them; so are samples
    whose spread is at the level of rounding relative to ``scale`` (per sample: the magnitude
    of the data the values were computed from, e.g. a profile and its control; default: of
    ``values`` and ``offset``).
    """
    block = np.asarray(values, dtype=np.float64)[:, plan.gene_index]
    if offset is not None:
        block = block - offset
    spread = np.ptp(block, axis=1)
    if scale is None:
        scale = np.abs(np.asarray(values, dtype=np.float64)[:, plan.gene_index]).max(axis=1)
        if offset is not None:
            scale = scale + np.abs(offset).max()
    const = spread <= NEAR_CONSTANT * np.asarray(scale, dtype=np.float64)
    if const.any():
        bad = [str(names[i]) for i in np.flatnonzero(const)[:5]]
        msg = (
            f"samples {bad} are constant over the {plan.gene_index.size} overlap genes (empty, "
            "all-zero, or equal to the centre); remove them."
        )
        raise ValueError(msg)
    stats = plan.engine().run(block)
    return BlockStats(**{k: plan.expand(getattr(stats, k)) for k in STATS})
