"""Array parts of cell-cell communication (``secact.core.ccc``) against independent references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from secact.core import ccc as c


def _tie_term(x: np.ndarray, y: np.ndarray) -> float:
    _, counts = np.unique(np.concatenate([x, y]), return_counts=True)
    return float((counts**3 - counts).sum())


def _u1(x: np.ndarray, y: np.ndarray) -> float:
    ranks = stats.rankdata(np.concatenate([x, y]))
    return float(ranks[: x.size].sum() - x.size * (x.size + 1) / 2)


# ----------------------------------------------------------------------------------------------
# wilcox.test p-values
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("n1", "n2"), [(3, 5), (12, 30), (30, 49), (49, 49), (49, 8)])
def test_exact_branch_matches_scipy_exact(n1, n2):
    rng = np.random.default_rng(n1 * 100 + n2)
    for shift in (0.0, 0.7, -1.5):
        x = rng.normal(shift, 1, n1)
        y = rng.normal(0, 1, n2)
        assert _tie_term(x, y) == 0
        ref = stats.mannwhitneyu(x, y, method="exact", alternative="two-sided").pvalue
        got = c.wilcox_pvalue(_u1(x, y), n1, n2, 0.0)
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=0)


@pytest.mark.parametrize(("n1", "n2"), [(50, 10), (10, 50), (80, 120)])
def test_fifty_or_more_values_use_the_normal_approximation(n1, n2):
    rng = np.random.default_rng(n1 + n2)
    x = rng.normal(0.3, 1, n1)
    y = rng.normal(0, 1, n2)
    ref = stats.mannwhitneyu(x, y, method="asymptotic", use_continuity=True).pvalue
    got = c.wilcox_pvalue(_u1(x, y), n1, n2, 0.0)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    exact = stats.mannwhitneyu(x, y, method="exact").pvalue
    assert abs(got - exact) > 1e-8  # the branch matters


@pytest.mark.parametrize(("n1", "n2"), [(5, 7), (30, 40), (200, 1000)])
def test_ties_use_the_corrected_normal_approximation(n1, n2):
    rng = np.random.default_rng(n1)
    for lam in (0.3, 2.0):
        x = rng.poisson(lam * 1.5, n1).astype(float)
        y = rng.poisson(lam, n2).astype(float)
        t = _tie_term(x, y)
        assert t > 0
        ref = stats.mannwhitneyu(x, y, method="asymptotic", use_continuity=True).pvalue
        got = c.wilcox_pvalue(_u1(x, y), n1, n2, t)
        np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_wilcox_pvalue_broadcasts_and_mixes_branches():
    rng = np.random.default_rng(3)
    xs = [rng.normal(0.5, 1, 20), rng.poisson(1, 20).astype(float), rng.normal(0.5, 1, 60)]
    ys = [rng.normal(0, 1, 25), rng.poisson(1, 25).astype(float), rng.normal(0, 1, 70)]
    u = [_u1(x, y) for x, y in zip(xs, ys, strict=True)]
    t = [_tie_term(x, y) for x, y in zip(xs, ys, strict=True)]
    got = c.wilcox_pvalue(np.array(u), [20, 20, 60], [25, 25, 70], np.array(t))
    ref = [
        stats.mannwhitneyu(xs[0], ys[0], method="exact").pvalue,
        stats.mannwhitneyu(xs[1], ys[1], method="asymptotic").pvalue,
        stats.mannwhitneyu(xs[2], ys[2], method="asymptotic").pvalue,
    ]
    np.testing.assert_allclose(got, ref, rtol=1e-10)


@pytest.mark.parametrize(("m", "n"), [(1, 1), (2, 3), (4, 4), (3, 6)])
def test_pwilcox_against_enumeration(m, n):
    # every way of choosing the x positions among m + n ranks is equally likely
    us = []
    for pos in itertools.combinations(range(m + n), m):
        us.append(sum(pos) - m * (m - 1) / 2)  # ranks 0-based: U = sum(ranks) - m(m-1)/2
    us = np.array(us)
    for q in range(-1, m * n + 2):
        assert c.pwilcox(q, m, n) == pytest.approx(np.mean(us <= q), abs=1e-15)
        assert c.pwilcox(q, m, n, lower_tail=False) == pytest.approx(np.mean(us > q), abs=1e-15)
    assert math.comb(m + n, m) == len(us)


# ----------------------------------------------------------------------------------------------
# BH, Fisher, pseudo-bulk
# ----------------------------------------------------------------------------------------------
def test_p_adjust_bh_matches_scipy_and_ignores_nan():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=200) ** 3
    p[[3, 17]] = p[5]  # ties
    np.testing.assert_allclose(c.p_adjust_bh(p), stats.false_discovery_control(p), rtol=1e-14)
    with_nan = p.copy()
    with_nan[[0, 50]] = np.nan
    got = c.p_adjust_bh(with_nan)
    assert np.isnan(got[[0, 50]]).all()
    ok = ~np.isnan(with_nan)
    np.testing.assert_allclose(got[ok], stats.false_discovery_control(with_nan[ok]), rtol=1e-14)
    assert np.isnan(c.p_adjust_bh(np.array([np.nan]))).all()
    with pytest.raises(ValueError, match="one-dimensional"):
        c.p_adjust_bh(np.ones((2, 2)))


def test_fisher_pvalue_matches_scipy_combine_pvalues():
    rng = np.random.default_rng(1)
    p = rng.uniform(1e-12, 1, size=(50, 2))
    p[0] = [np.finfo(float).tiny, 1e-3]
    p[1] = [1.0, 1.0]
    ref = [stats.combine_pvalues(row, method="fisher").pvalue for row in p]
    np.testing.assert_allclose(c.fisher_pvalue(p), ref, rtol=1e-12)
    three = rng.uniform(size=(5, 3))
    ref3 = [stats.combine_pvalues(row, method="fisher").pvalue for row in three]
    np.testing.assert_allclose(c.fisher_pvalue(three), ref3, rtol=1e-12)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        c.fisher_pvalue([[0.0, 0.5]])


def test_cpm_log2_diff():
    rng = np.random.default_rng(2)
    case = rng.poisson(5, size=(3, 40)).astype(float)
    control = rng.poisson(4, size=(3, 40)).astype(float)
    ref = np.log2(case / case.sum(1, keepdims=True) * 1e6 + 1) - np.log2(
        control / control.sum(1, keepdims=True) * 1e6 + 1
    )
    np.testing.assert_allclose(c.cpm_log2_diff(case, control), ref, rtol=1e-13, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# the block function and expression statistics
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dense", [False, True])
def test_ccc_block(dense):
    rng = np.random.default_rng(4)
    counts = rng.poisson(0.8, size=(30, 12)).astype(float)
    counts[5] = 0  # a cell without counts
    slots = rng.integers(-1, 3, size=30)
    block = counts[10:30] if dense else sp.csr_matrix(counts[10:30])
    genes = np.array([7, 2, 9])
    fn = c.CccBlock(None, slots, 3, genes, 1e5)
    sums, values = fn(block, 10)
    ref_sums = np.zeros((3, 12))
    for i in range(10, 30):
        if slots[i] >= 0:
            ref_sums[slots[i]] += counts[i]
    np.testing.assert_array_equal(sums, ref_sums)
    lib = counts[10:30].sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = np.where(lib > 0, np.log2(counts[10:30][:, genes] / lib * 1e5 + 1), 0.0)
    ref[slots[10:30] < 0] = 0.0  # cells in no slot are not kept
    assert sp.issparse(values) and values.format == "csr"
    np.testing.assert_allclose(values.toarray(), ref, rtol=1e-15)
    assert (values.data > 0).all()


def test_ccc_block_rejects_non_counts():
    fn = c.CccBlock(None, np.zeros(2, dtype=np.int64), 1, np.array([0]), 1e5)
    with pytest.raises(ValueError, match="non-integer"):
        fn(np.array([[0.5, 1.0], [1.0, 2.0]]), 0)


def test_expression_stats_against_direct_computation():
    rng = np.random.default_rng(5)
    case = np.log2(rng.poisson(2.0, size=(60, 4)) + 1.0)
    control = np.log2(rng.poisson(1.0, size=(90, 4)) + 1.0)
    pooled = np.vstack([case, control])
    ranks = np.apply_along_axis(stats.rankdata, 0, pooled)
    ties = np.array([_tie_term(case[:, j], control[:, j]) for j in range(4)])
    st = c.expression_stats(
        ranks[:60].sum(0), ties, 60, 90, (case > 0).sum(0), (control > 0).sum(0), case.sum(0), control.sum(0)
    )
    np.testing.assert_allclose(st["mean_case"], case.mean(0), rtol=1e-13)
    np.testing.assert_allclose(st["mean_control"], control.mean(0), rtol=1e-13)
    np.testing.assert_allclose(st["mean_all"], pooled.mean(0), rtol=1e-13)
    np.testing.assert_allclose(st["logfc"], case.mean(0) - control.mean(0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(st["fraction_case"], (case > 0).mean(0))
    np.testing.assert_allclose(st["fraction_control"], (control > 0).mean(0))
    ref = [stats.mannwhitneyu(case[:, j], control[:, j], method="asymptotic").pvalue for j in range(4)]
    np.testing.assert_allclose(st["pvalue"], ref, rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# links
# ----------------------------------------------------------------------------------------------
def test_link_joins_drops_self_and_orders():
    # 3 types x 2 proteins; sender rows: (type 0, protein 0), (type 1, protein 1), (type 2, protein 0)
    active = np.array([[True, False], [True, True], [False, True]])
    z = np.array([[3.0, 0.0], [4.0, 5.0], [0.0, 2.5]])
    p_act = np.full((3, 2), 1e-3)
    lk = c.link(
        np.array([0, 1, 2]),
        np.array([0, 1, 0]),
        np.array([1.0, 2.0, 0.5]),
        np.array([0.0, 1e-5, 1e-4]),
        active,
        z,
        p_act,
        padj_cutoff=1.0,
    )
    # R's insertion order: sender rows in order, receivers in type order; self links dropped
    pairs = list(zip(lk.sender_row.tolist(), lk.receiver.tolist(), strict=True))
    assert pairs == [(0, 1), (1, 2), (2, 0), (2, 1)]
    assert lk.sender_pvalue[0] == np.finfo(float).tiny  # p = 0 replaced as R
    np.testing.assert_allclose(lk.strength, [1.0 * 4.0, 2.0 * 2.5, 0.5 * 3.0, 0.5 * 4.0])
    ref = [stats.combine_pvalues([a, 1e-3], method="fisher").pvalue for a in lk.sender_pvalue]
    np.testing.assert_allclose(lk.pvalue, ref, rtol=1e-12)
    np.testing.assert_allclose(lk.padj, stats.false_discovery_control(lk.pvalue), rtol=1e-14)
    assert list(lk.order) == list(np.argsort(lk.padj, kind="stable"))
    strict = c.link(
        np.array([0, 1, 2]),
        np.array([0, 1, 0]),
        np.array([1.0, 2.0, 0.5]),
        np.array([0.0, 1e-5, 1e-4]),
        active,
        z,
        p_act,
        padj_cutoff=float(np.sort(lk.padj)[1]),
    )
    assert strict.order.size == int((lk.padj < np.sort(lk.padj)[1]).sum())


def test_link_without_candidates_is_empty():
    lk = c.link(
        np.array([0]), np.array([-1]), np.array([1.0]), np.array([0.1]),
        np.ones((2, 1), dtype=bool), np.ones((2, 1)), np.ones((2, 1)) * 0.5, padj_cutoff=0.01,
    )  # fmt: skip
    assert lk.sender_row.size == 0 and lk.order.size == 0 and lk.pvalue.size == 0
