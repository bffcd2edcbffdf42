"""tl.activity(flavor="spatial"): SecAct R's ST pipeline re-derived with numpy, on every input."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import secact

from ..conftest import as_array_type

B = 100
STATS = ("beta", "se", "zscore", "pvalue")
ZERO_SIG_GENE = 3  # a signature gene without counts in the sample
SF = 1e5


@pytest.fixture(scope="module")
def sig() -> pd.DataFrame:
    return secact.datasets.signature("CytoSig").iloc[:1500, :12]


def _counts(rng, genes, n_spots, scale=0.3) -> np.ndarray:
    mu = np.exp(rng.normal(0, 1.2, size=len(genes)))
    return rng.poisson(mu * rng.lognormal(0, 0.4, size=(n_spots, 1)) * scale).astype(np.float64)


@pytest.fixture(scope="module")
def visium(sig) -> ad.AnnData:
    """Spots x genes counts like ``sc.read_visium``: coordinates, an image, a gene without counts."""
    rng = np.random.default_rng(11)
    genes = list(sig.index[:600]) + [f"FILL{i}" for i in range(60)]
    n = 48
    x = _counts(rng, genes, n)
    x[n - 1, x.sum(axis=0) == 0] = 1.0  # only the genes below lack counts
    x[:, ZERO_SIG_GENE] = 0.0  # a signature gene never detected
    x[:, 605] = 0.0  # and a filler
    x[x.sum(axis=1) == 0, 0] = 1.0  # every spot has counts (R keeps empty spots in the means)
    obs = pd.DataFrame(
        {"in_tissue": np.ones(n, dtype=int), "array_row": np.arange(n) // 8, "array_col": np.arange(n) % 8},
        index=[f"AAAC{i:04d}-1" for i in range(n)],
    )
    a = ad.AnnData(sp.csr_matrix(x), obs=obs, var=pd.DataFrame({"gene_ids": genes}, index=genes))
    a.obsm["spatial"] = np.column_stack([obs["array_col"] * 100.0, obs["array_row"] * 100.0])
    a.uns["spatial"] = {
        "lib1": {
            "images": {"hires": rng.random((20, 20, 3)).astype(np.float32)},
            "scalefactors": {"tissue_hires_scalef": 0.02, "spot_diameter_fullres": 90.0},
            "metadata": {"software_version": "spaceranger-2.0"},
        }
    }
    return a


@pytest.fixture(scope="module")
def control(sig, visium) -> ad.AnnData:
    """A control sample with other genes: a subset of the sample's in another order, genes the
    sample lacks, and a gene with counts in the sample but none here."""
    rng = np.random.default_rng(5)
    genes = [*visium.var_names[20:640][::-1], "CTRLONLY1", "CTRLONLY2"]
    x = _counts(rng, genes, 31)
    x[:, genes.index(visium.var_names[50])] = 0.0
    x[x.sum(axis=1) == 0, 0] = 1.0
    return ad.AnnData(
        sp.csr_matrix(x), var=pd.DataFrame(index=genes), obs=pd.DataFrame(index=[f"k{i}" for i in range(31)])
    )


# ----------------------------------------------------------------------------------------------
# R's SecAct.activity.inference.ST, step by step, dense
# ----------------------------------------------------------------------------------------------
def r_normalise(a: ad.AnnData, scale_factor: float) -> pd.DataFrame:
    """Genes x spots: drop genes without counts, scale spots, log2(x + 1)."""
    expr = pd.DataFrame(a.X.toarray().T, index=a.var_names, columns=a.obs_names)
    expr = expr.loc[expr.sum(axis=1) > 0]
    return np.log2(expr / expr.sum(axis=0) * scale_factor + 1)


def r_st(a: ad.AnnData, ctrl: ad.AnnData | None = None, scale_factor: float = SF) -> pd.DataFrame:
    expr = r_normalise(a, scale_factor)
    if ctrl is None:
        return expr.sub(expr.mean(axis=1), axis=0)
    expr_c = r_normalise(ctrl, scale_factor)
    olp = [g for g in expr.index if g in expr_c.index]
    return expr.loc[olp].sub(expr_c.loc[olp].mean(axis=1), axis=0)


def reference_result(diff: pd.DataFrame, sig, method: str) -> dict[str, pd.DataFrame]:
    res = secact.infer(diff, sig, differential=True, method=method, n_permutations=B)
    return {k: getattr(res, k).T for k in STATS}  # spots x proteins


def assert_matches(ours: dict[str, pd.DataFrame], ref: dict[str, pd.DataFrame]) -> None:
    for k in STATS:
        assert list(ours[k].columns) == list(ref[k].columns)
        np.testing.assert_allclose(
            ours[k].to_numpy(), ref[k].loc[ours[k].index].to_numpy(), rtol=0, atol=1e-10, err_msg=k
        )


def obsm_results(a, key="secact") -> dict[str, pd.DataFrame]:
    return {k: a.obsm[f"{key}_{k}"] for k in STATS}


def sidecar_results(path) -> dict[str, pd.DataFrame]:
    s = ad.read_h5ad(path)
    return {k: s.to_df(layer=None if k == "zscore" else k) for k in STATS}


KW = {"map_symbols": False, "n_permutations": B, "progress": False, "batch_size": 13}


# ----------------------------------------------------------------------------------------------
# R parity
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["permutation", "analytic"])
def test_in_memory_matches_r_st(visium, sig, method):
    ref = reference_result(r_st(visium), sig, method)
    a = visium.copy()
    secact.tl.activity(a, sig, flavor="spatial", method=method, **KW)
    assert_matches(obsm_results(a), ref)
    params = a.uns["secact"]["cells"]["params"]
    assert params["flavor"] == "spatial"
    assert params["n_genes_zero"] == 2
    assert params["n_genes_overlap"] == 599  # 600 signature genes, one without counts


@pytest.mark.parametrize("method", ["permutation", "analytic"])
def test_control_matches_r_st(visium, control, sig, method):
    diff = r_st(visium, control)
    assert visium.var_names[50] not in diff.index and visium.var_names[0] not in diff.index
    ref = reference_result(diff, sig, method)
    a = visium.copy()
    secact.tl.activity(a, sig, flavor="spatial", control=control, method=method, **KW)
    assert_matches(obsm_results(a), ref)
    params = a.uns["secact"]["cells"]["params"]
    assert params["control"] == "AnnData"
    assert params["n_genes_overlap"] == sum(g in sig.index for g in diff.index)


def test_zero_gene_makes_single_cell_differ(visium, sig):
    """R's single-cell pipeline keeps a gene without counts (a row of zeros in the response);
    the ST pipeline drops it: another gene set, another scaling and permutation null."""
    a = visium.copy()
    secact.tl.activity(a, sig, flavor="spatial", key_added="st", **KW)
    secact.tl.activity(a, sig, flavor="single-cell", key_added="sc", **KW)
    n_st = a.uns["st"]["cells"]["params"]["n_genes_overlap"]
    n_sc = a.uns["sc"]["cells"]["params"]["n_genes_overlap"]
    assert n_sc == n_st + 1
    assert np.abs(a.obsm["st_zscore"].to_numpy() - a.obsm["sc_zscore"].to_numpy()).max() > 1e-3
    # without genes lacking counts both flavors are the same pipeline
    b = visium[:, np.asarray(visium.X.sum(axis=0)).ravel() > 0].copy()
    secact.tl.activity(b, sig, flavor="spatial", key_added="st", **KW)
    secact.tl.activity(b, sig, flavor="single-cell", key_added="sc", **KW)
    for k in STATS:
        np.testing.assert_allclose(b.obsm[f"st_{k}"], b.obsm[f"sc_{k}"], rtol=0, atol=1e-10)


def test_scale_factor_cosmx(visium, sig):
    ref = reference_result(r_st(visium, scale_factor=1e3), sig, "analytic")
    a = visium.copy()
    secact.tl.activity(a, sig, flavor="spatial", scale_factor=1e3, method="analytic", **KW)
    assert_matches(obsm_results(a), ref)


def test_backed_path_and_controls_of_every_kind(tmp_path, visium, control, sig):
    ref = reference_result(r_st(visium), sig, "permutation")
    ref_c = reference_result(r_st(visium, control), sig, "permutation")
    path = tmp_path / "visium.h5ad"
    visium.write_h5ad(path)
    cpath = tmp_path / "control.h5ad"
    control.write_h5ad(cpath)

    backed = ad.read_h5ad(path, backed="r")
    secact.tl.activity(backed, sig, flavor="spatial", **KW)
    assert_matches(obsm_results(backed), ref)
    cbacked = ad.read_h5ad(cpath, backed="r")
    secact.tl.activity(backed, sig, flavor="spatial", control=cbacked, key_added="c", **KW)
    assert_matches(obsm_results(backed, "c"), ref_c)
    backed.file.close()

    out = tmp_path / "side.h5ad"
    secact.tl.activity(path, sig, flavor="spatial", out=out, **KW)
    assert_matches(sidecar_results(out), ref)
    out_c = tmp_path / "side_c.h5ad"
    secact.tl.activity(path, sig, flavor="spatial", control=cpath, out=out_c, **KW)
    assert_matches(sidecar_results(out_c), ref_c)
    assert ad.read_h5ad(out_c).uns["secact"]["cells"]["params"]["control"] == str(cpath)
    # a control path with an in-memory sample
    a = visium.copy()
    secact.tl.activity(a, sig, flavor="spatial", control=str(cpath), **KW)
    assert_matches(obsm_results(a), ref_c)
    # the control file is an input: never an output
    with pytest.raises(ValueError, match="input"):
        secact.tl.activity(path, sig, flavor="spatial", control=cpath, out=cpath, overwrite=True, **KW)
    cbacked.file.close()


def test_every_array_type(tmp_path, visium, sig, array_type):
    ref = reference_result(r_st(visium), sig, "analytic")
    data = as_array_type(visium, array_type, tmp_path)
    kw = {**KW, "method": "analytic"}
    if array_type == "path":
        secact.tl.activity(data, sig, flavor="spatial", out=tmp_path / "side.h5ad", **kw)
        got = sidecar_results(tmp_path / "side.h5ad")
    else:
        secact.tl.activity(data, sig, flavor="spatial", **kw)
        got = {
            k: pd.DataFrame(
                np.asarray(data.obsm[f"secact_{k}"]), index=visium.obs_names, columns=ref[k].columns
            )
            for k in STATS
        }
        if array_type.startswith("backed"):
            data.file.close()
    assert_matches(got, ref)


def test_visium_results_round_trip(tmp_path, visium, sig):
    a = visium.copy()
    secact.tl.activity(a, sig, flavor="spatial", method="analytic", **KW)
    a.write_h5ad(tmp_path / "v.h5ad")
    back = ad.read_h5ad(tmp_path / "v.h5ad")
    np.testing.assert_array_equal(back.obsm["secact_zscore"], a.obsm["secact_zscore"])
    np.testing.assert_array_equal(back.obsm["spatial"], visium.obsm["spatial"])
    assert back.uns["secact"]["cells"]["params"]["flavor"] == "spatial"
    act = secact.get.activity(back)
    np.testing.assert_array_equal(act.obsm["spatial"], visium.obsm["spatial"])


def test_spots_without_counts(visium, control, sig):
    """Empty spots are left out of the means (sample and control) and get NaN, with a warning."""
    a = visium.copy()
    x = a.X.toarray()
    x[7] = 0.0
    a.X = sp.csr_matrix(x)
    c = control.copy()
    xc = c.X.toarray()
    xc[2] = 0.0
    c.X = sp.csr_matrix(xc)
    keep = np.ones(a.n_obs, bool)
    keep[7] = False
    ref = reference_result(r_st(a[keep], c[np.arange(c.n_obs) != 2]), sig, "analytic")
    with pytest.warns(RuntimeWarning) as rec:
        secact.tl.activity(a, sig, flavor="spatial", control=c, method="analytic", **KW)
    messages = [str(w.message) for w in rec]
    assert "1 cells have a library size of 0; their results are NaN." in messages
    assert "1 control spots have no counts; they are left out of the control's means." in messages
    got = obsm_results(a)
    assert all(np.isnan(got[k].iloc[7]).all() for k in STATS)
    assert_matches({k: v.loc[keep] for k, v in got.items()}, ref)


def test_reference_spots(visium, sig):
    mask = np.arange(visium.n_obs) % 3 == 0
    expr = r_normalise(visium, SF)
    ref = reference_result(expr.sub(expr.loc[:, mask].mean(axis=1), axis=0), sig, "analytic")
    a = visium.copy()
    secact.tl.activity(a, sig, flavor="spatial", reference=mask, method="analytic", **KW)
    assert_matches(obsm_results(a), ref)


def test_mouse_genes_dropped_before_mapping(visium, sig):
    """organism='mouse': genes without counts go before mouse -> human summation (R's order)."""
    from secact.datasets._genes import mouse_to_human

    table = mouse_to_human().drop_duplicates("mouse")
    human_to_mouse = table.groupby("human")["mouse"].apply(list)
    genes = [g for g in visium.var_names if g in human_to_mouse.index]
    mouse = [human_to_mouse[g][0] for g in genes]
    a = ad.AnnData(visium[:, genes].X.copy(), obs=visium.obs.copy(), var=pd.DataFrame(index=mouse))
    # a second mouse gene of a human symbol with counts, and one without
    two = next(g for g in genes if len(human_to_mouse[g]) > 1 and visium[:, g].X.sum() > 0)
    extra = ad.AnnData(visium[:, [two]].X.copy(), obs=a.obs, var=pd.DataFrame(index=[human_to_mouse[two][1]]))
    a = ad.concat([a, extra], axis=1, merge="first")
    # independent: sum mouse genes per human symbol (sorted), then R's ST steps
    x = pd.DataFrame(a.X.toarray(), index=a.obs_names, columns=a.var_names)
    x = x.loc[:, x.sum(axis=0) > 0]
    human = table.set_index("mouse").loc[x.columns, "human"].to_numpy()
    summed = x.T.groupby(human).sum().sort_index()
    h = ad.AnnData(sp.csr_matrix(summed.T.to_numpy()), obs=a.obs, var=pd.DataFrame(index=summed.index))
    ref = reference_result(r_st(h), sig, "analytic")
    secact.tl.activity(a, sig, flavor="spatial", organism="mouse", method="analytic", **KW)
    assert_matches(obsm_results(a), ref)
    assert a.uns["secact"]["cells"]["params"]["n_genes_overlap"] == (summed.index.isin(sig.index)).sum()


# ----------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------
def test_control_without_shared_genes(visium, sig):
    rng = np.random.default_rng(0)
    other = ad.AnnData(sp.csr_matrix(rng.poisson(1.0, size=(10, 30)).astype(float)))
    other.var_names = [f"OTHER{i}" for i in range(30)]
    with pytest.raises(ValueError, match="shares no gene"):
        secact.tl.activity(visium.copy(), sig, flavor="spatial", control=other, **KW)


def test_bad_flavor_and_combinations(visium, control, sig):
    a = visium.copy()
    with pytest.raises(ValueError, match="flavor must be 'single-cell' or 'spatial', got 'visium'"):
        secact.tl.activity(a, sig, flavor="visium", **KW)
    with pytest.raises(ValueError, match="no groupby"):
        secact.tl.activity(a, sig, flavor="spatial", groupby="in_tissue", **KW)
    with pytest.raises(ValueError, match="flavor='spatial'"):
        secact.tl.activity(a, sig, control=control, **KW)
    with pytest.raises(ValueError, match="raw counts"):
        secact.tl.activity(a, sig, flavor="spatial", input="log", **KW)
    with pytest.raises(ValueError, match="not both"):
        secact.tl.activity(a, sig, flavor="spatial", control=control, reference=np.ones(a.n_obs, bool), **KW)
    with pytest.raises(TypeError, match=r"expected an AnnData, a path to an \.h5ad file or \.zarr store"):
        secact.tl.activity(a, sig, flavor="spatial", control=control.X, **KW)
    assert "secact" not in a.uns and not a.obsm.keys() - {"spatial"}
