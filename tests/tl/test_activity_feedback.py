"""What tl.activity tells its user: gene overlap, step timings, the permutation-cost note."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import secact
from secact.tl import _feedback

sc = pytest.importorskip("scanpy")


@pytest.fixture(scope="module")
def sig() -> pd.DataFrame:
    return secact.datasets.signature("CytoSig").iloc[:1500, :12]


def _adata(sig, n_cells: int, n_sig_genes: int = 600, seed: int = 3) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    genes = list(sig.index[:n_sig_genes]) + [f"FILL{i}" for i in range(60)]
    mu = np.exp(rng.normal(0, 1.0, size=len(genes))) * 0.3
    x = rng.poisson(mu, size=(n_cells, len(genes))).astype(np.float64)
    x[:, 0] += 1  # every cell has counts
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical(rng.choice(["A", "B", "C"], size=n_cells))},
        index=[f"c{i}" for i in range(n_cells)],
    )
    return ad.AnnData(sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=genes))


@pytest.fixture(scope="module")
def small(sig) -> ad.AnnData:
    return _adata(sig, 40)


@pytest.fixture(scope="module")
def many(sig) -> ad.AnnData:
    return _adata(sig, _feedback.MANY_CELLS + 1, n_sig_genes=300)


KW = {"map_symbols": False, "progress": False}


# ----------------------------------------------------------------------------------------------
# gene overlap
# ----------------------------------------------------------------------------------------------
def test_overlap_line_at_info(scanpy_log, small, sig):
    sc.settings.verbosity = 2
    secact.tl.activity(small.copy(), sig, method="analytic", **KW)
    assert "600 of 1,500 signature genes found in the data (40.0%)" in scanpy_log.readouterr().err
    sc.settings.verbosity = 1
    secact.tl.activity(small.copy(), sig, method="analytic", **KW)
    assert "signature genes found" not in scanpy_log.readouterr().err


def test_small_overlap_warns(scanpy_log, sig):
    sc.settings.verbosity = 2
    few = _adata(sig, 40, n_sig_genes=300)  # 20% of the signature's genes
    with pytest.warns(
        UserWarning, match=r"only 300 of 1,500 signature genes found in the data \(20.0%\)"
    ) as rec:
        secact.tl.activity(few, sig, method="analytic", **KW)
    text = str(rec[0].message)
    assert "gene_symbols=" in text and "organism='mouse'" in text and "use_raw=" in text
    # the warning is the event: no info line repeats it
    assert "signature genes found" not in scanpy_log.readouterr().err


def test_normal_overlap_does_not_warn(small, sig):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        secact.tl.activity(small.copy(), sig, method="analytic", **KW)
        secact.tl.activity(small.copy(), sig, groupby="cell_type", method="analytic", **KW)
    # the full CytoSig signature: 600 of 4,881 genes is below 30%
    with pytest.warns(UserWarning, match="only 600 of 4,881"):
        secact.tl.activity(small.copy(), "CytoSig", method="analytic", **KW)


def test_small_overlap_warns_at_group_level(sig):
    with pytest.warns(UserWarning, match="only 300 of 1,500"):
        secact.tl.activity(
            _adata(sig, 40, n_sig_genes=300), sig, groupby="cell_type", n_permutations=10, **KW
        )


# ----------------------------------------------------------------------------------------------
# timings
# ----------------------------------------------------------------------------------------------
def test_timing_lines(scanpy_log, small, sig):
    sc.settings.verbosity = 2
    secact.tl.activity(small.copy(), sig, n_permutations=10, **KW)
    err = scanpy_log.readouterr().err
    assert "normalised 40 cells (pass 1: library sizes, gene means) in " in err
    assert "computed activity of 40 cells x 12 proteins in " in err and "(10 permutations)" in err

    secact.tl.activity(small.copy(), sig, groupby="cell_type", method="analytic", **KW)
    err = scanpy_log.readouterr().err
    assert "computed activity of 3 groups x 12 proteins in " in err and "(analytic)" in err
    assert "normalised" not in err  # the group level has no cell-level pass

    secact.tl.activity(small.copy(), sig, flavor="spatial", method="analytic", **KW)
    err = scanpy_log.readouterr().err
    assert "flavor='spatial': gene totals of 40 spots (data) in " in err
    assert "normalised 40 spots (pass 1" in err and "computed activity of 40 spots x 12 proteins" in err

    sc.settings.verbosity = 1
    secact.tl.activity(small.copy(), sig, n_permutations=10, **KW)
    assert scanpy_log.readouterr().err == ""


def test_timing_line_of_a_sidecar_run(scanpy_log, tmp_path, small, sig):
    sc.settings.verbosity = 2
    secact.tl.activity(small.copy(), sig, method="analytic", out=tmp_path / "s.h5ad", **KW)
    err = scanpy_log.readouterr().err
    assert "computed activity of 40 cells x 12 proteins in " in err
    assert err.index("computed activity") < err.index("wrote ")


# ----------------------------------------------------------------------------------------------
# the permutation note
# ----------------------------------------------------------------------------------------------
def test_permutation_note_on_many_cells_at_default_verbosity(scanpy_log, many, sig):
    sc.settings.verbosity = 1  # scanpy's default
    with pytest.warns(UserWarning, match="signature genes"):  # 300 of 1,500
        secact.tl.activity(many.copy(), sig, n_permutations=5, **KW)
    err = scanpy_log.readouterr().err
    n = f"{_feedback.MANY_CELLS + 1:,}"
    assert f"method='permutation' on {n} cells: 5 permutations per cell, estimated " in err
    assert "method='analytic'" in err
    assert err.count("method='permutation' on") == 1


def test_no_permutation_note_otherwise(scanpy_log, many, sig):
    sc.settings.verbosity = 1
    with pytest.warns(UserWarning, match="signature genes"):
        secact.tl.activity(many.copy(), sig, method="analytic", **KW)  # analytic
        secact.tl.activity(many[: _feedback.MANY_CELLS].copy(), sig, n_permutations=5, **KW)  # few cells
        secact.tl.activity(many.copy(), sig, groupby="cell_type", n_permutations=5, **KW)  # groups
    assert "method='permutation' on" not in scanpy_log.readouterr().err


def test_permutation_estimate_scales(small, sig):
    plan = secact.core.plan.make_plan(
        sig, small.var_names, secact.core.params.InferenceParams(n_permutations=100)
    )
    plan_2b = secact.core.plan.make_plan(
        sig, small.var_names, secact.core.params.InferenceParams(n_permutations=200)
    )
    with secact.settings.override(n_jobs=1):
        one = _feedback.permutation_seconds(1000, plan)
        assert _feedback.permutation_seconds(2000, plan) == pytest.approx(2 * one)
        assert _feedback.permutation_seconds(1000, plan_2b) == pytest.approx(2 * one)
        assert _feedback.permutation_seconds(1000, plan, np.float32) < one
    with secact.settings.override(n_jobs=4):
        assert _feedback.permutation_seconds(1000, plan) == pytest.approx(one / 4)
    # the documented calibration: SecAct-sized runs of 1,000 cells take seconds, not hours
    assert 1 < 1000 * 7500 * 657 * 1000 * _feedback.PERMUTATION_COST / 2 < 60
