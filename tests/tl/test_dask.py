"""tl.activity on dask arrays: lazily, in a thread pool and on a dask.distributed cluster."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import secact

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed")

STATS = ("beta", "se", "zscore", "pvalue")


@pytest.fixture(scope="module")
def sig():
    return secact.datasets.signature("CytoSig").iloc[:900, :8]


@pytest.fixture(scope="module")
def counts(sig):
    rng = np.random.default_rng(5)
    genes = list(sig.index[:200])
    genes[7] = genes[3]  # a duplicated symbol: R keeps the gene with the largest total
    x = rng.poisson(rng.gamma(0.7, 2.0, size=len(genes)), size=(60, len(genes))).astype(np.float64)
    return ad.AnnData(
        sp.csr_matrix(x), obs=pd.DataFrame(index=[f"c{i}" for i in range(60)]), var=pd.DataFrame(index=genes)
    )


def _cells(a):
    return {k: np.asarray(a.obsm[f"secact_{k}"]) for k in STATS}


def test_csr_chunks_with_duplicated_symbols(counts, sig):
    """Defect 2: the totals pass on CSR dask chunks crashed (``sum(keepdims=...)``)."""
    ref = counts.copy()
    secact.tl.activity(ref, sig, n_permutations=20, progress=False)
    a = counts.copy()
    a.X = da.from_array(counts.X, chunks=(13, -1), asarray=False)
    secact.tl.activity(a, sig, n_permutations=20, progress=False)
    got = _cells(a)
    for k in STATS:
        np.testing.assert_allclose(got[k], np.asarray(ref.obsm[f"secact_{k}"]), atol=1e-10, err_msg=k)


def test_sidecar_on_a_cluster_runs_blocks_on_every_worker(tmp_path, counts, sig):
    """Defect 3: with out= on dask input the blocks were computed one after another."""
    ref = counts.copy()
    secact.tl.activity(ref, sig, method="analytic", progress=False)
    a = counts.copy()
    a.X = da.from_array(counts.X.toarray(), chunks=(10, -1))
    out = tmp_path / "side.h5ad"
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
        distributed.get_task_stream(client) as stream,
    ):
        secact.tl.activity(a, sig, method="analytic", out=out, batch_size=10, progress=False)
    side = ad.read_h5ad(out)
    np.testing.assert_allclose(side.X, ref.obsm["secact_zscore"], atol=1e-10)
    apply_tasks = [t for t in stream.data if distributed.utils.key_split(t["key"]) == "apply"]
    # one task per block of 10 cells in each of the three passes (column totals for the
    # duplicated symbol, the genes' means, inference): every pass runs on the cluster
    assert len(apply_tasks) == 3 * 6
    assert len({t["worker"] for t in apply_tasks}) == 2  # both workers computed blocks
