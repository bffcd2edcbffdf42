"""secact.tl.rank_activities against scipy's rank-sum and Welch tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import secact


@pytest.fixture(scope="module")
def adata():
    a = secact.datasets.simulate(n_cells=240, seed=7)
    secact.tl.activity(a, "CytoSig", method="analytic", group_cor=0.7, progress=False)
    return a


def _masks(a, group, reference):
    lab = a.obs["group"].astype(str).to_numpy()
    x = lab == group
    return x, (lab != group) if reference == "rest" else (lab == reference)


@pytest.mark.parametrize("reference", ["rest", "control"])
def test_wilcoxon_equals_scipy(adata, reference):
    a = adata.copy()
    secact.tl.rank_activities(a, "group", reference=reference)
    df = secact.get.rank_activities(a)
    z = a.obsm["secact_zscore"]
    for group in ("IFNG_stimulated", "IL4_stimulated"):
        x, y = _masks(a, group, reference)
        part = df[df["group"] == group].set_index("protein")
        for protein in ("IFNG", "IL4", "TGFB1", "BMP2"):
            r = stats.mannwhitneyu(z.loc[x, protein], z.loc[y, protein], method="asymptotic")
            assert part.loc[protein, "pvalue"] == pytest.approx(r.pvalue, rel=1e-9)
            n1, n2 = x.sum(), y.sum()
            assert np.sign(part.loc[protein, "statistic"]) == np.sign(r.statistic - n1 * n2 / 2)
            diff = z.loc[x, protein].mean() - z.loc[y, protein].mean()
            assert part.loc[protein, "meanchange"] == pytest.approx(diff)
    assert "control" not in set(df["group"].astype(str)) or reference == "rest"
    assert set(df["reference"].astype(str)) == {reference}


def test_ttest_equals_scipy_and_order(adata):
    a = adata.copy()
    secact.tl.rank_activities(a, "group", method="t-test", stat="beta", key_added="tt")
    df = secact.get.rank_activities(a, "tt", group="TGFB1_stimulated")
    beta = a.obsm["secact_beta"]
    x, _ = _masks(a, "TGFB1_stimulated", "rest")
    expected = stats.ttest_ind(beta[x], beta[~x], equal_var=False)
    got = df.set_index("protein").loc[beta.columns]
    np.testing.assert_allclose(got["statistic"], expected.statistic, rtol=1e-10)
    np.testing.assert_allclose(got["pvalue"], expected.pvalue, rtol=1e-8)
    assert (np.diff(df["statistic"]) <= 0).all()  # best first
    assert df["protein"].iloc[0] == "TGFB1"
    assert a.uns["tt"]["params"]["method"] == "t-test"


def test_fdr_counts_signature_groups_once(adata):
    a = adata.copy()
    secact.tl.rank_activities(a, "group")
    df = secact.get.rank_activities(a, group="IFNG_stimulated")
    one = df.drop_duplicates("signature_group")
    np.testing.assert_allclose(one["fdr"], stats.false_discovery_control(one["pvalue"]))
    members = df.set_index("protein").loc[["IFNG", "IL27"]]
    assert members["statistic"].nunique() == 1 and members["signature_group"].nunique() == 1
    assert members["signature_group"].iloc[0] == "IFNG|IL27"
    # planted responses rank first in their groups
    for group, protein in a.uns["simulate"]["planted"].items():
        top = secact.get.rank_activities(a, group=group)["protein"].iloc[:2].tolist()
        assert protein in top, (group, top)
    assert len(secact.get.rank_activities(a, fdr=1e-3)) < len(secact.get.rank_activities(a))


def test_groups_selection_copy_and_errors(adata):
    out = secact.tl.rank_activities(adata, "group", groups=["IL4_stimulated"], copy=True)
    assert "secact_rank" not in adata.uns
    df = secact.get.rank_activities(out)
    assert set(df["group"].astype(str)) == {"IL4_stimulated"}
    assert isinstance(df, pd.DataFrame) and len(df) == 43
    with pytest.raises(KeyError, match="groupby"):
        secact.tl.rank_activities(adata, "nope", copy=True)
    with pytest.raises(ValueError, match="method"):
        secact.tl.rank_activities(adata, "group", method="anova", copy=True)
    with pytest.raises(ValueError, match="not a group"):
        secact.tl.rank_activities(adata, "group", reference="nope", copy=True)
    with pytest.raises(ValueError, match="not groups"):
        secact.tl.rank_activities(adata, "group", groups=["nope"], copy=True)
    with pytest.raises(KeyError, match="rank_activities"):
        secact.get.rank_activities(adata)
    b = secact.datasets.simulate(n_cells=60, seed=1)
    secact.tl.activity(b, "CytoSig", groupby="group", method="analytic", progress=False)
    with pytest.raises(KeyError, match="cell-level"):
        secact.tl.rank_activities(b, "group")
