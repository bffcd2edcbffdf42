"""``secact.tl.ccc_spatial(rng="R")`` gives SecAct R's ``SecAct.CCC.scST`` table.

``tests/data/ccc_spatial`` holds a simulated single-cell spatial data set (400 cells, four
cell types, 20 genes of which 6 code secreted proteins, activity z-scores for 7 proteins, one
without a gene) and what SecAct R's function returns on it, computed by
``make_ccc_spatial.R`` there (R 4.2.2 with Matrix and RANN; the function's body copied from
SecAct R's ``R/downstream.R`` and ``R/ifun.R``, as SecAct R itself is not installed there):
the table with R's defaults (``ccc.tsv``), every scored row (``ccc_all.tsv``: ratio cut-off
0, padj cut-off 1.01) and the spatial correlation filter (``corr.tsv``).
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import secact

DATA = Path(__file__).parents[1] / "data" / "ccc_spatial"

R_COLUMNS = {  # R's column -> ours
    "sender": "sender",
    "secretedProtein": "secreted_protein",
    "receiver": "receiver",
    "sender_count": "sender_count",
    "receiver_count": "receiver_count",
    "neighboringCellPairs": "neighboring_pairs",
    "communicatingCellPairs": "communicating_pairs",
    "ratio": "ratio",
    "pv": "pvalue",
    "pv.adj": "padj",
}
NUMBERS = ["ratio", "pvalue", "padj"]


def _read(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / name, sep="\t", index_col=0, float_precision="round_trip")


@pytest.fixture(scope="module")
def cells() -> tuple[ad.AnnData, pd.DataFrame]:
    counts = _read("counts.tsv")
    meta = pd.read_csv(
        DATA / "cells.tsv", sep="\t", index_col=0, float_precision="round_trip", dtype={"cell_type": str}
    )
    act = _read("activity.tsv")
    adata = ad.AnnData(
        X=counts.to_numpy(dtype=np.float64),
        obs=meta[["cell_type"]],
        var=pd.DataFrame(index=counts.columns.astype(str)),
    )
    adata.obsm["spatial"] = meta[["x", "y"]].to_numpy()
    return adata, act


def _r_table(name: str) -> pd.DataFrame:
    r = _read(name).rename(columns=R_COLUMNS)
    r.index = r.index.astype(str)
    return r


def _ours(cells, **kw) -> dict:
    adata, act = cells
    out = secact.tl.ccc_spatial(adata, "cell_type", radius=15, activity=act, copy=True, **kw)
    return out.uns["secact_ccc_spatial"]


def _assert_same_table(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert got.index.tolist() == want.index.tolist()  # same rows, in R's order
    for col in R_COLUMNS.values():
        if col in NUMBERS:
            np.testing.assert_allclose(
                got[col].to_numpy(float), want[col].to_numpy(float), rtol=1e-10, atol=0
            )
            # bit for bit as R's table holds them (ratio and pvalue: text of 15 digits there)
            ours = got[col].to_numpy(float)
            if col != "padj":
                ours = np.array([float(f"{v:.15g}") for v in ours])
            np.testing.assert_array_equal(ours, want[col].to_numpy(float))
        else:
            assert got[col].astype(str).tolist() == want[col].astype(str).tolist(), col


def test_padj_bit_for_bit_and_exact_pvalues(cells):
    got = _ours(cells, ratio_cutoff=0.0, padj_cutoff=1.01)["links"]
    want = _r_table("ccc_all.tsv")
    np.testing.assert_array_equal(got["padj"].to_numpy(), want["padj"].to_numpy())
    count = np.round(got["pvalue"].to_numpy() * 1001) - 1  # pvalue = (count + 1) / 1001 exactly
    np.testing.assert_array_equal(got["pvalue"].to_numpy(), (count + 1) / 1001)
    ratio = got["communicating_pairs"].to_numpy() / got["neighboring_pairs"].to_numpy()
    np.testing.assert_array_equal(got["ratio"].to_numpy(), ratio)


def test_r_defaults_table(cells):
    entry = _ours(cells)  # rng="R", seed=123, n_background=1000, ratio 0.2, padj 0.01
    want = _r_table("ccc.tsv")
    assert len(want) == 12
    _assert_same_table(entry["links"], want)
    assert entry["params"]["rng"] == "R" and entry["params"]["seed"] == 123


def test_every_scored_row(cells):
    """82 rows over all type pairs and directions (rare types with 1 to 7 neighbouring pairs among them), p-values from 1/1001 up."""
    entry = _ours(cells, ratio_cutoff=0.0, padj_cutoff=1.01)
    want = _r_table("ccc_all.tsv")
    assert len(want) == 82 and want["pvalue"].nunique() > 50
    _assert_same_table(entry["links"], want)


def test_spatial_correlation_filter(cells):
    corr = _ours(cells)["spatial_correlation"]
    want = _read("corr.tsv")
    assert corr.index.astype(str).tolist() == want.index.astype(str).tolist()
    np.testing.assert_allclose(corr["r"], want["r"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(corr["pvalue"], want["p"], rtol=1e-10, atol=0)
    np.testing.assert_allclose(corr["padj"], want["padj"], rtol=1e-10, atol=0)
    assert corr["r"].isna().tolist() == want["r"].isna().tolist()  # IL2: no gene


def test_numpy_rng_differs_only_by_monte_carlo(cells):
    entry = _ours(cells, rng="numpy", seed=0, ratio_cutoff=0.0, padj_cutoff=1.01)
    got = entry["links"]
    want = _r_table("ccc_all.tsv")
    assert sorted(got.index) == sorted(want.index)
    got = got.loc[want.index]
    for col in ("neighboring_pairs", "communicating_pairs"):
        np.testing.assert_array_equal(got[col].to_numpy(float), want[col].to_numpy(float))
    np.testing.assert_allclose(got["ratio"], want["ratio"], rtol=1e-14, atol=0)
    # 1,000 draws: p-values agree to Monte-Carlo error, not exactly
    assert not np.array_equal(got["pvalue"].to_numpy(), want["pvalue"].to_numpy())
    np.testing.assert_allclose(got["pvalue"], want["pvalue"], atol=0.06)
    assert entry["params"]["rng"] == "numpy"


def test_rng_errors(cells):
    with pytest.raises(ValueError, match="rng must be one of"):
        _ours(cells, rng="r")
    with pytest.raises(TypeError, match="seed must be an integer"):
        _ours(cells, seed=1.5)


def test_chunked_background_equals_r(cells, monkeypatch):
    """Background sets evaluated a few at a time (a second R stream moved past the senders'
    draws): still R's table."""
    import functools

    from secact.core import spatial

    monkeypatch.setattr(
        spatial, "ccc_spatial", functools.partial(spatial.ccc_spatial, chunk_elements=7 * 250 * 5)
    )
    entry = _ours(cells, ratio_cutoff=0.0, padj_cutoff=1.01)
    _assert_same_table(entry["links"], _r_table("ccc_all.tsv"))
