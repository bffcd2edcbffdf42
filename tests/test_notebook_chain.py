"""What a notebook user does: scanpy, then secact, then scanpy plots of the activities; and
every result layout survives ``write_h5ad`` / ``read_h5ad``."""

from __future__ import annotations

import anndata as ad
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import scanpy as sc

import secact

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def adata() -> ad.AnnData:
    a = secact.datasets.simulate(600, n_groups=4, seed=11)
    a.obs["cell_type"] = a.obs["group"]
    return a


@pytest.fixture(scope="module")
def chained(adata) -> tuple[ad.AnnData, ad.AnnData]:
    """The usual notebook: counts kept in a layer, scanpy pre-processing and UMAP, then secact."""
    a = adata.copy()
    a.layers["counts"] = a.X.copy()
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    sc.pp.pca(a, n_comps=20, random_state=0)
    sc.pp.neighbors(a, n_neighbors=15, random_state=0)
    sc.tl.umap(a, random_state=0)
    secact.tl.activity(a, "CytoSig", layer="counts", method="analytic")
    return a, secact.get.activity(a)


def test_scanpy_chain_colours_a_umap_by_activity(chained, tmp_path):
    a, act = chained
    planted = a.uns["simulate"]["planted"]  # {group: protein}
    proteins = list(planted.values())
    # the activities carry the cells' annotations and embedding
    assert act.n_obs == a.n_obs and list(act.obs_names) == list(a.obs_names)
    np.testing.assert_array_equal(act.obsm["X_umap"], a.obsm["X_umap"])
    assert act.obs["cell_type"].equals(a.obs["cell_type"])
    # what is coloured is the planted signal: each planted protein is most active in its group
    for group, protein in planted.items():
        means = pd.Series(np.asarray(act[:, protein].X).ravel(), index=act.obs_names).groupby(
            act.obs["cell_type"], observed=True
        )
        assert means.mean().idxmax() == group
    n_figs = len(plt.get_fignums())
    sc.pl.umap(act, color=proteins, show=False, vcenter=0, cmap="RdBu_r")
    fig = plt.gcf()
    png = tmp_path / "umap.png"
    fig.savefig(png)
    colour_axes = [ax for ax in fig.axes if ax.get_title() in proteins]
    assert sorted(ax.get_title() for ax in colour_axes) == sorted(proteins)
    assert png.stat().st_size > 10_000
    plt.close(fig)
    assert len(plt.get_fignums()) == n_figs
    # and scanpy's tools take it as expression-like data
    sc.tl.rank_genes_groups(act, "cell_type", method="wilcoxon")
    top = sc.get.rank_genes_groups_df(act, group=next(iter(planted)))
    assert top["names"].iloc[0] == next(iter(planted.values()))


def _same_frame(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False)


def _same_activity(a: ad.AnnData, b: ad.AnnData) -> None:
    assert list(a.obs_names) == list(b.obs_names) and list(a.var_names) == list(b.var_names)
    np.testing.assert_array_equal(np.asarray(a.X), np.asarray(b.X))
    assert sorted(a.layers) == sorted(b.layers)
    for k in a.layers:
        np.testing.assert_array_equal(np.asarray(a.layers[k]), np.asarray(b.layers[k]))
    pd.testing.assert_frame_equal(a.var, b.var)


def test_every_result_layout_round_trips_through_h5ad(adata, tmp_path):
    a = adata.copy()
    # group level and cell level under one key, differential under another
    secact.tl.activity(a, "CytoSig", groupby="cell_type", n_permutations=100)
    secact.tl.activity(a, "CytoSig", method="analytic")
    secact.tl.differential(a, "cell_type", reference="control")
    secact.tl.rank_activities(a, "cell_type")
    sidecar = tmp_path / "cells_secact.h5ad"
    secact.tl.activity(a, "CytoSig", method="analytic", out=sidecar, key_added="streamed")

    before = {
        "groups": secact.get.activity(a, level="groups"),
        "cells": secact.get.activity(a, level="cells"),
        "sidecar": secact.get.activity(sidecar, "streamed"),
        "differential": secact.get.differential(a),
        "rank": secact.get.rank_activities(a),
        "tidy": secact.get.activity_df(a, level="groups"),
    }
    # the sidecar holds the same numbers as the in-memory run
    _same_activity(before["sidecar"], before["cells"])

    path = tmp_path / "analysed.h5ad"
    a.write_h5ad(path)
    back = ad.read_h5ad(path)
    _same_activity(secact.get.activity(back, level="groups"), before["groups"])
    _same_activity(secact.get.activity(back, level="cells"), before["cells"])
    _same_activity(secact.get.activity(ad.read_h5ad(sidecar), "streamed"), before["sidecar"])
    _same_frame(secact.get.differential(back), before["differential"])
    _same_frame(secact.get.rank_activities(back), before["rank"])
    _same_frame(secact.get.activity_df(back, level="groups"), before["tidy"])
    for level in ("groups", "cells"):  # parameters come back (numbers/strings as written)
        written, read = a.uns["secact"][level]["params"], back.uns["secact"][level]["params"]
        assert {k: str(v) for k, v in read.items()} == {k: str(v) for k, v in written.items()}

    # what get returns is itself writable, and reads back the same (backed too)
    for name in ("groups", "cells", "sidecar"):
        out = tmp_path / f"get_{name}.h5ad"
        before[name].write_h5ad(out)
        _same_activity(ad.read_h5ad(out), before[name])
        backed = ad.read_h5ad(out, backed="r")
        np.testing.assert_array_equal(np.asarray(backed.X[:]), np.asarray(before[name].X))
        backed.file.close()
