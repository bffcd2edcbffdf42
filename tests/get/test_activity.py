"""secact.get: activity AnnData (signature groups, carried annotations), tidy tables, file round trips."""

from __future__ import annotations

import warnings

import anndata as ad
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from scipy import stats

import secact
from secact.core.grouping import group_signature


@pytest.fixture(scope="module")
def adata():
    a = secact.datasets.simulate(n_cells=300, seed=2)
    a.obsm["X_umap"] = np.random.default_rng(0).normal(size=(a.n_obs, 2))
    a.uns["group_colors"] = ["#111111", "#222222", "#333333", "#444444"]
    secact.tl.activity(a, "CytoSig", groupby="group", n_permutations=100, group_cor=0.7, progress=False)
    secact.tl.activity(a, "CytoSig", method="analytic", group_cor=0.7, progress=False)
    return a


def _expected_groups(group_cor: float) -> dict[str, str]:
    sig = secact.datasets.signature("CytoSig")
    g = group_signature(sig.to_numpy(), list(sig.columns), group_cor)
    return {p: g.names[k] for p, k in zip(sig.columns, g.labels, strict=True)}


@pytest.mark.parametrize("level", ["cells", "groups"])
def test_var_group_marks_signature_groups(adata, level):
    act = secact.get.activity(adata, level=level)
    expected = _expected_groups(0.7)
    assert act.var["group"].to_dict() == {p: expected[p] for p in act.var_names}
    assert act.var.loc["IFNG", "group"] == act.var.loc["IL27", "group"] == "IFNG|IL27"
    assert act.var.loc["IL4", "group"] == "IL4"
    n_columns = adata.uns["secact"][level]["params"]["n_signature_columns"]
    assert act.var["group"].nunique() == n_columns < act.n_vars
    # members share their group's values
    np.testing.assert_array_equal(act[:, "IFNG"].X, act[:, "IL27"].X)


def test_grouping_of_custom_signature_and_ungrouped_runs():
    sig = secact.datasets.signature("CytoSig")
    a = secact.datasets.simulate(n_cells=150, seed=4)
    secact.tl.activity(a, sig, method="analytic", group_cor=0.7, progress=False)
    assert a.uns["secact"]["cells"]["params"]["signature"] == "custom"
    act = secact.get.activity(a)
    expected = _expected_groups(0.7)
    assert act.var["group"].to_dict() == {p: expected[p] for p in act.var_names}
    secact.tl.activity(a, "CytoSig", method="analytic", group_signatures=False, group_cor=0.7, progress=False)
    act = secact.get.activity(a)
    assert (act.var["group"] == act.var_names).all()


def test_cells_carry_annotations_and_work_with_scanpy(adata):
    act = secact.get.activity(adata)
    assert act.shape == (adata.n_obs, 43)
    pd.testing.assert_frame_equal(act.obs, adata.obs)
    np.testing.assert_array_equal(act.obsm["X_umap"], adata.obsm["X_umap"])
    assert list(act.uns["group_colors"]) == list(adata.uns["group_colors"])
    assert not any(k.startswith("secact_") for k in act.obsm)
    np.testing.assert_array_equal(act.X, adata.obsm["secact_zscore"].to_numpy())
    np.testing.assert_array_equal(act.layers["pvalue"], adata.obsm["secact_pvalue"].to_numpy())
    before = plt.get_fignums()
    axes = sc.pl.umap(act, color=["IFNG"], show=False)
    plt.close(axes.figure)
    dp = sc.pl.matrixplot(act, ["IFNG", "IL4"], groupby="group", show=False)
    plt.close(next(iter(dp.values())).figure)
    assert plt.get_fignums() == before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.tl.rank_genes_groups(act, "group", method="wilcoxon")
    top = sc.get.rank_genes_groups_df(act, "IFNG_stimulated")["names"].iloc[0]
    assert act.var.loc[top, "group"] == "IFNG|IL27"


