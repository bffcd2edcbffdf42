"""Block sources: read a cells x genes matrix in consecutive blocks of cells.

A :class:`~secact.io.BlockSource` (the interface, in :mod:`._blocks`) is what every pass of
:mod:`secact.core.pipeline` streams through. It knows the shape and the cell / gene names of a matrix and yields ``(start, stop, block)``
for consecutive blocks of cells (rows), optionally restricted to (and reordered by) a set of
gene columns. Peak memory is bounded by the block (and, for CSC on disk, by a chunk of
columns), never by the whole matrix.

:func:`matrix_source` makes one over a matrix object; :func:`secact.io.block_source` (in
:mod:`._resolve`, which resolves AnnData and paths first) over anything a tool accepts. Inputs: in-memory AnnData objects and their views (``X``, a
layer or ``raw.X``) holding dense arrays or ``scipy.sparse`` matrices / arrays; backed
AnnData and their views; ``.h5ad`` paths and ``.zarr`` stores (dense zarr arrays and anndata's
sparse datasets over zarr groups; opened read-only for the duration of each pass);
dask arrays (:mod:`secact.io._dask`); bare matrices (cell / gene names are generated).

How each storage layout is read: dense and CSR in :mod:`._rows`, CSC in memory in
:mod:`._csc_memory`, CSC on disk (a one-off transpose per pass) in :mod:`._csc_disk`.

Imports run one way: ``_resolve`` -> ``_sources`` -> ``_dask`` -> ``_blocks`` (a test checks it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import h5py
import numpy as np
import pandas as pd
from fast_array_utils import types
from scipy import sparse

from .._settings import settings
from ._blocks import (
    Block,
    BlockSource,
    axis_names,
    backed_sparse_format,
    check_batch_size,
    check_sparse_matrix,
    check_start,
    device_rows,
    value_dtype,
)
from ._csc_disk import csc_disk_blocks
from ._csc_memory import csc_memory_blocks
from ._dask import DaskSource
from ._rows import row_blocks

__all__ = ["is_zarr_array", "matrix_source"]


class _MatrixSource(BlockSource):
    """A source over one matrix object (ndarray, scipy sparse, h5py dataset, backed sparse).

    ``opener`` is a context-manager factory giving the matrix for the duration of a pass.
    ``row0`` / ``rows`` map source rows to the matrix's rows (contiguous offset, or
    explicit positions for views), ``cols`` maps source columns (``None``: identity).
    """

    def __init__(
        self,
        opener: Callable[[], contextlib.AbstractContextManager],
        *,
        layout: str,
        dtype: np.dtype,
        backed: bool,
        shape: tuple[int, int],
        obs_names: pd.Index | None,
        var_names: pd.Index | None,
        rows=None,
        cols=None,
        temp_dir: str | os.PathLike | None = None,
    ):
        self._opener = opener
        self._layout = layout  # "dense", "csr", "csc"
        self.dtype = value_dtype(dtype)
        self.backed = backed
        self.is_sparse = layout in ("csr", "csc")
        self._row0, self._rows, n_obs = _normalize_rows(rows, shape[0])
        self._cols, n_vars = _normalize_cols(cols, shape[1])
        self.n_obs, self.n_vars = int(n_obs), int(n_vars)
        if self.n_obs == 0 or self.n_vars == 0:
            raise ValueError(f"the expression matrix is empty ({self.n_obs} cells x {self.n_vars} genes).")
        self.obs_names = axis_names(obs_names, self.n_obs, "obs")
        self.var_names = axis_names(var_names, self.n_vars, "var")
        self._temp_dir = temp_dir

    def row_blocks(
        self, batch_size: int, columns: np.ndarray | None = None, start: int = 0
    ) -> Iterator[tuple[int, int, Block]]:
        batch_size = check_batch_size(batch_size)
        cols = self._check_columns(columns)
        if self._cols is not None:
            cols = self._cols if cols is None else self._cols[cols]
        return self._iterate(batch_size, cols, check_start(start, batch_size, self.n_obs))

    def _iterate(
        self, batch_size: int, cols: np.ndarray | None, start: int
    ) -> Iterator[tuple[int, int, Block]]:
        with self._opener() as mat:
            if self._layout == "csc" and self.backed:
                blocks = csc_disk_blocks(mat, self, batch_size, cols, self._temp_dir or settings.temp_dir)
            elif self._layout == "csc":
                blocks = csc_memory_blocks(mat, self, batch_size, cols)
            else:
                yield from row_blocks(mat, self, batch_size, cols, start)
                return
            yield from ((a, b, x) for a, b, x in blocks if a >= start)


def _index_positions(idx, n: int) -> np.ndarray | slice | None:
    if idx is None:
        return None
    if isinstance(idx, slice):
        return idx
    if isinstance(idx, int | np.integer):
        return np.array([int(idx)], dtype=np.int64)
    arr = np.asarray(idx)
    if arr.dtype == bool:
        return np.flatnonzero(arr)
    return arr.astype(np.int64).ravel()


def _normalize_rows(rows, n: int) -> tuple[int, np.ndarray | None, int]:
    rows = _index_positions(rows, n)
    if rows is None:
        return 0, None, n
    if isinstance(rows, slice):
        start, stop, step = rows.indices(n)
        if step == 1:
            return start, None, max(stop - start, 0)
        rows = np.arange(start, stop, step, dtype=np.int64)
    rows = np.where(rows < 0, rows + n, rows)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise IndexError("view row positions out of range")
    if rows.size and rows[0] + rows.size - 1 == rows[-1] and np.all(np.diff(rows) == 1):
        return int(rows[0]), None, int(rows.size)
    return 0, rows, int(rows.size)


def _normalize_cols(cols, n: int) -> tuple[np.ndarray | None, int]:
    cols = _index_positions(cols, n)
    if cols is None:
        return None, n
    if isinstance(cols, slice):
        start, stop, step = cols.indices(n)
        if (start, stop, step) == (0, n, 1):
            return None, n
        cols = np.arange(start, stop, step, dtype=np.int64)
    cols = np.where(cols < 0, cols + n, cols)
    if cols.size == n and np.array_equal(cols, np.arange(n)):
        return None, n
    return cols, int(cols.size)


# ---------------------------------------------------------------------------------------
# constructors
# ---------------------------------------------------------------------------------------


def is_zarr_array(x) -> bool:
    """Whether ``x`` is a zarr array (a dense matrix of a ``.zarr`` store; zarr not imported)."""
    return type(x).__module__.startswith("zarr") and hasattr(x, "chunks") and hasattr(x, "shape")


def _classify(mat) -> tuple[str, bool]:
    """``(layout, backed)`` of a matrix object; raise TypeError if unsupported."""
    fmt = backed_sparse_format(mat)
    if fmt is not None:
        return fmt, True
    if isinstance(mat, types.DaskArray):
        return "dask", False
    on_disk = isinstance(mat, h5py.Dataset) or is_zarr_array(mat)
    if on_disk or isinstance(mat, np.ndarray):
        if mat.ndim != 2:
            raise ValueError(f"expected a 2-D expression matrix, got {mat.ndim} dimension(s)")
        return "dense", on_disk
    if isinstance(mat, types.CSBase):
        return mat.format, False
    if sparse.issparse(mat):
        return "other-sparse", False
    raise TypeError(
        f"unsupported expression matrix type {type(mat).__name__}; expected a numpy array, a "
        "scipy.sparse matrix, a dask array, a backed AnnData matrix, an AnnData or a path to an "
        ".h5ad file or .zarr store."
    )


def matrix_source(
    mat,
    *,
    obs_names: pd.Index | None = None,
    var_names: pd.Index | None = None,
    rows=None,
    cols=None,
    temp_dir: str | os.PathLike | None = None,
    opener: Callable[[], contextlib.AbstractContextManager] | None = None,
) -> BlockSource:
    """A source over one matrix object; ``rows`` / ``cols`` are a view's positions in it.

    ``opener`` (a context-manager factory giving the matrix for one pass) lets on-disk
    sources open their file per pass; by default ``mat`` itself is used.
    """
    device = device_rows(mat)
    if device is not None:  # GPU data: blocks of rows come to host memory one at a time
        mat, opener = device, None
        layout, backed = ("csr" if device.sparse else "dense"), False
    else:
        layout, backed = _classify(mat)
    if layout == "dask":
        return DaskSource(mat, obs_names=obs_names, var_names=var_names, rows=rows, cols=cols)
    if layout == "other-sparse":
        mat, layout = sparse.csr_matrix(mat), "csr"  # COO, LIL, ...: one conversion
    if isinstance(mat, np.matrix):
        mat = np.asarray(mat)
    if layout in ("csr", "csc") and device is None:
        check_sparse_matrix(mat, layout)
    return _MatrixSource(
        opener or (lambda: contextlib.nullcontext(mat)),
        layout=layout,
        dtype=mat.dtype,
        backed=backed,
        shape=tuple(mat.shape),
        obs_names=obs_names,
        var_names=var_names,
        rows=rows,
        cols=cols,
        temp_dir=temp_dir,
    )
