"""Every public name of ``secact.tl``, ``secact.pl`` and ``secact.get`` follows scanpy's
conventions, and every tool's stored result is registered, readable through ``secact.get``
and written / read back by anndata unchanged.

The results are computed once, small: planted single-cell data (CytoSig, few permutations)
and the simulated spatial tissue (analytic activity).
"""

from __future__ import annotations

import inspect

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import secact
from secact import _results as res

TABLE_TOOLS = {name.rpartition(".")[2] for name in res.TABLE_TOOLS}  # bulk tables in, DataFrame out
TOOLS = {name: getattr(secact.tl, name) for name in secact.tl.__all__ if name not in TABLE_TOOLS}
PLOTS = {name: getattr(secact.pl, name) for name in secact.pl.__all__}
GETTERS = {name: getattr(secact.get, name) for name in secact.get.__all__}
DEPRECATED = {"activity_heatmap"}  # an alias forwarding **kwargs to pl.heatmap
# the simulated data hold a few thousand genes: CytoSig's overlap note is expected
pytestmark = pytest.mark.filterwarnings("ignore:only .* signature genes found:UserWarning")


def _positional(fn) -> list[str]:
    params = inspect.signature(fn).parameters.values()
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _kw_only(fn, name: str) -> bool:
    p = inspect.signature(fn).parameters.get(name)
    return p is not None and p.kind is inspect.Parameter.KEYWORD_ONLY


# ----------------------------------------------------------------------------------------------
# signatures
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(TOOLS))
def test_tools_follow_scanpy(name):
    fn = TOOLS[name]
    assert len(_positional(fn)) <= 3, _positional(fn)
    assert _kw_only(fn, "copy") and inspect.signature(fn).parameters["copy"].default is False
    assert _kw_only(fn, "key_added")
    # one return rule for every tool: the AnnData holding the results, or None
    assert inspect.signature(fn).return_annotation == "AnnData | None"
    returns = inspect.getdoc(fn).split("Returns\n-------\n")[1]
    assert returns.startswith("anndata.AnnData or None\n")
    assert "copy=True" in returns and ".h5ad" in returns and "secact._results" in returns


@pytest.mark.parametrize("name", sorted(TABLE_TOOLS))
def test_table_tools_return_a_dataframe_and_store_nothing(name):
    fn = getattr(secact.tl, name)
    assert name in secact.tl.__all__
    assert len(_positional(fn)) <= 3, _positional(fn)
    params = inspect.signature(fn).parameters
    assert "copy" not in params and "key_added" not in params
    assert inspect.signature(fn).return_annotation == "pd.DataFrame"
    assert inspect.getdoc(fn).split("Returns\n-------\n")[1].startswith("pandas.DataFrame\n")


@pytest.mark.parametrize("name", sorted(set(PLOTS) - DEPRECATED))
def test_plots_follow_scanpy(name):
    fn = PLOTS[name]
    assert len(_positional(fn)) <= 3, _positional(fn)
    for param in ("ax", "show", "return_fig", "save"):
        assert _kw_only(fn, param), f"{name}: {param} is not keyword-only"
    assert inspect.signature(fn).parameters["return_fig"].default is False
    assert inspect.signature(fn).parameters["ax"].default is None
    assert "Figure" in str(inspect.signature(fn).return_annotation)


def test_deprecated_plot_aliases_forward_everything():
    for name in DEPRECATED:
        params = inspect.signature(PLOTS[name]).parameters.values()
        assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


@pytest.mark.parametrize("name", list(GETTERS))
def test_getters_take_the_object_and_a_key(name):
    fn = GETTERS[name]
    params = inspect.signature(fn).parameters
    assert next(iter(params)) == "adata"
    assert "key" in params and isinstance(params["key"].default, str)  # the tool's key_added
    assert len(_positional(fn)) <= 3
    assert inspect.signature(fn).return_annotation in ("AnnData", "pd.DataFrame")


def test_every_tool_is_registered_with_its_reader():
    tools = {kind.tool for kind in res.RESULTS.values()}
    assert tools == {f"secact.tl.{name}" for name in TOOLS}
    for kind in res.RESULTS.values():
        module, _, name = kind.reader.rpartition(".")
        assert module == "secact.get" and name in GETTERS, kind.reader
        tool = TOOLS[kind.tool.rpartition(".")[2]]
        assert inspect.signature(tool).parameters["key_added"].default == kind.key_added


