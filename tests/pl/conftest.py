"""Shared data of the plot tests: one simulated data set with every kind of result."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

import secact


@pytest.fixture(scope="session")
def results():
    """400 cells, 4 groups; CytoSig grouped at r > 0.7 (IFNG|IL27, IL1B|TNFA share a column).

    Group level (200 permutations), cell level (analytic), a UMAP-like and a spatial layout,
    proteins ranked per group, differential expression against the control.
    """
    a = secact.datasets.simulate(n_cells=400, seed=1)
    secact.tl.activity(a, "CytoSig", groupby="group", n_permutations=200, group_cor=0.7, progress=False)
    secact.tl.activity(a, "CytoSig", method="analytic", group_cor=0.7, progress=False)
    rng = np.random.default_rng(0)
    codes = a.obs["group"].cat.codes.to_numpy()
    a.obsm["X_umap"] = rng.normal(size=(a.n_obs, 2)) + 4 * np.c_[np.cos(1.3 * codes), np.sin(1.3 * codes)]
    a.obsm["spatial"] = rng.uniform(0, 100, size=(a.n_obs, 2))
    secact.tl.rank_activities(a, "group")
    secact.tl.differential(a, "group", reference="control", progress=False)
    return a
