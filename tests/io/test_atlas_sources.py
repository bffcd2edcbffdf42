"""Atlas sources: ``.zarr`` stores, lazy AnnData and TileDB-SOMA experiments give the answers
of the same data in memory (and of its ``.h5ad`` file), cell and group level; bad inputs are
one-line errors and write nothing.

Every source is a real store on disk (``tmp_path``) read block by block.
"""

from __future__ import annotations

import os
import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import secact

pytestmark = pytest.mark.filterwarnings("ignore:1 cells have a library size of 0")

STATS = ("beta", "se", "zscore", "pvalue")
N_CELLS = 61  # not a multiple of the blocks below: a short last block
BATCH = 16  # not a multiple of the zarr chunks of rows (10): chunk-aligned reads are exercised


@pytest.fixture(scope="module")
def data():
    sig = secact.datasets.signature("CytoSig").iloc[:800, :10]
    rng = np.random.default_rng(7)
    genes = [*sig.index[:300], "FILLER1", "FILLER2"]
    x = rng.poisson(rng.gamma(0.6, 2.0, size=len(genes)), size=(N_CELLS, len(genes))).astype(np.float32)
    x[5] = 0  # a cell without counts in the middle
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(rng.choice(["B", "T", "NK"], size=N_CELLS)),
            "tissue": np.where(np.arange(N_CELLS) % 3 == 0, "lung", "blood"),
        },
        index=[f"c{i}" for i in range(N_CELLS)],
    )
    adata = ad.AnnData(sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=genes))
    adata.layers["csc"] = sp.csc_matrix(x)
    adata.layers["dense"] = x.copy()
    return sig, adata


def _write_zarr(adata: ad.AnnData, path, zarr_format: int) -> None:
    with ad.settings.override(zarr_write_format=zarr_format):
        adata.write_zarr(path, chunks=(10, adata.n_vars))  # X's chunks; layers take anndata's


def _soma(adata: ad.AnnData, path, layer: str = "raw"):
    """A SOMA experiment of ``adata`` (measurement "RNA") at ``path``, opened for reading."""
    pytest.importorskip("tiledbsoma")
    import tiledbsoma.io

    # X as the "raw" layer; the AnnData's layers ("csc", "dense") become sparse X layers too
    tiledbsoma.io.from_anndata(os.fspath(path), adata, measurement_name="RNA", X_layer_name=layer)
    return tiledbsoma.Experiment.open(os.fspath(path))


SOURCES = ("h5ad", "zarr2", "zarr3", "lazy_zarr", "lazy_h5ad", "soma")


@pytest.fixture(scope="module")
def stores(data, tmp_path_factory):
    """Each source of the same data, written once (module scope): path, AnnData or experiment."""
    _, adata = data
    folder = tmp_path_factory.mktemp("atlas")
    adata.write_h5ad(folder / "a.h5ad")
    _write_zarr(adata, folder / "a2.zarr", 2)
    _write_zarr(adata, folder / "a3.zarr", 3)
    found = {"h5ad": folder / "a.h5ad", "zarr2": folder / "a2.zarr", "zarr3": folder / "a3.zarr"}
    yield folder, found
    for value in found.values():
        close = getattr(value, "close", None)
        if close is not None:
            close()


def _source(kind: str, stores, data):
    folder, found = stores
    if kind in found:
        return found[kind]
    if kind.startswith("lazy"):
        pytest.importorskip("xarray")
        found[kind] = ad.experimental.read_lazy(found["zarr3" if kind == "lazy_zarr" else "h5ad"])
    elif kind == "soma":
        found[kind] = _soma(data[1], folder / "soma")
    return found[kind]


def _cells(out) -> dict[str, np.ndarray]:
    side = secact.get.activity(out)
    return {k: np.asarray(side.X if k == "zscore" else side.layers[k]) for k in STATS}