# ----------------------------------------------------------------------------------------------
# every stored result: found, read through get, written and read back equal
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def single_cell() -> ad.AnnData:
    a = secact.datasets.simulate(
        400, 1500, planted={"IFNG_stimulated": "IFNG"}, senders={"IFNG_source": "IFNG"}, seed=3
    )
    kw = {"n_permutations": 50, "progress": False}
    secact.tl.activity(a, "CytoSig", groupby="group", **kw)
    secact.tl.activity(a, "CytoSig", method="analytic", progress=False)  # cells, under the same key
    secact.tl.differential(a, "group", reference="control", key_added="secact_de")
    secact.tl.rank_activities(a, "group")
    secact.tl.ccc(a, "group", signature="CytoSig", min_cells=10, padj_cutoff=0.05, **kw)
    return a


@pytest.fixture(scope="module")
def tissue() -> ad.AnnData:
    t = secact.datasets.simulate_spatial(1600, seed=0)
    secact.tl.activity(t, "CytoSig", method="analytic", stats=["zscore"], progress=False)
    secact.tl.ccc_spatial(t, "cell_type", radius=15, n_background=100, ratio_cutoff=0.1)
    secact.tl.signaling_patterns(t, 3, radius=30, sigma=15)
    secact.tl.signaling_velocity(t, "IFNG", radius=30, sigma=15)
    return t


READERS = {
    "activity": lambda a, k: secact.get.activity_df(a, k, level="groups"),
    "differential": lambda a, k: secact.get.differential(a, k),
    "rank": lambda a, k: secact.get.rank_activities(a, k),
    "ccc": lambda a, k: secact.get.ccc(a, k),
    "ccc_spatial": lambda a, k: secact.get.ccc(a, k),
    "patterns": lambda a, k: pd.concat(
        [secact.get.patterns(a, k), secact.get.patterns(a, k, table="loadings")], axis=1
    ),
    "velocity": lambda a, k: secact.get.velocity(a, k),
}


def _both(single_cell, tissue) -> dict[str, tuple[ad.AnnData, str]]:
    found = {}
    for adata in (single_cell, tissue):
        for key, kind in res.result_keys(adata).items():
            found.setdefault(kind, (adata, key))
    return found


def test_every_result_kind_is_found_by_its_layout(single_cell, tissue):
    found = _both(single_cell, tissue)
    assert set(found) == set(res.RESULTS)
    for kind, (_, key) in found.items():
        assert key == res.RESULTS[kind].key_added


@pytest.mark.parametrize("kind", list(READERS))
def test_every_result_is_read_through_get_and_survives_h5ad(single_cell, tissue, kind, tmp_path):
    adata, key = _both(single_cell, tissue)[kind]
    table = READERS[kind](adata, key)
    assert isinstance(table, pd.DataFrame) and len(table) > 0
    path = tmp_path / f"{kind}.h5ad"
    adata.write_h5ad(path)
    back = ad.read_h5ad(path)
    assert res.result_keys(back)[key] == kind
    pd.testing.assert_frame_equal(READERS[kind](back, key), table, check_dtype=False, check_categorical=False)
    spec = res.RESULTS[kind]
    for entry in spec.uns:
        assert entry in back.uns[key]
    if spec.obsm is not None:
        np.testing.assert_array_equal(np.asarray(back.obsm[key]), np.asarray(adata.obsm[key]))


def test_activity_cells_survive_h5ad(single_cell, tmp_path):
    single_cell.write_h5ad(tmp_path / "cells.h5ad")
    back = ad.read_h5ad(tmp_path / "cells.h5ad")
    a, b = secact.get.activity(single_cell, level="cells"), secact.get.activity(back, level="cells")
    np.testing.assert_array_equal(a.X, b.X)
    assert a.var_names.equals(b.var_names) and a.obs_names.equals(b.obs_names)


