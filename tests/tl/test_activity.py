"""secact.tl.activity: the R pipelines re-derived on dense arrays, and one answer on every path."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import secact
from secact.core.permutations import permutation_table

B = 40
LAMBDA = 5e5
STATS = ("beta", "se", "zscore", "pvalue")


@pytest.fixture(scope="module")
def sig() -> pd.DataFrame:
    full = secact.datasets.signature("CytoSig")
    return full.iloc[:1500, :12]


@pytest.fixture(scope="module")
def counts(sig) -> ad.AnnData:
    """A small count matrix with signature genes, fillers, an alias and a duplicated symbol."""
    rng = np.random.default_rng(7)
    genes = list(sig.index[:600]) + [f"FILL{i}" for i in range(60)]
    genes[10] = (
        "DDX58"  # alias of RIGI? only matters if RIGI is a signature gene; kept as a plain gene otherwise
    )
    n_cells = 57
    mu = np.exp(rng.normal(0, 1.2, size=len(genes)))
    x = rng.poisson(mu * rng.lognormal(0, 0.4, size=(n_cells, 1)) * 0.3).astype(np.float64)
    x[5] = 0.0  # a cell without counts
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(
                rng.choice(["T", "B", "NK", "Mono"], size=n_cells),
                categories=["B", "Mono", "NK", "T", "unused"],
            )
        },
        index=[f"c{i}" for i in range(n_cells)],
    )
    return ad.AnnData(sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=genes))


# ----------------------------------------------------------------------------------------------
# independent re-derivation of SecAct R's steps (dense, loops, no secact engine)
# ----------------------------------------------------------------------------------------------
def r_scale(m: np.ndarray) -> np.ndarray:
    c = m - m.mean(axis=0)
    return c / np.sqrt((c**2).sum(axis=0) / (m.shape[0] - 1))


def r_ridge(y: pd.DataFrame, sig: pd.DataFrame, table: np.ndarray):
    olp = [g for g in y.index if g in sig.index]
    x = r_scale(sig.loc[olp].to_numpy())
    ys = r_scale(y.loc[olp].to_numpy())
    t = np.linalg.solve(x.T @ x + LAMBDA * np.eye(x.shape[1]), x.T)
    beta = t @ ys
    aver = np.zeros_like(beta)
    aver_sq = np.zeros_like(beta)
    count = np.zeros_like(beta)
    for perm in table:
        br = t @ ys[perm]
        aver += br
        aver_sq += br**2
        count += np.abs(br) >= np.abs(beta)
    aver /= len(table)
    aver_sq /= len(table)
    se = np.sqrt(aver_sq - aver**2)
    frames = [beta, se, (beta - aver) / se, (count + 1) / (len(table) + 1)]
    return {
        k: pd.DataFrame(v.T, index=y.columns, columns=sig.columns) for k, v in zip(STATS, frames, strict=True)
    }, len(olp)


def test_cell_level_matches_r_pipeline(counts, sig):
    x = counts.X.toarray().T  # genes x cells
    genes = pd.Index(counts.var_names)
    lib = x.sum(axis=0)
    keep = lib > 0
    expr = np.log2(x[:, keep] / lib[keep] * 1e5 + 1)
    diff = pd.DataFrame(expr - expr.mean(axis=1, keepdims=True), index=genes, columns=counts.obs_names[keep])
    n = sum(g in sig.index for g in genes)
    ref, _ = r_ridge(diff, sig, permutation_table(n, B, rng="mt19937"))
    a = counts.copy()
    with pytest.warns(RuntimeWarning, match="library size of 0"):
        secact.tl.activity(
            a, sig, n_permutations=B, group_signatures=False, map_symbols=False, progress=False
        )
    for k in STATS:
        ours = a.obsm[f"secact_{k}"]
        assert np.isnan(ours.iloc[5]).all()
        np.testing.assert_allclose(
            ours.loc[keep].to_numpy(), ref[k].to_numpy(), rtol=0, atol=1e-10, err_msg=k
        )


def test_group_level_matches_r_pipeline(counts, sig):
    x = counts.X.toarray()
    ct = counts.obs["cell_type"]
    groups = sorted(ct.dropna().unique())  # R: sort(unique(cellType_vec)); unused categories never appear
    bulk = pd.DataFrame({g: x[(ct == g).to_numpy()].sum(axis=0) for g in groups}, index=counts.var_names)
    expr = np.log2(bulk / bulk.sum(axis=0) * 1e6 + 1)
    diff = expr.sub(expr.mean(axis=1), axis=0)
    n = sum(g in sig.index for g in counts.var_names)
    ref, _ = r_ridge(diff, sig, permutation_table(n, B, rng="mt19937"))
    a = counts.copy()
    secact.tl.activity(
        a,
        sig,
        groupby="cell_type",
        n_permutations=B,
        group_signatures=False,
        map_symbols=False,
        progress=False,
    )
    res = a.uns["secact"]["groups"]
    assert list(res["zscore"].index) == groups
    for k in STATS:
        np.testing.assert_allclose(
            res[k].loc[groups].to_numpy(), ref[k].to_numpy(), rtol=0, atol=1e-10, err_msg=k
        )
    assert res["params"]["n_permutations"] == B


def test_group_reference_and_grouped_signatures(counts, sig):
    x = counts.X.toarray()
    ct = counts.obs["cell_type"]
    groups = sorted(ct.dropna().unique())
    bulk = pd.DataFrame({g: x[(ct == g).to_numpy()].sum(axis=0) for g in groups}, index=counts.var_names)
    expr = np.log2(bulk / bulk.sum(axis=0) * 1e6 + 1)
    diff = expr.sub(expr["B"], axis=0).drop(columns="B")  # the reference itself is left out
    bulk_res = secact.infer(diff, sig, differential=True, n_permutations=B)
    a = counts.copy()
    secact.tl.activity(
        a, sig, groupby="cell_type", reference="B", n_permutations=B, map_symbols=False, progress=False
    )
    assert list(a.uns["secact"]["groups"]["zscore"].index) == ["Mono", "NK", "T"]
    for k in STATS:
        np.testing.assert_allclose(
            a.uns["secact"]["groups"][k].to_numpy(), getattr(bulk_res, k).T.to_numpy(), atol=1e-12
        )


# ----------------------------------------------------------------------------------------------
# one answer on every path
# ----------------------------------------------------------------------------------------------
def _results(adata_or_path, key="secact"):
    if isinstance(adata_or_path, ad.AnnData):
        return {k: np.asarray(adata_or_path.obsm[f"{key}_{k}"]) for k in STATS}
    out = ad.read_h5ad(adata_or_path)
    return {
        "beta": out.layers["beta"],
        "se": out.layers["se"],
        "zscore": out.X,
        "pvalue": out.layers["pvalue"],
    }


def _assert_same(a, b):
    for k in STATS:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-10, equal_nan=True, err_msg=k)


@pytest.fixture(scope="module", params=["permutation", "analytic"])
def baseline(request, counts, sig):
    a = counts.copy()
    a.X = a.X.toarray()
    kw = dict(method=request.param, n_permutations=B, progress=False)
    with pytest.warns(RuntimeWarning):
        secact.tl.activity(a, sig, **kw)
    return kw, _results(a)


@pytest.mark.filterwarnings("ignore:.*library size of 0:RuntimeWarning")
@pytest.mark.parametrize("fmt", ["csr", "csc", "csr_array"])
@pytest.mark.parametrize("batch_size", [1, 7, None])
def test_in_memory_formats_and_batches(counts, sig, baseline, fmt, batch_size):
    kw, ref = baseline
    a = counts.copy()
    a.X = {"csr": sp.csr_matrix, "csc": sp.csc_matrix, "csr_array": sp.csr_array}[fmt](counts.X)
    secact.tl.activity(a, sig, batch_size=batch_size, **kw)
    _assert_same(_results(a), ref)


@pytest.mark.filterwarnings("ignore:.*library size of 0:RuntimeWarning")
@pytest.mark.parametrize("storage", ["csr", "csc", "dense"])
def test_backed_path_and_sidecar(tmp_path, counts, sig, baseline, storage):
    kw, ref = baseline
    a = counts.copy()
    if storage == "csc":
        a.X = sp.csc_matrix(a.X)
    elif storage == "dense":
        a.X = a.X.toarray()
    path = tmp_path / f"data_{storage}.h5ad"
    a.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    secact.tl.activity(backed, sig, batch_size=7, **kw)
    _assert_same(_results(backed), ref)
    backed.file.close()
    out = tmp_path / "side.h5ad"
    secact.tl.activity(path, sig, batch_size=13, out=out, **kw)
    _assert_same(_results(out), ref)
    side = ad.read_h5ad(out, backed="r")
    assert list(side.obs_names) == list(counts.obs_names)
    assert side.uns["secact"]["cells"]["params"]["n_permutations"] == (
        B if kw["method"] == "permutation" else 0
    )
    side.file.close()


@pytest.mark.filterwarnings("ignore:.*library size of 0:RuntimeWarning")
def test_sidecar_from_memory_adds_nothing_large(tmp_path, counts, sig, baseline):
    kw, ref = baseline
    a = counts.copy()
    out = tmp_path / "res.h5ad"
    secact.tl.activity(a, sig, out=out, **kw)
    assert not any(k.startswith("secact_") for k in a.obsm)
    assert a.uns["secact"]["cells"]["out"] == str(out)
    _assert_same(_results(out), ref)
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.filterwarnings("ignore:.*library size of 0:RuntimeWarning")
def test_dask_in_process_and_sidecar(tmp_path, counts, sig, baseline):
    da = pytest.importorskip("dask.array")
    kw, ref = baseline
    a = counts.copy()
    a.X = da.from_array(counts.X.toarray(), chunks=(9, -1))
    secact.tl.activity(a, sig, **kw)
    z = a.obsm["secact_zscore"]
    assert type(z).__module__.startswith("dask")
    _assert_same({k: np.asarray(a.obsm[f"secact_{k}"].compute()) for k in STATS}, ref)
    b = counts.copy()
    b.X = da.from_array(counts.X, chunks=(11, -1), asarray=False)
    secact.tl.activity(b, sig, out=tmp_path / "d.h5ad", **kw)
    _assert_same(_results(tmp_path / "d.h5ad"), ref)


@pytest.mark.filterwarnings("ignore:.*library size of 0:RuntimeWarning")
def test_dask_distributed_local_cluster(tmp_path, counts, sig, baseline):
    distributed = pytest.importorskip("dask.distributed")
    import h5py
    from anndata.experimental import read_elem_lazy

    kw, ref = baseline
    path = tmp_path / "lazy.h5ad"
    counts.write_h5ad(path)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
        h5py.File(path, "r") as f,
    ):
        lazy = read_elem_lazy(f["X"], chunks=(16, -1))
        a = ad.AnnData(lazy, obs=counts.obs.copy(), var=counts.var.copy())
        secact.tl.activity(a, sig, **kw)
        got = {k: np.asarray(a.obsm[f"secact_{k}"].compute()) for k in STATS}
    _assert_same(got, ref)


# ----------------------------------------------------------------------------------------------
# inputs and bad input
# ----------------------------------------------------------------------------------------------
def test_log_and_differential_inputs(counts, sig):
    a = counts.copy()
    a = a[a.X.sum(axis=1).A1 > 0].copy()
    lib = a.X.sum(axis=1).A1
    logx = sp.csr_matrix(a.X.multiply(1 / lib[:, None]).multiply(1e5))
    logx.data = np.log2(logx.data + 1)
    a.layers["log"] = logx
    secact.tl.activity(a, sig, n_permutations=B, progress=False, key_added="c")
    secact.tl.activity(a, sig, layer="log", input="log", n_permutations=B, progress=False, key_added="l")
    _assert_same(_results(a, "c"), _results(a, "l"))
    dense = logx.toarray()
    a.layers["diff"] = dense - dense.mean(axis=0)
    secact.tl.activity(
        a, sig, layer="diff", input="differential", n_permutations=B, progress=False, key_added="d"
    )
    _assert_same(_results(a, "c"), _results(a, "d"))


def test_reference_cells(counts, sig):
    a = counts[counts.X.sum(axis=1).A1 > 0].copy()
    ref_mask = (a.obs["cell_type"] == "B").to_numpy()
    secact.tl.activity(a, sig, reference=("cell_type", "B"), n_permutations=B, progress=False, key_added="r1")
    secact.tl.activity(a, sig, reference=ref_mask, n_permutations=B, progress=False, key_added="r2")
    _assert_same(_results(a, "r1"), _results(a, "r2"))
    x = a.X.toarray()
    lib = x.sum(axis=1, keepdims=True)
    logx = np.log2(x / lib * 1e5 + 1)
    diff = logx - logx[ref_mask].mean(axis=0)
    a.layers["d"] = diff
    secact.tl.activity(
        a, sig, layer="d", input="differential", n_permutations=B, progress=False, key_added="r3"
    )
    _assert_same(_results(a, "r1"), _results(a, "r3"))


def test_copy_returns_new_object(counts, sig):
    a = counts[1:5].copy()
    out = secact.tl.activity(a, sig, method="analytic", copy=True, progress=False)
    assert "secact_zscore" in out.obsm
    assert "secact_zscore" not in a.obsm


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(input="raw"), ValueError, "input must be"),
        (dict(layer="nope"), KeyError, "layer 'nope' not found"),
        (dict(use_raw=True), ValueError, "adata.raw is None"),
        (dict(groupby="nope"), KeyError, "not a column of obs"),
        (dict(groupby="cell_type", reference="X"), ValueError, "not among the groups"),
        (dict(reference=("cell_type", "nobody")), ValueError, "reference is empty"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(gene_symbols="nope"), KeyError, "gene_symbols"),
    ],
)
def test_bad_arguments(counts, sig, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        secact.tl.activity(counts.copy(), sig, method="analytic", progress=False, **kwargs)


def test_non_counts_suggest_log_input(counts, sig):
    a = counts.copy()
    a.X = a.X * 0.5
    with pytest.raises(ValueError, match="input='log'"):
        secact.tl.activity(a, sig, method="analytic", progress=False)
    assert "secact" not in a.uns


def test_ensembl_ids_need_gene_symbols(counts, sig):
    a = counts.copy()
    a.var["symbol"] = a.var_names
    a.var_names = [f"ENSG{i:011d}" for i in range(a.n_vars)]
    with pytest.raises(ValueError, match="gene_symbols"):
        secact.tl.activity(a, sig, method="analytic", progress=False)
    secact.tl.activity(a, sig, method="analytic", gene_symbols="symbol", progress=False)
    assert a.obsm["secact_zscore"].shape == (a.n_obs, sig.shape[1])


def test_nan_values_are_an_error_and_nothing_is_written(tmp_path, counts, sig):
    a = counts.copy()
    a.X = a.X.toarray()
    a.X[3, 3] = np.nan
    out = tmp_path / "x.h5ad"
    with pytest.raises(ValueError, match="NaN"):
        secact.tl.activity(a, sig, method="analytic", out=out, progress=False, input="log")
    assert not out.exists()
    assert not list(tmp_path.iterdir())


@pytest.mark.filterwarnings("ignore:.*library size of 0:RuntimeWarning")
def test_integer_counts_explicit_zeros_and_backed_views(tmp_path, counts, sig):
    idx = np.array([0, 3, 4, 9, 10, 11, 30, 31, 56])
    a = counts.copy()
    secact.tl.activity(a, sig, method="analytic", progress=False)
    ref = {k: v[idx] for k, v in _results(a).items()}
    b = counts.copy()
    coo = sp.coo_matrix(b.X.astype(np.int32))
    zr, zc = np.nonzero(b.X.toarray() == 0)
    pick = slice(None, None, 7)
    x = sp.coo_matrix(
        (
            np.r_[coo.data, np.zeros(zr[pick].size, np.int32)],
            (np.r_[coo.row, zr[pick]], np.r_[coo.col, zc[pick]]),
        ),
        shape=b.shape,
    ).tocsr()  # explicit zeros stay stored
    b.X = x
    assert (b.X.data == 0).any()
    path = tmp_path / "int.h5ad"
    b.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    full = counts.X.toarray()
    # a backed view only sees its own cells: the centring is over them
    view = backed[idx]
    secact.tl.activity(view, sig, method="analytic", progress=False, out=tmp_path / "v.h5ad")
    sub = counts[idx].copy()
    sub.X = full[idx]
    secact.tl.activity(sub, sig, method="analytic", progress=False)
    _assert_same(_results(tmp_path / "v.h5ad"), _results(sub))
    secact.tl.activity(backed, sig, method="analytic", progress=False, batch_size=5)
    _assert_same({k: v[idx] for k, v in _results(backed).items()}, ref)
    backed.file.close()


def test_unused_categories_and_missing_groups(counts, sig):
    a = counts.copy()
    a.obs.loc[a.obs_names[:3], "cell_type"] = np.nan
    secact.tl.activity(a, sig, groupby="cell_type", method="analytic", progress=False)
    res = a.uns["secact"]["groups"]
    assert "unused" not in res["zscore"].index
    assert res["n_cells"].sum() == a.n_obs - 3


def test_cell_without_counts_at_the_end_of_a_block():
    """The last cell of the data (and of its block) has no counts: NaN for it, the others as
    when it is left out (the sparse engine used to fail on a block ending with an empty row)."""
    import warnings

    adata = secact.datasets.simulate(150, seed=1)
    x = adata.X.tolil()
    x[149, :] = 0
    adata.X = sp.csr_matrix(x)
    adata.X.eliminate_zeros()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        secact.tl.activity(adata, "CytoSig", n_permutations=20, batch_size=50)
    z = adata.obsm["secact_zscore"].to_numpy()
    assert np.isnan(z[149]).all() and np.isfinite(z[:149]).all()
    kept = secact.tl.activity(adata[:149].copy(), "CytoSig", n_permutations=20, copy=True)
    np.testing.assert_allclose(z[:149], kept.obsm["secact_zscore"].to_numpy(), rtol=0, atol=1e-10)
