"""Read an expression matrix in chunks of genes (columns), in memory or out of core.

A :class:`GeneChunkReader` yields ``(start, stop, chunk)`` for consecutive gene ranges,
where ``chunk`` is either a :class:`CscChunk` (``data``, ``indices``, ``indptr`` with rows
= cells) or a Fortran-ordered dense ``(n_cells, stop - start)`` array. Values are
``float64`` (other integer and float types are converted chunk by chunk).

Supported sources

* in-memory ``numpy`` arrays and ``scipy.sparse`` CSC / CSR matrices or arrays;
* backed AnnData matrices: anndata sparse datasets (``anndata.io.sparse_dataset``, over HDF5
  or zarr groups), ``h5py`` datasets and zarr arrays;
* the matrix of an ``.h5ad`` path or ``.zarr`` store, as :func:`secact.io.resolve` opens it.

Peak memory is bounded by the chunk: CSC on disk is sliced column-wise; CSR (in memory or
on disk) is scanned by blocks of rows and only the columns of the current chunk are kept,
so a chunk of CSR data on disk costs one pass over the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np
from scipy import sparse

from .._settings import settings
from ..core._numba import njit
from ._sources import is_zarr_array

__all__ = ["CscChunk", "GeneChunkReader"]


@dataclass
class CscChunk:
    """Compressed sparse columns of one gene chunk (rows are cells)."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray


@njit
def _csr_to_csc_cols(data, indices, indptr, a, b, row_offset, nblk):
    """CSC arrays of columns ``[a, b)`` of a CSR block, rows shifted by ``row_offset``.

    Rows are split into ``nblk`` blocks counted and scattered in parallel; row indices stay
    sorted within each column.
    """
    n_rows = indptr.shape[0] - 1
    ncols = b - a
    counts = np.zeros((nblk, ncols), dtype=np.int64)
    for k in nb.prange(nblk):
        r0, r1 = k * n_rows // nblk, (k + 1) * n_rows // nblk
        for p in range(indptr[r0], indptr[r1]):
            c = indices[p]
            if c >= a and c < b:
                counts[k, c - a] += 1
    out_ptr = np.zeros(ncols + 1, dtype=np.int64)
    off = np.empty((nblk, ncols), dtype=np.int64)
    acc = 0
    for j in range(ncols):
        out_ptr[j] = acc
        for k in range(nblk):
            off[k, j] = acc
            acc += counts[k, j]
    out_ptr[ncols] = acc
    out_data = np.empty(acc, dtype=np.float64)
    out_idx = np.empty(acc, dtype=np.int32)
    for k in nb.prange(nblk):
        r0, r1 = k * n_rows // nblk, (k + 1) * n_rows // nblk
        for r in range(r0, r1):
            for p in range(indptr[r], indptr[r + 1]):
                c = indices[p]
                if c >= a and c < b:
                    q = off[k, c - a]
                    out_data[q] = data[p]
                    out_idx[q] = r + row_offset
                    off[k, c - a] = q + 1
    return out_data, out_idx, out_ptr


@njit
def _merge_csc_blocks(data, idx, ptrs, bases):
    """Concatenate, column by column, CSC blocks stacked by rows (block ``k`` at ``bases[k]``)."""
    nblk, ncols = ptrs.shape[0], ptrs.shape[1] - 1
    out_ptr = np.zeros(ncols + 1, dtype=np.int64)
    for j in range(ncols):
        n = 0
        for k in range(nblk):
            n += ptrs[k, j + 1] - ptrs[k, j]
        out_ptr[j + 1] = out_ptr[j] + n
    out_data = np.empty(out_ptr[ncols], dtype=data.dtype)
    out_idx = np.empty(out_ptr[ncols], dtype=idx.dtype)
    for j in nb.prange(ncols):
        q = out_ptr[j]
        for k in range(nblk):
            s, e = bases[k] + ptrs[k, j], bases[k] + ptrs[k, j + 1]
            for p in range(s, e):
                out_data[q] = data[p]
                out_idx[q] = idx[p]
                q += 1
    return out_data, out_idx, out_ptr


def _value_dtype(dtype: np.dtype) -> np.dtype:
    # chunks are always float64: one compiled kernel per layout, exact for every
    # integer up to 2**53 and every float32 value
    dtype = np.dtype(dtype)
    if dtype.kind in "iubf":
        return np.dtype(np.float64)
    raise TypeError(
        f"expression values have dtype {dtype}; expected a numeric (integer or float) matrix. "
        "Convert it, e.g. `adata.X = adata.X.astype(np.float32)`."
    )


