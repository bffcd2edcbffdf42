"""Normalisation and checks for blocks of cells (dense arrays or CSR matrices).

SecAct's single-cell and spatial pipelines (``SecAct.activity.inference.scRNAseq`` /
``.ST``) scale each cell to ``scale_factor`` counts, take ``log2(x + 1)`` and subtract each
gene's mean over cells; the cell-type pipeline sums counts per group, scales each group to
1e6 (CPM) and does the same over groups. On sparse blocks only the stored values are
transformed (``log2(0 + 1) = 0``); the centring is never materialised (the engine applies it
as an exact correction).
"""

from __future__ import annotations

import numba as nb
import numpy as np
import scipy.sparse as sp
from fast_array_utils import types

__all__ = [
    "check_counts",
    "check_finite",
    "cpm_log2",
    "group_sums",
    "integer_valued",
    "library_sizes",
    "log_normalize",
    "stored_values",
]

Block = np.ndarray | sp.csr_matrix


def stored_values(block) -> np.ndarray:
    """The values a block stores: ``data`` of a sparse matrix, the array itself otherwise."""
    return block.data if isinstance(block, types.CSBase) else np.asarray(block)


@nb.njit(cache=True, nogil=True)
def _all_integer(values):  # pragma: no cover - compiled
    for i in range(values.shape[0]):
        v = values[i]
        if np.isfinite(v) and v != np.floor(v):
            return False
    return True


def integer_valued(values: np.ndarray) -> bool:
    """Whether every finite value is an integer (stops at the first that is not).

    The package's one integrality test: ``input="counts"`` checks of activity and
    ``data="auto"`` of differential expression both use it.
    """
    values = np.asarray(values)
    if values.dtype.kind in "iub" or values.size == 0:
        return True
    return bool(_all_integer(values.ravel(order="K")))


def check_finite(block: Block, start: int = 0) -> None:
    """Raise :class:`ValueError` if ``block`` (rows ``start..`` of the matrix) holds NaN or inf.

    The message names the block's cell range, the number of offending values and the first
    offending cell.
    """
    values = stored_values(block)
    if values.dtype.kind in "iub" or np.isfinite(values).all():
        return
    stop = start + block.shape[0]
    bad = ~np.isfinite(values)
    if isinstance(block, types.CSBase):
        first = int(np.searchsorted(sp.csr_matrix(block).indptr, int(np.argmax(bad)), side="right")) - 1
    else:
        first = int(np.argmax(bad.reshape(bad.shape[0], -1).any(axis=1)))
    msg = (
        f"the expression matrix contains {int(bad.sum())} NaN or infinite value(s) in cells "
        f"[{start}, {stop}) (first in cell {start + first}); remove or impute them first."
    )
    raise ValueError(msg)


def check_counts(block: Block, start: int = 0) -> None:
    """Raise :class:`ValueError` unless the block holds non-negative integers (raw counts)."""
    values = stored_values(block)
    if values.size == 0:
        return
    nonneg = bool(values.min() >= 0)
    if nonneg and integer_valued(values):
        return
    what = "negative" if not nonneg else "non-integer"
    msg = (
        f"input='counts' but the data has {what} values (rows {start}..{start + block.shape[0] - 1}). "
        "Pass input='log' for log-normalised data (only centring is done) or "
        "input='differential' for values to use as they are; or choose the counts with "
        "layer=... / use_raw=True."
    )
    raise ValueError(msg)


def library_sizes(block: Block) -> np.ndarray:
    """Total counts of each cell (row) of a block."""
    return np.asarray(block.sum(axis=1), dtype=np.float64).ravel()


def log_normalize(block: Block, library: np.ndarray, scale_factor: float) -> Block:
    """``log2(x * scale_factor / library + 1)`` per cell; a new block of the same kind.

    Cells with a zero library size keep zeros (their results are set to NaN by the caller).
    """
    lib = np.where(library > 0, library, 1.0)  # as R: x / library * scale_factor
    if isinstance(block, types.CSBase):
        out = sp.csr_matrix(block, dtype=np.float64, copy=True)
        rows = np.repeat(np.arange(out.shape[0]), np.diff(out.indptr))
        out.data = np.log2(out.data / lib[rows] * scale_factor + 1.0)
        return out
    return np.log2(np.asarray(block, dtype=np.float64) / lib[:, None] * scale_factor + 1.0)


def group_sums(block: Block, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum the rows of a block by group code (codes < 0 are ignored): groups x genes, dense."""
    keep = codes >= 0
    indicator = sp.csr_matrix(
        (np.ones(int(keep.sum())), (codes[keep], np.flatnonzero(keep))), shape=(n_groups, block.shape[0])
    )
    out = indicator @ block
    return np.asarray(out.toarray() if isinstance(out, types.CSBase) else out, dtype=np.float64)


def cpm_log2(sums: np.ndarray) -> np.ndarray:
    """Groups x genes sums -> ``log2(CPM + 1)`` (each group scaled to 1e6), like SecAct R."""
    total = sums.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log2(sums / total * 1e6 + 1.0)
