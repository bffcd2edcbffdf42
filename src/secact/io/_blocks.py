"""Block sources' common ground: the :class:`BlockSource` interface, the blocks it hands out
(float64 C-ordered arrays or canonical CSR matrices) and the checks every source shares.

The bottom of :mod:`secact.io`'s imports: it imports no other module of the package, so every
source (:mod:`._sources`, :mod:`._dask`) can build on it without importing the others.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from fast_array_utils import types
from scipy import sparse

from .._checks import check_positive_int, is_gpu_array

__all__ = [
    "Block",
    "BlockSource",
    "axis_names",
    "backed_sparse_format",
    "check_batch_size",
    "check_compressed",
    "check_indices",
    "check_sparse_matrix",
    "check_start",
    "device_rows",
    "finish",
    "group_where",
    "value_dtype",
]

Block = np.ndarray | sparse.csr_matrix


class BlockSource(ABC):
    """A cells x genes matrix that can be read in consecutive blocks of cells.

    Attributes: ``n_obs``, ``n_vars``, ``obs_names``, ``var_names``, ``is_sparse``,
    ``dtype`` (the stored dtype; blocks are always float64), ``backed`` (whether the
    values live on disk) and ``executor`` (how ``secact.core.runner.run`` runs them).
    """

    n_obs: int
    n_vars: int
    obs_names: pd.Index
    var_names: pd.Index
    is_sparse: bool
    dtype: np.dtype
    backed: bool
    #: how the runner executes this source's blocks ("serial"; "dask" for dask arrays)
    executor: str = "serial"

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_obs, self.n_vars

    @abstractmethod
    def row_blocks(
        self, batch_size: int, columns: np.ndarray | None = None, start: int = 0
    ) -> Iterator[tuple[int, int, Block]]:
        """Yield ``(start, stop, X[start:stop][:, columns])`` for consecutive cell blocks.

        Blocks cover ``start..n_obs`` in order (``start`` a multiple of ``batch_size``: a
        resumed run), each with ``batch_size`` cells (the last one possibly fewer). Values are float64: a dense C-ordered :class:`numpy.ndarray` for
        dense storage, a canonical :class:`scipy.sparse.csr_matrix` (sorted indices,
        duplicates summed; explicit zeros may remain) for sparse storage. ``columns``
        (integer positions, in any order, repeats allowed; or a boolean mask) selects and
        orders the gene columns; ``None`` means all. Blocks are fresh arrays owned by the
        caller. Files opened for the pass are closed when the iteration ends.
        """

    def _check_columns(self, columns) -> np.ndarray | None:
        if columns is None:
            return None
        cols = np.asarray(columns)
        if cols.dtype == bool:
            if cols.shape != (self.n_vars,):
                raise ValueError(f"a boolean `columns` mask must have length n_vars={self.n_vars}")
            return np.flatnonzero(cols)
        if cols.ndim != 1 or (cols.size and cols.dtype.kind not in "iu"):
            raise TypeError("`columns` must be a 1-D array of integer gene positions (or a boolean mask)")
        cols = cols.astype(np.int64, copy=False)
        if cols.size and (cols.min() < 0 or cols.max() >= self.n_vars):
            raise IndexError(f"`columns` must lie in [0, {self.n_vars}); got {cols.min()}..{cols.max()}")
        return cols

    def __repr__(self) -> str:
        kind = "sparse" if self.is_sparse else "dense"
        where = "backed" if self.backed else "in memory"
        return (
            f"{type(self).__name__}({self.n_obs} cells x {self.n_vars} genes, {kind} {self.dtype}, {where})"
        )


def check_start(start, batch_size: int, n_obs: int) -> int:
    """``start`` as an int; :class:`ValueError` unless a multiple of ``batch_size`` in ``[0, n_obs]``."""
    start = int(start)
    if start < 0 or start > n_obs or start % batch_size:
        raise ValueError(f"start={start} must be a multiple of batch_size={batch_size} in [0, {n_obs}]")
    return start


def check_batch_size(batch_size) -> int:
    """``batch_size`` as an int; :class:`ValueError` unless a positive integer."""
    return check_positive_int(batch_size, "batch_size")


def value_dtype(dtype) -> np.dtype:
    """The stored dtype of expression values; :class:`TypeError` unless numeric."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise TypeError(
            f"expression values have dtype {dtype}; expected a numeric (integer, float or bool) matrix."
        )
    return dtype


def axis_names(names, n: int, axis: str) -> pd.Index:
    """``names`` as an index of ``n`` names (``"0"``, ``"1"``, ... when ``None``)."""
    if names is None:
        return pd.Index(np.arange(n).astype(str))
    names = pd.Index(names)
    if len(names) != n:
        raise ValueError(f"{len(names)} {axis} names for {n} {axis}")
    return names


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


def group_where(group) -> str:
    """``file:group`` of a backed sparse matrix's group, in messages (HDF5 or zarr)."""
    f = getattr(group, "file", None)
    if f is not None:  # h5py
        return f"{f.filename}:{group.name}"
    return f"{getattr(group, 'store', '')}:/{getattr(group, 'path', '')}"  # zarr


def check_sparse_matrix(mat, layout: str) -> None:
    """Check the structure of a sparse matrix once, before any block is read: the whole
    index pointer (and, in memory, every index) of an in-memory or backed CSR/CSC matrix."""
    n_rows, n_cols = (int(n) for n in mat.shape)
    major, minor = (n_rows, n_cols) if layout == "csr" else (n_cols, n_rows)
    group = getattr(mat, "group", None)
    if group is not None:  # backed: indptr is small; indices are checked block by block
        where = group_where(group)
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


class DeviceRows:
    """A matrix on a GPU (CuPy array or CSR/CSC matrix, e.g. from
    ``rapids_singlecell.get.anndata_to_GPU``) read by rows: each block of rows (a slice or
    positions) is copied to host memory on its own, so no host copy of the whole matrix is made.
    """

    def __init__(self, mat) -> None:
        self._mat = mat
        self.shape = tuple(int(s) for s in mat.shape)
        self.dtype = np.dtype(str(mat.dtype))
        self.sparse = not isinstance(mat, types.CupyArray)

    def __getitem__(self, rows):
        return self._mat[rows].get()  # CuPy arrays and matrices: .get() -> NumPy / SciPy


def device_rows(mat) -> DeviceRows | None:
    """:class:`DeviceRows` over ``mat`` when it lives on a GPU, else ``None``."""
    return DeviceRows(mat) if is_gpu_array(mat) else None


def finish(block, *, owned: bool) -> Block:
    """float64 C-ordered ndarray, or canonical float64 csr_matrix; a copy unless ``owned``.

    Blocks on a GPU (dask chunks of CuPy arrays) come to host memory first. Sparse blocks'
    structure is checked first (blocks read from disk are otherwise trusted by the compiled
    code that follows)."""
    if is_gpu_array(block):
        block, owned = block.get(), True
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