class GeneChunkReader:
    """Iterate over chunks of genes of a cells x genes matrix.

    Parameters
    ----------
    matrix
        ``numpy`` array, ``scipy.sparse`` CSC/CSR matrix or array, anndata sparse dataset
        (backed CSR/CSC) or ``h5py.Dataset`` (backed dense).
    chunk_size
        Genes per chunk. ``None`` chooses it from ``max_chunk_bytes`` and the data density.
    max_chunk_bytes
        Memory target for the values of one chunk when ``chunk_size`` is ``None`` (default
        ``secact.settings.chunk_bytes``).
    """

    def __init__(self, matrix: Any, *, chunk_size: int | None = None, max_chunk_bytes: int | None = None):
        self.matrix = matrix
        self.n_obs, self.n_vars = (int(s) for s in matrix.shape)
        self.dtype = _value_dtype(matrix.dtype)
        self.backed = False
        fmt = None
        if isinstance(matrix, np.ndarray):
            kind = "dense"
        elif sparse.issparse(matrix):
            fmt = matrix.format
            if fmt not in ("csr", "csc"):
                self.matrix = matrix = matrix.tocsc()
                fmt = "csc"
            kind = fmt
        else:
            fmt = getattr(matrix, "format", None)
            if fmt in ("csr", "csc") and hasattr(matrix, "group"):
                kind = fmt
                self.backed = True
            elif (hasattr(matrix, "id") and hasattr(matrix, "file") and hasattr(matrix, "chunks")) or (
                is_zarr_array(matrix)
            ):
                kind = "dense"  # h5py.Dataset or zarr.Array
                self.backed = True
            elif hasattr(matrix, "__array__") and not hasattr(matrix, "compute"):
                self.matrix = matrix = np.asarray(matrix)
                kind = "dense"
            else:
                raise TypeError(
                    f"unsupported matrix type {type(matrix).__name__}; expected a numpy array, a "
                    "scipy.sparse CSR/CSC matrix, a backed AnnData matrix or an .h5ad / .zarr path. "
                    "For dask arrays, compute them or write them to .h5ad first."
                )
        self.kind = kind
        self.chunk_size = self._choose_chunk_size(chunk_size, max_chunk_bytes)

    # -- sizing ----------------------------------------------------------------------------
    def _nnz(self) -> int:
        m = self.matrix
        if self.kind == "dense":
            return self.n_obs * self.n_vars
        if self.backed:
            return int(m.group["data"].shape[0])
        return int(m.nnz)

    def _choose_chunk_size(self, chunk_size: int | None, max_chunk_bytes: int | None) -> int:
        if self.n_vars == 0:
            return 1
        if chunk_size is not None:
            if int(chunk_size) < 1:
                raise ValueError(f"chunk_size must be a positive number of genes, got {chunk_size}.")
            return min(int(chunk_size), self.n_vars)
        budget = settings.chunk_bytes if max_chunk_bytes is None else int(max_chunk_bytes)
        if self.kind == "dense":
            per_gene = self.n_obs * (self.dtype.itemsize + 8)
        else:
            # values + row index + (CSR only) a column index while gathering
            per_entry = self.dtype.itemsize + 4 + (4 if self.kind == "csr" else 0)
            per_gene = max(1.0, self._nnz() / self.n_vars) * per_entry
        return int(min(self.n_vars, max(16, budget // max(per_gene, 1))))

    # -- iteration -------------------------------------------------------------------------
    def __len__(self) -> int:
        return -(-self.n_vars // self.chunk_size)

    def __iter__(self) -> Iterator[tuple[int, int, CscChunk | np.ndarray]]:
        for a in range(0, self.n_vars, self.chunk_size):
            b = min(a + self.chunk_size, self.n_vars)
            yield a, b, self.read(a, b)

    def read(self, a: int, b: int) -> CscChunk | np.ndarray:
        """Read genes ``a:b``."""
        if self.kind == "dense":
            return self._read_dense(a, b)
        if self.kind == "csc":
            return self._read_csc(a, b)
        return self._read_csr(a, b)

    def _cast(self, x: np.ndarray) -> np.ndarray:
        return x if x.dtype == self.dtype else x.astype(self.dtype)

    def _read_dense(self, a: int, b: int) -> np.ndarray:
        block = self.matrix[:, a:b]
        return np.asfortranarray(self._cast(np.asarray(block)))

    def _read_csc(self, a: int, b: int) -> CscChunk:
        if self.backed:
            sub = self.matrix[:, a:b]
            data, indices, indptr = sub.data, sub.indices, sub.indptr
        else:
            m = self.matrix
            p0, p1 = int(m.indptr[a]), int(m.indptr[b])
            data, indices = m.data[p0:p1], m.indices[p0:p1]
            indptr = m.indptr[a : b + 1] - p0
        return CscChunk(
            self._cast(np.asarray(data)),
            np.asarray(indices, dtype=np.int32),
            np.asarray(indptr, dtype=np.int64),
        )

    def _read_csr(self, a: int, b: int) -> CscChunk:
        nblk = max(1, nb.get_num_threads())
        if not self.backed:
            m = self.matrix
            return CscChunk(*self._csr_cols(m.data, m.indices, m.indptr, a, b, 0, nblk))
        parts = []
        step = settings.csr_row_block
        for r0 in range(0, self.n_obs, step):
            blk = self.matrix[r0 : min(r0 + step, self.n_obs)]
            parts.append(self._csr_cols(blk.data, blk.indices, blk.indptr, a, b, r0, nblk))
            del blk
        if len(parts) == 1:
            return CscChunk(*parts[0])
        sizes = np.array([p[0].shape[0] for p in parts], dtype=np.int64)
        bases = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        data = np.concatenate([p[0] for p in parts])
        idx = np.concatenate([p[1] for p in parts])
        ptrs = np.stack([p[2] for p in parts])
        del parts
        return CscChunk(*_merge_csc_blocks(data, idx, ptrs, bases))

    @staticmethod
    def _csr_cols(data, indices, indptr, a, b, row_offset, nblk):
        data = np.asarray(data)
        if data.dtype == np.float16:  # the compiled kernels take float32 and wider
            data = data.astype(np.float32)
        return _csr_to_csc_cols(
            data, np.asarray(indices), np.asarray(indptr, dtype=np.int64), a, b, row_offset, nblk
        )
