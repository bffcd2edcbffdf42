"""``secact.get.pattern_genes`` against SecAct R's ``SecAct.signaling.pattern.gene``
(``tests/data/patterns``: a 40 x 4 weight matrix with boundary cases — exactly twice the
other loadings, just under twice, an all-zero row, ties — and a one-pattern matrix; the R
output and the script that made it, R 4.2.2)."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import secact

DATA = Path(__file__).parents[1] / "data" / "patterns"


def _weights() -> dict[str, pd.DataFrame]:
    out: dict[str, dict[str, list[float]]] = {}
    for line in (DATA / "weights.tsv").read_text().splitlines():
        name, protein, values = line.split("\t")
        out.setdefault(name, {})[protein] = [float(v) for v in values.split()]
    return {
        name: pd.DataFrame.from_dict(
            rows, orient="index", columns=[str(c + 1) for c in range(len(next(iter(rows.values()))))]
        )
        for name, rows in out.items()
    }


def _expected() -> list[tuple[str, int, list[str]]]:
    rows = []
    for line in (DATA / "pattern_genes.tsv").read_text().splitlines():
        name, n, proteins = line.split("\t")
        rows.append((name, int(n), proteins.split()))
    return rows


def _adata(loadings: pd.DataFrame) -> ad.AnnData:
    """An AnnData holding a signaling_patterns result with these loadings (as the tool stores it)."""
    k = loadings.shape[1]
    a = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(5)]))
    a.obsm["secact_patterns"] = pd.DataFrame(np.ones((5, k)), index=a.obs_names, columns=loadings.columns)
    corr = pd.DataFrame({"r": 0.5, "pvalue": 1e-5, "padj": 1e-4}, index=loadings.index.rename("protein"))
    a.uns["secact_patterns"] = {
        "loadings": loadings.rename_axis("protein"),
        "spatial_correlation": corr,
        "k": k,
        "params": {"k": [k]},
    }
    return a


WEIGHTS = _weights()


@pytest.mark.parametrize(("name", "n", "proteins"), _expected())
def test_pattern_genes_equal_r(name, n, proteins):
    w = WEIGHTS[name]
    got = secact.get.pattern_genes(_adata(w), n)
    assert got.index.tolist() == proteins
    assert got.index.name == "protein"
    assert list(got.columns) == list(w.columns)
    np.testing.assert_array_equal(got.to_numpy(), w.loc[proteins].to_numpy())  # R's rows, unchanged
    pd.testing.assert_frame_equal(secact.get.pattern_genes(_adata(w), str(n)), got)


def test_reference_has_the_boundary_cases():
    by = {(name, n): p for name, n, p in _expected()}
    assert "P01" in by["W", 1] and "P02" not in by["W", 1]  # 2x exactly kept, just under 2x dropped
    assert all("P03" in by["W", n] for n in range(1, 5))  # all-zero row: every pattern
    assert by["W", 1][:2] == ["P04", "P05"] and by["W", 4][:2] == ["P13", "P14"]  # ties: input order
    assert not any("P07" in by["W", n] for n in range(1, 5))
    assert len(by["one", 1]) == 40


def test_pattern_genes_errors():
    a = _adata(WEIGHTS["W"])
    for bad in (0, 5, "x", 1.0, True):
        with pytest.raises(ValueError, match="pattern must be one of"):
            secact.get.pattern_genes(a, bad)
    with pytest.raises(KeyError, match="secact_patterns"):
        secact.get.pattern_genes(ad.AnnData(obs=pd.DataFrame(index=["a"])), 1)
