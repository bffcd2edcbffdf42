"""Normalisation for activity inference, applied to blocks of cells (dense or CSR).

SecAct's single-cell and spatial pipelines (``SecAct.activity.inference.scRNAseq`` /
``.ST``) scale each cell to ``scale_factor`` counts, take ``log2(x + 1)`` and subtract each
gene's mean over cells; the cell-type pipeline sums counts per group, scales each group to
1e6 (CPM) and does the same over groups. On sparse blocks only the stored values are
transformed (``log2(0 + 1) = 0``); the centring is never materialised (the engine applies it
as an exact correction).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["cpm_log2", "group_sums", "is_integral", "library_sizes", "log_normalize"]

Block = np.ndarray | sp.csr_matrix


def library_sizes(block: Block) -> np.ndarray:
    """Total counts of each cell (row) of a block."""
    return np.asarray(block.sum(axis=1), dtype=np.float64).ravel()


def is_integral(block: Block) -> tuple[bool, bool]:
    """Whether all stored values are integers, and whether all are >= 0."""
    values = block.data if sp.issparse(block) else np.asarray(block)
    if values.size == 0:
        return True, True
    return bool(np.all(values == np.rint(values))), bool(values.min() >= 0)


def log_normalize(block: Block, library: np.ndarray, scale_factor: float) -> Block:
    """``log2(x * scale_factor / library + 1)`` per cell; a new block of the same kind.

    Cells with a zero library size keep zeros (their results are set to NaN by the caller).
    """
    lib = np.where(library > 0, library, 1.0)  # as R: x / library * scale_factor
    if sp.issparse(block):
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
    return np.asarray(out.toarray() if sp.issparse(out) else out, dtype=np.float64)


def cpm_log2(sums: np.ndarray) -> np.ndarray:
    """Groups x genes sums -> ``log2(CPM + 1)`` (each group scaled to 1e6), like SecAct R."""
    total = sums.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log2(sums / total * 1e6 + 1.0)
