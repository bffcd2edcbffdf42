"""``secact.tl.ccc_spatial`` and ``secact.tl.signaling_patterns`` on planted spatial niches.

The tissue is ``secact.datasets.simulate_spatial`` with its default niches: a jittered
40 x 40 grid of cells 10 µm apart, four cell types, and three disks where a sender type in
the core over-expresses IFNG (T cells), TGFB1 (fibroblasts) or IL6 (macrophages) and the
receiver types in the disk answer with CytoSig's response.

Cell-level activity comes from ``secact.tl.activity(..., method="analytic")`` on CytoSig.
"""

from __future__ import annotations

import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import secact
from secact.core import spatial
from secact.datasets._simulate_spatial import DEFAULT_NICHES

PLANTED = {  # (sender, protein, receiver) of the default niches, sender != receiver
    (sender, protein, receiver)
    for sender, protein, receivers in DEFAULT_NICHES.values()
    for receiver in receivers
    if receiver != sender
}
PROTEINS = {protein for _, protein, _ in DEFAULT_NICHES.values()}


def _tissue(seed: int = 0) -> ad.AnnData:
    return secact.datasets.simulate_spatial(1600, seed=seed)


@pytest.fixture(scope="module")
def tissue() -> ad.AnnData:
    adata = _tissue()
    secact.tl.activity(adata, "CytoSig", method="analytic", stats=["zscore"])
    return adata


# ----------------------------------------------------------------------------------------------
# ccc_spatial
# ----------------------------------------------------------------------------------------------
def test_ccc_spatial_recovers_planted_pairs(tissue):
    # ratio_cutoff=0.1: the sender types also live outside their niches, so most of their
    # tissue-wide neighbour pairs cannot communicate and R's 0.2 is too strict here
    out = secact.tl.ccc_spatial(tissue, "cell_type", radius=15, ratio_cutoff=0.1, copy=True)
    entry = out.uns["secact_ccc_spatial"]
    table = entry["results"]
    assert list(table.columns) == list(spatial.CCC_COLUMNS)
    assert "secact_ccc_spatial" not in tissue.uns  # copy=True leaves the input alone
    corr = entry["spatial_correlation"]
    kept = set(corr.index[(corr["r"] > 0.05) & (corr["padj"] < 0.01)])
    assert PROTEINS <= kept
    # the three planted proteins correlate best with their neighbours' expression
    assert set(corr["r"].dropna().nlargest(3).index) == PROTEINS
    links = set(zip(table["sender"], table["secreted_protein"], table["receiver"], strict=True))
    assert links <= PLANTED  # precision: every link found was planted
    assert len(links) >= len(PLANTED) - 2  # recall: at most two planted links missed
    for sender, protein, _ in DEFAULT_NICHES.values():  # every niche is found, with its sender
        rows = table[table["secreted_protein"] == protein]
        assert len(rows) and (rows["sender"] == sender).all(), protein
    # the strongest link is IFNG from T cells (the strongest response of the three)
    top = table.loc[table["strength"].idxmax()]
    assert (top["sender"], top["secreted_protein"]) == ("T_cell", "IFNG")
    assert (table["padj"].diff().dropna() >= 0).all()
    assert (table["ratio"] > 0.1).all() and (table["padj"] < 0.01).all()


def test_ccc_spatial_counts_match_neighbour_pairs(tissue):
    out = secact.tl.ccc_spatial(tissue, "cell_type", radius=15, ratio_cutoff=0.0, padj_cutoff=1.1, copy=True)
    row = out.uns["secact_ccc_spatial"]["results"].loc["T_cell_IFNG_tumor"]
    xy = tissue.obsm["spatial"]
    t = tissue.obs["cell_type"].to_numpy()
    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))
    pairs = np.argwhere((d > 0) & (d <= 15) & (t[:, None] == "T_cell") & (t[None, :] == "tumor"))
    assert row["neighboring_pairs"] == len(pairs)
    assert row["sender_count"] == (t == "T_cell").sum()
    assert row["receiver_count"] == (t == "tumor").sum()
    counts = tissue.X.toarray().astype(float)
    g = list(tissue.var_names).index("IFNG")
    expr = np.log2(counts[:, g] / counts.sum(axis=1) * 1000 + 1)
    act = np.maximum(tissue.obsm["secact_zscore"]["IFNG"].to_numpy(), 0)
    prod = expr[pairs[:, 0]] * act[pairs[:, 1]]
    assert row["strength"] == pytest.approx(prod.mean())
    assert row["communicating_pairs"] == (prod > 0).sum()


def test_ccc_spatial_deterministic_and_seeded(tissue):
    a = secact.tl.ccc_spatial(
        tissue, "cell_type", radius=15, n_background=200, seed=1, padj_cutoff=1.1, ratio_cutoff=0.0, copy=True
    )
    b = secact.tl.ccc_spatial(
        tissue, "cell_type", radius=15, n_background=200, seed=1, padj_cutoff=1.1, ratio_cutoff=0.0, copy=True
    )
    c = secact.tl.ccc_spatial(
        tissue, "cell_type", radius=15, n_background=200, seed=2, padj_cutoff=1.1, ratio_cutoff=0.0, copy=True
    )
    ta, tb, tc = (x.uns["secact_ccc_spatial"]["results"] for x in (a, b, c))
    pd.testing.assert_frame_equal(ta, tb)
    assert set(ta.index) == set(tc.index)
    tc = tc.loc[ta.index]
    pd.testing.assert_series_equal(ta["strength"], tc["strength"])
    assert not np.array_equal(ta["pvalue"].to_numpy(), tc["pvalue"].to_numpy())
    assert (ta["pvalue"] >= 1 / 201).all()