# ----------------------------------------------------------------------------------------------
# one return rule: in place -> None, copy -> AnnData, path -> new AnnData of its observations
# ----------------------------------------------------------------------------------------------
CALLS = {
    "differential": lambda x, **kw: secact.tl.differential(x, "group", reference="control", **kw),
    "ccc": lambda x, **kw: secact.tl.ccc(
        x,
        "group",
        signature="CytoSig",
        min_cells=10,
        padj_cutoff=0.05,
        n_permutations=50,
        progress=False,
        **kw,
    ),
    "activity_groups": lambda x, **kw: secact.tl.activity(
        x, "CytoSig", groupby="group", n_permutations=20, progress=False, **kw
    ),
    "rank_activities": lambda x, **kw: secact.tl.rank_activities(x, "group", **kw),
}
SPATIAL_CALLS = {
    "ccc_spatial": lambda x, **kw: secact.tl.ccc_spatial(x, "cell_type", radius=15, n_background=50, **kw),
    "signaling_patterns": lambda x, **kw: secact.tl.signaling_patterns(x, 2, radius=30, sigma=15, **kw),
    "signaling_velocity": lambda x, **kw: secact.tl.signaling_velocity(x, "IFNG", radius=30, sigma=15, **kw),
}


@pytest.mark.parametrize("name", [*CALLS, *SPATIAL_CALLS])
def test_one_return_rule(single_cell, tissue, name, tmp_path):
    call = CALLS.get(name) or SPATIAL_CALLS[name]
    data = single_cell if name in CALLS else tissue
    key = "rule"
    fresh = data.copy()
    assert call(fresh, key_added=key) is None
    assert key in fresh.uns
    copied = call(data, key_added=key, copy=True)
    assert isinstance(copied, ad.AnnData) and key in copied.uns and key not in data.uns
    path = tmp_path / "input.h5ad"
    data.write_h5ad(path)
    if name == "rank_activities":  # reads cell-level activity from the file, as get.activity does
        returned = call(str(path), key_added=key)
    else:
        returned = call(path, key_added=key)
    assert isinstance(returned, ad.AnnData)
    if name == "activity_groups":  # the groups x proteins AnnData of get.activity
        assert returned.n_obs == data.obs["group"].nunique()
    else:
        assert returned.obs_names.equals(data.obs_names) and returned.n_vars == 0
        assert res.result_keys(returned)[key] == res.kind_of(fresh.uns[key])
    assert key not in ad.read_h5ad(path, backed="r").uns  # the file is never modified
    with pytest.raises(ValueError, match="copy=True needs an AnnData"):
        call(path, key_added=key, copy=True)


def test_missing_results_name_the_keys_that_hold_results(single_cell):
    bare = single_cell.copy()
    bare.uns = {"secact_de": bare.uns["secact_de"]}
    for fn in (lambda: secact.get.activity(bare), lambda: secact.pl.heatmap(bare, show=False)):
        with pytest.raises(
            KeyError, match=r"no activity results under key 'secact'.*'secact_de' \(differential\)"
        ):
            fn()
    nothing = ad.AnnData(np.zeros((2, 2)))
    with pytest.raises(KeyError, match=r"no key of adata\.uns holds secact results"):
        secact.get.activity(nothing)


@pytest.mark.parametrize("name", [*CALLS, *SPATIAL_CALLS])
def test_backed_objects_follow_the_rule(single_cell, tissue, name, tmp_path):
    """A backed AnnData cannot be copied, and a view of one cannot hold results (the same
    errors for every tool, before anything is computed)."""
    call = CALLS.get(name) or SPATIAL_CALLS[name]
    data = single_cell if name in CALLS else tissue
    data.write_h5ad(tmp_path / "backed.h5ad")
    backed = ad.read_h5ad(tmp_path / "backed.h5ad", backed="r")
    try:
        with pytest.raises(ValueError, match=r"copy=True cannot hold the results of a backed AnnData"):
            call(backed, key_added="rule", copy=True)
        view = backed[: backed.n_obs // 2]
        # tl.differential refuses backed views as input already (they would be read into memory)
        match = (
            r"backed AnnData views are not supported"
            if name == "differential"
            else r"view of a backed AnnData"
        )
        with pytest.raises(ValueError, match=match):
            call(view, key_added="rule")
        assert "rule" not in backed.uns
    finally:
        backed.file.close()
