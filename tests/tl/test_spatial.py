"""``secact.tl.ccc_spatial`` and ``secact.tl.signaling_patterns`` on planted spatial niches.

The tissue is a jittered 24 x 24 grid of cells (10 units apart) of three types with
Poisson counts around CytoSig's gene responses:

* left half: type A cells express IFNG and the B cells there respond to IFNG;
* top right: type C cells express TGFB1 and every cell there responds to TGFB1;
* bottom right: type A cells express IL6 and every cell there responds to IL6.

Cell-level activity comes from ``secact.tl.activity(..., method="analytic")`` on CytoSig.
"""

from __future__ import annotations

import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import secact
from secact.core import spatial

N = 24
SPACING = 10.0


def _tissue(seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    sig = secact.datasets.signature("CytoSig")
    genes = list(sig.index) + [g for g in ("IFNG", "TGFB1", "IL6", "VEGFA") if g not in sig.index]
    xx, yy = np.meshgrid(np.arange(N), np.arange(N))
    coords = np.column_stack([xx.ravel(), yy.ravel()]) * SPACING + rng.uniform(-1, 1, (N * N, 2))
    n = coords.shape[0]
    types = rng.choice(np.array(["A", "B", "C"]), size=n, p=[0.35, 0.35, 0.3])
    left = coords[:, 0] < N * SPACING / 2
    top = ~left & (coords[:, 1] >= N * SPACING / 2)
    bottom = ~left & ~top
    base = rng.lognormal(0.0, 1.0, len(genes))
    base *= 3000 / base.sum()
    s = sig.reindex(genes).fillna(0.0)
    logfc = np.zeros((n, len(genes)))
    logfc[left & (types == "B")] += s["IFNG"].to_numpy()
    logfc[top] += s["TGFB1"].to_numpy()
    logfc[bottom] += s["IL6"].to_numpy()
    rates = base[None, :] * np.exp2(np.clip(logfc, -4, 4))
    for gene, cells in (
        ("IFNG", left & (types == "A")),
        ("TGFB1", top & (types == "C")),
        ("IL6", bottom & (types == "A")),
    ):
        g = genes.index(gene)
        rates[:, g] = 0.02
        rates[cells, g] = 20.0
    counts = rng.poisson(rates).astype(np.float64)
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(types),
            "region": np.where(left, "left", np.where(top, "top", "bottom")),
        },
        index=[f"cell{i}" for i in range(n)],
    )
    adata = ad.AnnData(sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=genes))
    adata.obsm["spatial"] = coords
    return adata


@pytest.fixture(scope="module")
def tissue() -> ad.AnnData:
    adata = _tissue()
    secact.tl.activity(adata, "CytoSig", method="analytic", stats=["zscore"])
    return adata


# ----------------------------------------------------------------------------------------------
# ccc_spatial
# ----------------------------------------------------------------------------------------------
def test_ccc_spatial_recovers_planted_pairs(tissue):
    out = secact.tl.ccc_spatial(tissue, "cell_type", radius=15, copy=True)
    entry = out.uns["secact_ccc_spatial"]
    table = entry["results"]
    assert list(table.columns) == list(spatial.CCC_COLUMNS)
    assert "secact_ccc_spatial" not in tissue.uns  # copy=True leaves the input alone
    corr = entry["spatial_correlation"]
    kept = set(corr.index[(corr["r"] > 0.05) & (corr["padj"] < 0.01)])
    assert {"IFNG", "TGFB1", "IL6"} <= kept
    # the three planted proteins correlate best; VEGFA etc. are expressed at baseline only
    assert set(corr["r"].dropna().nlargest(3).index) == {"IFNG", "TGFB1", "IL6"}
    links = set(zip(table["sender"], table["secreted_protein"], table["receiver"], strict=True))
    assert ("A", "IFNG", "B") in links
    assert ("B", "IFNG", "A") not in links  # B does not express IFNG
    ifng = table[table["secreted_protein"] == "IFNG"]
    assert ifng.iloc[0][["sender", "receiver"]].tolist() == ["A", "B"]
    assert (ifng["sender"] == "A").all()
    # the planted pair is the strongest of all links and as significant as any
    assert table["strength"].idxmax() == "A_IFNG_B"
    assert table.loc["A_IFNG_B", "padj"] == table["padj"].min() < 0.01
    assert (table["padj"].diff().dropna() >= 0).all()
    assert (table["ratio"] > 0.2).all()


def test_ccc_spatial_counts_match_neighbour_pairs(tissue):
    out = secact.tl.ccc_spatial(tissue, "cell_type", radius=15, copy=True)
    row = out.uns["secact_ccc_spatial"]["results"].loc["A_IFNG_B"]
    xy = tissue.obsm["spatial"]
    t = tissue.obs["cell_type"].to_numpy()
    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))
    pairs = np.argwhere((d > 0) & (d <= 15) & (t[:, None] == "A") & (t[None, :] == "B"))
    assert row["neighboring_pairs"] == len(pairs)
    assert row["sender_count"] == (t == "A").sum()
    assert row["receiver_count"] == (t == "B").sum()
    counts = tissue.X.toarray()
    g = list(tissue.var_names).index("IFNG")
    expr = np.log2(counts[:, g] / counts.sum(axis=1) * 1000 + 1)
    act = np.maximum(tissue.obsm["secact_zscore"]["IFNG"].to_numpy(), 0)
    prod = expr[pairs[:, 0]] * act[pairs[:, 1]]
    assert row["strength"] == pytest.approx(prod.mean())
    assert row["communicating_pairs"] == (prod > 0).sum()


def test_ccc_spatial_deterministic_and_seeded(tissue):
    a = secact.tl.ccc_spatial(
        tissue, "cell_type", radius=15, n_background=200, seed=1, padj_cutoff=1.1, copy=True
    )
    b = secact.tl.ccc_spatial(
        tissue, "cell_type", radius=15, n_background=200, seed=1, padj_cutoff=1.1, copy=True
    )
    c = secact.tl.ccc_spatial(
        tissue, "cell_type", radius=15, n_background=200, seed=2, padj_cutoff=1.1, copy=True
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
    assert {"IFNG", "TGFB1", "IL6"} <= set(loadings.index)
    region = out.obs["region"].to_numpy()
    found = {}
    for protein, where in (("IFNG", "left"), ("TGFB1", "top"), ("IL6", "bottom")):
        pat = _pattern_of(loadings, protein)
        found[protein] = pat
        inside = weights.loc[region == where, pat].mean()
        outside = weights.loc[region != where, pat].mean()
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
