"""Core numerics on arrays: grouping, projection, engine (dense == sparse), analytic moments."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from secact.core.engine import Engine
from secact.core.grouping import expand_rows, group_signature, r_sort_order
from secact.core.permutations import permutation_table
from secact.core.ridge import ridge_model, zscore_columns


def test_zscore_columns_matches_r_scale():
    a = np.array([[1.0, 2.0], [3.0, 2.0], [8.0, 2.0]])
    z = zscore_columns(a)
    np.testing.assert_allclose(z[:, 0], (a[:, 0] - 4) / np.std(a[:, 0], ddof=1))
    assert np.isnan(z[:, 1]).all()


def test_projection_is_ridge_solution():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4))
    model = ridge_model(x, lam=3.0)
    xs = zscore_columns(x)
    expected = np.linalg.solve(xs.T @ xs + 3.0 * np.eye(4), xs.T)
    np.testing.assert_allclose(model.T, expected, rtol=1e-12, atol=1e-14)


def test_grouping_merges_correlated_columns_in_r_order():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(200, 3))
    cols = np.column_stack(
        [base[:, 0], base[:, 1], base[:, 0] + 0.01 * rng.normal(size=200), base[:, 2], base[:, 1] * 2]
    )
    groups = group_signature(cols, ["b", "A", "c", "d", "e"], 0.9)
    assert groups.names == ["b|c", "A|e", "d"]
    np.testing.assert_allclose(groups.matrix(cols)[:, 0], (cols[:, 0] + cols[:, 2]) / 2)
    index, names = expand_rows(groups, sort=True)
    assert names == ["A", "b", "c", "d", "e"]
    assert list(index) == [1, 0, 0, 2, 1]
    index, names = expand_rows(groups, sort=False)
    assert names == ["b", "A", "c", "d", "e"]


def test_r_sort_is_case_insensitive():
    names = ["b", "C10orf95", "A", "c1orf54", "HLA-E"]
    assert [names[i] for i in r_sort_order(names)] == ["A", "b", "C10orf95", "c1orf54", "HLA-E"]


def test_group_cor_validated():
    with pytest.raises(ValueError, match="group_cor"):
        group_signature(np.eye(3), ["a", "b", "c"], 1.5)


def permutation_mean(t, y):
    """Hoeffding: E[t @ y[perm]] over all permutations = (sum t)(sum y) / n."""
    return np.outer(t.sum(axis=1), y.sum(axis=0)) / t.shape[1]


def permutation_variance(t, y):
    """Hoeffding: Var[t @ y[perm]] = sum (t - t_bar)^2 * sum (y - y_bar)^2 / (n - 1)."""
    tc = t - t.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=0)
    return np.outer((tc * tc).sum(axis=1), (yc * yc).sum(axis=0)) / (t.shape[1] - 1)


def test_analytic_moments_equal_full_enumeration():
    rng = np.random.default_rng(2)
    t = rng.normal(size=(3, 6))
    y = rng.normal(size=(6, 2))
    perms = np.array(list(itertools.permutations(range(6))))
    betas = np.einsum("pn,bnm->bpm", t, y[perms])
    np.testing.assert_allclose(permutation_mean(t, y), betas.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(permutation_variance(t, y), betas.var(axis=0), rtol=1e-10)
    # for z-scored y the analytic se of the model is the same number
    model = ridge_model(rng.normal(size=(6, 3)), lam=2.0)
    z = zscore_columns(y)
    np.testing.assert_allclose(
        np.sqrt(permutation_variance(model.T, z)), np.repeat(model.analytic_se[:, None], 2, 1), rtol=1e-12
    )


@pytest.fixture(scope="module")
def small_problem():
    rng = np.random.default_rng(3)
    n, p, m = 300, 7, 13
    model = ridge_model(rng.normal(size=(n, p)), lam=10.0)
    counts = rng.poisson(0.4, size=(m, n)).astype(float)
    counts[2] = 0.0
    counts[2, 5] = 3.0  # one stored value only
    values = np.log2(counts * 1e4 / np.maximum(counts.sum(1, keepdims=True), 1) + 1)
    offset = values.mean(axis=0)
    return model, values, offset


@pytest.mark.parametrize("method", ["permutation", "analytic"])
@pytest.mark.parametrize("with_offset", [True, False])
def test_dense_and_sparse_blocks_agree(small_problem, method, with_offset):
    model, values, offset = small_problem
    table = permutation_table(model.n_genes, 50, rng="mt19937") if method == "permutation" else None
    kw = dict(method=method, table=table, offset=offset if with_offset else None)
    engine = Engine(model, layout="sparse", **kw)
    dense = Engine(model, layout="dense", **kw).run(values)
    for fmt in (sp.csr_matrix, sp.csc_matrix):
        sparse = engine.run(fmt(values))
        for key in ("beta", "se", "zscore", "pvalue"):
            np.testing.assert_allclose(getattr(sparse, key), getattr(dense, key), rtol=0, atol=1e-10)
    # blocks of any size give the same numbers
    parts = [engine.run(sp.csr_matrix(values[i : i + 4])) for i in range(0, values.shape[0], 4)]
    np.testing.assert_allclose(np.vstack([p.zscore for p in parts]), dense.zscore, atol=1e-10)


def test_dense_engine_equals_explicit_permutation_loop(small_problem):
    model, values, offset = small_problem
    table = permutation_table(model.n_genes, 30, rng="srand")
    stats = Engine(model, table=table, offset=offset, layout="dense").run(values)
    z = zscore_columns((values - offset).T)  # genes x samples, like R
    beta = model.T @ z
    perms = np.stack([model.T @ z[row] for row in table])
    np.testing.assert_allclose(stats.beta, beta.T, atol=1e-13)
    se = np.sqrt((perms**2).mean(0) - perms.mean(0) ** 2)
    np.testing.assert_allclose(stats.se, se.T, rtol=1e-10)
    np.testing.assert_allclose(stats.zscore, ((beta - perms.mean(0)) / se).T, rtol=1e-9)
    count = (np.abs(perms) >= np.abs(beta)).sum(0)
    np.testing.assert_array_equal(stats.pvalue, ((count + 1) / 31).T)


def test_constant_sample_gives_nan_and_warning(small_problem):
    model, values, _ = small_problem
    block = values.copy()
    block[0] = 1.0
    with pytest.warns(RuntimeWarning, match="constant"):
        stats = Engine(model, method="analytic").run(block)
    assert np.isnan(stats.zscore[0]).all()
    assert np.isfinite(stats.zscore[1:]).all()


def test_engine_rejects_bad_arguments(small_problem):
    model, _, _ = small_problem
    with pytest.raises(ValueError, match="method"):
        Engine(model, method="bootstrap")
    with pytest.raises(ValueError, match="permutation table"):
        Engine(model, method="permutation")
    with pytest.raises(ValueError, match="offset"):
        Engine(model, method="analytic", offset=np.zeros(3))
    with pytest.raises(ValueError, match="dtype"):
        Engine(model, method="analytic", dtype="float16")
    with pytest.raises(ValueError, match="layout"):
        Engine(model, method="analytic", layout="csr")


@pytest.mark.parametrize("method", ["permutation", "analytic"])
def test_sparse_block_ending_with_an_empty_row(small_problem, method):
    """A block whose last cell stores nothing (a cell without counts at the end of a block)
    used to fail in the sparse path (``reduceat`` past the end)."""
    model, values, offset = small_problem
    block = values[:6].copy()
    block[5] = 0.0
    table = permutation_table(model.n_genes, 30) if method == "permutation" else None
    kw = dict(method=method, table=table, offset=offset)
    dense = Engine(model, layout="dense", **kw).run(block)
    sparse = Engine(model, layout="sparse", **kw).run(sp.csr_matrix(block))
    assert np.isfinite(sparse.zscore).all()  # centred on the offset, an empty cell is not constant
    for key in ("beta", "se", "zscore", "pvalue"):
        np.testing.assert_allclose(getattr(sparse, key), getattr(dense, key), rtol=0, atol=1e-10)
