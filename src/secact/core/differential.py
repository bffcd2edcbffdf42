"""Wilcoxon rank-sum differential expression on arrays: per-chunk sums and final statistics.

:class:`RankSumChunk` turns one chunk of genes (CSC arrays or a dense Fortran block, rows =
cells) into per-gene, per-category rank sums, tie terms, counts of non-zeros, sums (raw and
``expm1``), NaN flags and non-integer flags (:mod:`secact.core.ranksum` kernels).
:func:`rank_sums` drives it over the chunks of a reader through the runner, and
:func:`statistics` turns the sums into U, z, p, FDR, fractions, means and fold changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import ranksum as _rk
from . import runner

__all__ = ["RankSumChunk", "rank_sums", "statistics"]


@dataclass(eq=False)
class RankSumChunk:
    """Rank-sum statistics of one chunk of genes, against "rest" (``ref < 0``) or a category."""

    codes: np.ndarray  # category of every cell (-1: none)
    n_cat: np.ndarray  # cells per category
    ref: int
    use: np.ndarray  # categories tested (one-vs-one)
    need_e: bool  # whether sums of expm1 are needed

    def __call__(self, chunk, start: int):
        n_total = int(self.n_cat.sum())
        if isinstance(chunk, np.ndarray):
            if self.ref < 0:
                return _rk.ovr_dense(chunk, self.codes, self.n_cat, n_total, self.need_e)
            return _rk.ovo_dense(chunk, self.codes, self.n_cat, self.ref, self.use, self.need_e)
        args = (chunk.data, chunk.indices, chunk.indptr, self.codes, self.n_cat)
        if self.ref < 0:
            return _rk.ovr_csc(*args, n_total, self.need_e)
        return _rk.ovo_csc(*args, self.ref, self.use, self.need_e)


def rank_sums(reader, fn: RankSumChunk, *, progress: bool | None = None) -> dict[str, np.ndarray]:
    """Per-gene sums of every chunk of ``reader`` (items ``(start, stop, chunk)`` over genes)."""
    n_vars, ncat = reader.n_vars, fn.n_cat.size
    acc = {
        "stat": np.zeros((n_vars, ncat)),
        "tie": np.zeros((n_vars, 1 if fn.ref < 0 else ncat)),
        "nnz": np.zeros((n_vars, ncat), dtype=np.int64),
        "sx": np.zeros((n_vars, ncat)),
        "se": np.zeros((n_vars, ncat)),
        "nan": np.zeros((n_vars, ncat), dtype=np.bool_),
        "nonint": np.zeros(n_vars, dtype=np.bool_),
    }
    names = ("stat", "tie", "nnz", "sx", "se", "nan", "nonint")

    def sink(a, b, out):
        for name, value in zip(names, out, strict=True):
            acc[name][a:b] = value.reshape(acc[name][a:b].shape)

    runner.run(iter(reader), fn, sink, progress=progress, total=n_vars, desc="rank-sum", unit="genes")
    return acc


def statistics(
    acc: dict[str, np.ndarray],
    n_cat: np.ndarray,
    sel: np.ndarray,
    ref: int,
    kind: str,
    *,
    tie_correct: bool,
    continuity: bool,
    pseudocount: float,
) -> dict[str, np.ndarray]:
    """Genes x selected groups arrays: statistic, zscore, pvalue, fdr, log2fc, pct_*, mean_*.

    ``kind`` is the data's scale (``"log1p"``: means of ``expm1``; ``"counts"``: pooled CPM).
    ``nan`` flags genes whose values contain NaN for the pair compared.
    """
    stat, tie, nnz, sx, se, nanf = (acc[k] for k in ("stat", "tie", "nnz", "sx", "se", "nan"))
    ovr = ref < 0
    n_total = int(n_cat.sum())
    n1 = n_cat[sel].astype(np.float64)
    if ovr:
        n2 = n_total - n1
        u1 = stat[:, sel] - n1 * (n1 + 1.0) / 2.0
        t = tie
        bad = np.broadcast_to(nanf.any(axis=1, keepdims=True), u1.shape)
    else:
        n2 = np.full_like(n1, float(n_cat[ref]))
        u1 = stat[:, sel]
        t = tie[:, sel]
        bad = nanf[:, sel] | nanf[:, [ref]]
    u1 = np.where(bad, np.nan, u1)
    z, p = _rk.ranksum_z_p(u1, n1, n2, t, tie_correct=tie_correct, continuity=continuity)
    fdr = _rk.benjamini_hochberg(p.T).T
    with np.errstate(divide="ignore", invalid="ignore"):
        pct_g = nnz[:, sel] / n1
        if ovr:
            pct_r = (nnz.sum(axis=1, keepdims=True) - nnz[:, sel]) / n2
        else:
            pct_r = np.broadcast_to(nnz[:, [ref]] / n2, pct_g.shape)
        if kind == "log1p":
            mean_g = se[:, sel] / n1
            mean_r = (se.sum(axis=1, keepdims=True) - se[:, sel]) / n2 if ovr else se[:, [ref]] / n2
        else:
            lib = np.nansum(sx, axis=0)  # counts of all genes per category
            lib_g = lib[sel]
            mean_g = np.where(lib_g > 0, 1e6 * sx[:, sel] / lib_g, 0.0)
            if ovr:
                lib_r = lib.sum() - lib_g
                mean_r = np.where(lib_r > 0, 1e6 * (sx.sum(axis=1, keepdims=True) - sx[:, sel]) / lib_r, 0.0)
            else:
                mean_r = np.where(lib[ref] > 0, 1e6 * sx[:, [ref]] / lib[ref], 0.0)
        mean_r = np.broadcast_to(mean_r, mean_g.shape)
        log2fc = np.log2((mean_g + pseudocount) / (mean_r + pseudocount))
    return {
        "statistic": u1,
        "zscore": z,
        "pvalue": p,
        "fdr": fdr,
        "log2fc": log2fc,
        "pct_group": pct_g,
        "pct_reference": pct_r,
        "mean_group": mean_g,
        "mean_reference": mean_r,
        "bad": bad,
    }
