"""Row-major reading of a source: dense and CSR matrices, in memory or on disk.

Each block reads exactly its rows, then selects the requested columns in memory (``h5py``
would need increasing column indices). Views with non-contiguous rows read the covering row
range in pieces of at most ``batch_size`` underlying rows, skipping gaps, and keep the
selected rows.
"""

from __future__ import annotations

from collections.abc import Iterator

import h5py
import numpy as np
from fast_array_utils import types
from scipy import sparse

from ._blocks import Block, backed_sparse_format, finish

__all__ = ["row_blocks"]


def _row_positions(src, start: int, stop: int) -> tuple[int, int] | np.ndarray:
    if src._rows is None:
        return src._row0 + start, src._row0 + stop
    return src._rows[start:stop]


def _select_cols(block, cols):
    if cols is None:
        return block
    if isinstance(block, types.CSBase):
        return sparse.csr_matrix(block)[:, cols]
    return block[:, cols]


def _read_rows(mat, a: int, b: int):
    """Rows ``a:b`` of the underlying matrix (in memory, h5py, backed sparse or dask)."""
    out = mat[a:b]
    if hasattr(out, "compute"):
        out = out.compute()
    return out


def _take_rows_pieces(mat, rows: np.ndarray, cols, piece_rows: int):
    """Rows ``rows`` (any order, repeats allowed) of an on-disk matrix, column-selected.

    Reads the covering row range in contiguous pieces of at most ``piece_rows`` rows,
    skipping gaps between requested rows, and keeps only requested rows of each piece.
    """
    uniq = np.unique(rows)
    parts = []
    i = 0
    while i < uniq.size:
        a = int(uniq[i])
        j = int(np.searchsorted(uniq, a + piece_rows, side="left"))
        b = int(uniq[j - 1]) + 1
        piece = _read_rows(mat, a, b)
        want = uniq[i:j] - a
        if want.size != b - a:
            piece = piece[want]
        parts.append(_select_cols(piece, cols))
        i = j
    if isinstance(parts[0], types.CSBase):
        out = sparse.vstack([sparse.csr_matrix(p) for p in parts], format="csr")
    else:
        out = np.concatenate(parts, axis=0)
    if uniq.size != rows.size or not np.array_equal(uniq, rows):
        out = out[np.searchsorted(uniq, rows)]
    return out


def row_blocks(mat, src, batch_size: int, cols, first: int = 0) -> Iterator[tuple[int, int, Block]]:
    on_disk = isinstance(mat, h5py.Dataset) or backed_sparse_format(mat) is not None
    for start in range(first, src.n_obs, batch_size):
        stop = min(start + batch_size, src.n_obs)
        pos = _row_positions(src, start, stop)
        if isinstance(pos, tuple):
            block = _select_cols(_read_rows(mat, *pos), cols)
        elif on_disk or hasattr(mat, "compute"):
            block = _take_rows_pieces(mat, pos, cols, piece_rows=batch_size)
        else:
            block = _select_cols(mat[pos], cols)
        # in memory, slices of dense arrays share memory with the matrix: copy them
        yield start, stop, finish(block, owned=on_disk)
