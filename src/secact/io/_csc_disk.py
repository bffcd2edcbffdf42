"""CSC matrices on disk, read by blocks of rows: a one-off transpose to a temporary file.

A pass first transposes the requested columns once into a temporary HDF5 file: column
chunks (about twice a block's entries, between 2**18 and ``secact.settings.csc_chunk_nnz``
entries; one column may exceed this) are read with the anndata sparse-dataset API, split by
cell block and written as per-chunk pieces; the pass then streams the file block by block,
merging each block's pieces into CSR. The source is read exactly once per pass (each
requested column once, never per block); the temporary file holds the selected entries
(``nnz * (8 + itemsize)`` bytes, in ``temp_dir``) and is deleted when the pass ends or is
abandoned. Measured on a 20,000 x 5,000 float32 CSC file with 10**7 entries (2 cores,
1,000-cell blocks): one pass over all genes takes 0.7 s against 0.18 s for the same matrix
stored as CSR, with the same peak memory; a pass over 1,000 genes 0.4 s.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
from scipy import sparse

from .._settings import settings
from ._blocks import Block, check_indices, finish, group_where
from ._output import pid_alive

__all__ = ["csc_disk_blocks"]

#: least stored entries per column chunk of the transpose
_CSC_MIN_CHUNK_NNZ = 1 << 18
#: merge two column runs into one read when fewer entries than this lie between them
_CSC_GAP_NNZ = 1 << 16


def _read_csc_columns(ds, a: int, b: int) -> sparse.csc_matrix:
    """Columns ``a:b`` of a backed CSC dataset, through the anndata API."""
    return sparse.csc_matrix(ds[:, a:b])


def _column_reads(sc: np.ndarray, indptr: np.ndarray, budget: int) -> list[tuple[int, int, int, int]]:
    """Split sorted source columns ``sc`` into reads ``(i, j, a, b)``.

    ``sc[i:j]`` lie in source columns ``[a, b)``. Runs are merged while fewer than
    :data:`_CSC_GAP_NNZ` unrequested entries separate them and the read stays below
    ``budget`` entries (a single column may exceed it).
    """
    reads = []
    i = 0
    n = sc.size
    while i < n:
        a = int(sc[i])
        j = i + 1
        while j < n:
            nxt = int(sc[j])
            prev_end = int(sc[j - 1]) + 1
            gap = indptr[nxt] - indptr[prev_end] if nxt > prev_end else 0
            if gap > _CSC_GAP_NNZ or indptr[nxt + 1] - indptr[a] > budget:
                break
            j += 1
        reads.append((i, j, a, int(sc[j - 1]) + 1))
        i = j
    return reads


class _RowMap:
    """Map underlying row indices to source positions (views: any order, repeats allowed)."""

    def __init__(self, src, n_under: int):
        self.row0, self.n = src._row0, src.n_obs
        self.rows = src._rows
        self.identity = self.rows is None and self.row0 == 0 and self.n == n_under
        if self.rows is not None:
            self.order = np.argsort(self.rows, kind="stable")
            self.sorted = self.rows[self.order]

    def __call__(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(pos, take)``: entry ``take[k]`` lands at source row ``pos[k]``.

        ``take`` is ``None`` when every entry is kept, in order.
        """
        if self.identity:
            return u, None
        if self.rows is None:
            pos = u.astype(np.int64) - self.row0
            take = np.flatnonzero((pos >= 0) & (pos < self.n))
            return pos[take], take
        lo = np.searchsorted(self.sorted, u, side="left")
        hi = np.searchsorted(self.sorted, u, side="right")
        cnt = hi - lo
        take = np.repeat(np.arange(u.size), cnt)
        first = np.cumsum(cnt) - cnt
        k = np.arange(take.size) - np.repeat(first, cnt)
        return self.order[lo[take] + k], take