def test_h5ad_round_trip(adata, tmp_path):
    for level in ("cells", "groups"):
        act = secact.get.activity(adata, level=level, stat="beta")
        act.write_h5ad(tmp_path / f"{level}.h5ad")
        back = ad.read_h5ad(tmp_path / f"{level}.h5ad")
        np.testing.assert_array_equal(back.X, act.X)
        pd.testing.assert_frame_equal(back.var, act.var)
        assert back.uns["secact"][level]["params"]["group_cor"] == 0.7
        # the file is read back as results: same AnnData through get.activity
        for stat in ("beta", "zscore"):
            again = secact.get.activity(tmp_path / f"{level}.h5ad", level=level, stat=stat)
            np.testing.assert_array_equal(again.X, secact.get.activity(adata, level=level, stat=stat).X)
            assert again.var["group"].tolist() == act.var["group"].tolist()
    b = adata.copy()
    secact.tl.rank_activities(b, "group")
    b.write_h5ad(tmp_path / "ranked.h5ad")
    back = ad.read_h5ad(tmp_path / "ranked.h5ad")
    pd.testing.assert_frame_equal(
        secact.get.rank_activities(back), secact.get.rank_activities(b), check_categorical=False
    )


def test_activity_df(adata):
    df = secact.get.activity_df(adata, level="groups")
    assert list(df.columns) == ["observation", "protein", "group", "beta", "se", "zscore", "pvalue", "fdr"]
    g = adata.uns["secact"]["groups"]
    assert len(df) == g["zscore"].size
    row = df[(df["observation"] == "IL4_stimulated") & (df["protein"] == "IL4")].iloc[0]
    assert row["zscore"] == g["zscore"].loc["IL4_stimulated", "IL4"]
    assert row["beta"] == g["beta"].loc["IL4_stimulated", "IL4"]
    assert row["group"] == "IL4"
    # sorted: p ascending, then |z| descending
    p, z = df["pvalue"].to_numpy(), df["zscore"].abs().to_numpy()
    assert (np.diff(p) >= 0).all()
    same = np.diff(p) == 0
    assert (np.diff(z)[same] <= 0).all()
    # BH within each observation, one test per signature group
    one = df[df["observation"] == "IFNG_stimulated"].drop_duplicates("group")
    np.testing.assert_allclose(one["fdr"], stats.false_discovery_control(one["pvalue"]))
    assert df.groupby("observation", observed=True)["group"].nunique().eq(41).all()


def test_activity_df_keeps_only_stored_statistics():
    a = secact.datasets.simulate(n_cells=80, seed=5)
    secact.tl.activity(a, "CytoSig", method="analytic", stats=["beta", "zscore"], progress=False)
    df = secact.get.activity_df(a, observations=["cell00003"], proteins=["IFNG", "IL4"])
    assert list(df.columns) == ["observation", "protein", "group", "beta", "zscore"]
    assert len(df) == 2
    assert (np.diff(df["zscore"].abs()) <= 0).all()
    with pytest.raises(KeyError, match="not in the results"):
        secact.get.activity_df(a, proteins=["NOPE"])


def test_anndata_whose_results_went_to_a_sidecar(adata, tmp_path):
    """get.activity(adata) after tl.activity(adata, out=...) reads the sidecar (in memory and
    backed), with the AnnData's embedding and colours; a missing or foreign sidecar is an error."""
    src = tmp_path / "cells.h5ad"
    a = adata.copy()
    del a.obsm["secact_zscore"]
    a.write_h5ad(src)
    side = tmp_path / "side.h5ad"
    secact.tl.activity(a, "CytoSig", method="analytic", group_cor=0.7, out=side, key_added="side")
    expected = secact.get.activity(side, "side", stat="pvalue")
    for obj in (a, ad.read_h5ad(src, backed="r")):
        if obj.isbacked:  # the backed file does not know of the run: record it as tl.activity does
            obj.uns["side"] = a.uns["side"]
        got = secact.get.activity(obj, "side", stat="pvalue")
        assert got.shape == (a.n_obs, 43)
        np.testing.assert_array_equal(got.X, expected.X)
        np.testing.assert_array_equal(got.layers["zscore"], expected.layers["zscore"])
        np.testing.assert_array_equal(got.obsm["X_umap"], a.obsm["X_umap"])
        assert list(got.uns["group_colors"]) == list(a.uns["group_colors"])
    sc_fig = sc.pl.umap(secact.get.activity(a, "side"), color="IFNG", show=False)
    plt.close(sc_fig.figure)
    with pytest.raises(ValueError, match="other cells"):
        secact.get.activity(a[:50].copy(), "side")
    side.unlink()
    with pytest.raises(FileNotFoundError, match="sidecar"):
        secact.get.activity(a, "side")