@pytest.fixture(scope="module")
def expected(data):
    """In-memory results (the reference) per method, cells and groups."""
    sig, adata = data
    found = {}
    for method in ("permutation", "analytic"):
        ref = adata.copy()
        kw = dict(method=method, n_permutations=30, progress=False)
        secact.tl.activity(ref, sig, **kw)
        secact.tl.activity(ref, sig, groupby="cell_type", **kw)
        cells = {k: np.asarray(ref.obsm[f"secact_{k}"]) for k in STATS}
        found[method] = cells, secact.get.activity(ref, level="groups")
    return found


def _check_cells(got: dict, expect: dict, method: str) -> float:
    for k in STATS:
        np.testing.assert_allclose(got[k], expect[k], rtol=0, atol=1e-10, err_msg=k)
    if method == "permutation":  # the same null: identical p-values
        np.testing.assert_array_equal(got["pvalue"], expect["pvalue"])
    return max(float(np.nanmax(np.abs(got[k] - expect[k]))) for k in STATS)


@pytest.mark.parametrize("method", ["permutation", "analytic"])
@pytest.mark.parametrize("layer", [None, "csc", "dense"])
@pytest.mark.parametrize("kind", SOURCES)
def test_cells_and_groups_equal_in_memory(data, stores, expected, kind, layer, method, tmp_path):
    sig, adata = data
    src = _source(kind, stores, data)
    kw = dict(method=method, n_permutations=30, progress=False, batch_size=BATCH, layer=layer)
    out = tmp_path / "cells.h5ad"
    secact.tl.activity(src, sig, out=out, **kw)
    expect_cells, expect_groups = expected[method]
    _check_cells(_cells(out), expect_cells, method)
    side = ad.read_h5ad(out)
    assert list(side.obs_names) == list(adata.obs_names)
    assert list(side.obs["cell_type"]) == list(adata.obs["cell_type"])

    groups = secact.tl.activity(src, sig, groupby="cell_type", **kw)
    if groups is None:  # stored in the (lazy) AnnData itself
        groups = secact.get.activity(src, level="groups")
    np.testing.assert_allclose(groups.X, expect_groups.X, rtol=0, atol=1e-10)
    assert list(groups.obs_names) == list(expect_groups.obs_names)
    np.testing.assert_array_equal(groups.obs["n_cells"], expect_groups.obs["n_cells"])
    if method == "permutation":
        np.testing.assert_array_equal(groups.layers["pvalue"], expect_groups.layers["pvalue"])


@pytest.mark.parametrize("kind", ["lazy_zarr", "lazy_h5ad"])
def test_lazy_anndata_cells_in_obsm(data, stores, expected, kind):
    """Without out=, lazy AnnData gets lazy (dask) results in obsm, like any dask input."""
    sig, _ = data
    pytest.importorskip("xarray")
    lazy = ad.experimental.read_lazy(stores[1]["zarr3" if kind == "lazy_zarr" else "h5ad"])
    secact.tl.activity(lazy, sig, method="analytic", progress=False, batch_size=BATCH)
    got = {k: np.asarray(lazy.obsm[f"secact_{k}"].compute()) for k in STATS}
    _check_cells(got, expected["analytic"][0], "analytic")


@pytest.fixture
def soma_experiment(data, tmp_path):
    exp = _soma(data[1], tmp_path / "soma")
    yield exp
    exp.close()


