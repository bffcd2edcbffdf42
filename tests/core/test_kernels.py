"""Every engine path against a plain reference implementation of SecAct's permutation test.

Paths: dense and sparse permutation kernels, float64 (exact, 1e-10) and float32 (|dz| <= 1e-4,
same calls at p < 0.05), permutation counts that do not fill the kernels' groups of 8, protein
counts that do not fill a tile, block sizes from 1 cell to all, and 1 or 2 kernel threads.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_info

import secact
from secact.core.engine import DENSE_FROM, Engine
from secact.core.permutations import permutation_table
from secact.core.ridge import zscore_columns

ROOT = Path(__file__).resolve().parents[2]
STATS = ("beta", "se", "zscore", "pvalue")


def reference(model, values, offset, table):
    """SecAct R's test written out: z-score each sample over genes, permute, project."""
    y = values - offset if offset is not None else values
    z = zscore_columns(y.T)  # genes x samples
    beta = model.T @ z
    perms = np.stack([model.T @ z[row] for row in table])  # B x proteins x samples
    mean = perms.mean(0)
    se = np.sqrt((perms**2).mean(0) - mean**2)
    count = (np.abs(perms) >= np.abs(beta)).sum(0)
    out = {"beta": beta, "se": se, "zscore": (beta - mean) / se, "pvalue": (count + 1) / (len(table) + 1)}
    return {k: v.T for k, v in out.items()}


@pytest.mark.parametrize("layout", ["dense", "sparse"])
@pytest.mark.parametrize("n_perm", [2, 9, 13, 64])
@pytest.mark.parametrize("with_offset", [True, False], ids=["offset", "no-offset"])
def test_paths_equal_reference(problem, layout, n_perm, with_offset):
    model, values, centre = problem
    offset = centre if with_offset else None
    table = permutation_table(model.n_genes, n_perm, rng="mt19937", seed=3)
    expected = reference(model, values, offset, table)
    engine = Engine(model, table=table, offset=offset, layout=layout)
    block = sp.csr_matrix(values) if layout == "sparse" else values
    got = engine.run(block)
    for key in STATS:
        # With 2 permutations, se = sqrt(s2 / 2 - mean^2) (R's formula) loses (mean / se)^2 * eps
        # to cancellation (|z| > 100 here), so last-bit differences in beta between the dense and
        # the sparse formulation grow to ~1e-10 relative; from 9 permutations on, 1e-10 absolute.
        rtol = 1e-8 if n_perm == 2 and key in ("se", "zscore") else 0
        np.testing.assert_allclose(getattr(got, key), expected[key], rtol=rtol, atol=1e-10, err_msg=key)


@pytest.mark.parametrize("layout", ["dense", "sparse"])
@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("block", [1, 4, 11])
def test_block_sizes_and_threads(problem, layout, n_jobs, block):
    model, values, centre = problem
    table = permutation_table(model.n_genes, 40, rng="srand")
    expected = reference(model, values, centre, table)
    engine = Engine(model, table=table, offset=centre, layout=layout)
    with secact.settings.override(n_jobs=n_jobs):
        parts = [engine.run(sp.csr_matrix(values[i : i + block])) for i in range(0, values.shape[0], block)]
    for key in STATS:
        got = np.vstack([getattr(part, key) for part in parts])
        np.testing.assert_allclose(got, expected[key], rtol=0, atol=1e-10, err_msg=key)


def test_permutation_chunks_do_not_change_results(problem):
    model, values, centre = problem
    table = permutation_table(model.n_genes, 37, rng="mt19937")
    expected = reference(model, values, centre, table)
    for chunk in (8 * model.n_genes * values.shape[0], 1):  # one permutation per product, and all
        with secact.settings.override(permutation_chunk_bytes=max(chunk, 1)):
            got = Engine(model, table=table, offset=centre, layout="dense").run(values)
        np.testing.assert_allclose(got.zscore, expected["zscore"], rtol=0, atol=1e-10)


@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_float32_products_within_stated_accuracy(problem, layout):
    model, values, centre = problem
    table = permutation_table(model.n_genes, 1000, rng="mt19937")
    exact = Engine(model, table=table, offset=centre, layout=layout).run(sp.csr_matrix(values))
    fast = Engine(model, table=table, offset=centre, layout=layout, dtype="float32").run(
        sp.csr_matrix(values)
    )
    assert fast.zscore.dtype == np.float64
    assert np.nanmax(np.abs(fast.zscore - exact.zscore)) <= 1e-4
    np.testing.assert_array_equal(fast.beta, exact.beta)  # the observed beta stays float64
    np.testing.assert_array_equal(fast.pvalue < 0.05, exact.pvalue < 0.05)
    assert np.nanmax(np.abs(fast.zscore - exact.zscore)) > 0  # float32 really ran


def test_auto_layout_follows_density(problem, monkeypatch):
    model, values, centre = problem
    table = permutation_table(model.n_genes, 20, rng="mt19937")
    engine = Engine(model, table=table, offset=centre)
    calls = []
    monkeypatch.setattr(engine, "_run_dense", lambda a: calls.append("dense"))
    monkeypatch.setattr(engine, "_run_sparse", lambda a: calls.append("sparse"))
    density = np.count_nonzero(values) / values.size
    assert density < DENSE_FROM
    engine.run(values)  # a dense array of sparse data -> sparse kernels
    engine.run(sp.csr_matrix(values + 1.0))  # stored and dense -> BLAS
    assert calls == ["sparse", "dense"]


def test_kernels_restore_thread_settings(problem):
    model, values, centre = problem
    table = permutation_table(model.n_genes, 20, rng="mt19937")
    before_numba = numba.get_num_threads()
    before_blas = [(i["internal_api"], i["num_threads"]) for i in threadpool_info()]
    seen = []
    engine = Engine(model, table=table, offset=centre, layout="dense")
    original = engine._run_dense

    def spy(a):
        seen.append(
            (
                numba.get_num_threads(),
                [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"],
            )
        )
        return original(a)

    engine._run_dense = spy
    with secact.settings.override(n_jobs=1):
        engine.run(values)
    assert seen[0][0] == 1
    assert all(n == 1 for n in seen[0][1])
    assert numba.get_num_threads() == before_numba
    assert [(i["internal_api"], i["num_threads"]) for i in threadpool_info()] == before_blas


def test_generated_kernels_are_up_to_date():
    script = ROOT / "tools" / "gen_sparse_kernels.py"
    if not script.exists():  # pragma: no cover - installed without the source tree
        pytest.skip("tools/ is not part of an installed package")
    proc = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, (
        "src/secact/core/_sparse_kernels.py is stale: run tools/gen_sparse_kernels.py"
    )
