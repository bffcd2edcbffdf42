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


class _AlignedRows:
    """Contiguous row reads of a dense on-disk array stored in chunks of rows (zarr, chunked
    HDF5), aligned to the chunks: each read extends to the end of its last chunk and keeps the
    rows beyond the block for the next one, so no chunk is read (and decompressed) twice when
    ``batch_size`` is not a multiple of the chunk's rows. Holds at most one chunk of rows more."""

    def __init__(self, mat, chunk_rows: int):
        self._mat = mat
        self._chunk = chunk_rows
        self._n = int(mat.shape[0])
        self._held_at, self._held = 0, None

    def __call__(self, a: int, b: int) -> np.ndarray:
        parts = []
        held, at = self._held, self._held_at
        if held is not None and at <= a < at + held.shape[0]:
            parts.append(held[a - at : b - at].copy())  # blocks are owned by the caller
            if b <= at + held.shape[0]:
                return parts[0]
            a = at + held.shape[0]
        self._held = None
        end = min(-(-b // self._chunk) * self._chunk, self._n)
        piece = np.asarray(self._mat[a:end])
        parts.append(piece[: b - a])
        if end > b:
            self._held_at, self._held = b, piece[b - a :].copy()
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


def _row_reader(mat, batch_size: int):
    """How to read rows ``a:b``: chunk-aligned for dense arrays chunked by rows on disk."""
    chunks = getattr(mat, "chunks", None)
    if backed_sparse_format(mat) is None and isinstance(chunks, tuple) and len(chunks) == 2:
        if 1 < int(chunks[0]) and batch_size % int(chunks[0]):
            return _AlignedRows(mat, int(chunks[0]))
    return lambda a, b: _read_rows(mat, a, b)


def row_blocks(mat, src, batch_size: int, cols, first: int = 0) -> Iterator[tuple[int, int, Block]]:
    on_disk = src.backed or isinstance(mat, h5py.Dataset) or backed_sparse_format(mat) is not None
    read = _row_reader(mat, batch_size) if on_disk else (lambda a, b: _read_rows(mat, a, b))
    for start in range(first, src.n_obs, batch_size):
        stop = min(start + batch_size, src.n_obs)
        pos = _row_positions(src, start, stop)
        if isinstance(pos, tuple):
            block = _select_cols(read(*pos), cols)
        elif on_disk or hasattr(mat, "compute"):
            block = _take_rows_pieces(mat, pos, cols, piece_rows=batch_size)
        else:
            block = _select_cols(mat[pos], cols)
        # in memory, slices of dense arrays share memory with the matrix: copy them
        yield start, stop, finish(block, owned=on_disk)
