"""``secact.tl.ccc`` / ``secact.get.ccc``: cell-cell communication against independent re-derivations.

The references below recompute every step from the counts with numpy, scipy and
:func:`secact.infer` only (no code of ``secact.core.ccc``): R's ``wilcox.test`` is
``scipy.stats.mannwhitneyu`` (exact below 50 values per side without ties, else the normal
approximation with tie and continuity corrections), BH is ``scipy.stats.false_discovery_control``
and Fisher's method ``scipy.stats.combine_pvalues``.
"""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats

import secact
from secact.datasets import simulate

from ..conftest import as_array_type

PLANTED = {
    "IFNG_stimulated": "IFNG",
    "TGFB1_stimulated": "TGFB1",
    "IL4_stimulated": "IL4",
    "WNT3A_stimulated": "WNT3A",  # a responder without a sender
}
SENDERS = {
    "IFNG_source": "IFNG",
    "TGFB1_source": "TGFB1",
    "IL4_source": "IL4",
    "CXCL12_source": "CXCL12",  # a sender without a planted responder
}
LOOSE = {
    "logfc_cutoff": 0.0,
    "mean_cutoff": 0.0,
    "fraction_cutoff": 0.0,
    "zscore_cutoff": 1.0,
    "padj_cutoff": 0.2,
}
DEFAULT = {
    "logfc_cutoff": 0.2,
    "mean_cutoff": 2.0,
    "fraction_cutoff": 0.1,
    "zscore_cutoff": 2.0,
    "padj_cutoff": 0.01,
}


def planted_links(adata) -> set[tuple[str, str, str]]:
    sim = adata.uns["simulate"]
    return {
        (s, gene, r)
        for s, gene in sim["senders"].items()
        for r, protein in sim["planted"].items()
        if protein == gene and r != s
    }


# ----------------------------------------------------------------------------------------------
# the independent reference
# ----------------------------------------------------------------------------------------------
def _wilcox(x: np.ndarray, y: np.ndarray) -> tuple[float, bool]:
    """R's wilcox.test(x, y)$p.value; also whether the exact branch was taken."""
    exact = x.size < 50 and y.size < 50 and np.unique(np.concatenate([x, y])).size == x.size + y.size
    method = "exact" if exact else "asymptotic"
    return float(stats.mannwhitneyu(x, y, method=method, use_continuity=True).pvalue), exact


def r_symbols(adata):
    """R's ``transferSymbol`` then ``rm_duplicates`` (largest total kept, first on ties, order kept)."""
    symbols = secact.pp.transfer_symbols(adata.var_names)
    frame = pd.DataFrame(
        {"symbol": symbols, "total": np.asarray(adata.X.sum(axis=0)).ravel(), "pos": np.arange(adata.n_vars)}
    )
    keep = np.sort(
        frame.sort_values(["total", "pos"], ascending=[False, True]).drop_duplicates("symbol")["pos"]
    )
    out = adata[:, keep].copy()
    out.var_names = pd.Index(symbols[keep].astype(str))
    return out


