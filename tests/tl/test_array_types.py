"""Every tool on every array type gives the in-memory answer (or a clear error)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import secact

from ..conftest import as_array_type

STATS = ("beta", "se", "zscore", "pvalue")


@pytest.fixture(scope="module")
def data():
    sig = secact.datasets.signature("CytoSig").iloc[:800, :10]
    rng = np.random.default_rng(3)
    genes = [*sig.index[:300], "FILLER1", "FILLER2"]
    x = rng.poisson(rng.gamma(0.6, 2.0, size=len(genes)), size=(48, len(genes))).astype(np.float64)
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical(rng.choice(["B", "T", "NK"], size=48))},
        index=[f"c{i}" for i in range(48)],
    )
    return sig, ad.AnnData(sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=genes))


def _cells(result):
    if isinstance(result, ad.AnnData) and "secact_zscore" in result.obsm:
        return {k: np.asarray(result.obsm[f"secact_{k}"]) for k in STATS}
    side = secact.get.activity(result)
    return {k: np.asarray(side.X if k == "zscore" else side.layers[k]) for k in STATS}


@pytest.mark.parametrize("method", ["permutation", "analytic"])
def test_activity_cells_and_groups(data, array_type, tmp_path, method):
    sig, base = data
    kw = dict(method=method, n_permutations=30, progress=False)
    ref = base.copy()
    secact.tl.activity(ref, sig, **kw)
    secact.tl.activity(ref, sig, groupby="cell_type", **kw)
    expect_cells = _cells(ref)
    expect_groups = secact.get.activity(ref, level="groups")

    x = as_array_type(base, array_type, tmp_path)
    out = tmp_path / "cells.h5ad" if array_type == "path" else None
    secact.tl.activity(x, sig, out=out, **kw)
    got = _cells(out if out is not None else x)
    groups = secact.tl.activity(x, sig, groupby="cell_type", **kw)
    if array_type != "path":
        groups = secact.get.activity(x, level="groups")
    for k in STATS:
        np.testing.assert_allclose(got[k], expect_cells[k], rtol=0, atol=1e-10, err_msg=k)
    np.testing.assert_allclose(groups.X, expect_groups.X, rtol=0, atol=1e-10)
    assert list(groups.obs_names) == list(expect_groups.obs_names)
    np.testing.assert_array_equal(groups.obs["n_cells"], expect_groups.obs["n_cells"])


def test_differential(data, array_type, tmp_path):
    _, base = data
    ref = base.copy()
    secact.tl.differential(ref, "cell_type", progress=False)
    expect = secact.get.differential(ref, sort_by=None)
    x = as_array_type(base, array_type, tmp_path)
    if array_type.startswith("dask"):
        with pytest.raises(TypeError, match="dask"):
            secact.tl.differential(x, "cell_type", progress=False)
        return
    returned = secact.tl.differential(x, "cell_type", progress=False)
    # in place: None; a path: a new AnnData holding the results (one rule for every tool)
    got = secact.get.differential(x if returned is None else returned, sort_by=None)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expect, check_exact=False, rtol=1e-12)