@pytest.mark.parametrize("method", ["permutation", "analytic"])
def test_soma_query_equals_the_subset_in_memory(data, soma_experiment, method, tmp_path):
    import tiledbsoma

    sig, adata = data
    query = soma_experiment.axis_query("RNA", obs_query=tiledbsoma.AxisQuery(value_filter="tissue == 'lung'"))
    kw = dict(method=method, n_permutations=30, progress=False)
    out = tmp_path / "lung.h5ad"
    secact.tl.activity(query, sig, out=out, batch_size=BATCH, **kw)
    groups = secact.tl.activity(query, sig, groupby="cell_type", **kw)

    sub = adata[adata.obs["tissue"] == "lung"].copy()
    assert 0 < sub.n_obs < adata.n_obs
    secact.tl.activity(sub, sig, **kw)
    secact.tl.activity(sub, sig, groupby="cell_type", **kw)
    expect = {k: np.asarray(sub.obsm[f"secact_{k}"]) for k in STATS}
    _check_cells(_cells(out), expect, method)
    assert list(ad.read_h5ad(out).obs_names) == list(sub.obs_names)
    expect_groups = secact.get.activity(sub, level="groups")
    np.testing.assert_allclose(groups.X, expect_groups.X, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(groups.obs["n_cells"], expect_groups.obs["n_cells"])


def test_soma_gene_symbols_from_var_column(data, tmp_path):
    """Census-like var: Ensembl-like ids as var_id, symbols in feature_name (gene_symbols=)."""
    pytest.importorskip("tiledbsoma")
    import tiledbsoma.io

    sig, adata = data
    one = ad.AnnData(adata.X.copy(), obs=adata.obs.copy())
    one.var_names = [f"ENSG{i:011d}" for i in range(adata.n_vars)]
    one.var["feature_name"] = list(adata.var_names)
    tiledbsoma.io.from_anndata(
        os.fspath(tmp_path / "census"), one, measurement_name="RNA", X_layer_name="raw"
    )
    with tiledbsoma.Experiment.open(os.fspath(tmp_path / "census")) as exp:
        groups = secact.tl.activity(
            exp, sig, groupby="cell_type", gene_symbols="feature_name", method="analytic", progress=False
        )
    ref = adata.copy()
    secact.tl.activity(ref, sig, groupby="cell_type", method="analytic", progress=False)
    np.testing.assert_allclose(groups.X, secact.get.activity(ref, level="groups").X, rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------------------------
# other tools and entry points on .zarr
# ----------------------------------------------------------------------------------------------
def test_differential_from_zarr(data, stores):
    _, adata = data
    ref = adata.copy()
    secact.tl.differential(ref, "cell_type", progress=False)
    expect = secact.get.differential(ref, sort_by=None)
    for kind in ("zarr2", "zarr3"):
        for layer in (None, "csc", "dense"):
            got = secact.tl.differential(stores[1][kind], "cell_type", layer=layer, progress=False)
            got = secact.get.differential(got, sort_by=None)
            pd.testing.assert_frame_equal(got.reset_index(drop=True), expect, check_exact=False, rtol=1e-12)


def test_get_activity_of_a_zarr_store(data, tmp_path):
    """get.activity reads results kept in a .zarr store (and z-scores element by element)."""
    from secact.get._activity import zscores

    sig, adata = data
    ref = adata.copy()
    secact.tl.activity(ref, sig, method="analytic", progress=False)
    ref.write_zarr(tmp_path / "res.zarr")
    got = secact.get.activity(tmp_path / "res.zarr")
    np.testing.assert_array_equal(got.X, secact.get.activity(ref).X)
    z = zscores(tmp_path / "res.zarr", "secact")
    np.testing.assert_array_equal(z.to_numpy(), np.asarray(ref.obsm["secact_zscore"]))


def test_spatial_tool_on_zarr(data, tmp_path):
    """A spatial tool on a .zarr store (coordinates and the activity run read from the store)
    gives the answer of the same .h5ad file."""
    sig, adata = data
    spots = adata.copy()
    spots.obsm["spatial"] = np.random.default_rng(0).uniform(0, 100, size=(spots.n_obs, 2))
    secact.tl.activity(spots, sig, method="analytic", progress=False)
    spots.write_h5ad(tmp_path / "s.h5ad")
    spots.write_zarr(tmp_path / "s.zarr")
    a = secact.tl.ccc_spatial(tmp_path / "s.h5ad", "cell_type", radius=30, n_background=50)
    b = secact.tl.ccc_spatial(tmp_path / "s.zarr", "cell_type", radius=30, n_background=50)
    for name in ("links", "spatial_correlation"):
        pd.testing.assert_frame_equal(b.uns["secact_ccc_spatial"][name], a.uns["secact_ccc_spatial"][name])
    assert a.uns["secact_ccc_spatial"]["params"]["n_neighbor_pairs"] > 0


def test_cli_activity_on_zarr(data, stores, tmp_path, capsys):
    from secact.cli import main

    sig, _ = data
    sig.to_csv(tmp_path / "sig.tsv", sep="\t")
    for kind in ("h5ad", "zarr3"):
        out = tmp_path / f"{kind}.h5ad"
        args = [
            "activity",
            os.fspath(stores[1][kind]),
            "-o",
            os.fspath(out),
            "-s",
            os.fspath(tmp_path / "sig.tsv"),
        ]
        assert main([*args, "--method", "analytic", "--quiet"]) == 0
    np.testing.assert_allclose(
        ad.read_h5ad(tmp_path / "zarr3.h5ad").X, ad.read_h5ad(tmp_path / "h5ad.h5ad").X, rtol=0, atol=1e-10
    )


# ----------------------------------------------------------------------------------------------
# bad input: one-line errors, nothing written
# ----------------------------------------------------------------------------------------------
def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value).strip("'\"")
    assert "\n" not in text
    return text


def test_zarr_store_that_is_not_anndata(data, tmp_path):
    zarr = pytest.importorskip("zarr")
    sig, _ = data
    root = zarr.open_group(tmp_path / "other.zarr", mode="w")
    root.create_array("values", shape=(4, 4), dtype="f8")
    out = tmp_path / "o.h5ad"
    with pytest.raises(ValueError, match="zarr store but not an AnnData") as err:
        secact.tl.activity(tmp_path / "other.zarr", sig, out=out, progress=False)
    assert "write_zarr" in _one_line(err)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="not a zarr store") as err:
        secact.tl.activity(tmp_path / "plain", sig, out=out, progress=False)
    _one_line(err)
    with pytest.raises(FileNotFoundError, match=r"no \.h5ad file or \.zarr store"):
        secact.tl.activity(tmp_path / "missing.zarr", sig, out=out, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.zarr", "plain"]


def test_cli_rejects_a_zarr_store_that_is_not_anndata(tmp_path, capsys):
    zarr = pytest.importorskip("zarr")
    from secact.cli import main

    zarr.open_group(tmp_path / "other.zarr", mode="w").create_array("v", shape=(2,), dtype="f8")
    assert main(["activity", os.fspath(tmp_path / "other.zarr"), "-o", os.fspath(tmp_path / "o.h5ad")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "not an AnnData" in lines[0]
    assert not (tmp_path / "o.h5ad").exists()


def test_soma_errors(data, soma_experiment, tmp_path):
    import tiledbsoma

    sig, _ = data
    out = tmp_path / "o.h5ad"
    with pytest.raises(KeyError, match=r"measurement 'ATAC' not found.*measurements there: \['RNA'\]") as err:
        secact.tl.activity(soma_experiment, sig, measurement="ATAC", out=out, progress=False)
    _one_line(err)
    with pytest.raises(
        KeyError, match=r"layer 'counts' not found.*layers there: \['csc', 'dense', 'raw'\]; pass layer="
    ) as err:
        secact.tl.activity(soma_experiment, sig, layer="counts", out=out, progress=False)
    _one_line(err)
    query = soma_experiment.axis_query(
        "RNA", obs_query=tiledbsoma.AxisQuery(value_filter="tissue == 'brain'")
    )
    with pytest.raises(ValueError, match=r"matches 0 cells.*value_filter") as err:
        secact.tl.activity(query, sig, out=out, progress=False)
    _one_line(err)
    with pytest.raises(ValueError, match="need a sidecar"):
        secact.tl.activity(soma_experiment, sig, progress=False)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["soma"]


# ----------------------------------------------------------------------------------------------
# how the sources read
# ----------------------------------------------------------------------------------------------
class _CountingArray:
    """A dense on-disk stand-in that records the row ranges read."""

    def __init__(self, x: np.ndarray, chunk_rows: int):
        self.x, self.shape, self.dtype = x, x.shape, x.dtype
        self.chunks = (chunk_rows, x.shape[1])
        self.reads: list[tuple[int, int]] = []

    def __getitem__(self, key):
        self.reads.append((key.start, key.stop))
        return self.x[key].copy()


@pytest.mark.parametrize(("batch", "chunk"), [(16, 10), (7, 10), (25, 10), (3, 4)])
def test_dense_reads_are_chunk_aligned(batch, chunk):
    """Each chunk of rows is read once, whatever the block size (zarr decompresses whole chunks)."""
    from secact.io._rows import _row_reader

    x = np.arange(61 * 3, dtype=np.float64).reshape(61, 3)
    mat = _CountingArray(x, chunk)
    read = _row_reader(mat, batch)
    got = []
    for a in range(0, 61, batch):
        block = read(a, min(a + batch, 61))
        got.append(block.copy())
        block[:] = -1  # the caller owns its block: rows kept for the next block are not touched
    np.testing.assert_array_equal(np.concatenate(got), x)
    edges = [e for r in mat.reads for e in r]
    assert all(e % chunk == 0 or e == 61 for e in edges), mat.reads
    covered = np.concatenate([np.arange(a, b) for a, b in mat.reads])
    assert np.array_equal(covered, np.arange(61)), mat.reads  # every row read once


def test_zarr_identity_changes_when_rewritten(data, tmp_path):
    """A resumed run checks its input: a .zarr store written again is another input."""
    from secact.io import resolve

    _, adata = data
    _write_zarr(adata, tmp_path / "a.zarr", 3)
    with resolve(tmp_path / "a.zarr") as inp:
        first = inp.identity()
    import shutil
    import time

    time.sleep(0.01)
    shutil.rmtree(tmp_path / "a.zarr")
    _write_zarr(adata, tmp_path / "a.zarr", 3)
    with resolve(tmp_path / "a.zarr") as inp:
        second = inp.identity()
    assert first["path"] == second["path"] and first["mtime_ns"] != second["mtime_ns"]


def test_import_secact_does_not_import_tiledbsoma():
    code = "import sys, secact, secact.tl, secact.io, secact.get; print('tiledbsoma' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"


def test_out_as_zarr_is_refused_before_computing(data, stores, tmp_path):
    sig, _ = data
    with pytest.raises(ValueError, match=r"written as an \.h5ad file.*res\.h5ad") as err:
        secact.tl.activity(stores[1]["zarr3"], sig, out=tmp_path / "res.zarr", progress=False)
    _one_line(err)
    assert list(tmp_path.iterdir()) == []


def test_soma_identity_and_resume_reuses_a_finished_run(data, soma_experiment, tmp_path, scanpy_log):
    """A SOMA input is identified by its experiment, measurement, layer and cells: resume=True
    on a finished sidecar of the same job reuses it; another layer is another job."""
    import scanpy as sc

    from secact.io import resolve

    sig, _ = data
    with resolve(soma_experiment) as inp:
        found = inp.identity()
    assert found["soma"] == {"uri": soma_experiment.uri, "measurement": "RNA", "layer": "raw"}
    assert found["shape"] == [N_CELLS, data[1].n_vars]
    out = tmp_path / "cells.h5ad"
    kw = dict(method="analytic", progress=False, out=out)
    secact.tl.activity(soma_experiment, sig, **kw)
    first = ad.read_h5ad(out).X
    scanpy_log.readouterr()
    sc.settings.verbosity = 2  # secact logs through scanpy's log once scanpy is imported (caplog misses it)
    secact.tl.activity(soma_experiment, sig, resume=True, **kw)
    assert "reused, nothing recomputed" in scanpy_log.readouterr().err
    np.testing.assert_array_equal(ad.read_h5ad(out).X, first)
    with pytest.raises(ValueError, match=r"differs in input\.soma\.layer: .raw. there, .csc. here"):
        secact.tl.activity(soma_experiment, sig, resume=True, layer="csc", **kw)


def test_lazy_anndata_view_equals_the_subset(data, stores):
    """A view of lazy AnnData (cells chosen lazily) gives the results of the subset in memory."""
    pytest.importorskip("xarray")
    sig, adata = data
    mask = np.arange(adata.n_obs) % 2 == 0
    view = ad.experimental.read_lazy(stores[1]["zarr2"])[mask]
    assert view.is_view
    kw = dict(method="permutation", n_permutations=30, progress=False)
    groups = secact.tl.activity(view, sig, groupby="cell_type", **kw)
    assert groups is None  # stored in the view's uns, like any AnnData
    sub = adata[mask].copy()
    secact.tl.activity(sub, sig, groupby="cell_type", **kw)
    got, expect = secact.get.activity(view, level="groups"), secact.get.activity(sub, level="groups")
    np.testing.assert_allclose(got.X, expect.X, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(got.layers["pvalue"], expect.layers["pvalue"])


def test_soma_var_query_equals_the_genes_in_memory(data, tmp_path):
    """A query choosing genes by a var value filter = those genes in memory (the gene set
    defines the centring and the permutation null, so this checks that only they are read)."""
    tiledbsoma = pytest.importorskip("tiledbsoma")
    sig, adata = data
    keep = np.arange(adata.n_vars) % 3 != 1
    one = adata.copy()
    one.var["keep"] = keep
    with _soma(one, tmp_path / "soma") as exp:
        query = exp.axis_query("RNA", var_query=tiledbsoma.AxisQuery(value_filter="keep == True"))
        out = tmp_path / "cells.h5ad"
        kw = dict(method="permutation", n_permutations=30, progress=False)
        secact.tl.activity(query, sig, out=out, batch_size=BATCH, **kw)
    sub = adata[:, keep].copy()
    secact.tl.activity(sub, sig, **kw)
    _check_cells(_cells(out), {k: np.asarray(sub.obsm[f"secact_{k}"]) for k in STATS}, "permutation")


def test_soma_source_blocks(tmp_path):
    """The SOMA source's blocks are the matrix's rows: an empty block, a short last block,
    genes selected in any order with repeats, a resumed start."""
    pytest.importorskip("tiledbsoma")
    from secact.io import block_source

    rng = np.random.default_rng(1)
    x = rng.poisson(0.5, size=(45, 12)).astype(np.float32)
    x[:20] = 0  # the first block (16 cells) stores nothing
    adata = ad.AnnData(sp.csr_matrix(x), obs=pd.DataFrame(index=[f"c{i}" for i in range(45)]))
    adata.var_names = [f"g{i}" for i in range(12)]
    with _soma(adata, tmp_path / "soma") as exp:
        src = block_source(exp)
        assert (src.n_obs, src.n_vars, src.is_sparse, src.backed) == (45, 12, True, True)
        assert list(src.obs_names) == list(adata.obs_names) and list(src.var_names) == list(adata.var_names)
        cols = np.array([11, 0, 3, 3, 7])
        for columns, want in ((None, x), (cols, x[:, cols])):
            blocks = list(src.row_blocks(16, columns))
            assert [(a, b) for a, b, _ in blocks] == [(0, 16), (16, 32), (32, 45)]
            for a, b, block in blocks:
                assert isinstance(block, sp.csr_matrix) and block.dtype == np.float64
                np.testing.assert_array_equal(block.toarray(), want[a:b])
        assert [a for a, _, _ in src.row_blocks(16, start=32)] == [32]
