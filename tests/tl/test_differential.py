"""Tests of secact.tl.differential against scipy.stats.mannwhitneyu."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse, stats

import secact
from secact.core import ranksum as rk
from secact.io._genechunks import GeneChunkReader

RTOL = 1e-9


def _make(seed=0, n=260, g=23, kind="counts"):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rng.gamma(0.5, 1.0, size=g), size=(n, g)).astype(np.float64)
    counts[rng.random((n, g)) < 0.3] = 0  # heavy zeros
    counts[:, 0] = 0  # all zero gene
    counts[: n // 2, 1] = 0  # zero in half of the cells
    counts[:, 2] = 3  # constant non-zero gene
    labels = rng.choice(["a", "b", "c", "non-targeting", "d"], size=n, p=[0.2, 0.2, 0.2, 0.3, 0.1]).astype(
        object
    )
    labels[:5] = np.nan  # excluded cells
    labels[5] = "single"  # a group with one cell
    cat = pd.Categorical(labels, categories=["a", "b", "c", "d", "non-targeting", "single", "unused"])
    obs = pd.DataFrame({"grp": cat}, index=[f"c{i}" for i in range(n)])
    var = pd.DataFrame(index=[f"g{j}" for j in range(g)])
    x = counts if kind == "counts" else np.log1p(counts / counts.sum(1, keepdims=True).clip(1) * 1e4)
    return ad.AnnData(x.astype(np.float32), obs=obs, var=var)


def _scipy_table(adata, groupby, reference, x=None):
    x = adata.X if x is None else x
    x = x.toarray() if sparse.issparse(x) else np.asarray(x)
    x = x.astype(np.float64)  # scipy ranks in the input dtype: float32 would cost it precision
    lab = adata.obs[groupby].astype(object).to_numpy()
    ok = pd.notna(lab)
    rows = []
    groups = [c for c in adata.obs[groupby].cat.categories if c != reference]
    for gname in groups:
        ing = ok & (lab == gname)
        ref = ok & ~ing if reference == "rest" else ok & (lab == reference)
        if ing.sum() < 2 or ref.sum() < 2:
            continue
        for j, gene in enumerate(adata.var_names):
            r = stats.mannwhitneyu(x[ing, j], x[ref, j], method="asymptotic", use_continuity=True)
            rows.append((gname, gene, r.statistic, r.pvalue))
    return pd.DataFrame(rows, columns=["group", "gene", "statistic", "pvalue"])


def _check_against_scipy(res, expected):
    res = res.assign(group=res["group"].astype(str), gene=res["gene"].astype(str))
    m = expected.merge(res, on=["group", "gene"], suffixes=("_sp", ""))
    assert len(m) == len(expected) == len(res)
    np.testing.assert_allclose(m["statistic"], m["statistic_sp"], rtol=RTOL)
    np.testing.assert_allclose(m["pvalue"], m["pvalue_sp"], rtol=RTOL, atol=0)
    # signed z consistent with p and direction
    n_p = stats.norm.sf(np.abs(m["zscore"])) * 2
    np.testing.assert_allclose(np.minimum(n_p, 1), m["pvalue"], rtol=1e-7)


@pytest.fixture(scope="module")
def adata():
    return _make()


@pytest.mark.parametrize("reference", ["rest", "non-targeting"])
@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
def test_against_scipy(adata, reference, fmt):
    a = adata.copy()
    if fmt != "dense":
        a.X = getattr(sparse, f"{fmt}_matrix")(a.X)
    with pytest.warns(UserWarning, match="skipping"):
        secact.tl.differential(a, "grp", reference=reference, chunk_size=7)
    res = secact.get.differential(a, sort_by=None)
    _check_against_scipy(res, _scipy_table(adata, "grp", reference))
    assert list(res.columns) == [
        "group", "gene", "statistic", "zscore", "pvalue", "fdr", "log2fc",
        "pct_group", "pct_reference", "mean_group", "mean_reference",
    ]  # fmt: skip
    # all-zero gene: every value tied -> p = 1 like scipy, z = 0
    zero = res[res["gene"] == "g0"]
    assert (zero["pvalue"] == 1).all() and (zero["zscore"] == 0).all()
    assert set(res["group"].astype(str)) == {"a", "b", "c", "d", "non-targeting"} - {reference}
    assert a.uns["secact_de"]["params"]["skipped_groups"] == ["single", "unused"]


def test_log1p_negative_values_and_float64():
    a = _make(seed=3, kind="log1p")
    rng = np.random.default_rng(1)
    x = a.X.astype(np.float64) + rng.normal(0, 1e-3, size=a.shape) * (a.X > 0)  # float64, not float32-exact
    x[:, 5] -= 0.7  # negative values around the zero block
    a.X = x
    with pytest.warns(UserWarning, match="skipping"):
        secact.tl.differential(a, "grp", reference="non-targeting")
    _check_against_scipy(secact.get.differential(a, sort_by=None), _scipy_table(a, "grp", "non-targeting"))
    with pytest.warns(UserWarning, match="skipping"):
        secact.tl.differential(a, "grp")
    _check_against_scipy(secact.get.differential(a, sort_by=None), _scipy_table(a, "grp", "rest"))


@pytest.mark.parametrize("reference", ["rest", "R"])
def test_large_groups_radix_path(reference):
    # > 256 non-zero values per gene: float32 values go through the radix sort
    rng = np.random.default_rng(11)
    n, g = 3000, 6
    counts = rng.poisson(1.5, size=(n, g)).astype(np.float32)
    lib = rng.integers(1, 4, size=n).astype(np.float32)  # few library sizes: many ties
    x = np.log1p(counts / lib[:, None] * 10).astype(np.float32)
    x[:, 1] = -x[:, 1]  # negative values
    x[:, 2] = counts[:, 2] - 2  # integers of both signs
    lab = pd.Categorical(rng.choice(["R", "A", "B"], size=n))
    a = ad.AnnData(sparse.csc_matrix(x), obs=pd.DataFrame({"grp": lab}, index=[f"c{i}" for i in range(n)]))
    a.var_names = [f"g{j}" for j in range(g)]
    secact.tl.differential(a, "grp", reference=reference)
    _check_against_scipy(secact.get.differential(a, sort_by=None), _scipy_table(a, "grp", reference))


def test_options_tie_continuity(adata):
    a = adata.copy()
    with pytest.warns(UserWarning):
        secact.tl.differential(a, "grp", reference="non-targeting", tie_correct=False, continuity=False)
    res = secact.get.differential(a, group="a", sort_by=None)
    x = a.X
    lab = a.obs["grp"].astype(object).to_numpy()
    ing, ref = lab == "a", lab == "non-targeting"
    for j in (1, 3, 7):
        xs, ys = x[ing, j], x[ref, j]
        n1, n2 = len(xs), len(ys)
        u = stats.mannwhitneyu(xs, ys).statistic
        z = (u - n1 * n2 / 2) / np.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
        row = res.iloc[j]
        np.testing.assert_allclose(row["zscore"], z, rtol=RTOL)
        np.testing.assert_allclose(row["pvalue"], 2 * stats.norm.sf(abs(z)), rtol=1e-9)


def _write(adata, path, fmt):
    a = adata.copy()
    if fmt != "dense":
        a.X = getattr(sparse, f"{fmt}_matrix")(a.X)
    a.write_h5ad(path)
    return path


@pytest.mark.parametrize("fmt", ["csr", "csc", "dense"])
@pytest.mark.parametrize("reference", ["rest", "non-targeting"])
def test_backed_identical(adata, tmp_path, fmt, reference):
    path = _write(adata, tmp_path / f"x_{fmt}.h5ad", fmt)
    mem = adata.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        secact.tl.differential(mem, "grp", reference=reference)
        backed = ad.read_h5ad(path, backed="r")
        secact.tl.differential(backed, "grp", reference=reference, chunk_size=5)
        from_path = secact.tl.differential(str(path), "grp", reference=reference, chunk_size=9)
    exp = secact.get.differential(mem, sort_by=None)
    pd.testing.assert_frame_equal(secact.get.differential(backed, sort_by=None), exp)
    pd.testing.assert_frame_equal(secact.get.differential(from_path, sort_by=None), exp)  # a new AnnData
    assert backed.uns["secact_de"]["params"] == mem.uns["secact_de"]["params"]
    backed.file.close()


def test_backed_layer_raw(adata, tmp_path):
    a = adata.copy()
    a.layers["counts"] = sparse.csr_matrix(a.X)
    a.raw = a.copy()
    a.X = np.log1p(a.X)
    path = tmp_path / "lr.h5ad"
    a.write_h5ad(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        secact.tl.differential(a, "grp", layer="counts", key_added="L")
        secact.tl.differential(a, "grp", key_added="R")  # use_raw=None -> raw
        secact.tl.differential(a, "grp", use_raw=False, key_added="X")
        b = ad.read_h5ad(path, backed="r")
        secact.tl.differential(b, "grp", use_raw=True, key_added="R")
        p = secact.tl.differential(path, "grp", layer="counts")
    assert a.uns["R"]["params"]["use_raw"] and a.uns["R"]["params"]["data"] == "counts"
    assert a.uns["X"]["params"]["data"] == "log1p"
    pd.testing.assert_frame_equal(a.uns["L"]["results"], a.uns["R"]["results"])
    pd.testing.assert_frame_equal(b.uns["R"]["results"], a.uns["R"]["results"])
    pd.testing.assert_frame_equal(p.uns["secact_de"]["results"], a.uns["L"]["results"])
    # wilcoxon is invariant to the monotone log1p
    np.testing.assert_allclose(a.uns["X"]["results"]["pvalue"], a.uns["L"]["results"]["pvalue"], rtol=1e-12)
    b.file.close()
    with pytest.raises(ValueError, match="either"):
        secact.tl.differential(a, "grp", layer="counts", use_raw=True)
    with pytest.raises(KeyError, match="layer"):
        secact.tl.differential(a, "grp", layer="nope")


def test_integer_dtype_explicit_zeros_and_views(adata):
    a = adata.copy()
    x = sparse.csr_matrix(a.X.astype(np.int32))
    x.data[::4] = 0  # explicit zeros
    a.X = x
    ref = a.copy()
    ref.X = sparse.csr_matrix(x.toarray().astype(np.float64))
    ref.X.eliminate_zeros()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        secact.tl.differential(a, "grp")
        secact.tl.differential(ref, "grp")
    assert x.nnz > ref.X.nnz
    pd.testing.assert_frame_equal(a.uns["secact_de"]["results"], ref.uns["secact_de"]["results"])
    assert a.uns["secact_de"]["params"]["data"] == "counts"
    # views: compute on a subset view (in memory)
    v = a[a.obs["grp"].isin(["a", "b", "non-targeting"]).to_numpy(), 3:15]
    assert v.is_view
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ad.ImplicitModificationWarning)
        secact.tl.differential(v, "grp", reference="non-targeting", groups=["a", "b"])
    res = secact.get.differential(v, sort_by=None)
    assert res["gene"].astype(str).tolist()[:12] == list(v.var_names)
    _check_against_scipy(res, _scipy_table(v.copy(), "grp", "non-targeting").query("group in ['a', 'b']"))


def test_fold_change_definitions(adata):
    a = adata.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        secact.tl.differential(a, "grp", reference="non-targeting", pseudocount=0.5)
        cnt = secact.get.differential(a, group="b", sort_by=None).set_index("gene")
        secact.tl.differential(a, "grp", data="log1p")
        lg = secact.get.differential(a, group="b", sort_by=None).set_index("gene")
    x = a.X.astype(np.float64)
    lab = a.obs["grp"].astype(object).to_numpy()
    ing, ref = lab == "b", lab == "non-targeting"
    cpm_g = 1e6 * x[ing].sum(0) / x[ing].sum()
    cpm_r = 1e6 * x[ref].sum(0) / x[ref].sum()
    np.testing.assert_allclose(cnt["mean_group"], cpm_g, rtol=1e-10)
    np.testing.assert_allclose(cnt["mean_reference"], cpm_r, rtol=1e-10)
    np.testing.assert_allclose(cnt["log2fc"], np.log2((cpm_g + 0.5) / (cpm_r + 0.5)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cnt["pct_group"], (x[ing] != 0).mean(0))
    np.testing.assert_allclose(cnt["pct_reference"], (x[ref] != 0).mean(0))
    rest = pd.notna(lab) & ~ing
    mg, mr = np.expm1(x[ing]).mean(0), np.expm1(x[rest]).mean(0)
    np.testing.assert_allclose(lg["mean_group"], mg, rtol=1e-10)
    np.testing.assert_allclose(lg["mean_reference"], mr, rtol=1e-10)
    np.testing.assert_allclose(lg["log2fc"], np.log2((mg + 1) / (mr + 1)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lg["pct_reference"], (x[rest] != 0).mean(0))
    # one-sided zeros stay bounded
    assert np.isfinite(lg["log2fc"]).all() and np.abs(lg["log2fc"]).max() < 20
    # fdr: BH per group
    np.testing.assert_allclose(lg["fdr"], stats.false_discovery_control(lg["pvalue"]), rtol=1e-12)


def test_data_auto_by_integrality(adata):
    a = adata.copy()
    a.X = a.X * 1000.0  # large but integer: still counts (no max threshold)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        secact.tl.differential(a, "grp")
        assert a.uns["secact_de"]["params"]["data"] == "counts"
        a.X[7, 4] += 0.25
        secact.tl.differential(a, "grp")
        assert a.uns["secact_de"]["params"]["data"] == "log1p"
        secact.tl.differential(a, "grp", data="counts")
        assert a.uns["secact_de"]["params"]["data"] == "counts"


def test_nan_values(adata):
    a = adata.copy()
    a.X[10, 4] = np.nan
    lab = a.obs["grp"].iloc[10]
    with pytest.warns(UserWarning, match="NaN"):
        secact.tl.differential(a, "grp", reference="non-targeting")
    res = secact.get.differential(a, sort_by=None)
    g4 = res[res["gene"] == "g4"].set_index("group")
    assert np.isnan(g4.loc[lab, "pvalue"])
    others = g4.drop(index=lab)
    if lab != "non-targeting":
        assert others["pvalue"].notna().all()
    assert res[res["gene"] != "g4"]["pvalue"].notna().all()


def test_bad_input(adata):
    a = adata.copy()
    with pytest.raises(ValueError, match="reference"):
        secact.tl.differential(a, "grp", reference="missing")
    with pytest.raises(ValueError, match="at least 2"):
        secact.tl.differential(a, "grp", reference="single")
    with pytest.raises(ValueError, match="at least 2"):
        secact.tl.differential(a, "grp", reference="unused")
    with pytest.raises(KeyError, match="groupby"):
        secact.tl.differential(a, "nope")
    with pytest.raises(ValueError, match="data"):
        secact.tl.differential(a, "grp", data="logged")
    with pytest.raises(ValueError, match="group"):
        secact.tl.differential(a, "grp", groups=["a", "zzz"])
    with pytest.raises(ValueError, match="no group left"), pytest.warns(UserWarning):
        secact.tl.differential(a, "grp", groups=["single", "unused"])
    with pytest.raises(TypeError, match="AnnData"):
        secact.tl.differential(a.X, "grp")
    b = a.copy()
    b.X = b.X.astype(np.complex64)
    with pytest.raises(TypeError, match="dtype"):
        secact.tl.differential(b, "grp")
    assert "secact_de" not in a.uns  # nothing half-written
    out = secact.tl.differential(a, "grp", copy=True, groups="a")
    assert "secact_de" in out.uns and "secact_de" not in a.uns


def test_backed_view_error(adata, tmp_path):
    path = _write(adata, tmp_path / "v.h5ad", "csr")
    b = ad.read_h5ad(path, backed="r")
    with pytest.raises(ValueError, match="backed AnnData views"):
        secact.tl.differential(b[:50], "grp")
    b.file.close()


def test_get_and_de_matrix(adata, tmp_path):
    a = adata.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        secact.tl.differential(a, "grp", reference="non-targeting", key_added="de")
    m = secact.get.de_matrix(a, "de")
    assert m.shape == (a.n_vars, 4) and list(m.index) == list(a.var_names)
    assert list(m.columns) == ["a", "b", "c", "d"]
    res = secact.get.differential(a, "de", group="c", sort_by=None).set_index("gene")
    np.testing.assert_array_equal(m["c"].to_numpy(), res["log2fc"].to_numpy())
    z = secact.get.de_matrix(a, "de", value="zscore")
    assert np.isfinite(z.to_numpy()).all()
    with pytest.raises(ValueError, match="value"):
        secact.get.de_matrix(a, "de", value="nope")
    with pytest.raises(KeyError):
        secact.get.differential(a, "missing")
    # round trip through h5ad
    a.write_h5ad(tmp_path / "r.h5ad")
    r = ad.read_h5ad(tmp_path / "r.h5ad")
    pd.testing.assert_frame_equal(secact.get.de_matrix(r, "de"), m)


def test_kernels_direct_and_bh():
    rng = np.random.default_rng(5)
    x = np.round(rng.exponential(1, size=(50, 4)), 1) * (rng.random((50, 4)) < 0.5)
    codes = rng.integers(0, 3, 50).astype(np.int32)
    n_cat = np.bincount(codes, minlength=3).astype(np.int64)
    out = rk.ovr_dense(np.asfortranarray(x), codes, n_cat, 50)
    c = sparse.csc_matrix(x)
    out2 = rk.ovr_csc(c.data, c.indices.astype(np.int32), c.indptr.astype(np.int64), codes, n_cat, 50)
    for o1, o2 in zip(out, out2, strict=True):
        np.testing.assert_array_equal(o1, o2)
    p = rng.random((3, 40))
    p[0, 3] = np.nan
    q = rk.benjamini_hochberg(p)
    np.testing.assert_allclose(q[1], stats.false_discovery_control(p[1]), rtol=1e-12)
    assert np.isnan(q[0, 3])
    ok = ~np.isnan(p[0])
    np.testing.assert_allclose(q[0, ok], stats.false_discovery_control(p[0, ok]), rtol=1e-12)


def test_chunk_reader_sizes(adata):
    r = GeneChunkReader(sparse.csr_matrix(adata.X), max_chunk_bytes=2000)
    assert r.chunk_size >= 1 and len(r) * r.chunk_size >= adata.n_vars
    chunks = list(r)
    assert chunks[-1][1] == adata.n_vars
    full = sparse.hstack(
        [sparse.csc_matrix((c.data, c.indices, c.indptr), shape=(adata.n_obs, b - a)) for a, b, c in chunks]
    )
    np.testing.assert_array_equal(full.toarray(), adata.X)
