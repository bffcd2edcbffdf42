"""Hand-written Numba kernels of the block engine (the sparse permutation kernels are generated:
``_sparse_kernels.py``)."""

from __future__ import annotations

import numba as nb
import numpy as np

from ._numba import njit

__all__ = ["accumulate_moments", "aligned_empty", "expand_columns", "gather_columns"]


@njit
def gather_columns(z, idx, out):  # pragma: no cover - compiled
    """``out[j * k + i] = z[j, idx[i]]`` for the ``k`` permutations in ``idx``."""
    m, n = z.shape
    k = idx.shape[0]
    for r in nb.prange(m * k):
        j = r // k
        i = r - j * k
        zr = z[j]
        ir = idx[i]
        o = out[r]
        for g in range(n):
            o[g] = zr[ir[g]]


@njit
def accumulate_moments(bp, k, absb, s1, s2, cnt):  # pragma: no cover - compiled
    """Fold ``k`` permuted betas per sample (rows ``j * k .. j * k + k - 1`` of ``bp``) into the
    running sum, sum of squares and exceedance count, in permutation order."""
    m, p = absb.shape
    for j in nb.prange(m):
        for i in range(k):
            row = bp[j * k + i]
            for q in range(p):
                x = np.float64(row[q])
                s1[j, q] += x
                s2[j, q] += x * x
                if abs(x) >= absb[j, q]:
                    cnt[j, q] += 1.0


@njit
def expand_columns(src, idx, invalid, out):  # pragma: no cover - compiled
    """``out[i, j] = src[i, idx[j]]`` cast to ``out``'s type, NaN on the rows where ``invalid``:
    a grouped result expanded to every protein in one pass (``np.take`` plus ``astype`` plus a
    masked assignment read and write the result three times)."""
    m = src.shape[0]
    p = idx.shape[0]
    for i in nb.prange(m):
        o = out[i]
        if invalid[i]:
            for j in range(p):
                o[j] = np.nan
        else:
            s = src[i]
            for j in range(p):
                o[j] = s[idx[j]]


def aligned_empty(shape: tuple[int, ...], dtype, align: int = 64) -> np.ndarray:
    """An uninitialised C-ordered array whose data start on an ``align``-byte boundary (a kernel
    row that straddles two cache lines costs two loads)."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    buf = np.empty(size * dtype.itemsize + align, dtype=np.uint8)
    start = -buf.ctypes.data % align
    return buf[start : start + size * dtype.itemsize].view(dtype).reshape(shape)
