"""Numba kernels for Wilcoxon rank-sum (Mann-Whitney U) statistics on gene chunks.

Pure array code: no AnnData, no pandas. The kernels work on one chunk of genes held
either as CSC arrays (``data``, ``indices``, ``indptr``; rows are cells) or as a dense
``(n_cells, n_genes)`` array, and run in parallel over genes.

Every cell carries an integer category code (``-1`` = excluded from every comparison,
e.g. a NaN group label). Stored zeros, explicit or implicit, form a single tie block whose
size is counted, never sorted: only the non-zero values of a gene are sorted, once per
gene, and that one ordering is shared by all groups.

* One-vs-rest (:func:`ovr_csc`, :func:`ovr_dense`): the included cells of a gene are
  ranked once (average ranks for ties) and every group's rank sum is accumulated from that
  ranking; the tie term ``sum(t**3 - t)`` is common to all groups because the pooled sample
  is the same.
* One-vs-reference (:func:`ovo_csc`, :func:`ovo_dense`): the gene's values are walked once
  in sorted order; for each tie block, each group's values are merged against the
  reference's values of that block, which gives U1 directly (``#reference below + 0.5 *
  #reference tied``) and the group-specific tie term.

Both also return, per category and gene, the number of non-zero values, the sum of the
values, the sum of ``expm1`` of the values, a NaN flag, and per gene whether every finite
stored value is an integer (used to tell counts from log1p data).
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = [
    "all_integer",
    "benjamini_hochberg",
    "ovo_csc",
    "ovo_dense",
    "ovr_csc",
    "ovr_dense",
    "ranksum_z_p",
]

_SIGN32 = np.uint32(0x80000000)


@nb.njit(cache=True, inline="always")
def _sortable_u32(bits):
    # order-preserving map of IEEE-754 float32 bits onto uint32
    if bits & _SIGN32:
        return ~bits
    return bits | _SIGN32


@nb.njit(cache=True)
def _radix_order(ukeys):
    """Stable LSD radix sort (11-bit digits) of uint32 keys; returns the permutation."""
    k = ukeys.shape[0]
    order = np.arange(k).astype(np.int64)
    tmp_o = np.empty(k, dtype=np.int64)
    keys = ukeys.copy()
    tmp_k = np.empty(k, dtype=np.uint32)
    count = np.empty(2049, dtype=np.int64)
    for shift in (0, 11, 22):
        count[:] = 0
        for i in range(k):
            count[((keys[i] >> shift) & 2047) + 1] += 1
        if count.max() == k:  # every key has the same digit: nothing to do
            continue
        for d in range(2048):
            count[d + 1] += count[d]
        for i in range(k):
            d = (keys[i] >> shift) & 2047
            q = count[d]
            tmp_k[q] = keys[i]
            tmp_o[q] = order[i]
            count[d] = q + 1
        keys, tmp_k = tmp_k, keys
        order, tmp_o = tmp_o, order
    return order


@nb.njit(cache=True)
def _sort_order(buf):
    """Return the permutation sorting ``buf`` ascending (ties in any order).

    Values exactly representable in float32 (counts, float32 data) are sorted by a radix
    sort of their order-preserving uint32 bit patterns; other values by an argsort.
    """
    k = buf.shape[0]
    if k < 256:
        return np.argsort(buf, kind="quicksort")
    exact32 = True
    for i in range(k):
        if np.float64(np.float32(buf[i])) != np.float64(buf[i]):
            exact32 = False
            break
    if not exact32:
        return np.argsort(buf, kind="quicksort")
    bits = buf.astype(np.float32).view(np.uint32)
    keys = np.empty(k, dtype=np.uint32)
    for i in range(k):
        keys[i] = _sortable_u32(bits[i])
    return _radix_order(keys)


@nb.njit(cache=True)
def _collect(vals, rows, codes, ncat, use, need_e, nnz, sx, se, nanf):
    """Gather the non-zero, non-NaN values of cells whose category is used.

    Fills per-category counters (``nnz``, ``sx``, ``se``, ``nanf``) for every category
    (used or not) and returns ``(buf, cat, nonint)`` for the used ones.
    """
    k = vals.shape[0]
    buf = np.empty(k, dtype=np.float64)
    cat = np.empty(k, dtype=np.int32)
    m = 0
    nonint = False
    for i in range(k):
        c = codes[rows[i]]
        if c < 0:
            continue
        v = np.float64(vals[i])
        if not np.isfinite(v):  # NaN and inf: the gene's statistics are NaN for this group
            nanf[c] = True
            continue
        if v == 0.0:
            continue
        if not nonint and np.isfinite(v) and v != np.floor(v):
            nonint = True
        nnz[c] += 1
        sx[c] += v
        if need_e:
            se[c] += np.expm1(v)
        if use[c]:
            buf[m] = v
            cat[m] = c
            m += 1
    return buf[:m], cat[:m], nonint


@nb.njit(cache=True)
def _ovr_gene(vals, rows, codes, ncat, n_cat, n_total, need_e, out_r, out_tie, nnz, sx, se, nanf):
    """Rank sums of every category against the rest for one gene."""
    use = np.ones(ncat, dtype=np.bool_)
    buf, cat, nonint = _collect(vals, rows, codes, ncat, use, need_e, nnz, sx, se, nanf)
    m = buf.shape[0]
    order = _sort_order(buf)
    nzero = n_total - m
    tie = 0.0
    pos = 0.0  # number of cells ranked so far
    zero_done = False
    i = 0
    while i < m:
        v = buf[order[i]]
        if not zero_done and v > 0.0:
            if nzero > 0:
                t = np.float64(nzero)
                r0 = pos + (t + 1.0) / 2.0
                for c in range(ncat):
                    out_r[c] += (n_cat[c] - nnz[c]) * r0
                tie += t * t * t - t
                pos += t
            zero_done = True
        j = i + 1
        while j < m and buf[order[j]] == v:
            j += 1
        t = np.float64(j - i)
        r = pos + (t + 1.0) / 2.0
        for q in range(i, j):
            out_r[cat[order[q]]] += r
        if j - i > 1:
            tie += t * t * t - t
        pos += t
        i = j
    if not zero_done and nzero > 0:
        t = np.float64(nzero)
        r0 = pos + (t + 1.0) / 2.0
        for c in range(ncat):
            out_r[c] += (n_cat[c] - nnz[c]) * r0
        tie += t * t * t - t
    out_tie[0] = tie
    return nonint


@nb.njit(cache=True)
def _ovo_gene(vals, rows, codes, ncat, n_cat, ref, use, need_e, out_u, out_tie, nnz, sx, se, nanf):
    """U1 and tie term of every used category against category ``ref`` for one gene."""
    buf, cat, nonint = _collect(vals, rows, codes, ncat, use, need_e, nnz, sx, se, nanf)
    m = buf.shape[0]
    order = _sort_order(buf)
    cnt = np.zeros(ncat, dtype=np.int64)
    touched = np.empty(ncat, dtype=np.int64)
    corr = np.zeros(ncat, dtype=np.float64)  # group-specific part of the tie term
    tie_ref = 0.0  # tie term of reference-only blocks, common to all groups
    below = 0.0  # reference values strictly below the current block
    zr = np.float64(n_cat[ref] - nnz[ref])
    zero_done = False
    i = 0
    while True:
        if not zero_done and (i >= m or buf[order[i]] > 0.0):
            # the block of zeros
            tie_ref += zr * zr * zr - zr
            for c in range(ncat):
                if c == ref or not use[c]:
                    continue
                zg = np.float64(n_cat[c] - nnz[c])
                if zg > 0:
                    out_u[c] += zg * (below + 0.5 * zr)
                    t = zg + zr
                    corr[c] += (t * t * t - t) - (zr * zr * zr - zr)
            below += zr
            zero_done = True
        if i >= m:
            break
        v = buf[order[i]]
        j = i + 1
        cr = 0
        if cat[order[i]] == ref:
            cr += 1
        while j < m and buf[order[j]] == v:
            if cat[order[j]] == ref:
                cr += 1
            j += 1
        fr = np.float64(cr)
        if j - i > cr:
            nt = 0
            for q in range(i, j):
                c = cat[order[q]]
                if c != ref:
                    if cnt[c] == 0:
                        touched[nt] = c
                        nt += 1
                    cnt[c] += 1
            for s in range(nt):
                c = touched[s]
                g = np.float64(cnt[c])
                out_u[c] += g * (below + 0.5 * fr)
                t = g + fr
                corr[c] += (t * t * t - t) - (fr * fr * fr - fr)
                cnt[c] = 0
        tie_ref += fr * fr * fr - fr
        below += fr
        i = j
    for c in range(ncat):
        out_tie[c] = tie_ref + corr[c]
    return nonint


@nb.njit(parallel=True, cache=True)
def ovr_csc(data, indices, indptr, codes, n_cat, n_total, need_expm1=True):
    """One-vs-rest rank sums for a CSC chunk.

    Parameters
    ----------
    data, indices, indptr
        CSC arrays of the chunk (rows are cells, ``len(indptr) - 1`` genes).
    codes
        ``int32`` category code per cell, ``-1`` for excluded cells.
    n_cat
        ``int64`` number of included cells per category.
    n_total
        Number of included cells (``n_cat.sum()``).
    need_expm1
        Accumulate ``sum_expm1`` (left at 0 otherwise, which saves an ``expm1`` per value).

    Returns
    -------
    rank_sum
        ``(n_genes, n_cat)`` sum of ranks of each category's cells among all included cells.
    tie
        ``(n_genes,)`` tie term ``sum(t**3 - t)`` of the pooled sample.
    nnz, sum_x, sum_expm1, has_nan
        ``(n_genes, n_cat)`` per-category non-zero counts, sums, sums of ``expm1``, NaN flags.
    nonint
        ``(n_genes,)`` whether some finite stored value is not an integer.
    """
    ng = indptr.shape[0] - 1
    ncat = n_cat.shape[0]
    rs = np.zeros((ng, ncat))
    tie = np.zeros(ng)
    nnz = np.zeros((ng, ncat), dtype=np.int64)
    sx = np.zeros((ng, ncat))
    se = np.zeros((ng, ncat))
    nanf = np.zeros((ng, ncat), dtype=np.bool_)
    nonint = np.zeros(ng, dtype=np.bool_)
    for j in nb.prange(ng):
        a, b = indptr[j], indptr[j + 1]
        nonint[j] = _ovr_gene(
            data[a:b], indices[a:b], codes, ncat, n_cat, n_total, need_expm1,
            rs[j], tie[j:j + 1], nnz[j], sx[j], se[j], nanf[j],
        )  # fmt: skip
    return rs, tie, nnz, sx, se, nanf, nonint


@nb.njit(parallel=True, cache=True)
def ovr_dense(x, codes, n_cat, n_total, need_expm1=True):
    """One-vs-rest rank sums for a dense ``(n_cells, n_genes)`` chunk; see :func:`ovr_csc`."""
    ng = x.shape[1]
    ncat = n_cat.shape[0]
    rows = np.arange(x.shape[0])
    rs = np.zeros((ng, ncat))
    tie = np.zeros(ng)
    nnz = np.zeros((ng, ncat), dtype=np.int64)
    sx = np.zeros((ng, ncat))
    se = np.zeros((ng, ncat))
    nanf = np.zeros((ng, ncat), dtype=np.bool_)
    nonint = np.zeros(ng, dtype=np.bool_)
    for j in nb.prange(ng):
        col = np.ascontiguousarray(x[:, j])
        nonint[j] = _ovr_gene(
            col, rows, codes, ncat, n_cat, n_total, need_expm1,
            rs[j], tie[j:j + 1], nnz[j], sx[j], se[j], nanf[j],
        )  # fmt: skip
    return rs, tie, nnz, sx, se, nanf, nonint


@nb.njit(parallel=True, cache=True)
def ovo_csc(data, indices, indptr, codes, n_cat, ref, use, need_expm1=True):
    """One-vs-reference U statistics for a CSC chunk.

    Parameters
    ----------
    data, indices, indptr
        CSC arrays of the chunk (rows are cells).
    codes
        ``int32`` category code per cell, ``-1`` for excluded cells.
    n_cat
        ``int64`` number of included cells per category.
    ref
        Category code of the reference.
    use
        Boolean per category: compare this category with the reference.

    Returns
    -------
    u1
        ``(n_genes, n_cat)`` Mann-Whitney U of each category (x) against the reference (y).
    tie
        ``(n_genes, n_cat)`` tie term of each category pooled with the reference.
    nnz, sum_x, sum_expm1, has_nan, nonint
        As in :func:`ovr_csc`.
    """
    ng = indptr.shape[0] - 1
    ncat = n_cat.shape[0]
    use2 = use.copy()
    use2[ref] = True
    u = np.zeros((ng, ncat))
    tie = np.zeros((ng, ncat))
    nnz = np.zeros((ng, ncat), dtype=np.int64)
    sx = np.zeros((ng, ncat))
    se = np.zeros((ng, ncat))
    nanf = np.zeros((ng, ncat), dtype=np.bool_)
    nonint = np.zeros(ng, dtype=np.bool_)
    for j in nb.prange(ng):
        a, b = indptr[j], indptr[j + 1]
        nonint[j] = _ovo_gene(
            data[a:b], indices[a:b], codes, ncat, n_cat, ref, use2, need_expm1,
            u[j], tie[j], nnz[j], sx[j], se[j], nanf[j],
        )  # fmt: skip
    return u, tie, nnz, sx, se, nanf, nonint


@nb.njit(parallel=True, cache=True)
def ovo_dense(x, codes, n_cat, ref, use, need_expm1=True):
    """One-vs-reference U statistics for a dense ``(n_cells, n_genes)`` chunk; see :func:`ovo_csc`."""
    ng = x.shape[1]
    ncat = n_cat.shape[0]
    use2 = use.copy()
    use2[ref] = True
    rows = np.arange(x.shape[0])
    u = np.zeros((ng, ncat))
    tie = np.zeros((ng, ncat))
    nnz = np.zeros((ng, ncat), dtype=np.int64)
    sx = np.zeros((ng, ncat))
    se = np.zeros((ng, ncat))
    nanf = np.zeros((ng, ncat), dtype=np.bool_)
    nonint = np.zeros(ng, dtype=np.bool_)
    for j in nb.prange(ng):
        col = np.ascontiguousarray(x[:, j])
        nonint[j] = _ovo_gene(
            col, rows, codes, ncat, n_cat, ref, use2, need_expm1,
            u[j], tie[j], nnz[j], sx[j], se[j], nanf[j],
        )  # fmt: skip
    return u, tie, nnz, sx, se, nanf, nonint


@nb.njit(cache=True)
def all_integer(values):
    """Whether every finite value of a 1-d array is an integer (stops at the first that is not)."""
    for i in range(values.shape[0]):
        v = values[i]
        if np.isfinite(v) and v != np.floor(v):
            return False
    return True


def ranksum_z_p(
    u1: np.ndarray,
    n1: np.ndarray,
    n2: np.ndarray,
    tie: np.ndarray,
    *,
    tie_correct: bool = True,
    continuity: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Signed z-score and two-sided p-value of the normal approximation to U.

    Matches ``scipy.stats.mannwhitneyu(x, y, method="asymptotic")``: with
    ``mu = n1 n2 / 2`` and ``sigma = sqrt(n1 n2 / 12 ((n + 1) - T / (n (n - 1))))``
    (``T = 0`` without tie correction), scipy's ``z = (max(U1, U2) - mu - c) / sigma``
    (``c = 0.5`` with continuity correction, else 0) and ``p = min(1, 2 Phi(-z))``.
    The returned z-score carries the direction: ``sign(U1 - mu) * max(|U1 - mu| - c, 0) /
    sigma`` (0 where ``U1 == mu``), positive when the group ranks higher.

    Arrays broadcast against each other.
    """
    from scipy import special

    u1 = np.asarray(u1, dtype=np.float64)
    n1 = np.asarray(n1, dtype=np.float64)
    n2 = np.asarray(n2, dtype=np.float64)
    n = n1 + n2
    mu = n1 * n2 / 2.0
    t = np.asarray(tie, dtype=np.float64) if tie_correct else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        var = n1 * n2 / 12.0 * ((n + 1.0) - t / (n * (n - 1.0)))
        s = np.sqrt(var)
        d = u1 - mu
        c = 0.5 if continuity else 0.0
        num = np.abs(d) - c
        zs = num / s  # scipy's z for the two-sided test
        p = np.clip(2.0 * special.ndtr(-zs), 0.0, 1.0)
        z = np.sign(d) * np.maximum(num, 0.0) / s
    z = np.where(d == 0.0, 0.0, z)
    p = np.where(np.isnan(u1), np.nan, p)
    return z, p


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values along the last axis; NaN stays NaN and is not counted."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    flat_p = p.reshape(-1, p.shape[-1])
    flat_o = out.reshape(-1, p.shape[-1])
    for r in range(flat_p.shape[0]):
        row = flat_p[r]
        ok = np.flatnonzero(~np.isnan(row))
        m = ok.size
        if m == 0:
            continue
        order = np.argsort(row[ok], kind="stable")
        ranked = row[ok][order] * m / np.arange(1, m + 1)
        q = np.minimum.accumulate(ranked[::-1])[::-1]
        res = np.empty(m)
        res[order] = np.minimum(q, 1.0)
        flat_o[r, ok] = res
    return out
