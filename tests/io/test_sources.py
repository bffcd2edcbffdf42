"""secact.io: block sources (memory, backed, path; dense, CSR, CSC) and the sidecar writer."""

from __future__ import annotations

import os

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import secact
import secact.io._csc_disk as csc_disk
from secact.io import BlockSource, block_source

N_OBS, N_VARS = 41, 13
COLS_SORTED = np.array([0, 3, 4, 12])
COLS_UNSORTED = np.array([12, 0, 5, 5, 2, 9])


def _counts(seed=0, n_obs=N_OBS, n_vars=N_VARS, dtype=np.float32):
    rng = np.random.default_rng(seed)
    dense = rng.poisson(0.7, size=(n_obs, n_vars)).astype(dtype)
    dense[:, 7] = 0  # an empty gene
    dense[5] = 0  # an empty cell
    return dense


def _with_explicit_zeros(dense: np.ndarray, fmt: str) -> sparse.spmatrix:
    """``dense`` as CSR / CSC that also stores some of its zeros explicitly."""
    r, c = np.nonzero(dense)
    zr, zc = np.nonzero(dense == 0)
    zr, zc = zr[::4], zc[::4]
    coo = sparse.coo_matrix(
        (np.concatenate([dense[r, c], np.zeros(zr.size, dense.dtype)]), (np.r_[r, zr], np.r_[c, zc])),
        shape=dense.shape,
    )
    return coo.tocsr() if fmt == "csr" else coo.tocsc()


def _as(fmt: str, dense: np.ndarray):
    if fmt == "dense":
        return dense
    m = _with_explicit_zeros(dense, fmt)
    assert (m.data == 0).any() and np.array_equal(m.toarray(), dense)
    return m


def _densify(m) -> np.ndarray:
    return m.toarray() if sparse.issparse(m) else np.asarray(m)


def _collect(src: BlockSource, batch_size: int, columns=None) -> np.ndarray:
    parts, expect = [], 0
    for start, stop, block in src.row_blocks(batch_size, columns):
        assert start == expect and stop == min(start + batch_size, src.n_obs)
        expect = stop
        if src.is_sparse:
            assert isinstance(block, sparse.csr_matrix)
            assert block.has_sorted_indices
            copy = block.copy()
            copy.sum_duplicates()
            assert copy.nnz == block.nnz  # no duplicates
        else:
            assert isinstance(block, np.ndarray) and block.flags.c_contiguous
        assert block.dtype == np.float64
        assert block.shape == (stop - start, src.n_vars if columns is None else len(columns))
        parts.append(_densify(block))
    assert expect == src.n_obs
    return np.vstack(parts)


def _make_adata(fmt: str, *, int_layer=True) -> tuple[ad.AnnData, np.ndarray]:
    dense = _counts()
    adata = ad.AnnData(
        _as(fmt, dense),
        obs=pd.DataFrame({"group": list("ab") * 20 + ["a"]}, index=[f"cell{i}" for i in range(N_OBS)]),
        var=pd.DataFrame(index=[f"g{j}" for j in range(N_VARS)]),
    )
    if int_layer:
        adata.layers["counts"] = _as(fmt, (dense * 2).astype(np.int32))
    raw_dense = _counts(seed=1, n_vars=N_VARS + 4)
    adata.raw = ad.AnnData(_as(fmt, raw_dense), var=pd.DataFrame(index=[f"r{j}" for j in range(N_VARS + 4)]))
    return adata, dense


@pytest.fixture(scope="module", params=["csr", "csc", "dense"])
def h5ad(request, tmp_path_factory):
    fmt = request.param
    adata, dense = _make_adata(fmt)
    path = tmp_path_factory.mktemp(f"h5ad_{fmt}") / "data.h5ad"
    adata.write_h5ad(path)
    with h5py.File(path, "r") as f:  # the layouts really are on disk
        if fmt == "dense":
            assert isinstance(f["X"], h5py.Dataset)
        else:
            assert f["X"].attrs["encoding-type"] == f"{fmt}_matrix"
    return fmt, path, adata, dense


