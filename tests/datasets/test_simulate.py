"""The simulated single-cell data set with planted cytokine responses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from secact.datasets import signature
from secact.datasets._simulate import CONTROL, _poisson_counts, simulate


@pytest.fixture(scope="module")
def small():
    return simulate(600, 1200, seed=7)


def test_shapes_and_dtypes(small):
    a = small
    assert a.shape == (600, 1200)
    assert sp.issparse(a.X) and a.X.format == "csr"
    assert a.X.dtype == np.int32
    assert a.X.has_sorted_indices
    assert a.X.nnz > 0 and a.X.data.min() > 0
    assert a.var_names.is_unique and a.obs_names.is_unique
    assert a.var["in_signature"].dtype == bool
    n_fill = int((~a.var["in_signature"]).sum())
    assert n_fill == 60  # 5% fillers
    sig = signature("CytoSig")
    assert a.var_names[a.var["in_signature"]].isin(sig.index).all()
    assert not a.var_names[~a.var["in_signature"]].isin(sig.index).any()
    # shuffled: fillers are not all at the end
    assert np.flatnonzero(~a.var["in_signature"].to_numpy()).min() < 1000


def test_all_signature_genes_by_default():
    a = simulate(40, seed=1)
    sig = signature("CytoSig")
    assert int(a.var["in_signature"].sum()) == sig.shape[0]
    assert a.n_vars == sig.shape[0] + int(np.ceil(0.05 * sig.shape[0]))
    assert a.uns["simulate"]["params"]["n_genes"] == a.n_vars


def test_groups_and_metadata(small):
    a = small
    groups = a.obs["group"]
    assert isinstance(groups.dtype, pd.CategoricalDtype)
    assert groups.cat.categories[0] == CONTROL
    assert len(groups.cat.categories) == 4
    assert groups.value_counts().to_dict() == dict.fromkeys(groups.cat.categories, 150)
    planted = a.uns["simulate"]["planted"]
    assert planted == {"IFNG_stimulated": "IFNG", "TGFB1_stimulated": "TGFB1", "IL4_stimulated": "IL4"}
    assert list(groups.cat.categories[1:]) == list(planted)
    params = a.uns["simulate"]["params"]
    assert params["seed"] == 7 and params["n_cells"] == 600 and params["signature"] == "CytoSig"
    # groups are interleaved, not in blocks
    assert groups.iloc[:150].nunique() == 4


def test_default_planted_are_weakly_correlated():
    sig = signature("CytoSig")
    a = simulate(20, n_groups=6, seed=0)
    proteins = list(a.uns["simulate"]["planted"].values())
    assert len(proteins) == 5
    corr = sig[proteins].corr().to_numpy()
    assert np.abs(corr[~np.eye(5, dtype=bool)]).max() < 0.3


def test_determinism(small):
    again = simulate(600, 1200, seed=7)
    assert (again.var_names == small.var_names).all()
    assert (again.obs["group"] == small.obs["group"]).all()
    assert (again.X != small.X).nnz == 0
    other = simulate(600, 1200, seed=8)
    assert not (other.var_names == small.var_names).all()
    assert (other.X != small.X).nnz > 0


def test_dense_matches_sparse():
    s = simulate(100, 300, seed=2)
    d = simulate(100, 300, seed=2, sparse=False)
    assert isinstance(d.X, np.ndarray) and d.X.dtype == np.int32
    np.testing.assert_array_equal(s.X.toarray(), d.X)


def test_custom_planted_and_signature_frame():
    sig = signature("CytoSig")
    a = simulate(90, 400, signature=sig, planted={"treated": "TNFA", "other": "IL6"}, seed=3)
    assert list(a.obs["group"].cat.categories) == [CONTROL, "treated", "other"]
    assert a.uns["simulate"]["planted"] == {"treated": "TNFA", "other": "IL6"}
    assert a.uns["simulate"]["params"]["signature"] == "DataFrame"


def test_errors():
    with pytest.raises(ValueError, match="not columns"):
        simulate(10, 200, planted={"x": "NOT_A_CYTOKINE"})
    with pytest.raises(ValueError, match="control"):
        simulate(10, 200, planted={CONTROL: "IFNG"})
    with pytest.raises(ValueError, match="n_groups"):
        simulate(10, 200, n_groups=1)
    with pytest.raises(ValueError, match="n_genes"):
        simulate(10, 10**6)


def _log_cpm(X) -> np.ndarray:
    X = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)
    return np.log2(X / X.sum(axis=1, keepdims=True) * 1e4 + 1)


def test_planted_response_is_recoverable():
    a = simulate(2000, seed=0)
    sig = signature("CytoSig")
    logx = _log_cpm(a.X)
    groups = a.obs["group"].to_numpy()
    in_sig = a.var["in_signature"].to_numpy()
    genes = a.var_names[in_sig]
    control = logx[groups == CONTROL].mean(axis=0)
    for group, protein in a.uns["simulate"]["planted"].items():
        diff = logx[groups == group].mean(axis=0) - control
        r = np.corrcoef(diff[in_sig], sig.loc[genes, protein].to_numpy())[0, 1]
        assert r > 0.3, (group, protein, r)
        # and it is the planted column that fits best among the planted ones
        others = [p for p in a.uns["simulate"]["planted"].values() if p != protein]
        for p in others:
            assert r > np.corrcoef(diff[in_sig], sig.loc[genes, p].to_numpy())[0, 1]
    # fillers are not shifted
    fill = ~in_sig
    diff = logx[groups != CONTROL].mean(axis=0) - control
    assert abs(diff[fill].mean()) < 0.1


def test_no_effect_no_response():
    a = simulate(800, 2000, effect=0.0, seed=4)
    sig = signature("CytoSig")
    logx = _log_cpm(a.X)
    groups = a.obs["group"].to_numpy()
    in_sig = a.var["in_signature"].to_numpy()
    diff = logx[groups != CONTROL].mean(axis=0) - logx[groups == CONTROL].mean(axis=0)
    for protein in a.uns["simulate"]["planted"].values():
        r = np.corrcoef(diff[in_sig], sig.loc[a.var_names[in_sig], protein].to_numpy())[0, 1]
        assert abs(r) < 0.15


def test_poisson_counts_law():
    rng = np.random.default_rng(1)
    rates = np.tile(np.array([0.02, 0.5, 2.0, 10.0, 0.0], dtype=np.float32), (40000, 1))
    X = _poisson_counts(rates, rng, sparse=True).toarray()
    np.testing.assert_allclose(X.mean(axis=0), [0.02, 0.5, 2.0, 10.0, 0.0], rtol=0.05, atol=0.005)
    np.testing.assert_allclose(X.var(axis=0), [0.02, 0.5, 2.0, 10.0, 0.0], rtol=0.06, atol=0.005)


def test_negative_binomial_overdispersion():
    a = simulate(3000, 400, n_groups=2, planted={"g": "IFNG"}, dispersion=0.5, seed=5)
    X = a.X.toarray().astype(np.float64)
    X = X[a.obs["group"].to_numpy() == CONTROL]
    mean, var = X.mean(axis=0), X.var(axis=0)
    top = mean > 5
    # var = mu + phi mu^2 (+ library-size spread) > Poisson
    assert np.median(var[top] / mean[top]) > 2.0
