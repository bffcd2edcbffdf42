"""CSC matrices in memory, read by blocks of rows: one cursor per requested column.

A compiled kernel advances each column's cursor block by block, so a pass costs
``O(nnz + B * n_columns)`` time and ``O(block)`` extra memory.
"""

from __future__ import annotations

from collections.abc import Iterator

import numba as nb
import numpy as np
from scipy import sparse

from ._blocks import Block, finish

__all__ = ["csc_memory_blocks"]


@nb.njit(cache=True)
def _csc_cursor_block(indptr, indices, data, cols, cursor, lo, hi, rowmap, n_out):  # pragma: no cover
    """Gather rows ``[lo, hi)`` of a CSC matrix (sorted row indices) into CSR.

    ``cursor[j]`` is the next stored entry of column ``cols[j]`` still to visit; it is
    advanced past ``hi``. ``rowmap[r - lo]`` is the output row of row ``r`` or -1.
    """
    counts = np.zeros(n_out + 1, dtype=np.int64)
    for j in range(cols.shape[0]):
        end = indptr[cols[j] + 1]
        p = cursor[j]
        while p < end and indices[p] < hi:
            r = indices[p]
            if r >= lo and rowmap[r - lo] >= 0:
                counts[rowmap[r - lo] + 1] += 1
            p += 1
    for i in range(n_out):
        counts[i + 1] += counts[i]
    nnz = counts[n_out]
    out_idx = np.empty(nnz, dtype=np.int32)
    out_val = np.empty(nnz, dtype=np.float64)
    fill = counts[:n_out].copy()
    for j in range(cols.shape[0]):
        end = indptr[cols[j] + 1]
        p = cursor[j]
        while p < end and indices[p] < hi:
            r = indices[p]
            if r >= lo and rowmap[r - lo] >= 0:
                q = fill[rowmap[r - lo]]
                out_idx[q] = j
                out_val[q] = data[p]
                fill[rowmap[r - lo]] = q + 1
            p += 1
        cursor[j] = p
    return counts, out_idx, out_val


def csc_memory_blocks(mat, src, batch_size: int, cols) -> Iterator[tuple[int, int, Block]]:
    mat = sparse.csc_matrix(mat)  # no copy for csc_matrix / csc_array
    rows = src._rows
    sorted_rows = rows is None or rows.size < 2 or bool(np.all(np.diff(rows) > 0))
    if not sorted_rows:  # views with unsorted / repeated rows: scipy fancy indexing
        for start in range(0, src.n_obs, batch_size):
            stop = min(start + batch_size, src.n_obs)
            block = mat[rows[start:stop]]
            block = block if cols is None else block[:, cols]
            yield start, stop, finish(block, owned=True)
        return
    if not mat.has_sorted_indices:
        mat = mat.sorted_indices()  # a copy: the cursors need sorted rows per column
    cols_arr = np.arange(mat.shape[1], dtype=np.int64) if cols is None else cols
    cursor = mat.indptr[cols_arr].astype(np.int64)
    for start in range(0, src.n_obs, batch_size):
        stop = min(start + batch_size, src.n_obs)
        if rows is None:
            lo, hi = src._row0 + start, src._row0 + stop
            rowmap = np.arange(stop - start, dtype=np.int64)
        else:
            r = rows[start:stop]
            lo, hi = int(r[0]), int(r[-1]) + 1
            rowmap = np.full(hi - lo, -1, dtype=np.int64)
            rowmap[r - lo] = np.arange(r.size)
        indptr, idx, val = _csc_cursor_block(
            mat.indptr, mat.indices, mat.data, cols_arr, cursor, lo, hi, rowmap, stop - start
        )
        block = sparse.csr_matrix((val, idx, indptr), shape=(stop - start, cols_arr.size))
        block.has_sorted_indices = True
        if not mat.has_canonical_format:
            block.has_canonical_format = False
        yield start, stop, finish(block, owned=True)
