"""``secact.pl.ccc_*``: plots of cell-cell communication links.

Most tests draw a small link table built here (the columns of ``secact.get.ccc``); one module
fixture runs ``secact.tl.ccc`` on planted data. Image baselines (``ccc_dot``, ``ccc_circle``)
are regenerated with ``SECACT_UPDATE_BASELINES=1 pytest tests/pl/test_ccc_plots.py`` (look at
them before committing).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba
from matplotlib.image import AxesImage
from matplotlib.patches import FancyArrowPatch, PathPatch
from matplotlib.testing.compare import compare_images

import secact

BASELINE = Path(__file__).parent / "baseline"
TOL = 6.0
COLUMNS = [
    "sender", "secreted_protein", "receiver", "sender_logfc", "sender_pvalue", "sender_padj",
    "receiver_zscore", "receiver_pvalue", "receiver_padj", "strength", "pvalue", "padj",
]  # fmt: skip
PLOTS = {
    "circle": secact.pl.ccc_circle,
    "dot": secact.pl.ccc_dot,
    "heatmap": secact.pl.ccc_heatmap,
    "sankey": secact.pl.ccc_sankey,
}


def link_table() -> pd.DataFrame:
    """Six links among four cell types; A -> B twice (IFNG, IL4), B <-> C both ways."""
    rows = [
        ("A", "IFNG", "B", 2.0, 6.0, 1e-8),
        ("A", "IL4", "B", 1.0, 3.0, 1e-3),
        ("B", "TGFB1", "C", 0.5, 4.0, 1e-5),
        ("C", "TGFB1", "B", 1.5, 2.5, 1e-12),
        ("C", "IL6", "D", 0.8, 5.0, 1e-2),
        ("D", "IFNG", "A", 1.2, 2.2, 1e-4),
    ]
    out = []
    for s, p, r, lfc, z, padj in rows:
        out.append((s, p, r, lfc, 1e-6, 1e-5, z, 1e-3, 1e-3, lfc * z, padj / 2, padj))
    return pd.DataFrame(out, columns=COLUMNS)


@pytest.fixture(autouse=True)
def no_open_figures():
    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before, "a figure was left open"


@pytest.fixture(scope="module")
def planted():
    """Planted IFNG and IL4 communication, with colours for the groups."""
    a = secact.datasets.simulate(
        600,
        1500,
        planted={"IFNG_stimulated": "IFNG", "IL4_stimulated": "IL4"},
        senders={"IFNG_source": "IFNG", "IL4_source": "IL4"},
        seed=3,
    )
    secact.tl.ccc(a, "group", signature="CytoSig", n_permutations=100, padj_cutoff=0.05, progress=False)
    cats = list(a.obs["group"].cat.categories)
    a.uns["group_colors"] = [f"C{i}" for i in range(len(cats))]
    return a


# ----------------------------------------------------------------------------------------------
# what is drawn
# ----------------------------------------------------------------------------------------------
def _arrows(ax) -> list[FancyArrowPatch]:
    return [p for p in ax.patches if isinstance(p, FancyArrowPatch)]


@pytest.mark.parametrize("value", ["count", "strength"])
def test_circle_one_arrow_per_pair_width_by_value(value):
    fig, ax = plt.subplots()
    try:
        out = secact.pl.ccc_circle(link_table(), value=value, ax=ax, max_width=10.0)
        assert out is ax
        arrows = _arrows(ax)
        assert len(arrows) == 5  # A->B, B->C, C->B, C->D, D->A
        widths = sorted(float(a.get_arrowstyle().tail_width) * 10 for a in arrows)
        t = link_table()
        per_pair = (
            t.groupby(["sender", "receiver"]).size()
            if value == "count"
            else t.groupby(["sender", "receiver"])["strength"].sum()
        )
        expected = sorted(np.maximum(0.6, 10.0 * per_pair.to_numpy() / per_pair.max()))
        np.testing.assert_allclose(widths, expected, rtol=1e-12)
        texts = {t.get_text() for t in ax.texts}
        assert {"A", "B", "C", "D"} <= texts
        assert ax.get_legend() is not None
    finally:
        plt.close(fig)


def test_circle_uses_group_colours(planted):
    fig, ax = plt.subplots()
    try:
        secact.pl.ccc_circle(planted, ax=ax)
        cats = list(planted.obs["group"].cat.categories)
        colour = {c: to_rgba(f"C{i}") for i, c in enumerate(cats)}
        arrows = _arrows(ax)
        links = secact.get.ccc(planted)
        assert len(arrows) == len(links[["sender", "receiver"]].drop_duplicates()) > 0
        senders = {colour[str(s)][:3] for s in links["sender"]}
        assert {tuple(a.get_facecolor()[:3]) for a in arrows} == senders
    finally:
        plt.close(fig)


def test_circle_palette_overrides():
    fig, ax = plt.subplots()
    try:
        pal = {"A": "red", "B": "blue", "C": "green", "D": "black"}
        secact.pl.ccc_circle(link_table(), ax=ax, palette=pal)
        colours = {tuple(np.round(a.get_facecolor()[:3], 3)) for a in _arrows(ax)}
        assert colours == {(1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 0.502, 0.0), (0.0, 0.0, 0.0)}
        with pytest.raises(ValueError, match="no colour for"):
            secact.pl.ccc_circle(link_table(), ax=ax, palette={"A": "red"})
    finally:
        plt.close(fig)


def test_dot_colour_is_strength_size_is_significance():
    fig, ax = plt.subplots()
    try:
        secact.pl.ccc_dot(link_table(), ax=ax, dot_min=10.0, dot_max=100.0)
        dots = next(c for c in ax.collections if isinstance(c, PathCollection) and len(c.get_offsets()))
        t = link_table()
        assert len(dots.get_offsets()) == len(t)
        rows = [tick.get_text() for tick in ax.get_yticklabels()]
        cols = [tick.get_text() for tick in ax.get_xticklabels()]
        assert rows == ["A \u2192 B", "B \u2192 C", "C \u2192 B", "C \u2192 D", "D \u2192 A"]
        # proteins by summed strength, largest first
        assert cols == list(
            t.groupby("secreted_protein")["strength"].sum().sort_values(ascending=False).index
        )
        # each dot at its (protein, pair): colour = strength, size = -log10 padj
        xy = dots.get_offsets()
        for link in t.itertuples():
            at = (xy[:, 0] == cols.index(link.secreted_protein)) & (
                xy[:, 1] == rows.index(f"{link.sender} \u2192 {link.receiver}")
            )
            i = int(np.flatnonzero(at)[0])
            assert dots.get_array()[i] == pytest.approx(link.strength)
            expected = 10.0 + 90.0 * (-np.log10(link.padj)) / 12.0  # the smallest padj is 1e-12
            assert dots.get_sizes()[i] == pytest.approx(expected)
        legend = ax.get_legend()
        assert "adjusted p" in legend.get_title().get_text()
        colourbar = fig.axes[-1]
        assert "strength" in colourbar.get_ylabel()
    finally:
        plt.close(fig)


def test_dot_top_keeps_strongest_proteins():
    fig, ax = plt.subplots()
    try:
        secact.pl.ccc_dot(link_table(), ax=ax, top=2)
        cols = [tick.get_text() for tick in ax.get_xticklabels()]
        assert cols == ["IFNG", "TGFB1"]  # 12 + 2.64 and 2 + 3.75
        rows = [tick.get_text() for tick in ax.get_yticklabels()]
        assert "C \u2192 D" not in rows  # only IL6 links C -> D
        with pytest.raises(ValueError, match="top must be a positive integer"):
            secact.pl.ccc_dot(link_table(), ax=ax, top=0)
    finally:
        plt.close(fig)


@pytest.mark.parametrize("value", ["count", "strength"])
def test_heatmap_matrix_and_annotations(value):
    fig, ax = plt.subplots()
    try:
        secact.pl.ccc_heatmap(link_table(), value=value, ax=ax)
        image = next(i for i in ax.get_children() if isinstance(i, AxesImage))
        m = np.asarray(image.get_array())
        t = link_table()
        agg = (
            t.groupby(["sender", "receiver"]).size()
            if value == "count"
            else t.groupby(["sender", "receiver"])["strength"].sum()
        )
        expected = agg.unstack().reindex(index=list("ABCD"), columns=list("ABCD")).fillna(0).to_numpy()
        np.testing.assert_allclose(m, expected)
        annotations = [tt.get_text() for tt in ax.texts]
        off_diagonal_links = int(((expected != 0) & ~np.eye(4, dtype=bool)).sum())
        assert len(annotations) == off_diagonal_links  # cells with links; empty ones stay blank
        assert "0" not in annotations
        assert ("2" if value == "count" else "15") in annotations  # A -> B: 2 links, 12 + 3 strength
        assert [tick.get_text() for tick in ax.get_yticklabels()] == list("ABCD")
        assert ax.get_ylabel() == "sender" and ax.get_xlabel() == "receiver"
    finally:
        plt.close(fig)


def test_sankey_flows_proportional_to_strength():
    fig, ax = plt.subplots()
    try:
        secact.pl.ccc_sankey(link_table(), ax=ax)
        bands = [p for p in ax.patches if isinstance(p, PathPatch)]
        t = link_table()
        n_left = len(t.groupby(["sender", "secreted_protein"]))
        n_right = len(t.groupby(["secreted_protein", "receiver"]))
        assert len(bands) == n_left + n_right
        # band thickness at its start (first vertex minus the last curve's end) / total = share
        thick = []
        for b in bands:
            v = b.get_path().vertices
            thick.append(v[0, 1] - v[7, 1])
        thick = np.array(thick)
        shares = np.sort(thick[:n_left] / thick[:n_left].sum())
        expected = np.sort(t.groupby(["sender", "secreted_protein"])["strength"].sum().to_numpy())
        np.testing.assert_allclose(shares, expected / expected.sum(), rtol=1e-9)
        labels = {tt.get_text() for tt in ax.texts}
        assert {"A", "B", "C", "D", "IFNG", "IL4", "TGFB1", "IL6", "sender", "receiver"} <= labels
    finally:
        plt.close(fig)


def test_sankey_top_and_positive_strengths():
    fig, ax = plt.subplots()
    try:
        secact.pl.ccc_sankey(link_table(), ax=ax, top=1)
        assert len([p for p in ax.patches if isinstance(p, PathPatch)]) == 2  # A-IFNG, IFNG-B
        bad = link_table()
        bad.loc[0, "strength"] = -1.0
        with pytest.raises(ValueError, match="positive strengths"):
            secact.pl.ccc_sankey(bad, ax=ax)
    finally:
        plt.close(fig)


# ----------------------------------------------------------------------------------------------
# scanpy's ax / show / return_fig / save, for every plot
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PLOTS)
def test_return_fig_and_save(name, tmp_path):
    plot = PLOTS[name]
    fig = plot(link_table(), return_fig=True)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert fig.axes  # drawn
    plt.close(fig)  # already released by pyplot: closing is harmless
    path = tmp_path / f"ccc_{name}.png"
    out = plot(link_table(), save=path, show=False)
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out is not None
    out_dir = os.environ.get("SECACT_PNG_DIR")
    if out_dir:
        shutil.copyfile(path, Path(out_dir) / path.name)


@pytest.mark.parametrize("name", PLOTS)
def test_draws_into_given_ax(name):
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    try:
        out = PLOTS[name](link_table(), ax=right)
        assert out is right
        assert len(right.get_children()) > len(left.get_children())
    finally:
        plt.close(fig)


@pytest.mark.parametrize("name", PLOTS)
def test_anndata_and_table_give_the_same_plot(planted, name):
    from_adata, from_table = (PLOTS[name](src, return_fig=True) for src in (planted, secact.get.ccc(planted)))
    try:
        a, b = from_adata.axes[0], from_table.axes[0]
        assert {t.get_text() for t in a.texts} == {t.get_text() for t in b.texts}
        rows = [t.get_text() for t in a.get_yticklabels()]
        assert sorted(rows) == sorted(t.get_text() for t in b.get_yticklabels())
        if name in ("dot", "heatmap"):  # an AnnData orders the cell types as obs[groupby]
            cats = [str(c) for c in planted.obs["group"].cat.categories]
            firsts = [cats.index(r.split(" \u2192 ")[0]) for r in rows]
            assert firsts == sorted(firsts)
        # the planted links are drawn
        names = {t.get_text() for t in a.texts} | {t.get_text() for t in a.get_yticklabels()}
        names |= {t.get_text() for t in a.get_xticklabels()}
        assert any("IFNG_source" in n for n in names) and any("IL4_stimulated" in n for n in names)
    finally:
        plt.close(from_adata)
        plt.close(from_table)


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PLOTS)
def test_empty_links_are_a_clear_error(planted, name):
    empty = link_table().iloc[:0]
    with pytest.raises(ValueError, match="no links to draw"):
        PLOTS[name](empty)
    with pytest.raises(ValueError, match="no links to draw: no link matches"):
        PLOTS[name](planted, sender="no such type")


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['strength'\]"):
        secact.pl.ccc_heatmap(link_table().drop(columns="strength"))
    with pytest.raises(ValueError, match="'padj'"):
        secact.pl.ccc_dot(link_table().drop(columns="padj"))
    with pytest.raises(ValueError, match="value must be 'count'"):
        secact.pl.ccc_circle(link_table(), value="links")
    with pytest.raises(KeyError, match=r"secact\.tl\.ccc"):
        secact.pl.ccc_circle(secact.datasets.simulate(40, 100, seed=0))
    with pytest.raises(TypeError, match="AnnData"):
        secact.pl.ccc_circle(42)


def test_filters_select_links():
    fig, ax = plt.subplots()
    try:
        secact.pl.ccc_heatmap(link_table(), ax=ax, secreted_protein="TGFB1")
        assert [tick.get_text() for tick in ax.get_yticklabels()] == ["B", "C"]
    finally:
        plt.close(fig)


# ----------------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------------
IMAGES = {
    "ccc_dot": lambda **kw: secact.pl.ccc_dot(link_table(), figsize=(5.0, 3.6), **kw),
    "ccc_circle": lambda **kw: secact.pl.ccc_circle(link_table(), value="strength", figsize=(5.4, 4.0), **kw),
}


@pytest.mark.parametrize("name", IMAGES)
def test_matches_baseline(name, tmp_path):
    actual = tmp_path / f"{name}.png"
    with plt.style.context("default"), plt.rc_context({"figure.dpi": 80}):
        IMAGES[name](save=actual, show=False)
    expected = BASELINE / f"{name}.png"
    if os.environ.get("SECACT_UPDATE_BASELINES"):
        BASELINE.mkdir(exist_ok=True)
        shutil.copyfile(actual, expected)
    assert expected.exists(), f"no baseline {expected}; create it with SECACT_UPDATE_BASELINES=1"
    diff = compare_images(str(expected), str(actual), tol=TOL)
    assert diff is None, diff


# ----------------------------------------------------------------------------------------------
# tl.ccc_spatial results: the same four plots, labels naming SecAct R's scST measure
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spatial_ccc():
    """``tl.ccc_spatial`` on the simulated tissue (planted IFNG, TGFB1 and IL6 niches)."""
    tissue = secact.datasets.simulate_spatial(1600, seed=0)
    secact.tl.activity(
        tissue, "CytoSig", flavor="spatial", method="analytic", stats=["zscore"], progress=False
    )
    secact.tl.ccc_spatial(tissue, "cell_type", radius=15, ratio_cutoff=0.1)
    return tissue


SPATIAL_KEY = "secact_ccc_spatial"
SPATIAL_MEASURE = "neighbour pairs: sender expr. \u00d7 receiver z"
SC_MEASURE = "sender logFC \u00d7 receiver z"


def _labels(fig) -> str:
    """Every text of a figure: titles, axis and colour-bar labels, legend titles."""
    texts = [t.get_text() for t in fig.findobj(plt.Text)]
    for ax in fig.axes:
        texts += [ax.get_xlabel(), ax.get_ylabel(), ax.get_title()]
        if ax.get_legend() is not None:
            texts.append(ax.get_legend().get_title().get_text())
    return "\n".join(texts)


def test_get_ccc_reads_ccc_spatial_links(spatial_ccc, tmp_path):
    links = secact.get.ccc(spatial_ccc, SPATIAL_KEY)
    stored = spatial_ccc.uns[SPATIAL_KEY]["links"]
    assert len(links) == len(stored) > 0
    assert links["pvalue"].is_monotonic_increasing
    triples = links[["sender", "secreted_protein", "receiver"]].astype(str)
    assert ("T_cell", "IFNG", "tumor") in set(triples.itertuples(index=False, name=None))
    # a file written before the table was named "links" is read too
    old = spatial_ccc.copy()
    old.uns[SPATIAL_KEY] = {**old.uns[SPATIAL_KEY]}
    old.uns[SPATIAL_KEY]["results"] = old.uns[SPATIAL_KEY].pop("links")
    old.write_h5ad(tmp_path / "old.h5ad")
    import anndata as ad

    back = secact.get.ccc(ad.read_h5ad(tmp_path / "old.h5ad"), SPATIAL_KEY)
    pd.testing.assert_frame_equal(back, links, check_dtype=False, check_categorical=False)


@pytest.mark.parametrize("name", PLOTS)
def test_plots_draw_ccc_spatial_results(spatial_ccc, name):
    links = secact.get.ccc(spatial_ccc, SPATIAL_KEY)
    kwargs = {"value": "strength"} if name in ("circle", "heatmap") else {}
    fig = PLOTS[name](spatial_ccc, SPATIAL_KEY, return_fig=True, **kwargs)
    try:
        ax = fig.axes[0]
        labels = _labels(fig)
        assert SPATIAL_MEASURE in labels.replace("\n", " ") and SC_MEASURE not in labels
        pairs = links.groupby(["sender", "receiver"], observed=True)["strength"].sum()
        if name == "circle":
            assert len(_arrows(ax)) == len(pairs)
        elif name == "dot":
            dots = next(c for c in ax.collections if isinstance(c, PathCollection) and len(c.get_offsets()))
            assert sorted(dots.get_array()) == pytest.approx(sorted(links["strength"]))
        elif name == "heatmap":
            m = np.asarray(next(i for i in ax.get_children() if isinstance(i, AxesImage)).get_array())
            assert np.sort(m[m != 0]) == pytest.approx(np.sort(pairs.to_numpy()))
        else:  # sankey: every protein node is labelled
            assert set(links["secreted_protein"].astype(str)) <= {t.get_text() for t in ax.texts}
    finally:
        plt.close(fig)


def test_tl_ccc_plots_name_their_measure(planted):
    fig = secact.pl.ccc_heatmap(planted, value="strength", return_fig=True)
    try:
        labels = _labels(fig).replace("\n", " ")
        assert SC_MEASURE in labels and SPATIAL_MEASURE not in labels
    finally:
        plt.close(fig)
