"""secact.pl: plots of group-level activity."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest

import secact


@pytest.fixture(scope="module")
def adata():
    a = secact.datasets.simulate(n_cells=400, seed=1)
    secact.tl.activity(a, "CytoSig", groupby="group", reference="control", method="analytic", progress=False)
    return a


def test_heatmap_shows_top_proteins(adata, tmp_path):
    ax = secact.pl.activity_heatmap(adata, top=2, show=False)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    for group, cytokine in adata.uns["simulate"]["planted"].items():
        assert cytokine in labels, group
    assert [t.get_text() for t in ax.get_yticklabels()] == list(adata.uns["secact"]["groups"]["zscore"].index)
    ax.figure.savefig(tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 1000


def test_heatmap_errors(adata):
    with pytest.raises(KeyError, match="run"):
        secact.pl.activity_heatmap(adata, key="nothing", show=False)
    with pytest.raises(KeyError, match="not in the results"):
        secact.pl.activity_heatmap(adata, proteins=["NOPE"], show=False)
