"""secact.pl: every plot draws into a given Axes, returns a Figure, saves, and leaves pyplot clean."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

import secact

# name -> call(results, **figure options); every call draws one panel
PLOTS = {
    "heatmap": lambda a, **kw: secact.pl.heatmap(a, **kw),
    "bar": lambda a, **kw: secact.pl.bar(a, "IFNG_stimulated", **kw),
    "lollipop": lambda a, **kw: secact.pl.lollipop(a, "IL4_stimulated", **kw),
    "dotplot_cells": lambda a, **kw: secact.pl.dotplot(a, "group", **kw),
    "dotplot_groups": lambda a, **kw: secact.pl.dotplot(a, **kw),
    "embedding": lambda a, **kw: secact.pl.embedding(a, "umap", "IFNG", **kw),
    "umap": lambda a, **kw: secact.pl.umap(a, "TGFB1", **kw),
    "spatial": lambda a, **kw: secact.pl.spatial(a, "IFNG", **kw),
    "volcano": lambda a, **kw: secact.pl.volcano(a, "IFNG_stimulated", **kw),
    "rank_activities": lambda a, **kw: secact.pl.rank_activities(a, "IL4_stimulated", **kw),
}


def _drawn(ax: Axes) -> int:
    """Number of data artists on an Axes (images, scatters, bars, lines)."""
    return len(ax.images) + len(ax.collections) + len(ax.patches) + len(ax.lines)


@pytest.mark.parametrize("name", PLOTS)
def test_draws_into_given_ax(results, name):
    fig, ax = plt.subplots()
    try:
        before = plt.get_fignums()
        out = PLOTS[name](results, ax=ax, show=False)
        assert out is ax
        assert plt.get_fignums() == before  # nothing new opened
        assert _drawn(ax) > 0
    finally:
        plt.close(fig)


@pytest.mark.parametrize("name", PLOTS)
def test_return_fig_leaves_pyplot_clean(results, name):
    before = plt.get_fignums()
    fig = PLOTS[name](results, return_fig=True)
    assert isinstance(fig, Figure)
    assert any(_drawn(a) > 0 for a in fig.axes)
    assert plt.get_fignums() == before


@pytest.mark.parametrize("name", PLOTS)
def test_save_writes_png_and_closes(results, name, tmp_path):
    before = plt.get_fignums()
    path = tmp_path / f"{name}.png"
    out = PLOTS[name](results, save=path, show=False)
    assert isinstance(out, Axes)
    assert plt.get_fignums() == before
    image = plt.imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) > 100
    assert image[..., :3].std() > 0.05  # not a blank page


@pytest.mark.parametrize("name", ["heatmap", "bar", "volcano"])
def test_show_returns_none_and_closes(results, name):
    before = plt.get_fignums()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Agg cannot show
        assert PLOTS[name](results, show=True) is None
    assert plt.get_fignums() == before


def test_show_false_keeps_figure_for_plt_show(results):
    before = plt.get_fignums()
    ax = secact.pl.bar(results, "IFNG_stimulated", show=False)
    try:
        assert ax.figure.number in plt.get_fignums()
    finally:
        plt.close(ax.figure)
    assert plt.get_fignums() == before


# ----------------------------------------------------------------------------------------------
# what the plots show
# ----------------------------------------------------------------------------------------------
def test_heatmap_content(results):
    z = results.uns["secact"]["groups"]["zscore"]
    p = results.uns["secact"]["groups"]["pvalue"]
    fig = secact.pl.heatmap(results, top=2, return_fig=True)
    ax = fig.axes[0]
    columns = [t.get_text() for t in ax.get_xticklabels()]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == list(z.index)
    # planted responses are shown, grouped proteins as one column named by their group
    assert {"IFNG|IL27", "TGFB1", "IL4"} <= set(columns)
    assert "IFNG" not in columns and "IL27" not in columns
    image = next(a for a in ax.get_children() if isinstance(a, AxesImage))
    assert image.norm.vmin == -image.norm.vmax  # centred at 0
    shown = z.rename(columns={"IFNG": "IFNG|IL27", "IL1B": "IL1B|TNFA"})
    assert image.norm.vmax == pytest.approx(np.abs(shown.loc[:, columns].to_numpy()).max())
    np.testing.assert_allclose(image.get_array(), shown.loc[:, columns].to_numpy())
    # one '*' per cell with p < 0.05
    marks = [t for t in ax.texts if t.get_text() == "*"]
    pv = p.rename(columns={"IFNG": "IFNG|IL27", "IL1B": "IL1B|TNFA"}).loc[:, columns].to_numpy()
    assert len(marks) == int((pv < 0.05).sum()) > 0
    assert "z-score" in fig.axes[1].get_ylabel() and "p < 0.05" in fig.axes[1].get_ylabel()
    # members apart, proteins chosen by name
    fig = secact.pl.heatmap(
        results, proteins=["IL27", "IL4"], collapse_groups=False, alpha=None, return_fig=True
    )
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["IL27", "IL4"]
    assert not fig.axes[0].texts
    fig = secact.pl.heatmap(results, proteins=["IL27", "IL4"], return_fig=True)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["IFNG|IL27", "IL4"]


def test_heatmap_inputs_and_errors(results):
    z = results.uns["secact"]["groups"]["zscore"]
    fig = secact.pl.heatmap(z, top=1, return_fig=True)  # a DataFrame: no marks
    assert not fig.axes[0].texts
    with pytest.warns(FutureWarning, match="heatmap"):
        ax = secact.pl.activity_heatmap(results, top=1, show=False)
    plt.close(ax.figure)
    with pytest.raises(KeyError, match="run"):
        secact.pl.heatmap(results, key="nothing", show=False)
    with pytest.raises(KeyError, match="not in the results"):
        secact.pl.heatmap(results, proteins=["NOPE"], show=False)
    with pytest.raises(ValueError, match="direction"):
        secact.pl.heatmap(results, direction="sideways", show=False)
    with pytest.raises(ValueError, match="top"):
        secact.pl.heatmap(results, top=0, show=False)
    assert plt.get_fignums() == []


def test_bar_and_lollipop_content(results):
    z = (
        results.uns["secact"]["groups"]["zscore"]
        .loc["IFNG_stimulated"]
        .drop("IL27")
        .rename({"IFNG": "IFNG|IL27"})
    )
    z = z.rename({"IL1B": "IL1B|TNFA"}).drop("TNFA")
    fig = secact.pl.bar(results, "IFNG_stimulated", top=3, return_fig=True)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    widths = [b.get_width() for b in ax.patches]
    expected = pd.concat([z.nlargest(3), z.nsmallest(3)]).sort_values()
    assert labels == list(expected.index)
    np.testing.assert_allclose(widths, expected.to_numpy())
    assert ax.get_title() == "IFNG_stimulated"
    red = [b.get_facecolor() for b, w in zip(ax.patches, widths, strict=True) if w > 0]
    assert len({tuple(c) for c in red}) == 1 and red[0][0] > red[0][2]  # positive bars are red
    fig = secact.pl.lollipop(results, "IFNG_stimulated", top=3, return_fig=True)
    dots = next(c for c in fig.axes[0].collections if isinstance(c, PathCollection))
    np.testing.assert_allclose(dots.get_offsets()[:, 0], expected.to_numpy())


def test_bar_of_series_and_bulk_result(results):
    s = pd.Series({"A": 2.0, "B": -1.0, "C": 0.5, "D": np.nan}, name="sample 1")
    fig = secact.pl.bar(s, top=1, return_fig=True)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["B", "A"]
    assert fig.axes[0].get_title() == "sample 1"
    logfc = secact.get.de_matrix(results, value="log2fc")
    bulk = secact.infer(logfc.iloc[:, :2], "CytoSig", differential=True, n_permutations=50)
    with pytest.raises(ValueError, match="choose one"):
        secact.pl.bar(bulk, show=False)
    sample = logfc.columns[1]
    fig = secact.pl.lollipop(bulk, sample, top=2, return_fig=True)
    z = bulk.zscore[sample]
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == list(pd.concat([z.nlargest(2), z.nsmallest(2)]).sort_values().index)
    with pytest.raises(KeyError, match="not in the results"):
        secact.pl.bar(bulk, "nope", show=False)
    with pytest.raises(TypeError, match="expected"):
        secact.pl.bar([1, 2, 3], show=False)


def test_dotplot_content(results):
    act = secact.get.activity(results)
    fig = secact.pl.dotplot(results, "group", proteins=["IFNG", "IL4"], return_fig=True)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["IFNG|IL27", "IL4"]
    dots = ax.collections[0]
    groups = list(results.obs["group"].cat.categories)
    mean = np.array([[act[act.obs["group"] == g, p].X.mean() for p in ("IFNG", "IL4")] for g in groups])
    frac = np.array(
        [
            [(act[act.obs["group"] == g, p].layers["pvalue"] < 0.05).mean() for p in ("IFNG", "IL4")]
            for g in groups
        ]
    )
    np.testing.assert_allclose(dots.get_array(), mean.ravel())
    np.testing.assert_allclose(dots.get_sizes(), 220 * frac.ravel())
    assert dots.norm.vmin == -dots.norm.vmax
    legend = ax.get_legend()
    assert legend.get_title().get_text() == "cells with p < 0.05"
    assert [t.get_text() for t in legend.get_texts()] == ["25%", "50%", "75%", "100%"]
    assert fig.axes[1].get_ylabel() == "mean activity (z-score)"
    # group level: size is -log10 p
    fig = secact.pl.dotplot(results, proteins=["IL4"], return_fig=True)
    p = results.uns["secact"]["groups"]["pvalue"]["IL4"].to_numpy()
    s = -np.log10(p)
    np.testing.assert_allclose(fig.axes[0].collections[0].get_sizes(), 220 * s / s.max())
    assert fig.axes[0].get_legend().get_title().get_text() == "-log10 p-value"


def test_dotplot_without_pvalues_uses_z_threshold():
    a = secact.datasets.simulate(n_cells=120, seed=3)
    secact.tl.activity(a, "CytoSig", method="analytic", stats=["zscore"], progress=False)
    fig = secact.pl.dotplot(a, "group", proteins=["IFNG"], alpha=0.05, return_fig=True)
    assert fig.axes[0].get_legend().get_title().get_text() == "cells with |z| > 1.96"
    z = a.obsm["secact_zscore"]["IFNG"]
    frac = [(z[a.obs["group"] == g].abs() > 1.959964).mean() for g in a.obs["group"].cat.categories]
    np.testing.assert_allclose(fig.axes[0].collections[0].get_sizes(), 220 * np.array(frac))


def test_embedding_is_centred(results):
    fig = secact.pl.umap(results, ["IFNG", "group"], return_fig=True)
    scatter = fig.axes[0].collections[0]
    values = results.obsm["secact_zscore"]["IFNG"].to_numpy()
    assert scatter.norm.vmin == pytest.approx(-np.abs(values).max())
    assert scatter.norm.vmax == pytest.approx(np.abs(values).max())
    assert scatter.get_cmap().name == "RdBu_r"
    assert [a.get_title() for a in fig.axes if a.get_title()] == ["IFNG", "group"]
    fig = secact.pl.embedding(results, "umap", "IFNG", stat="pvalue", return_fig=True)
    assert fig.axes[0].collections[0].get_cmap().name == "viridis"
    with pytest.raises(KeyError, match="neither a protein"):
        secact.pl.umap(results, "NOPE", show=False)
    ax = secact.pl.spatial(results, "IFNG", show=False)
    assert ax.yaxis_inverted() and ax.get_aspect() == 1.0
    plt.close(ax.figure)


def test_embedding_keeps_the_scale_of_obs_columns(results):
    """Only activities are centred: a non-negative obs column keeps its own limits."""
    a = results.copy()
    a.obs["weight"] = np.linspace(0.5, 3.0, a.n_obs)
    fig = secact.pl.umap(a, ["IFNG", "weight"], cmap="Reds", return_fig=True)
    panels = {ax.get_title(): ax.collections[0] for ax in fig.axes if ax.get_title()}
    assert panels["weight"].norm.vmin == pytest.approx(0.5)
    assert panels["weight"].norm.vmax == pytest.approx(3.0)
    assert panels["IFNG"].norm.vmin == pytest.approx(-panels["IFNG"].norm.vmax)
    plt.close(fig)


def test_volcano_content(results):
    fig = secact.pl.volcano(results, "IFNG_stimulated", top=5, return_fig=True)
    ax = fig.axes[0]
    de = secact.get.differential(results, group="IFNG_stimulated")
    sig = de[(de["fdr"] < 0.05) & (de["log2fc"].abs() >= 1)]
    expected = sig.sort_values(["pvalue"], kind="stable")["gene"].astype(str).iloc[:5].tolist()
    assert sorted(t.get_text() for t in ax.texts) == sorted(expected)
    fig.draw_without_rendering()
    box = ax.get_window_extent()
    for t in ax.texts:  # labels stay inside the axes (not over the legend beside them)
        ext = t.get_window_extent()
        assert box.x0 - 1 <= ext.x0 and ext.x1 <= box.x1 + 1, t.get_text()
    assert ax.get_title() == "IFNG_stimulated vs control"
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    up = int((sig["log2fc"] > 0).sum())
    assert f"up ({up})" in texts
    with pytest.raises(ValueError, match="choose one"):
        secact.pl.volcano(results, show=False)


def test_rank_activities_content(results):
    fig = secact.pl.rank_activities(results, top=4, return_fig=True)
    groups = list(results.obs["group"].cat.categories)
    assert [a.get_title() for a in fig.axes if a.get_visible()] == [f"{g} vs rest" for g in groups]
    ranked = secact.get.rank_activities(results, group="TGFB1_stimulated").drop_duplicates("signature_group")
    ax = fig.axes[groups.index("TGFB1_stimulated")]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ranked["signature_group"].astype(str).iloc[:4].tolist()
    assert labels[0] == "TGFB1" and ax.get_yticks()[0] == max(ax.get_yticks())  # best on top
    # red bars point right, blue left: colour follows the drawn statistic
    for panel in (a for a in fig.axes if a.get_visible()):
        for bar in panel.patches:
            right = bar.get_width() > 0
            assert (bar.get_facecolor()[0] > bar.get_facecolor()[2]) == right
    with pytest.raises(ValueError, match="one group"):
        _, ax = plt.subplots()
        try:
            secact.pl.rank_activities(results, ax=ax)
        finally:
            plt.close(ax.figure)


def test_volcano_labels_at_the_edge_stay_inside():
    """Strong responses put labelled genes at the largest fold changes, by the right edge."""
    a = secact.datasets.simulate(1200, n_groups=3, effect=4, mean_library_size=4000, dispersion=0.1, seed=0)
    secact.tl.differential(a, "group", reference="control", progress=False)
    group = str(a.obs["group"].cat.categories[1])
    fig = secact.pl.volcano(a, group, top=10, return_fig=True)
    ax = fig.axes[0]
    fig.draw_without_rendering()
    box = ax.get_window_extent()
    assert len(ax.texts) == 10
    for t in ax.texts:
        ext = t.get_window_extent()
        assert box.x0 - 1 <= ext.x0 and ext.x1 <= box.x1 + 1, t.get_text()
    plt.close(fig)
