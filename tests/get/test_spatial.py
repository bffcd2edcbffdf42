"""``secact.get.patterns`` and ``secact.get.velocity``: tidy tables of the spatial tools' results."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import secact


@pytest.fixture(scope="module")
def tissue() -> ad.AnnData:
    t = secact.datasets.simulate_spatial(1600, seed=0)
    secact.tl.activity(t, "CytoSig", method="analytic", stats=["zscore"], progress=False)
    secact.tl.signaling_patterns(t, 3, radius=30, sigma=15)
    secact.tl.signaling_velocity(t, "IFNG", radius=30, sigma=15, mode="sending")
    secact.tl.ccc_spatial(t, "cell_type", radius=15, n_background=100)
    return t


def test_ccc_spatial_correlation_table(tissue):
    stored = tissue.uns["secact_ccc_spatial"]["spatial_correlation"]
    table = secact.get.ccc(tissue, "secact_ccc_spatial", table="spatial_correlation")
    assert list(table.columns) == ["protein", "r", "pvalue", "padj"]
    assert table["protein"].tolist() == [str(p) for p in stored.index]
    np.testing.assert_array_equal(table[["r", "pvalue", "padj"]].to_numpy(), stored.to_numpy())
    with pytest.raises(KeyError, match=r"a table of secact\.tl\.ccc results"):
        secact.get.ccc(tissue, "secact_ccc_spatial", table="activity")


def test_patterns_per_cell(tissue):
    weights = tissue.obsm["secact_patterns"]
    table = secact.get.patterns(tissue)
    assert list(table.columns) == ["observation", "pattern", "weight", "dominant"]
    assert len(table) == tissue.n_obs * weights.shape[1]
    wide = table.pivot(index="observation", columns="pattern", values="weight")
    assert [str(c) for c in wide.columns] == list(weights.columns)
    np.testing.assert_array_equal(wide.loc[tissue.obs_names].to_numpy(), weights.to_numpy())
    dominant = table[table["dominant"]].set_index("observation")["pattern"].astype(str)
    assert dominant.index.is_unique and len(dominant) == tissue.n_obs
    np.testing.assert_array_equal(
        dominant.loc[tissue.obs_names].to_numpy(), weights.idxmax(axis=1).to_numpy()
    )


def test_patterns_per_protein(tissue):
    entry = tissue.uns["secact_patterns"]
    table = secact.get.patterns(tissue, table="loadings")
    assert list(table.columns) == ["protein", "pattern", "loading", "r", "padj"]
    wide = table.pivot(index="protein", columns="pattern", values="loading")
    want = entry["loadings"]
    assert [str(c) for c in wide.columns] == list(want.columns)
    np.testing.assert_array_equal(wide.loc[want.index.astype(str)].to_numpy(), want.to_numpy())
    for _, part in table.groupby("pattern", observed=True):  # largest loading first in each pattern
        assert part["loading"].is_monotonic_decreasing
    corr = entry["spatial_correlation"]
    np.testing.assert_array_equal(table["r"].to_numpy(), corr.loc[table["protein"], "r"].to_numpy())
    assert (table["padj"] < 0.01).all()  # only proteins kept by the filter have loadings


def test_patterns_silhouette(tissue):
    t = tissue.copy()
    secact.tl.signaling_patterns(t, [2, 3, 4], radius=30, sigma=15, n_runs=2)
    table = secact.get.patterns(t, table="silhouette")
    assert table["k"].tolist() == [2, 3, 4]
    np.testing.assert_array_equal(table["silhouette"], t.uns["secact_patterns"]["silhouette"]["silhouette"])
    assert table.loc[table["chosen"], "k"].tolist() == [t.uns["secact_patterns"]["k"]]


def test_velocity(tissue):
    vec = np.asarray(tissue.obsm["secact_velocity"])
    table = secact.get.velocity(tissue)
    assert list(table.columns) == ["observation", "protein", "mode", "x", "y", "dx", "dy", "length"]
    assert table["observation"].tolist() == list(tissue.obs_names)
    assert set(table["protein"]) == {"IFNG"} and set(table["mode"]) == {"sending"}
    np.testing.assert_array_equal(table[["dx", "dy"]].to_numpy(), vec)
    np.testing.assert_array_equal(table[["x", "y"]].to_numpy(), np.asarray(tissue.obsm["spatial"])[:, :2])
    np.testing.assert_allclose(table["length"], np.hypot(vec[:, 0], vec[:, 1]))
    assert table["length"].max() > 0


def test_velocity_of_a_path_input_carries_coordinates(tissue, tmp_path):
    path = tmp_path / "tissue.h5ad"
    tissue.write_h5ad(path)
    got = secact.tl.signaling_velocity(path, "IFNG", radius=30, sigma=15, mode="sending", key_added="v")
    pd.testing.assert_frame_equal(secact.get.velocity(got, "v"), secact.get.velocity(tissue))


def test_errors_name_what_is_there(tissue):
    with pytest.raises(KeyError, match=r"no 'nope'.*'secact_patterns' \(patterns\)"):
        secact.get.patterns(tissue, "nope")
    with pytest.raises(ValueError, match=r"is a patterns result, not a secact\.tl\.signaling_velocity"):
        secact.get.velocity(tissue, "secact_patterns")
    with pytest.raises(ValueError, match="table must be"):
        secact.get.patterns(tissue, table="genes")
    with pytest.raises(KeyError, match="fitted one k"):
        secact.get.patterns(tissue, table="silhouette")
    broken = tissue.copy()
    del broken.obsm["secact_velocity"]
    with pytest.raises(KeyError, match="incomplete"):
        secact.get.velocity(broken)
