"""SecAct R 1.1 and legacy SecAct reference outputs on the Ly86 bulk profile, to the last digit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

import secact

from .conftest import read_reference

CASES = {
    "r_mt19937_grouped": {"rng": "mt19937"},
    "glibc_srand_ungrouped": {"rng": "srand", "group_signatures": False},
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request, ly86, secact_signature):
    sub = request.param
    res = secact.infer(ly86, "SecAct", differential=True, **CASES[sub])
    return sub, res, read_reference(sub)


def test_rows_and_columns_match_r(case):
    _, res, ref = case
    for key in ("beta", "se", "zscore", "pvalue"):
        ours = getattr(res, key)
        assert list(ours.index) == list(ref[key].index)
        assert list(ours.columns) == list(ref[key].columns) == ["Diff"]


@pytest.mark.parametrize("key", ["beta", "se", "zscore"])
def test_values_within_1e10(case, key):
    _, res, ref = case
    diff = np.abs(getattr(res, key).to_numpy() - ref[key].to_numpy())
    assert np.isfinite(diff).all()
    assert diff.max() <= 1e-10


def test_pvalues_identical(case):
    _, res, ref = case
    ours = res.pvalue.to_numpy()
    theirs = ref["pvalue"].to_numpy()
    # p = (count + 1) / 1001: the permutation counts must be identical. R's write.table keeps up
    # to 15 significant digits (1/1001 is written 0.0009990009990009), hence the 1e-15 atol.
    np.testing.assert_array_equal(np.rint(ours * 1001), np.rint(theirs * 1001))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-15)


def test_grouping_gives_657_groups(case):
    sub, res, _ = case
    expected = 657 if sub == "r_mt19937_grouped" else 1170
    assert res.params["n_signature_columns"] == expected
    assert res.params["n_genes_overlap"] == 7720


def test_analytic_se_matches_20000_permutations(ly86, secact_signature):
    perm = secact.infer(ly86, differential=True, n_permutations=20000, rng="numpy", seed=1)
    ana = secact.infer(ly86, differential=True, method="analytic")
    ratio = ana.se.to_numpy() / perm.se.to_numpy()
    assert np.abs(ratio - 1).max() <= 0.03
    np.testing.assert_allclose(ana.beta.to_numpy(), perm.beta.to_numpy(), rtol=0, atol=1e-15)


def test_analytic_z_agrees_with_1000_permutations(ly86, secact_signature):
    perm = secact.infer(ly86, differential=True)
    ana = secact.infer(ly86, differential=True, method="analytic")
    r = np.corrcoef(ana.zscore.to_numpy().ravel(), perm.zscore.to_numpy().ravel())[0, 1]
    assert r >= 0.9995
    p = ana.pvalue.to_numpy()
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(p, 2 * norm.sf(np.abs(ana.zscore.to_numpy())), rtol=1e-12)
