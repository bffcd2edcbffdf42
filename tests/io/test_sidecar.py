"""secact.io.SidecarWriter: streamed, atomic .h5ad results."""

from __future__ import annotations

import os

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest

from secact.io import SidecarWriter

# ---------------------------------------------------------------------------------------
# sidecar writer
# ---------------------------------------------------------------------------------------

STATS = ("zscore", "beta", "se", "pvalue")


def _stats(start, stop, n_vars, seed=0):
    rng = np.random.default_rng(seed + start)
    return {k: rng.normal(size=(stop - start, n_vars)) for k in STATS}


UNS = {
    "secact": {
        "method": "ridge",
        "lambda": 5e5,
        "n_rand": 1000,
        "scale": True,
        "sig_genes": ["IL6", "TNF"],
        "layer": None,
        "nested": {"a": 1, "b": None},
    }
}


def test_sidecar_roundtrip(tmp_path):
    obs = pd.Index([f"cell{i}" for i in range(23)])
    var = pd.Index(["IL6", "TNF", "IFNG", "TGFB1"])
    path = tmp_path / "res.h5ad"
    expect = {k: np.empty((23, 4)) for k in STATS}
    with SidecarWriter(path, obs, var, uns=UNS) as w:
        for start in (10, 0, 20):  # any order
            stop = min(start + 10, 23)
            stats = _stats(start, stop, 4)
            for k in STATS:
                expect[k][start:stop] = stats[k]
            w.write(start, stop, stats)
        assert not path.exists()  # only the partial file so far
        assert w.tmp_path.exists() and w.tmp_path.name.startswith(".res.h5ad.partial-")
    assert not w.tmp_path.exists()

    for backed in (None, "r"):
        res = ad.read_h5ad(path, backed=backed)
        assert list(res.obs_names) == list(obs) and res.obs.shape[1] == 0
        assert list(res.var_names) == list(var)
        np.testing.assert_array_equal(np.asarray(res.X[:]), expect["zscore"])
        for k in ("beta", "se", "pvalue"):
            np.testing.assert_array_equal(np.asarray(res.layers[k]), expect[k])
        u = res.uns["secact"]
        assert u["method"] == "ridge" and u["lambda"] == 5e5 and u["n_rand"] == 1000
        assert u["scale"] is True or u["scale"] == np.True_
        assert list(u["sig_genes"]) == ["IL6", "TNF"]
        assert "layer" not in u and u["nested"] == {"a": 1}
        if backed:
            res.file.close()

    # the layout matches what anndata writes itself
    ref = tmp_path / "ref.h5ad"
    ad.AnnData(expect["zscore"], obs=pd.DataFrame(index=obs), var=pd.DataFrame(index=var)).write_h5ad(ref)
    with h5py.File(path, "r") as f, h5py.File(ref, "r") as g:
        assert dict(f.attrs) == dict(g.attrs)
        for key in ("X", "obs", "var", "obsm", "varm", "obsp", "varp", "layers", "uns"):
            assert f[key].attrs["encoding-type"] == g[key].attrs["encoding-type"], key
            assert f[key].attrs["encoding-version"] == g[key].attrs["encoding-version"], key
        assert f["X"].dtype == np.float64 and f["X"].chunks == g["X"].chunks  # contiguous, as anndata
        assert dict(f["layers/beta"].attrs) == dict(g["X"].attrs)


def test_sidecar_missing_rows_and_overlap(tmp_path):
    path = tmp_path / "res.h5ad"
    w = SidecarWriter(path, pd.Index(list("abcde")), pd.Index(["p"]))
    w.write(0, 2, _stats(0, 2, 1))
    with pytest.raises(ValueError, match="overlap"):
        w.write(1, 3, _stats(1, 3, 1))
    with pytest.raises(ValueError, match="keys"):
        w.write(2, 3, {"zscore": np.zeros((1, 1))})
    with pytest.raises(ValueError, match="shape"):
        w.write(2, 3, _stats(2, 4, 1))
    with pytest.raises(ValueError, match="3 of 5 rows were never written"):
        w.close()
    assert not path.exists() and not w.tmp_path.exists()
    assert os.listdir(tmp_path) == []


