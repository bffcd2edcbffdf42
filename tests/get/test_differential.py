"""secact.get.differential: ordered like scanpy.get.rank_genes_groups_df."""

from __future__ import annotations

import numpy as np
import pytest

import secact


@pytest.fixture(scope="module")
def adata():
    a = secact.datasets.simulate(n_cells=200, n_genes=300, seed=6)
    secact.tl.differential(a, "group", progress=False)
    return a


def test_sorted_by_group_then_zscore(adata):
    df = secact.get.differential(adata)
    groups = list(adata.obs["group"].cat.categories)
    assert list(dict.fromkeys(df["group"].astype(str))) == groups
    for _, part in df.groupby("group", observed=True):
        z = part["zscore"].to_numpy()
        assert (np.diff(z[~np.isnan(z)]) <= 0).all()
    assert len(df) == len(adata.uns["secact_de"]["results"])


def test_sort_options(adata):
    stored = adata.uns["secact_de"]["results"]
    same = secact.get.differential(adata, sort_by=None)
    assert same["gene"].tolist() == stored["gene"].tolist()
    by_p = secact.get.differential(adata, group="IFNG_stimulated", sort_by="pvalue")
    assert (np.diff(by_p["pvalue"]) >= 0).all()
    assert set(by_p["group"].astype(str)) == {"IFNG_stimulated"}
    with pytest.raises(ValueError, match="sort_by"):
        secact.get.differential(adata, sort_by="nope")