def test_ccc_spatial_writes_h5ad(tissue, tmp_path):
    out = secact.tl.ccc_spatial(tissue, "cell_type", radius=15, n_background=100, copy=True)
    path = tmp_path / "ccc.h5ad"
    out.write_h5ad(path)
    back = ad.read_h5ad(path)
    got = back.uns["secact_ccc_spatial"]["results"]
    pd.testing.assert_frame_equal(got, out.uns["secact_ccc_spatial"]["results"], check_dtype=False)
    assert back.uns["secact_ccc_spatial"]["params"]["radius"] == 15


def test_ccc_spatial_errors(tissue):
    bare = tissue.copy()
    del bare.obsm["secact_zscore"]
    with pytest.raises(KeyError, match=r"secact.tl.activity"):
        secact.tl.ccc_spatial(bare, "cell_type")
    nocoord = tissue.copy()
    del nocoord.obsm["spatial"]
    with pytest.raises(KeyError, match="coordinates"):
        secact.tl.ccc_spatial(nocoord, "cell_type")
    with pytest.raises(KeyError, match="not a column of obs"):
        secact.tl.ccc_spatial(tissue, "celltype")
    with pytest.raises(ValueError, match="n_background"):
        secact.tl.ccc_spatial(tissue, "cell_type", n_background=0)
    with pytest.raises(ValueError, match="radius"):
        secact.tl.ccc_spatial(tissue, "cell_type", radius=-1)
    logged = tissue.copy()
    logged.X = logged.X.copy()
    logged.X.data = -logged.X.data
    with pytest.raises(ValueError, match="raw counts"):
        secact.tl.ccc_spatial(logged, "cell_type")


# ----------------------------------------------------------------------------------------------
# signaling_patterns
# ----------------------------------------------------------------------------------------------
def _pattern_of(loadings: pd.DataFrame, protein: str) -> str:
    return str(loadings.loc[protein].idxmax())


def test_signaling_patterns_recover_niches(tissue):
    out = secact.tl.signaling_patterns(tissue, 3, radius=30, sigma=15, copy=True)
    weights = out.obsm["secact_patterns"]
    entry = out.uns["secact_patterns"]
    loadings = entry["loadings"]
    assert list(weights.columns) == ["1", "2", "3"] == list(loadings.columns)
    assert entry["k"] == 3
    assert PROTEINS <= set(loadings.index)
    niche = out.obs["niche"].to_numpy()
    found = {}
    for where, (_, protein, _) in DEFAULT_NICHES.items():
        pat = _pattern_of(loadings, protein)
        found[protein] = pat
        inside = weights.loc[niche == where, pat].mean()
        outside = weights.loc[niche != where, pat].mean()
        assert inside > 2 * outside, (protein, inside, outside)
    assert len(set(found.values())) == 3  # one pattern per niche
    assert (weights.to_numpy() >= 0).all()


def test_signaling_patterns_choose_k_by_rs_rule(tissue, tmp_path):
    out = secact.tl.signaling_patterns(tissue, [2, 3], radius=30, sigma=15, n_runs=2, copy=True)
    entry = out.uns["secact_patterns"]
    sil = entry["silhouette"]
    assert list(sil["k"]) == [2, 3]
    assert entry["k"] == spatial.choose_rank([2, 3], sil["silhouette"].to_numpy())
    assert out.obsm["secact_patterns"].shape == (out.n_obs, entry["k"])
    again = secact.tl.signaling_patterns(tissue, [2, 3], radius=30, sigma=15, n_runs=2, copy=True)
    pd.testing.assert_frame_equal(again.obsm["secact_patterns"], out.obsm["secact_patterns"])
    path = tmp_path / "patterns.h5ad"
    out.write_h5ad(path)
    back = ad.read_h5ad(path)
    np.testing.assert_allclose(
        np.asarray(back.obsm["secact_patterns"]), out.obsm["secact_patterns"].to_numpy()
    )
    pd.testing.assert_frame_equal(back.uns["secact_patterns"]["loadings"], entry["loadings"])


def test_signaling_patterns_errors(tissue, monkeypatch):
    with pytest.raises(ValueError, match="fewer than"):
        secact.tl.signaling_patterns(tissue, 40, radius=30, sigma=15, copy=True)
    with pytest.raises(ValueError, match="positive integer"):
        secact.tl.signaling_patterns(tissue, [2, 2], copy=True)
    monkeypatch.setitem(sys.modules, "sklearn.decomposition", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        secact.tl.signaling_patterns(tissue, 2, radius=30, sigma=15, copy=True)