def reference(adata, groupby, signature, cutoffs, *, condition=None, case=None, control=None, min_cells=30):
    adata = r_symbols(adata)
    x = sp.csr_matrix(adata.X).astype(np.float64)
    types = adata.obs[groupby].astype(str).to_numpy()
    if condition is None:
        masks = {t: (types == t, types != t) for t in pd.unique(types)}
    else:
        cond = adata.obs[condition].astype(str).to_numpy()
        masks = {
            t: ((types == t) & (cond == case), (types == t) & (cond == control))
            for t in pd.unique(types[cond == case])
            if ((types == t) & (cond == control)).any()
        }
    masks = {t: m for t, m in masks.items() if m[0].sum() >= min_cells}
    sig = secact.datasets.signature(signature)
    genes = [g for g in adata.var_names if g in set(sig.columns)]
    lib = np.asarray(x.sum(axis=1)).ravel()
    logx = np.log2(x[:, adata.var_names.get_indexer(genes)].toarray() / lib[:, None] * 1e5 + 1)

    rows, n_exact = [], 0
    for t, (a, b) in masks.items():
        part = []
        for j, g in enumerate(genes):
            xa, xb = logx[a, j], logx[b, j]
            mean_all = np.concatenate([xa, xb]).mean()
            if mean_all == 0:
                continue
            p, exact = _wilcox(xa, xb)
            n_exact += exact
            part.append(
                {
                    "cell_type": t,
                    "gene": g,
                    "logfc": xa.mean() - xb.mean(),
                    "mean_all": mean_all,
                    "mean_case": xa.mean(),
                    "mean_control": xb.mean(),
                    "fraction_case": (xa > 0).mean(),
                    "fraction_control": (xb > 0).mean(),
                    "pvalue": p,
                }
            )
        part = pd.DataFrame(part)
        part["padj"] = stats.false_discovery_control(part["pvalue"].to_numpy())
        rows.append(part)
    expression = pd.concat(rows, ignore_index=True)

    def cpm(v):
        return np.log2(v * 1e6 / v.sum() + 1)

    profile = pd.DataFrame(
        {
            t: cpm(np.asarray(x[a].sum(axis=0)).ravel()) - cpm(np.asarray(x[b].sum(axis=0)).ravel())
            for t, (a, b) in masks.items()
        },
        index=adata.var_names,
    )
    act = secact.infer(profile, signature, differential=True)
    zscore, pvalue = act.zscore.T, act.pvalue.T
    padj = pvalue.apply(
        lambda r: pd.Series(stats.false_discovery_control(r.to_numpy()), index=r.index), axis=1
    )

    e = expression
    up = e[
        (e.logfc > cutoffs["logfc_cutoff"])
        & (e.mean_all > cutoffs["mean_cutoff"])
        & (e.fraction_case > cutoffs["fraction_cutoff"])
        & (e.padj < cutoffs["padj_cutoff"])
    ]
    act_long = pd.DataFrame(
        {
            "receiver": np.repeat(zscore.index, zscore.shape[1]),
            "gene": np.tile(zscore.columns, zscore.shape[0]),
            "receiver_zscore": zscore.to_numpy().ravel(),
            "receiver_pvalue": pvalue.to_numpy().ravel(),
            "receiver_padj": padj.to_numpy().ravel(),
        }
    )
    act_up = act_long[
        (act_long.receiver_zscore > cutoffs["zscore_cutoff"])
        & (act_long.receiver_padj < cutoffs["padj_cutoff"])
    ]
    links = up.rename(columns={"cell_type": "sender"}).merge(act_up, on="gene")
    links = links[links.sender != links.receiver].copy()
    links["sender_pvalue"] = links["pvalue"].where(links["pvalue"] > 0, np.finfo(float).tiny)
    links["strength"] = links["logfc"] * links["receiver_zscore"]
    links["combined"] = [
        stats.combine_pvalues([a, b], method="fisher").pvalue
        for a, b in zip(links.sender_pvalue, links.receiver_pvalue, strict=True)
    ]
    links["combined_padj"] = stats.false_discovery_control(links["combined"].to_numpy()) if len(links) else []
    links = links[links.combined_padj < cutoffs["padj_cutoff"]]
    return (
        {"expression": expression, "zscore": zscore, "pvalue": pvalue, "padj": padj, "act": act},
        links,
        n_exact,
    )


# ----------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim():
    return simulate(2700, planted=PLANTED, senders=SENDERS, seed=11)


@pytest.fixture(scope="module")
def result(sim):
    adata = sim.copy()
    secact.tl.ccc(adata, "group", signature="CytoSig")
    return adata


