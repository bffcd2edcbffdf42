"""Where tl.activity puts its results, for every input, and that anndata can write them.

Each test here reproduces a defect of the code before the one-pipeline restructuring.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import secact

KW = dict(method="analytic", progress=False)


@pytest.fixture(scope="module")
def sig():
    return secact.datasets.signature("CytoSig").iloc[:500, :8]  # the data have half its genes


@pytest.fixture
def adata(sig):
    rng = np.random.default_rng(11)
    genes = list(sig.index[:250])
    x = rng.poisson(rng.gamma(0.7, 2.0, size=len(genes)), size=(40, len(genes))).astype(np.float64)
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical(rng.choice(["B", "T", "NK"], size=40)), "score": rng.normal(size=40)},
        index=[f"c{i}" for i in range(40)],
    )
    return ad.AnnData(sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=genes))


def test_path_input_with_groupby_returns_the_groups(tmp_path, adata, sig):
    """Defect 1: the group results of a path input were computed and thrown away."""
    path = tmp_path / "data.h5ad"
    adata.write_h5ad(path)
    got = secact.tl.activity(path, sig, groupby="cell_type", **KW)
    mem = adata.copy()
    secact.tl.activity(mem, sig, groupby="cell_type", **KW)
    expect = mem.uns["secact"]["groups"]
    assert isinstance(got, ad.AnnData)
    assert list(got.obs_names) == list(expect["zscore"].index)
    np.testing.assert_allclose(got.X, expect["zscore"].to_numpy(), atol=1e-12)
    np.testing.assert_allclose(got.layers["pvalue"], expect["pvalue"].to_numpy(), atol=1e-12)
    np.testing.assert_array_equal(got.obs["n_cells"], expect["n_cells"])
    # and with out=, the same AnnData is written
    out = tmp_path / "groups.h5ad"
    secact.tl.activity(path, sig, groupby="cell_type", out=out, **KW)
    np.testing.assert_allclose(ad.read_h5ad(out).X, got.X, atol=0)


def test_results_are_writable_by_anndata(tmp_path, adata, sig):
    """Defect 7: write_h5ad failed after a group-level run (a pandas Series in uns)."""
    secact.tl.activity(adata, sig, groupby="cell_type", **KW)
    adata.write_h5ad(tmp_path / "groups.h5ad")  # failed here, leaving a partial file
    secact.tl.activity(adata, sig, layer=None, **KW)
    secact.tl.differential(adata, "cell_type", progress=False)
    path = tmp_path / "all.h5ad"
    adata.write_h5ad(path)
    back = ad.read_h5ad(path)
    pd.testing.assert_frame_equal(
        back.uns["secact"]["groups"]["zscore"], adata.uns["secact"]["groups"]["zscore"], check_names=False
    )
    np.testing.assert_array_equal(
        back.uns["secact"]["groups"]["n_cells"], adata.uns["secact"]["groups"]["n_cells"]
    )
    np.testing.assert_allclose(
        np.asarray(back.obsm["secact_zscore"]), np.asarray(adata.obsm["secact_zscore"])
    )
    assert back.uns["secact"]["cells"]["params"]["method"] == "analytic"
    assert "layer" not in back.uns["secact"]["cells"]["params"]  # None is not stored (absent means None)
    pd.testing.assert_frame_equal(
        secact.get.differential(back).reset_index(drop=True),
        secact.get.differential(adata),
        check_dtype=False,
    )


def test_group_and_cell_levels_live_side_by_side(tmp_path, adata, sig):
    """Defect 8: both levels wrote uns['secact'] in different layouts; pl then failed."""
    secact.tl.activity(adata, sig, groupby="cell_type", **KW)
    secact.tl.activity(adata, sig, **KW)  # a cell-level run afterwards keeps the group results
    assert set(adata.uns["secact"]) == {"groups", "cells"}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = secact.pl.activity_heatmap(adata, top=1, show=False)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["B", "NK", "T"]
    plt.close(ax.figure)
    cells = secact.get.activity(adata)
    assert cells.shape == (adata.n_obs, sig.shape[1]) and "cell_type" in cells.obs
    groups = secact.get.activity(adata, level="groups")
    assert groups.shape == (3, sig.shape[1])


def test_sidecar_has_obs_and_the_same_uns_layout(tmp_path, adata, sig):
    """Defect 8: the sidecar's uns had a third layout and no obs."""
    out = tmp_path / "side.h5ad"
    secact.tl.activity(adata, sig, out=out, **KW)
    side = ad.read_h5ad(out)
    pd.testing.assert_frame_equal(side.obs, adata.obs)
    assert set(side.uns["secact"]) == {"cells"}
    entry = side.uns["secact"]["cells"]
    assert list(entry["proteins"]) == list(side.var_names)
    assert entry["params"]["method"] == "analytic"
    assert adata.uns["secact"]["cells"]["out"] == str(out)
    act = secact.get.activity(out, stat="pvalue")
    np.testing.assert_array_equal(act.X, side.layers["pvalue"])
    np.testing.assert_array_equal(act.layers["zscore"], side.X)


def test_stats_and_float32_storage(tmp_path, adata, sig):
    full = adata.copy()
    secact.tl.activity(full, sig, **KW)
    secact.tl.activity(adata, sig, stats=["zscore", "pvalue"], dtype="float32", **KW)
    assert {k for k in adata.obsm} == {"secact_zscore", "secact_pvalue"}
    z = adata.obsm["secact_zscore"]
    assert z.to_numpy().dtype == np.float32
    np.testing.assert_allclose(z.to_numpy(), full.obsm["secact_zscore"].to_numpy(), rtol=1e-6, atol=1e-6)
    out = tmp_path / "small.h5ad"
    secact.tl.activity(adata, sig, stats="beta", dtype="float32", out=out, **KW)
    side = ad.read_h5ad(out)
    assert side.X.dtype == np.float32 and not side.layers
    np.testing.assert_allclose(side.X, full.obsm["secact_beta"].to_numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="stats must be"):
        secact.tl.activity(adata, sig, stats=["zscore", "nope"], **KW)
    with pytest.raises(ValueError, match="dtype"):
        secact.tl.activity(adata, sig, dtype="float16", **KW)


def test_use_raw_follows_scanpy_in_every_tool(adata, sig):
    """One input rule: use_raw=None means adata.raw when present and no layer is given."""
    with_raw = adata.copy()
    with_raw.raw = adata.copy()
    with_raw.X = sp.csr_matrix(np.log1p(adata.X.toarray()))  # X is not counts any more
    secact.tl.activity(with_raw, sig, **KW)  # reads raw (counts): no error
    plain = adata.copy()
    secact.tl.activity(plain, sig, **KW)
    np.testing.assert_allclose(with_raw.obsm["secact_zscore"], plain.obsm["secact_zscore"], atol=1e-12)
    assert with_raw.uns["secact"]["cells"]["params"]["use_raw"] is True
    with pytest.raises(ValueError, match="input='log'"):
        secact.tl.activity(with_raw, sig, use_raw=False, **KW)
    for tool, args in ((secact.tl.activity, (sig,)), (secact.tl.differential, ("cell_type",))):
        with pytest.raises(KeyError, match="layer 'nope' not found"):
            tool(adata.copy(), *args, layer="nope")
        with pytest.raises(ValueError, match=r"adata\.raw is None"):
            tool(adata.copy(), *args, use_raw=True)
        with pytest.raises(ValueError, match="not both"):
            tool(with_raw.copy(), *args, layer="x", use_raw=True)
