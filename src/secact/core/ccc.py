"""Cell-cell communication by secreted proteins on arrays (SecAct R ``SecAct.CCC.scRNAseq``).

SecAct R (``R/downstream.R``, ``SecAct.CCC.scRNAseq``) links *senders* — cell types that
express a secreted protein's gene more than their control (the other cells, or the same type
in a control condition) — to *receivers* — cell types whose signalling activity of that
protein rises against their control. This module holds the array parts:

* :class:`CccBlock`, the per-block function of the one pass over the cells: pseudo-bulk
  sums per slot (a cell type, or a cell type in one condition) and the secreted-protein
  genes' columns normalised as R does, ``log2(count / library * scale_factor + 1)``;
* :func:`expression_stats`, the per-gene statistics of step 1 from rank sums and sums;
* :func:`wilcox_pvalue`, R's ``wilcox.test(x, y)$p.value`` (default arguments) from the
  rank-sum statistic: exact when both samples have fewer than 50 values and there are no
  ties, otherwise the normal approximation with tie and continuity corrections;
* :func:`cpm_log2_diff`, the pseudo-bulk difference of step 2;
* :func:`p_adjust_bh` (R's ``p.adjust(p, "BH")``) and :func:`fisher_pvalue`
  (``metap::sumlog(p)$p``);
* :func:`link`, step 3: every (sender, protein, receiver) row, its strength and its
  combined p-value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.sparse as sp
from fast_array_utils import types
from scipy import special

from .normalize import check_counts, check_finite, group_sums, library_sizes, log_normalize
from .ranksum import ranksum_z_p

__all__ = [
    "EXACT_LIMIT",
    "CccBlock",
    "Links",
    "cpm_log2_diff",
    "expression_stats",
    "fisher_pvalue",
    "link",
    "p_adjust_bh",
    "pwilcox",
    "wilcox_pvalue",
]

#: R's ``wilcox.test`` is exact when both samples have fewer values than this (and no ties).
EXACT_LIMIT = 50


# ----------------------------------------------------------------------------------------------
# the pass over the cells
# ----------------------------------------------------------------------------------------------
@dataclass(eq=False)
class CccBlock:
    """One block of cells -> pseudo-bulk sums per slot and the normalised secreted genes.

    Called as ``fn(block, start)`` by :func:`secact.core.runner.run`.

    Attributes
    ----------
    mapper
        Input columns -> gene symbols (a :class:`secact.pp._symbols.GeneMap`), or ``None``.
    slots
        Slot of every cell (``-1``: in no pseudo-bulk).
    n_slots
        Number of slots.
    genes
        Positions (among the mapped genes) of the secreted-protein genes.
    scale_factor
        Per-cell scale of step 1 (R: ``scale.factor = 1e5``).

    Returns ``(sums, values)``: ``n_slots x mapped genes`` sums of counts and a CSR matrix
    ``cells x genes`` of ``log2(count / library * scale_factor + 1)`` where the library is
    the cell's total over all mapped genes (cells without counts, and cells in no slot,
    keep empty rows).
    """

    mapper: Any
    slots: np.ndarray
    n_slots: int
    genes: np.ndarray
    scale_factor: float

    def __call__(self, block, start: int) -> tuple[np.ndarray, sp.csr_matrix]:
        check_finite(block, start)
        check_counts(block, start)
        mapped = block if self.mapper is None else self.mapper(block)
        slots = self.slots[start : start + block.shape[0]]
        sums = group_sums(mapped, slots, self.n_slots)
        lib = library_sizes(mapped)
        cols = mapped[:, self.genes]
        cols = sp.csr_matrix(cols, dtype=np.float64) if isinstance(cols, types.CSBase) else np.asarray(cols)
        values = log_normalize(cols, lib, self.scale_factor)
        values = sp.csr_matrix(values)  # dense blocks: keep only the non-zeros
        unused = np.flatnonzero(slots < 0)
        if unused.size:  # cells in no comparison: keep their rows empty (less memory)
            values.data[
                np.concatenate([np.arange(values.indptr[r], values.indptr[r + 1]) for r in unused])
            ] = 0
        values.eliminate_zeros()
        return sums, values


# ----------------------------------------------------------------------------------------------
# step 1: secreted-protein gene expression
# ----------------------------------------------------------------------------------------------
@lru_cache(maxsize=128)
def _wilcox_cumulative(m: int, n: int) -> tuple[int, ...]:
    """Cumulative counts of the Mann-Whitney ``U`` of samples of sizes ``m`` and ``n``.

    The number of arrangements with ``U = k`` is the coefficient of ``q**k`` of the Gaussian
    binomial ``[m + n choose m]_q = prod_{i=1..m} (1 - q**(n + i)) / (1 - q**i)``, built here
    with exact integers.
    """
    poly = [1]
    for i in range(1, m + 1):
        k = n + i
        new = poly + [0] * k
        for j, c in enumerate(poly):  # times (1 - q**k)
            new[j + k] -= c
        for j in range(i, len(new)):  # divided by (1 - q**i)
            new[j] += new[j - i]
        poly = new[: i * n + 1]
    cum, total = [], 0
    for c in poly:
        total += c
        cum.append(total)
    return tuple(cum)


def pwilcox(q: float, m: int, n: int, *, lower_tail: bool = True) -> float:
    """``P(U <= q)`` (or ``P(U > q)``) for the Mann-Whitney ``U`` of sizes ``m`` and ``n``.

    R's ``pwilcox``; computed from exact integer counts, so both tails are exact to the last
    digit.
    """
    m, n = int(m), int(n)
    k = math.floor(q + 1e-7)  # R: q = floor(q + 1e-7)
    if k < 0:
        below = 0
    else:
        cum = _wilcox_cumulative(m, n)
        below = cum[min(k, m * n)]
    total = math.comb(m + n, m)
    return (below if lower_tail else total - below) / total  # int / int: correctly rounded


def _exact_two_sided(u: float, m: int, n: int) -> float:
    # R: p <- if (W > m n / 2) pwilcox(W - 1, lower.tail = FALSE) else pwilcox(W); min(2 p, 1)
    p = pwilcox(u - 1.0, m, n, lower_tail=False) if u > m * n / 2.0 else pwilcox(u, m, n)
    return min(2.0 * p, 1.0)


def wilcox_pvalue(u1, n1, n2, tie) -> np.ndarray:
    """Two-sided p-value of R's ``wilcox.test(x, y)`` with its default arguments.

    Parameters
    ----------
    u1
        ``W`` of R (Mann-Whitney ``U`` of ``x``): the rank sum of ``x`` minus
        ``n1 (n1 + 1) / 2``.
    n1, n2
        Sizes of ``x`` and ``y``.
    tie
        Tie term ``sum(t**3 - t)`` over the tie blocks of the pooled sample (0: no ties).

    Arrays broadcast against each other. Where ``n1 < 50``, ``n2 < 50`` and there are no
    ties, the exact distribution (``pwilcox``) is used; elsewhere the normal approximation
    with tie correction and continuity correction (``correct = TRUE``).
    """
    u1, n1, n2, tie = np.broadcast_arrays(
        np.asarray(u1, dtype=np.float64),
        np.asarray(n1, dtype=np.float64),
        np.asarray(n2, dtype=np.float64),
        np.asarray(tie, dtype=np.float64),
    )
    _, p = ranksum_z_p(u1, n1, n2, tie, tie_correct=True, continuity=True)
    p = np.array(p, dtype=np.float64)
    exact = (n1 < EXACT_LIMIT) & (n2 < EXACT_LIMIT) & (tie == 0) & np.isfinite(u1)
    for idx in np.argwhere(exact):
        i = tuple(idx)
        p[i] = _exact_two_sided(float(u1[i]), int(n1[i]), int(n2[i]))
    return p


def expression_stats(
    rank_sum: np.ndarray,
    tie: np.ndarray,
    n_case: int,
    n_control: int,
    nnz_case: np.ndarray,
    nnz_control: np.ndarray,
    sum_case: np.ndarray,
    sum_control: np.ndarray,
) -> dict[str, np.ndarray]:
    """Step 1 statistics of one cell type for every gene (R's ``smy_deg`` columns).

    Parameters
    ----------
    rank_sum
        Sum of the ranks of the case cells among case and control cells, per gene.
    tie
        Tie term of the pooled sample, per gene.
    n_case, n_control
        Numbers of cells.
    nnz_case, nnz_control
        Cells with a value above 0, per gene.
    sum_case, sum_control
        Sums of the log-normalised values, per gene.

    Returns
    -------
    dict with ``logfc`` (``mean_case - mean_control``), ``mean_all`` (R:
    ``(mean_case n_case + mean_control n_control) / (n_case + n_control)``),
    ``mean_case``, ``mean_control``, ``fraction_case``, ``fraction_control`` and
    ``pvalue`` (:func:`wilcox_pvalue`).
    """
    n1, n2 = float(n_case), float(n_control)
    mean_case = np.asarray(sum_case, dtype=np.float64) / n1
    mean_control = np.asarray(sum_control, dtype=np.float64) / n2
    u1 = np.asarray(rank_sum, dtype=np.float64) - n1 * (n1 + 1.0) / 2.0
    return {
        "logfc": mean_case - mean_control,
        "mean_all": (mean_case * n1 + mean_control * n2) / (n1 + n2),
        "mean_case": mean_case,
        "mean_control": mean_control,
        "fraction_case": np.asarray(nnz_case, dtype=np.float64) / n1,
        "fraction_control": np.asarray(nnz_control, dtype=np.float64) / n2,
        "pvalue": wilcox_pvalue(u1, n1, n2, tie),
    }


# ----------------------------------------------------------------------------------------------
# step 2: pseudo-bulk difference
# ----------------------------------------------------------------------------------------------
def cpm_log2_diff(case: np.ndarray, control: np.ndarray) -> np.ndarray:
    """``log2(case * 1e6 / sum(case) + 1) - log2(control * 1e6 / sum(control) + 1)`` per row.

    ``case`` and ``control`` are ``types x genes`` pseudo-bulk sums; the operations are in R's
    order (``t(t(expr) * 1e6 / colSums(expr))``).
    """
    case = np.asarray(case, dtype=np.float64)
    control = np.asarray(control, dtype=np.float64)
    a = np.log2(case * 1e6 / case.sum(axis=1, keepdims=True) + 1.0)
    b = np.log2(control * 1e6 / control.sum(axis=1, keepdims=True) + 1.0)
    return a - b


# ----------------------------------------------------------------------------------------------
# multiple testing and combination
# ----------------------------------------------------------------------------------------------
def p_adjust_bh(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values of a 1-d array, as R's ``p.adjust(p, "BH")``.

    NaN stays NaN and is not counted (R evaluates ``n`` after dropping ``NA``); the
    arithmetic follows R's (``pmin(1, cummin(n / i * p[o]))``).
    """
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p must be one-dimensional, got shape {p.shape}.")
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    n = ok.size
    if n == 0:
        return out
    q = p[ok]
    o = np.argsort(-q, kind="stable")  # decreasing
    i = np.arange(n, 0, -1, dtype=np.float64)
    adj = np.minimum(1.0, np.minimum.accumulate(n / i * q[o]))
    res = np.empty(n)
    res[o] = adj
    out[ok] = res
    return out


def fisher_pvalue(p) -> np.ndarray:
    """Fisher's combined p-value of each row of ``p`` (``metap::sumlog(p)$p``).

    ``chisq = -2 sum(log p)`` with ``2 k`` degrees of freedom (``k`` p-values per row); the
    upper tail of the chi-squared distribution. Values must lie in ``(0, 1]``.
    """
    p = np.atleast_2d(np.asarray(p, dtype=np.float64))
    if ((p <= 0) | (p > 1) | np.isnan(p)).any():
        raise ValueError("p-values to combine must lie in (0, 1].")
    chisq = -2.0 * np.log(p).sum(axis=1)
    return special.chdtrc(2.0 * p.shape[1], chisq)


# ----------------------------------------------------------------------------------------------
# step 3: senders to receivers
# ----------------------------------------------------------------------------------------------
@dataclass
class Links:
    """Rows of the communication table (before the final cut), in R's order.

    ``sender_row`` indexes the candidate sender rows given to :func:`link`, ``receiver`` is
    the receiving type; ``sender_pvalue`` has 0 replaced by the smallest normalised double
    (R: ``.Machine$double.xmin``), ``strength = logfc * zscore``, ``pvalue`` is Fisher's
    combination of the two p-values, ``padj`` its BH adjustment over all rows, ``order``
    the rows kept (``padj < cutoff``) sorted by ``padj`` (stable).
    """

    sender_row: np.ndarray
    receiver: np.ndarray
    sender_pvalue: np.ndarray
    strength: np.ndarray
    pvalue: np.ndarray
    padj: np.ndarray
    order: np.ndarray


def link(
    sender_type: np.ndarray,
    sender_protein: np.ndarray,
    sender_logfc: np.ndarray,
    sender_pvalue: np.ndarray,
    active: np.ndarray,
    zscore: np.ndarray,
    act_pvalue: np.ndarray,
    *,
    padj_cutoff: float,
) -> Links:
    """Join sender rows with the types in which their protein is active (R's step 3).

    Parameters
    ----------
    sender_type, sender_protein, sender_logfc, sender_pvalue
        The sender rows (genes that passed the expression cut-offs), in R's order: by cell
        type, then by adjusted p-value. ``sender_protein`` is the protein's column in the
        activity arrays (``-1``: not a protein of the activity result).
    active
        ``types x proteins``: the protein's activity passed the cut-offs in that type.
    zscore, act_pvalue
        ``types x proteins`` activity z-scores and p-values.
    padj_cutoff
        Rows with a BH-adjusted combined p-value below this are kept.
    """
    rows, recv = [], []
    for i, (t, k) in enumerate(zip(sender_type, sender_protein, strict=True)):
        if k < 0:
            continue
        for r in np.flatnonzero(active[:, k]):
            if r != t:
                rows.append(i)
                recv.append(int(r))
    rows_a = np.asarray(rows, dtype=np.int64)
    recv_a = np.asarray(recv, dtype=np.int64)
    prot = np.asarray(sender_protein, dtype=np.int64)[rows_a]
    sp_ = np.asarray(sender_pvalue, dtype=np.float64)[rows_a].copy()
    sp_[sp_ == 0] = np.finfo(np.float64).tiny  # metap::sumlog needs p > 0
    z = zscore[recv_a, prot] if rows_a.size else np.empty(0)
    pa = act_pvalue[recv_a, prot] if rows_a.size else np.empty(0)
    strength = np.asarray(sender_logfc, dtype=np.float64)[rows_a] * z
    pvalue = fisher_pvalue(np.column_stack([sp_, pa])) if rows_a.size else np.empty(0)
    padj = p_adjust_bh(pvalue)
    keep = np.flatnonzero(padj < padj_cutoff)
    order = keep[np.argsort(padj[keep], kind="stable")]
    return Links(rows_a, recv_a, sp_, strength, pvalue, padj, order)