@pytest.fixture(scope="module")
def conditions():
    """Two cell types (A, B), each in a case and a control condition; A's case cells secrete
    IFNG, B's case cells answer it. Fewer than 50 cells per side, deep libraries: exact tests."""
    a = simulate(135, planted={"B_case": "IFNG"}, senders={"A_case": "IFNG"}, seed=5, mean_library_size=20000)
    group = a.obs["group"].astype(str).to_numpy()
    ctrl = np.flatnonzero(group == "control")
    half = np.zeros(group.size, dtype=bool)
    half[ctrl[: ctrl.size // 2]] = True
    a.obs["cell_type"] = np.where((group == "A_case") | half, "A", "B")
    a.obs["condition"] = np.where(group == "control", "ctrl", "stim")
    return a


# ----------------------------------------------------------------------------------------------
# (a) expression, (b) activity, (c) links against the reference
# ----------------------------------------------------------------------------------------------
def _check_expression(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    key = ["cell_type", "gene"]
    g = got.assign(cell_type=got.cell_type.astype(str)).sort_values(key).reset_index(drop=True)
    r = ref.sort_values(key).reset_index(drop=True)
    assert g[key].equals(r[key])
    for col in ("logfc", "mean_all", "mean_case", "mean_control", "fraction_case", "fraction_control"):
        np.testing.assert_allclose(g[col], r[col], rtol=1e-10, atol=1e-10, err_msg=col)
    for col in ("pvalue", "padj"):
        np.testing.assert_allclose(g[col], r[col], rtol=1e-10, atol=0, err_msg=col)
    # within each type, sorted by adjusted p (R's order)
    for _, part in got.groupby("cell_type", observed=True):
        assert part["padj"].is_monotonic_increasing


def _check_links(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    key = ["sender", "secreted_protein", "receiver"]
    g = got.astype({k: str for k in key}).sort_values(key).reset_index(drop=True)
    r = ref.rename(columns={"gene": "secreted_protein"}).sort_values(key).reset_index(drop=True)
    assert g[key].equals(r[key])
    pairs = {
        "sender_logfc": "logfc",
        "sender_pvalue": "sender_pvalue",
        "sender_padj": "padj",
        "receiver_zscore": "receiver_zscore",
        "receiver_pvalue": "receiver_pvalue",
        "receiver_padj": "receiver_padj",
        "strength": "strength",
        "pvalue": "combined",
        "padj": "combined_padj",
    }
    for mine, theirs in pairs.items():
        np.testing.assert_allclose(g[mine], r[theirs], rtol=1e-12, atol=0, err_msg=mine)
    assert got["padj"].is_monotonic_increasing


def test_expression_matches_scipy(sim, result):
    ref, _, _ = reference(sim, "group", "CytoSig", DEFAULT)
    _check_expression(result.uns["secact_ccc"]["expression"], ref["expression"])


def test_activity_matches_infer_on_own_pseudobulk(sim, result):
    ref, _, _ = reference(sim, "group", "CytoSig", DEFAULT)
    act = result.uns["secact_ccc"]["activity"]
    assert set(act) == {"beta", "se", "zscore", "pvalue", "padj"}
    for k in ("beta", "se", "zscore", "pvalue"):
        theirs = getattr(ref["act"], k).T
        mine = act[k].loc[theirs.index, theirs.columns]
        np.testing.assert_allclose(mine.to_numpy(), theirs.to_numpy(), rtol=1e-10, atol=1e-10, err_msg=k)
    mine = act["padj"].loc[ref["padj"].index, ref["padj"].columns]
    np.testing.assert_allclose(mine.to_numpy(), ref["padj"].to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("cutoffs", [DEFAULT, LOOSE], ids=["default", "loose"])
def test_links_match_reference(sim, result, cutoffs):
    if cutoffs is DEFAULT:
        got = result.uns["secact_ccc"]["links"]
    else:
        got = secact.tl.ccc(sim, "group", signature="CytoSig", copy=True, **cutoffs).uns["secact_ccc"][
            "links"
        ]
    _, ref, _ = reference(sim, "group", "CytoSig", cutoffs)
    assert len(ref) > 0
    _check_links(got, ref)
    if cutoffs is LOOSE:
        assert len(got) > len(result.uns["secact_ccc"]["links"])  # the loose cut-offs do matter


def test_planted_links_are_recovered(sim, result):
    links = result.uns["secact_ccc"]["links"]
    keys = ["sender", "secreted_protein", "receiver"]
    found = set(links[keys].astype(str).itertuples(index=False, name=None))
    truth = planted_links(sim)
    assert truth == {
        ("IFNG_source", "IFNG", "IFNG_stimulated"),
        ("TGFB1_source", "TGFB1", "TGFB1_stimulated"),
        ("IL4_source", "IL4", "IL4_stimulated"),
    }
    hits = found & truth
    recall, precision = len(hits) / len(truth), len(hits) / max(len(found), 1)
    top = set(links.nlargest(len(truth), "strength")[keys].astype(str).itertuples(index=False, name=None))
    print(
        f"\nplanted links: {len(truth)}, found: {len(found)}, precision {precision:.2f}, recall {recall:.2f}, "
        f"precision of the {len(truth)} strongest: {len(top & truth) / len(truth):.2f}; "
        f"other links: {sorted(found - truth)}"
    )
    assert recall == 1.0
    # every sender is a planted sender (the senders' genes are the only over-expressed ones) ...
    assert {s for s, _, _ in found} <= set(SENDERS)
    # ... and links beyond the planted ones come from signature cross-talk: weaker than every
    # planted link (the planted protein dominates its receiver)
    assert top == truth
    # the decoy sender is found as a sender; its protein has no planted responder
    e = result.uns["secact_ccc"]["expression"]
    decoy = e[(e.cell_type == "CXCL12_source") & (e.gene == "CXCL12")].iloc[0]
    assert decoy.logfc > 1 and decoy.padj < 1e-10


def test_condition_mode_matches_reference_with_exact_tests(conditions):
    out = secact.tl.ccc(
        conditions,
        "cell_type",
        condition="condition",
        case="stim",
        control="ctrl",
        signature="CytoSig",
        copy=True,
    )
    r = out.uns["secact_ccc"]
    ref, links, n_exact = reference(
        conditions, "cell_type", "CytoSig", DEFAULT, condition="condition", case="stim", control="ctrl"
    )
    assert n_exact > 0  # R's exact branch was exercised
    _check_expression(r["expression"], ref["expression"])
    for k in ("zscore", "pvalue"):
        theirs = getattr(ref["act"], k).T
        np.testing.assert_allclose(
            r["activity"][k].loc[theirs.index, theirs.columns], theirs, rtol=1e-10, atol=1e-10
        )
    _check_links(r["links"], links)
    stim = conditions.obs["condition"] == "stim"
    assert list(r["cell_types"].index) == list(pd.unique(conditions.obs.loc[stim, "cell_type"]))  # R's order
    assert list(r["expression"]["cell_type"].cat.categories) == list(r["cell_types"].index)
    assert r["cell_types"].loc["A", "n_control"] + r["cell_types"].loc["B", "n_control"] == 45
    found = set(r["links"][["sender", "secreted_protein", "receiver"]].astype(str).itertuples(index=False))
    assert ("A", "IFNG", "B") in found


def test_secact_signature(sim, secact_signature):
    small = sim[sim.obs["group"].isin(["control", "IFNG_stimulated", "IFNG_source"])].copy()
    out = secact.tl.ccc(small, "group", signature="SecAct", copy=True).uns["secact_ccc"]
    ref, links, _ = reference(small, "group", "SecAct", DEFAULT)
    _check_expression(out["expression"], ref["expression"])
    theirs = ref["act"].zscore.T
    np.testing.assert_allclose(
        out["activity"]["zscore"].loc[theirs.index, theirs.columns], theirs, rtol=1e-10, atol=1e-10
    )
    _check_links(out["links"], links)
    assert ("IFNG_source", "IFNG", "IFNG_stimulated") in set(
        out["links"][["sender", "secreted_protein", "receiver"]].astype(str).itertuples(index=False)
    )


# ----------------------------------------------------------------------------------------------
# inputs: every array type, blocks and chunks, paths
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    return simulate(480, 1500, planted={"IFNG_stimulated": "IFNG"}, senders={"IFNG_source": "IFNG"}, seed=2)


@pytest.fixture(scope="module")
def small_result(small):
    return secact.tl.ccc(small, "group", signature="CytoSig", copy=True, **LOOSE).uns["secact_ccc"]


def _same_results(a: dict, b: dict) -> None:
    for name in ("expression", "links"):
        x, y = a[name], b[name]
        assert list(x.columns) == list(y.columns)
        assert len(x) == len(y) and len(x) > 0
        for col in x.columns:
            if x[col].dtype.kind == "f":
                np.testing.assert_allclose(x[col], y[col], rtol=1e-10, atol=1e-12, err_msg=f"{name}.{col}")
            else:
                assert (x[col].astype(str).to_numpy() == y[col].astype(str).to_numpy()).all(), f"{name}.{col}"
    for k in ("zscore", "pvalue", "padj"):
        np.testing.assert_allclose(a["activity"][k], b["activity"][k], rtol=1e-10, atol=1e-12)


def test_every_array_type_gives_the_same_results(small, small_result, array_type, tmp_path):
    data = as_array_type(small, array_type, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no densification or other warnings
        if array_type == "path":  # a new AnnData of the file's cells holds the results
            got = secact.tl.ccc(data, "group", signature="CytoSig", **LOOSE).uns["secact_ccc"]
        else:
            secact.tl.ccc(data, "group", signature="CytoSig", **LOOSE)
            got = data.uns["secact_ccc"]
    _same_results(got, small_result)
    if array_type.startswith("backed"):
        assert data.isbacked  # still backed: nothing was loaded into X


def test_batch_and_chunk_sizes_do_not_change_results(small, small_result):
    got = secact.tl.ccc(small, "group", signature="CytoSig", copy=True, batch_size=37, chunk_size=1, **LOOSE)
    _same_results(got.uns["secact_ccc"], small_result)


def test_view_and_layer(small, small_result):
    with_layer = small.copy()
    with_layer.layers["counts"] = with_layer.X.copy()
    with_layer.X = sp.csr_matrix(with_layer.X.shape)  # X empty: the layer must be used
    got = secact.tl.ccc(with_layer, "group", signature="CytoSig", layer="counts", copy=True, **LOOSE)
    _same_results(got.uns["secact_ccc"], small_result)
    view = small[:, small.var_names[::-1]]  # a view with reordered genes: same statistics
    assert view.is_view
    reordered = secact.tl.ccc(view, "group", signature="CytoSig", copy=True, **LOOSE).uns["secact_ccc"]
    x = reordered["expression"].sort_values(["cell_type", "gene"]).reset_index(drop=True)
    y = small_result["expression"].sort_values(["cell_type", "gene"]).reset_index(drop=True)
    np.testing.assert_allclose(x["pvalue"], y["pvalue"], rtol=1e-10)


# ----------------------------------------------------------------------------------------------
# storage and the accessor
# ----------------------------------------------------------------------------------------------
def test_results_are_writable_and_readable(result, tmp_path):
    path = tmp_path / "ccc.h5ad"
    result.write_h5ad(path)
    back = ad.read_h5ad(path)
    a, b = secact.get.ccc(result), secact.get.ccc(back)
    assert len(a) == len(b) > 0
    for col in a.columns:
        if a[col].dtype.kind == "f":
            np.testing.assert_array_equal(a[col].to_numpy(), b[col].to_numpy())
        else:
            assert (a[col].astype(str).to_numpy() == b[col].astype(str).to_numpy()).all()
    stored = back.uns["secact_ccc"]
    assert set(stored) == {"links", "expression", "activity", "cell_types", "params"}
    assert stored["params"]["signature"] == "CytoSig"
    assert stored["params"]["n_permutations"] == 1000


def test_empty_links_are_writable(small, tmp_path):
    out = secact.tl.ccc(small, "group", signature="CytoSig", copy=True, zscore_cutoff=1e6)
    assert len(out.uns["secact_ccc"]["links"]) == 0
    out.write_h5ad(tmp_path / "empty.h5ad")
    back = ad.read_h5ad(tmp_path / "empty.h5ad")
    assert len(secact.get.ccc(back)) == 0


def test_get_ccc_sorts_and_filters(result):
    table = secact.get.ccc(result)
    assert table["pvalue"].is_monotonic_increasing
    assert isinstance(table.index, pd.RangeIndex)
    one = secact.get.ccc(result, sender="IFNG_source")
    assert len(one) >= 1 and (one["sender"].astype(str) == "IFNG_source").all()
    none = secact.get.ccc(result, receiver=["no such type"])
    assert len(none) == 0
    prot = secact.get.ccc(result, secreted_protein=["IL4", "TGFB1"])
    assert set(prot["secreted_protein"].astype(str)) == {"IL4", "TGFB1"}
    # the uns entry itself works too
    assert secact.get.ccc(result.uns["secact_ccc"]).equals(table)


def test_get_ccc_errors(small):
    with pytest.raises(KeyError, match=r"secact.tl.ccc"):
        secact.get.ccc(small)
    with pytest.raises(TypeError, match="AnnData"):
        secact.get.ccc(42)
    other = small.copy()
    other.uns["secact_ccc"] = {"something": 1}
    with pytest.raises(ValueError, match=r"not a `secact\.tl\.ccc` result"):
        secact.get.ccc(other)


def test_get_ccc_step_tables(result):
    entry = result.uns["secact_ccc"]
    act = secact.get.ccc(result, table="activity")
    assert list(act.columns) == ["cell_type", "protein", "beta", "se", "zscore", "pvalue", "padj"]
    z = entry["activity"]["zscore"]
    assert len(act) == z.size
    wide = act.pivot(index="cell_type", columns="protein", values="zscore")
    np.testing.assert_array_equal(
        wide.loc[z.index.astype(str), z.columns.astype(str)].to_numpy(), z.to_numpy()
    )
    padj = act.set_index(["cell_type", "protein"])["padj"]
    assert padj[("IFNG_stimulated", "IFNG")] == entry["activity"]["padj"].loc["IFNG_stimulated", "IFNG"]
    expr = secact.get.ccc(result, table="expression")
    pd.testing.assert_frame_equal(expr, entry["expression"].reset_index(drop=True))
    types = secact.get.ccc(result, table="cell_types")
    assert types["cell_type"].tolist() == [str(c) for c in entry["cell_types"].index]
    assert types["analysed"].tolist() == entry["cell_types"]["analysed"].tolist()
    with pytest.raises(KeyError, match=r"secact\.tl\.ccc_spatial"):
        secact.get.ccc(result, table="spatial_correlation")
    with pytest.raises(ValueError, match="table must be one of"):
        secact.get.ccc(result, table="genes")
    with pytest.raises(ValueError, match="select links"):
        secact.get.ccc(result, table="expression", sender="IFNG_source")


def test_copy_leaves_input_alone(small):
    before = small.copy()
    out = secact.tl.ccc(small, "group", signature="CytoSig", copy=True)
    assert "secact_ccc" in out.uns and "secact_ccc" not in small.uns
    assert (small.X != before.X).nnz == 0


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------
def test_errors(small):
    with pytest.raises(KeyError, match="not a column of obs"):
        secact.tl.ccc(small, "nope", signature="CytoSig")
    with pytest.raises(ValueError, match=r"case=\.\.\. and control"):
        secact.tl.ccc(small, "group", condition="group", case="control", signature="CytoSig")
    with pytest.raises(ValueError, match="need condition"):
        secact.tl.ccc(small, "group", case="a", control="b", signature="CytoSig")
    with pytest.raises(ValueError, match="no cell has"):
        secact.tl.ccc(small, "group", condition="group", case="zzz", control="control", signature="CytoSig")
    with pytest.raises(ValueError, match="min_cells"):
        secact.tl.ccc(small, "group", signature="CytoSig", min_cells=10_000)
    with pytest.raises(ValueError, match="min_cells must be"):
        secact.tl.ccc(small, "group", signature="CytoSig", min_cells=0)
    with pytest.raises(ValueError, match="padj_cutoff must be a number"):
        secact.tl.ccc(small, "group", signature="CytoSig", padj_cutoff="0.01")
    with pytest.raises(ValueError, match="key_added"):
        secact.tl.ccc(small, "group", signature="CytoSig", key_added="a/b")
    logged = small.copy()
    logged.X = logged.X.astype(np.float64)
    logged.X.data = np.log1p(logged.X.data)
    with pytest.raises(ValueError, match="non-integer"):
        secact.tl.ccc(logged, "group", signature="CytoSig")
    renamed = small.copy()
    renamed.var_names = [f"G{i}" for i in range(renamed.n_vars)]
    with pytest.raises(ValueError, match="none of the signature's proteins"):
        secact.tl.ccc(renamed, "group", signature="CytoSig")