def _sources(path, adata, **kw):
    backed = ad.read_h5ad(path, backed="r")
    return {
        "memory": block_source(adata, **kw),
        "path": block_source(path, **kw),
        "str-path": block_source(str(path), **kw),
        "backed": block_source(backed, **kw),
    }


@pytest.mark.parametrize("batch_size", [1, 7, N_OBS, 1000])
@pytest.mark.parametrize("columns", [None, COLS_SORTED, COLS_UNSORTED], ids=["all", "sorted", "unsorted"])
def test_row_blocks_x(h5ad, batch_size, columns):
    fmt, path, adata, dense = h5ad
    expect = dense if columns is None else dense[:, columns]
    for name, src in _sources(path, adata).items():
        assert src.shape == (N_OBS, N_VARS)
        assert src.is_sparse == (fmt != "dense")
        assert list(src.obs_names) == list(adata.obs_names), name
        assert list(src.var_names) == list(adata.var_names), name
        np.testing.assert_array_equal(_collect(src, batch_size, columns), expect, err_msg=name)


@pytest.mark.parametrize("columns", [None, COLS_UNSORTED])
def test_row_blocks_layer_int_and_raw(h5ad, columns):
    _fmt, path, adata, _ = h5ad
    layer = _densify(adata.layers["counts"])
    raw = _densify(adata.raw.X)
    for name, src in _sources(path, adata, layer="counts").items():
        assert src.dtype == np.int32, name
        exp = layer if columns is None else layer[:, columns]
        np.testing.assert_array_equal(_collect(src, 7, columns), exp, err_msg=name)
    rawcols = None if columns is None else np.array([16, 0, 13, 13, 2])
    for name, src in _sources(path, adata, use_raw=True).items():
        assert src.shape == raw.shape
        assert list(src.var_names) == list(adata.raw.var_names), name
        exp = raw if rawcols is None else raw[:, rawcols]
        np.testing.assert_array_equal(_collect(src, 7, rawcols), exp, err_msg=name)


@pytest.mark.parametrize(
    "obs_idx",
    [
        np.array([0, 3, 4, 5, 20, 21, 22, 39, 40]),
        np.array([40, 2, 17, 17, 3]),  # unsorted, repeated
        slice(3, 30),
        slice(1, None, 3),
    ],
    ids=["sorted", "unsorted", "slice", "strided"],
)
def test_views(h5ad, obs_idx):
    _fmt, path, adata, dense = h5ad
    backed = ad.read_h5ad(path, backed="r")
    var_idx = np.array([11, 0, 4, 5])
    for view in (backed[obs_idx], backed[obs_idx, var_idx], adata[obs_idx], adata[obs_idx, var_idx]):
        exp = dense[obs_idx] if view.n_vars == N_VARS else dense[obs_idx][:, var_idx]
        src = block_source(view)
        assert list(src.obs_names) == list(view.obs_names)
        assert list(src.var_names) == list(view.var_names)
        for bs in (1, 4, 100):
            np.testing.assert_array_equal(_collect(src, bs), exp)
        np.testing.assert_array_equal(_collect(src, 3, np.array([2, 0])), exp[:, [2, 0]])
        # raw of a view keeps all raw genes
        raw = _densify(adata.raw.X)[obs_idx]
        np.testing.assert_array_equal(_collect(block_source(view, use_raw=True), 4), raw)
    # a view of a view (anndata allows this in memory only)
    nested = adata[np.arange(1, 40)][::2]
    np.testing.assert_array_equal(_collect(block_source(nested), 6), dense[1:40][::2])


def test_path_source_closes_file(h5ad, tmp_path):
    _, orig, _, _ = h5ad
    path = tmp_path / "copy.h5ad"  # backed objects of other tests keep `orig` open
    path.write_bytes(orig.read_bytes())
    src = block_source(path)
    gen = src.row_blocks(10)
    next(gen)
    gen.close()  # abandoned pass
    for _ in src.row_blocks(10):
        pass
    with h5py.File(path, "r+"):  # would fail if a read-only handle were still open
        pass


