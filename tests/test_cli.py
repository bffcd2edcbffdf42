"""The secact command line."""

from __future__ import annotations

import anndata as ad
import pandas as pd

from secact.cli import main


def test_example_ranks_planted_cytokines_first(tmp_path, capsys):
    out = tmp_path / "ex.h5ad"
    assert main(["example", "--n-cells", "600", "--n-permutations", "200", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "planted cytokine ranked first in 3 of 3 groups" in text
    result = ad.read_h5ad(out)
    assert result.n_vars == 43
    assert set(result.uns["planted"]) <= set(result.obs_names)
    for group, cytokine in result.uns["planted"].items():
        z = pd.Series(result[group].X.ravel(), index=result.var_names)
        assert z.idxmax() == cytokine


def test_infer_writes_tables(tmp_path, capsys):
    genes = pd.read_csv(
        __import__("secact").datasets._signatures.files("secact.datasets").joinpath("data", "CytoSig.tsv.gz"),
        sep="\t",
        index_col=0,
        usecols=[0, 1],
    ).index[:500]
    profile = pd.DataFrame(
        {"a": range(500), "b": [(i * 7) % 13 for i in range(500)]}, index=genes, dtype=float
    )
    path = tmp_path / "p.tsv"
    profile.to_csv(path, sep="\t")
    assert (
        main(["infer", str(path), "-s", "CytoSig", "-o", str(tmp_path / "r"), "--n-permutations", "50"]) == 0
    )
    z = pd.read_csv(tmp_path / "r.zscore.tsv", sep="\t", index_col=0)
    assert z.shape == (43, 2)
    assert main(["infer", str(path), "-s", "Nope", "-o", str(tmp_path / "r")]) == 2
    assert "Unknown signature" in capsys.readouterr().err
