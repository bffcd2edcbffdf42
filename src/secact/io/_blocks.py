"""Blocks handed out by block sources: float64 C-ordered arrays or canonical CSR matrices."""

from __future__ import annotations

from typing import Any

import numpy as np
from fast_array_utils import types
from scipy import sparse

__all__ = [
    "Block",
    "backed_sparse_format",
    "check_compressed",
    "check_indices",
    "check_sparse_matrix",
    "finish",
]

Block = np.ndarray | sparse.csr_matrix


def backed_sparse_format(x: Any) -> str | None:
    """``"csr"`` / ``"csc"`` if ``x`` is an anndata backed sparse dataset, else ``None``."""
    if isinstance(x, types.CSRDataset):
        return "csr"
    if isinstance(x, types.CSCDataset):
        return "csc"
    return None


def check_compressed(indptr: np.ndarray, n_major: int, nnz: int, *, where: str = "the matrix") -> None:
    """Raise :class:`ValueError` unless ``indptr`` is a valid index pointer of a CSR (rows) or CSC
    (columns) matrix with ``n_major`` rows/columns and ``nnz`` stored values.

    Corrupted sparse structure must be an error, never a crash or a wrong result.
    """
    indptr = np.asarray(indptr)
    what = f"{where}: indptr"
    if indptr.ndim != 1 or indptr.size != n_major + 1:
        raise ValueError(f"{what} has {indptr.size} entries, expected {n_major + 1}; the file is damaged.")
    if indptr.dtype.kind not in "iu":
        raise ValueError(f"{what} is not an integer array ({indptr.dtype}); the file is damaged.")
    if indptr[0] != 0:
        raise ValueError(f"{what} starts at {int(indptr[0])}, not 0; the file is damaged.")
    steps = np.diff(indptr)
    if steps.size and steps.min() < 0:
        first = int(np.argmax(steps < 0))
        raise ValueError(f"{what} decreases at row/column {first}; the file is damaged.")
    if int(indptr[-1]) != nnz:
        raise ValueError(
            f"{what} ends at {int(indptr[-1])} but {nnz} values are stored; the file is damaged."
        )


def check_indices(
    indices: np.ndarray, n_minor: int, *, where: str = "the matrix", indptr=None, start: int = 0
) -> None:
    """Raise :class:`ValueError` unless every index lies in ``[0, n_minor)``; names the first bad
    row (or column) when ``indptr`` is given."""
    indices = np.asarray(indices)
    if indices.size == 0:
        return
    if indices.dtype.kind not in "iu":
        raise ValueError(f"{where}: indices are not integers ({indices.dtype}); the file is damaged.")
    lo, hi = int(indices.min()), int(indices.max())
    if lo >= 0 and hi < n_minor:
        return
    bad = int(np.argmax((indices < 0) | (indices >= n_minor)))
    row = (
        ""
        if indptr is None
        else f" in row/column {start + int(np.searchsorted(indptr, bad, side='right')) - 1}"
    )
    raise ValueError(
        f"{where}: index {int(indices[bad])} at position {bad}{row} is outside [0, {n_minor}); the file is damaged."
    )


def check_sparse_matrix(mat, layout: str) -> None:
    """Check the structure of a sparse matrix once, before any block is read: the whole
    index pointer (and, in memory, every index) of an in-memory or backed CSR/CSC matrix."""
    n_rows, n_cols = (int(n) for n in mat.shape)
    major, minor = (n_rows, n_cols) if layout == "csr" else (n_cols, n_rows)
    group = getattr(mat, "group", None)
    if group is not None:  # backed: indptr is small; indices are checked block by block
        where = f"{group.file.filename}:{group.name}"
        nnz, n_data = int(group["indices"].shape[0]), int(group["data"].shape[0])
        if nnz != n_data:
            raise ValueError(f"{where}: {n_data} values but {nnz} indices; the file is damaged.")
        check_compressed(group["indptr"][...], major, nnz, where=where)
        return
    where = "the expression matrix"
    if mat.data.size != mat.indices.size:
        raise ValueError(f"{where}: {mat.data.size} values but {mat.indices.size} indices.")
    check_compressed(mat.indptr, major, mat.indices.size, where=where)
    check_indices(mat.indices, minor, where=where, indptr=mat.indptr)


def finish(block, *, owned: bool) -> Block:
    """float64 C-ordered ndarray, or canonical float64 csr_matrix; a copy unless ``owned``.

    Sparse blocks' structure is checked first (blocks read from disk are otherwise trusted
    by the compiled code that follows)."""
    if isinstance(block, types.CSBase):
        major, minor = block.shape if block.format == "csr" else block.shape[::-1]
        check_compressed(block.indptr, major, block.indices.size, where="a block of the expression matrix")
        check_indices(block.indices, minor, where="a block of the expression matrix", indptr=block.indptr)
        if block.data.size != block.indices.size:
            msg = f"a block of the expression matrix has {block.data.size} values but {block.indices.size} indices."
            raise ValueError(msg)
    if isinstance(block, types.CSBase | types.COOBase):
        out = sparse.csr_matrix(block)
        if out.dtype != np.float64 or not owned:
            out = out.astype(np.float64)  # copies
        out.sum_duplicates()  # sorts indices, sums duplicates, keeps explicit zeros
        return out
    if isinstance(block, np.matrix):
        block = block.A
    if owned:
        return np.ascontiguousarray(block, dtype=np.float64)
    return np.array(block, dtype=np.float64, order="C", copy=True)