@pytest.mark.parametrize(
    "make",
    [np.asarray, sparse.csr_matrix, sparse.csc_matrix, sparse.csr_array, sparse.csc_array, sparse.coo_matrix],
)
def test_bare_matrices(make):
    dense = _counts(dtype=np.int64)
    src = block_source(make(dense))
    assert list(src.obs_names[:3]) == ["0", "1", "2"] and len(src.var_names) == N_VARS
    np.testing.assert_array_equal(_collect(src, 6, COLS_UNSORTED), dense[:, COLS_UNSORTED])
    np.testing.assert_array_equal(_collect(src, 100), dense)


def test_blocks_are_owned_copies():
    dense = _counts(dtype=np.float64)
    keep = dense.copy()
    for mat in (dense, sparse.csr_matrix(dense), sparse.csc_matrix(dense)):
        for _, _, block in block_source(mat).row_blocks(10):
            if sparse.issparse(block):
                block.data[:] = -1
            else:
                block[:] = -1
        np.testing.assert_array_equal(_densify(mat), keep)


class _Computed(BlockSource):
    """A dask source's blocks, computed (what the runner's dask executor does)."""

    def __init__(self, src):
        self.__dict__.update(src.__dict__)
        self._src = src

    def row_blocks(self, batch_size, columns=None):
        for start, stop, block in self._src.row_blocks(batch_size, columns):
            assert hasattr(block, "compute")  # nothing is computed before the runner asks
            yield start, stop, block.compute()


@pytest.mark.parametrize("fmt", ["dense", "csr"])
def test_dask_array(fmt):
    da = pytest.importorskip("dask.array")
    dense = _counts()
    x = da.from_array(dense if fmt == "dense" else sparse.csr_matrix(dense), chunks=(10, 5), asarray=False)
    src = block_source(x)
    assert src.executor == "dask" and src.is_sparse == (fmt == "csr")
    computed = _Computed(src)
    np.testing.assert_array_equal(_collect(computed, 7, COLS_UNSORTED), dense[:, COLS_UNSORTED])
    np.testing.assert_array_equal(_collect(computed, 100), dense)


def test_csc_in_memory_unsorted_and_duplicate_entries():
    # non-canonical CSC: unsorted row indices and a duplicated entry (summed)
    data = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    indices = np.array([3, 0, 2, 2, 1])
    indptr = np.array([0, 2, 4, 5])
    m = sparse.csc_matrix((data, indices, indptr), shape=(4, 3))
    m.has_sorted_indices = False
    expect = np.zeros((4, 3))
    expect[3, 0], expect[0, 0], expect[2, 1], expect[1, 2] = 1, 2, 7, 5
    np.testing.assert_array_equal(_collect(block_source(m), 2), expect)
    np.testing.assert_array_equal(_collect(block_source(m), 3, np.array([2, 1])), expect[:, [2, 1]])


def _write_csc(path, n_obs, n_vars, density, seed=0):
    rng = np.random.default_rng(seed)
    m = sparse.random(n_obs, n_vars, density=density, format="csc", random_state=rng, dtype=np.float32)
    m.data = np.ceil(m.data * 5)
    ad.AnnData(m).write_h5ad(path)
    return m


