"""Block sources: read a cells x genes matrix in consecutive blocks of cells.

A :class:`BlockSource` is what every pass of :mod:`secact.core.pipeline` streams through.
It knows the shape and the cell / gene names of a matrix and yields ``(start, stop, block)``
for consecutive blocks of cells (rows), optionally restricted to (and reordered by) a set of
gene columns. Peak memory is bounded by the block (and, for CSC on disk, by a chunk of
columns), never by the whole matrix.

Inputs (see :func:`block_source`): in-memory AnnData objects and their views (``X``, a
layer or ``raw.X``) holding dense arrays or ``scipy.sparse`` matrices / arrays; backed
AnnData and their views; ``.h5ad`` paths (opened read-only for the duration of each pass);
dask arrays (:mod:`secact.io._dask`); bare matrices (cell / gene names are generated).

How each storage layout is read: dense and CSR in :mod:`._rows`, CSC in memory in
:mod:`._csc_memory`, CSC on disk (a one-off transpose per pass) in :mod:`._csc_disk`.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

import h5py
import numpy as np
import pandas as pd
from fast_array_utils import types
from scipy import sparse

from .._settings import settings
from ._blocks import Block, backed_sparse_format, check_sparse_matrix
from ._csc_disk import csc_disk_blocks
from ._csc_memory import csc_memory_blocks
from ._rows import row_blocks

__all__ = ["BlockSource", "block_source", "matrix_source"]


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
        self.dtype = _value_dtype(dtype)
        self.backed = backed
        self.is_sparse = layout in ("csr", "csc")
        self._row0, self._rows, n_obs = _normalize_rows(rows, shape[0])
        self._cols, n_vars = _normalize_cols(cols, shape[1])
        self.n_obs, self.n_vars = int(n_obs), int(n_vars)
        if self.n_obs == 0 or self.n_vars == 0:
            raise ValueError(f"the expression matrix is empty ({self.n_obs} cells x {self.n_vars} genes).")
        self.obs_names = _names(obs_names, self.n_obs, "obs")
        self.var_names = _names(var_names, self.n_vars, "var")
        self._temp_dir = temp_dir

    def row_blocks(
        self, batch_size: int, columns: np.ndarray | None = None, start: int = 0
    ) -> Iterator[tuple[int, int, Block]]:
        batch_size = _check_batch(batch_size)
        cols = self._check_columns(columns)
        if self._cols is not None:
            cols = self._cols if cols is None else self._cols[cols]
        return self._iterate(batch_size, cols, _check_start(start, batch_size, self.n_obs))

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


def _check_start(start, batch_size: int, n_obs: int) -> int:
    start = int(start)
    if start < 0 or start > n_obs or start % batch_size:
        raise ValueError(f"start={start} must be a multiple of batch_size={batch_size} in [0, {n_obs}]")
    return start


def _check_batch(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def _value_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise TypeError(
            f"expression values have dtype {dtype}; expected a numeric (integer, float or bool) matrix."
        )
    return dtype


def _names(names, n: int, axis: str) -> pd.Index:
    if names is None:
        return pd.Index(np.arange(n).astype(str))
    names = pd.Index(names)
    if len(names) != n:
        raise ValueError(f"{len(names)} {axis} names for {n} {axis}")
    return names


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


def _classify(mat) -> tuple[str, bool]:
    """``(layout, backed)`` of a matrix object; raise TypeError if unsupported."""
    fmt = backed_sparse_format(mat)
    if fmt is not None:
        return fmt, True
    if isinstance(mat, types.DaskArray):
        return "dask", False
    if isinstance(mat, h5py.Dataset | np.ndarray):
        if mat.ndim != 2:
            raise ValueError(f"expected a 2-D expression matrix, got {mat.ndim} dimension(s)")
        return "dense", isinstance(mat, h5py.Dataset)
    if isinstance(mat, types.CSBase):
        return mat.format, False
    if sparse.issparse(mat):
        return "other-sparse", False
    raise TypeError(
        f"unsupported expression matrix type {type(mat).__name__}; expected a numpy array, a "
        "scipy.sparse matrix, a dask array, a backed AnnData matrix, an AnnData or a path to an "
        ".h5ad file."
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
    layout, backed = _classify(mat)
    if layout == "dask":
        from ._dask import DaskSource

        return DaskSource(mat, obs_names=obs_names, var_names=var_names, rows=rows, cols=cols)
    if layout == "other-sparse":
        mat, layout = sparse.csr_matrix(mat), "csr"  # COO, LIL, ...: one conversion
    if isinstance(mat, np.matrix):
        mat = np.asarray(mat)
    if layout in ("csr", "csc"):
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


def block_source(
    data,
    *,
    layer: str | None = None,
    use_raw: bool = False,
    temp_dir: str | os.PathLike | None = None,
) -> BlockSource:
    """Make a :class:`~secact.io.BlockSource` for ``data``.

    Parameters
    ----------
    data
        An :class:`~anndata.AnnData` (in memory, backed, or a view of either), a path to
        an ``.h5ad`` file (opened read-only for each pass), a bare ``numpy`` /
        ``scipy.sparse`` / dask matrix (cells x genes; names ``"0"``, ``"1"``, ...), a
        backed matrix (``h5py.Dataset`` / anndata sparse dataset), or a :class:`~secact.io.BlockSource`.
    layer
        Read ``adata.layers[layer]`` (``layers/<layer>`` on disk) instead of ``X``.
    use_raw
        Read ``adata.raw.X`` with ``adata.raw.var_names``. Unlike the tools (which follow
        scanpy's rule), this low-level reader reads ``X`` unless told otherwise.
    temp_dir
        Directory for the temporary transpose of CSC matrices on disk (default:
        ``secact.settings.temp_dir``, else the system temporary directory).
    """
    import anndata as ad

    from ._resolve import resolve

    if isinstance(data, BlockSource):
        if layer is not None or use_raw:
            raise ValueError("`layer` / `use_raw` cannot be applied to an existing BlockSource.")
        return data
    if isinstance(data, str | os.PathLike | ad.AnnData):
        with resolve(data, layer=layer, use_raw=bool(use_raw)) as res:
            return res.source(temp_dir)
    if layer is not None or use_raw:
        raise TypeError("`layer` and `use_raw` need an AnnData or an .h5ad path, not a bare matrix.")
    return matrix_source(data, temp_dir=temp_dir)