def test_sidecar_exception_and_existing_file(tmp_path):
    path = tmp_path / "res.h5ad"
    path.write_bytes(b"old results")
    obs, var = pd.Index(list("abc")), pd.Index(["p", "q"])
    with pytest.raises(RuntimeError, match="boom"), SidecarWriter(path, obs, var) as w:
        w.write(0, 3, _stats(0, 3, 2))
        raise RuntimeError("boom")
    assert path.read_bytes() == b"old results"  # untouched
    assert sorted(os.listdir(tmp_path)) == ["res.h5ad"]  # no temporary file left

    w = SidecarWriter(path, obs, var, uns={"x": 1})
    w.write(0, 3, _stats(0, 3, 2))
    assert path.read_bytes() == b"old results"  # not clobbered before close
    assert w.close() == path
    assert ad.read_h5ad(path).shape == (3, 2)
    assert sorted(os.listdir(tmp_path)) == ["res.h5ad"]


def test_sidecar_rejects_none_in_lists(tmp_path):
    with pytest.raises(ValueError, match="None"):
        SidecarWriter(tmp_path / "r.h5ad", pd.Index(["a"]), pd.Index(["p"]), uns={"genes": ["A", None]})
    assert os.listdir(tmp_path) == []


def _write_rows_in_child(target, start, values):
    """Run in another process: write rows through a pickled RowTarget."""
    return target.write(start, {"zscore": values, "beta": 2 * values})


def test_rows_written_by_other_processes(tmp_path):
    """Workers (here: a process pool) write their rows straight into the partial file."""
    import pickle
    from concurrent.futures import ProcessPoolExecutor

    values = np.arange(10 * 3, dtype=float).reshape(10, 3)
    out = tmp_path / "side.h5ad"
    with SidecarWriter(
        out, pd.Index([f"c{i}" for i in range(10)]), pd.Index(list("abc")), layers=["beta"]
    ) as w:
        target = pickle.loads(pickle.dumps(w.target))
        with ProcessPoolExecutor(2) as pool:
            done = list(pool.map(_write_rows_in_child, [target] * 2, [0, 4], [values[:4], values[4:]]))
        assert done == [True, True]
        w.write(0, 4, None)
        w.write(4, 10, None)
        with pytest.raises(ValueError, match="overlap"):
            w.write(3, 5, None)
    back = ad.read_h5ad(out)
    np.testing.assert_array_equal(back.X, values)
    np.testing.assert_array_equal(back.layers["beta"], 2 * values)


def test_row_target_refuses_another_file(tmp_path):
    from secact.io import WriteRows

    out = tmp_path / "side.h5ad"
    with SidecarWriter(out, pd.Index(["c0", "c1"]), pd.Index(["a"]), layers=[]) as w:
        target = w.target
        stats = {"zscore": np.ones((2, 1))}
        elsewhere = type(target)(str(tmp_path / "missing.h5ad"), target.identity, target.offsets, 8, "<f8")
        assert elsewhere.write(0, stats) is False
        other = tmp_path / "other.h5ad"
        other.write_bytes(b"\0" * 4096)
        impostor = type(target)(str(other), target.identity, target.offsets, 8, "<f8")
        assert impostor.write(0, stats) is False
        assert other.read_bytes() == b"\0" * 4096
        job = WriteRows(lambda block, start: {"zscore": block}, elsewhere)
        returned = job(np.full((2, 1), 3.0), 0)  # not reachable: the rows come back
        np.testing.assert_array_equal(returned["zscore"], 3.0)
        w.write(0, 2, returned)
        assert WriteRows(lambda block, start: {"zscore": block}, target)(np.ones((1, 1)), 1) is None
    np.testing.assert_array_equal(ad.read_h5ad(out).X, [[3.0], [1.0]])