@pytest.mark.parametrize("columns", [None, np.array([57, 3, 4, 5, 99, 0, 58, 3])])
def test_csc_on_disk_is_read_once_in_bounded_pieces(tmp_path, monkeypatch, columns):
    n_obs, n_vars = 400, 100
    m = _write_csc(tmp_path / "csc.h5ad", n_obs, n_vars, 0.1)
    col_nnz = np.diff(m.indptr)
    budget = int(col_nnz.max()) * 4
    monkeypatch.setattr(secact.settings, "csc_chunk_nnz", budget)
    monkeypatch.setattr(csc_disk, "_CSC_GAP_NNZ", 0)

    reads: list[tuple[str, int]] = []
    orig = h5py.Dataset.__getitem__

    def spy(self, key):
        out = orig(self, key)
        if self.name in ("/X/data", "/X/indices"):
            reads.append((self.name, np.size(out)))
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    dense = m.toarray()
    expect = dense if columns is None else dense[:, columns]
    wanted = np.unique(np.arange(n_vars) if columns is None else columns)
    counts = {}
    for bs in (1, 37, n_obs):
        reads.clear()
        src = block_source(tmp_path / "csc.h5ad", temp_dir=temp_dir)
        assert src.is_sparse and src.backed
        np.testing.assert_array_equal(_collect(src, bs, columns), expect)
        data_reads = [n for name, n in reads if name == "/X/data"]
        # every requested column is read exactly once, never the whole matrix at once,
        # and the number of reads does not grow with the number of cell blocks
        assert sum(data_reads) == col_nnz[wanted].sum()
        assert max(data_reads) <= budget < m.nnz
        counts[bs] = len(data_reads)
        assert os.listdir(temp_dir) == []  # the temporary transpose is deleted
    assert counts[1] == counts[37] == counts[n_obs]

    # an abandoned pass removes its temporary file too
    gen = block_source(tmp_path / "csc.h5ad", temp_dir=temp_dir).row_blocks(50)
    next(gen)
    assert len(os.listdir(temp_dir)) == 1
    gen.close()
    assert os.listdir(temp_dir) == []


def test_csc_on_disk_view_multi_chunk(tmp_path, monkeypatch):
    m = _write_csc(tmp_path / "csc.h5ad", 300, 60, 0.2, seed=3)
    monkeypatch.setattr(secact.settings, "csc_chunk_nnz", 50)  # many column chunks
    backed = ad.read_h5ad(tmp_path / "csc.h5ad", backed="r")
    idx = np.array([299, 5, 6, 7, 100, 100, 42, 0])
    src = block_source(backed[idx, ::-3])
    exp = m.toarray()[idx][:, ::-3]
    for bs in (1, 3, 100):
        np.testing.assert_array_equal(_collect(src, bs), exp)
        np.testing.assert_array_equal(_collect(src, bs, np.array([4, 1, 1])), exp[:, [4, 1, 1]])


def test_errors(tmp_path):
    adata, _ = _make_adata("csr")
    with pytest.raises(KeyError, match=r"layer 'nope' not found.*counts"):
        block_source(adata, layer="nope")
    adata.write_h5ad(tmp_path / "a.h5ad")
    with pytest.raises(KeyError, match=r"layer 'nope' not found.*counts"):
        block_source(tmp_path / "a.h5ad", layer="nope")
    noraw = ad.AnnData(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"adata\.raw is None"):
        block_source(noraw, use_raw=True)
    noraw.write_h5ad(tmp_path / "noraw.h5ad")
    with pytest.raises(ValueError, match="has no raw"):
        block_source(tmp_path / "noraw.h5ad", use_raw=True)
    with pytest.raises(ValueError, match="either"):
        block_source(adata, layer="counts", use_raw=True)
    with pytest.raises(TypeError, match="unsupported"):
        block_source([[1, 2], [3, 4]])
    with pytest.raises(TypeError, match="dtype"):
        block_source(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="bare matrix"):
        block_source(np.ones((2, 2)), layer="x")
    with pytest.raises(FileNotFoundError):
        block_source(tmp_path / "missing.h5ad")
    for empty in (np.ones((0, 3)), sparse.csr_matrix((4, 0)), ad.AnnData(np.ones((3, 2)))[[]]):
        with pytest.raises(ValueError, match="empty"):
            block_source(empty)
    src = block_source(np.ones((4, 3)))
    with pytest.raises(ValueError, match="batch_size"):
        next(src.row_blocks(0))
    with pytest.raises(IndexError):
        next(src.row_blocks(2, np.array([3])))
    with pytest.raises(TypeError):
        next(src.row_blocks(2, np.array([0.5])))
    blocks = [b for _, _, b in src.row_blocks(3, np.array([True, False, True]))]  # a boolean mask
    np.testing.assert_array_equal(np.vstack(blocks), np.ones((4, 2)))