def _clean_stale_transposes(temp_dir) -> None:
    """Remove transposes left in ``temp_dir`` by processes that no longer run (killed)."""
    folder = Path(temp_dir or tempfile.gettempdir())
    for f in folder.glob("secact-csc-*-*.h5"):
        pid = f.name.split("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            f.unlink(missing_ok=True)


def csc_disk_blocks(ds, src, batch_size: int, cols, temp_dir) -> Iterator[tuple[int, int, Block]]:
    cols = np.arange(int(ds.shape[1]), dtype=np.int64) if cols is None else cols
    n_out = cols.size
    n_blocks = -(-src.n_obs // batch_size)
    indptr = np.asarray(ds.group["indptr"][...], dtype=np.int64)
    order = np.argsort(cols, kind="stable")
    sc = cols[order]  # requested source columns, sorted
    lengths = indptr[sc + 1] - indptr[sc]
    block_nnz = int(lengths.sum()) * batch_size // max(int(ds.shape[0]), 1)
    budget = max(min(int(settings.csc_chunk_nnz), max(2 * block_nnz, _CSC_MIN_CHUNK_NNZ)), 1)
    rowmap = _RowMap(src, int(ds.shape[0]))

    _clean_stale_transposes(temp_dir)
    fd, tmp_path = tempfile.mkstemp(prefix=f"secact-csc-{os.getpid()}-", suffix=".h5", dir=temp_dir)
    os.close(fd)
    tmp = None
    try:
        tmp = h5py.File(tmp_path, "w")
        offsets: list[np.ndarray] = []
        # chunks of requested (sorted) columns holding at most `budget` entries each
        csum = np.concatenate([[0], np.cumsum(lengths)])
        i = 0
        while i < sc.size:
            j = max(int(np.searchsorted(csum, csum[i] + budget, side="right")) - 1, i + 1)
            pos_parts, col_parts, val_parts = [], [], []
            for ri, rj, a, b in _column_reads(sc[i:j], indptr, budget):
                m = _read_csc_columns(ds, a, b)
                check_indices(m.indices, int(ds.shape[0]), where=group_where(ds.group))
                lc = sc[i + ri : i + rj] - a
                lens = np.diff(m.indptr)[lc]
                labels = np.repeat(order[i + ri : i + rj].astype(np.int32), lens)
                if lc.size == b - a:  # the read holds exactly the requested columns
                    u, val = m.indices, m.data
                else:
                    starts = m.indptr[lc].astype(np.int64)
                    gather = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))
                    u, val = m.indices[gather], m.data[gather]
                    del gather
                del m
                pos, take = rowmap(u)
                del u
                pos_parts.append(pos)
                col_parts.append(labels if take is None else labels[take])
                val_parts.append(val if take is None else val[take])
                del labels, val, take
            pos = np.concatenate(pos_parts) if len(pos_parts) > 1 else pos_parts[0]
            col = np.concatenate(col_parts) if len(col_parts) > 1 else col_parts[0]
            val = np.concatenate(val_parts) if len(val_parts) > 1 else val_parts[0]
            del pos_parts, col_parts, val_parts
            # split by cell block (stable: a counting sort on the block id)
            bid = pos // batch_size
            off = np.zeros(n_blocks + 1, dtype=np.int64)
            np.cumsum(np.bincount(bid, minlength=n_blocks), out=off[1:])
            perm = np.argsort(bid, kind="stable")
            del bid
            k = len(offsets)
            tmp.create_dataset(f"{k}/row", data=(pos[perm] % batch_size).astype(np.int32, copy=False))
            del pos
            tmp.create_dataset(f"{k}/col", data=col[perm])
            del col
            tmp.create_dataset(f"{k}/val", data=val[perm])
            offsets.append(off)
            del val, perm
            i = j
        pieces = [(tmp[f"{k}/row"], tmp[f"{k}/col"], tmp[f"{k}/val"]) for k in range(len(offsets))]
        for bi, start in enumerate(range(0, src.n_obs, batch_size)):
            stop = min(start + batch_size, src.n_obs)
            rr, cc, vv = [], [], []
            for off, (dr, dc, dv) in zip(offsets, pieces, strict=True):
                a, b = int(off[bi]), int(off[bi + 1])
                if b > a:
                    rr.append(dr[a:b])
                    cc.append(dc[a:b])
                    vv.append(dv[a:b])
            if rr:
                coo = sparse.coo_matrix(
                    (np.concatenate(vv).astype(np.float64), (np.concatenate(rr), np.concatenate(cc))),
                    shape=(stop - start, n_out),
                )
                block = coo.tocsr()
            else:
                block = sparse.csr_matrix((stop - start, n_out), dtype=np.float64)
            yield start, stop, finish(block, owned=True)
    finally:
        if tmp is not None:
            tmp.close()
        with contextlib.suppress(OSError):
            os.remove(tmp_path)
