"""``resume=True`` on an output a finished run already wrote: the finished result is returned as
the run stored it (nothing is computed) when the job is the same, refused when it is another."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

import secact
from secact.cli import main
from secact.core import pipeline
from secact.io._output import recorded_job
from secact.io._sidecar import job_differences

KW = {"method": "permutation", "n_permutations": 20, "batch_size": 64, "progress": False}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    a = secact.datasets.simulate(n_cells=150, seed=5)
    path = tmp_path_factory.mktemp("in") / "data.h5ad"
    a.write_h5ad(path)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _no_pass(monkeypatch) -> list[str]:
    """Make the passes that compute results (normalisation, the engine over the cells) fail
    loudly. (Mapping symbols may read gene totals first, when symbols are duplicated: the job's
    gene overlap depends on it.)"""
    ran: list[str] = []

    def spy(name):
        def boom(*args, **kwargs):
            ran.append(name)
            raise AssertionError(f"{name} ran: the finished result was computed again")

        return boom

    for name in ("cell_means", "cell_activity"):
        monkeypatch.setattr(pipeline, name, spy(name))
    return ran


def _open(kind: str, data_file: Path):
    if kind == "path":
        return data_file
    if kind == "backed":
        return ad.read_h5ad(data_file, backed="r")
    return ad.read_h5ad(data_file)


@pytest.mark.parametrize("kind", ["memory", "backed", "path"])
def test_resume_on_a_finished_run_returns_it(data_file, tmp_path, monkeypatch, scanpy_log, kind):
    import scanpy as sc

    out = tmp_path / "res.h5ad"
    first_input = _open(kind, data_file)
    first = secact.tl.activity(first_input, "CytoSig", out=out, **KW)
    first = first_input if first is None else first
    before, entry = _digest(out), first.uns["secact"]["cells"]
    job = recorded_job(out)
    assert job is not None and job["params"]["n_permutations"] == 20 and job["key_added"] == "secact"

    ran = _no_pass(monkeypatch)
    again_input = _open(kind, data_file)  # a re-run notebook cell: a fresh object, nothing in uns
    scanpy_log.readouterr()
    sc.settings.verbosity = 2  # info: what was done (the log goes to scanpy's once it is imported)
    again = secact.tl.activity(again_input, "CytoSig", out=out, resume=True, **KW)
    log = scanpy_log.readouterr().err
    assert ran == []
    assert (again is None) == (kind != "path")  # returned as the finished run returned
    again = again_input if again is None else again
    np.testing.assert_equal(dict(again.uns["secact"]["cells"]), dict(entry))
    assert not any(k.startswith("secact_") for k in again.obsm)  # the values stay in the sidecar
    assert _digest(out) == before  # the file is not rewritten
    assert f"{os.fspath(out)} is the finished result of this run (resume=True): reused" in log
    # what the finished run gives, through the entry that points at the file
    np.testing.assert_array_equal(secact.get.activity(again).X, ad.read_h5ad(out).X)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res.h5ad"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"n_permutations": 21}, "params.n_permutations: 20 there, 21 here"),
        ({"method": "analytic"}, "params.method: 'permutation' there, 'analytic' here"),
        ({"key_added": "other"}, "key_added: 'secact' there, 'other' here"),
        ({"stats": ["zscore"]}, "params.stats"),
        ({"input": "other"}, "input."),
    ],
)
def test_resume_refuses_a_finished_run_of_another_job(data_file, tmp_path, monkeypatch, change, fragment):
    out = tmp_path / "res.h5ad"
    secact.tl.activity(data_file, "CytoSig", out=out, **KW)
    before = _digest(out)
    kw = {**KW, **change}
    src = data_file
    if kw.pop("input", None) == "other":  # the same cells in another file
        src = tmp_path / "copy.h5ad"
        ad.read_h5ad(data_file).write_h5ad(src)
    ran = _no_pass(monkeypatch)
    with pytest.raises(ValueError, match="holds the results of another run") as err:
        secact.tl.activity(src, "CytoSig", out=out, resume=True, **kw)
    assert fragment in str(err.value) and "pass overwrite=True" in str(err.value)
    assert ran == []  # refused before anything is computed
    assert _digest(out) == before


def test_resume_with_overwrite_replaces_a_finished_run_of_another_job(data_file, tmp_path):
    out = tmp_path / "res.h5ad"
    secact.tl.activity(data_file, "CytoSig", out=out, **KW)
    secact.tl.activity(
        data_file, "CytoSig", out=out, resume=True, overwrite=True, **{**KW, "n_permutations": 21}
    )
    assert recorded_job(out)["params"]["n_permutations"] == 21
    assert ad.read_h5ad(out).uns["secact"]["cells"]["params"]["n_permutations"] == 21


def test_resume_refuses_a_file_that_is_not_a_finished_result(data_file, tmp_path, monkeypatch):
    out = tmp_path / "res.h5ad"
    ad.read_h5ad(data_file).write_h5ad(out)  # an .h5ad, but no secact result
    before = _digest(out)
    ran = _no_pass(monkeypatch)
    with pytest.raises(FileExistsError, match=r"not a finished secact result.*overwrite=True"):
        secact.tl.activity(data_file, "CytoSig", out=out, resume=True, **KW)
    assert ran == [] and _digest(out) == before


def test_cli_resume_on_a_finished_run(data_file, tmp_path, capsys):
    out = tmp_path / "res.h5ad"
    args = ["activity", os.fspath(data_file), "-o", os.fspath(out), "-s", "CytoSig", "-q"]
    assert main([*args, "-n", "20"]) == 0
    before = _digest(out)
    capsys.readouterr()
    assert main([*args, "-n", "20", "--resume"]) == 0
    assert f"{out} holds 150 cells" in capsys.readouterr().out
    assert _digest(out) == before
    assert main([*args, "-n", "21", "--resume"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("secact: error: ")
    assert "params.n_permutations: 20 there, 21 here" in lines[0] and "--overwrite" in lines[0]
    assert _digest(out) == before


def test_job_differences_name_nested_keys():
    a = {"params": {"n": 1, "rng": "mt19937", "long": "x" * 50}, "key_added": "k", "input": {"size": 3}}
    b = {"params": {"n": 2, "rng": "mt19937", "long": "y" * 50}, "key_added": "k", "input": {"size": 4}}
    assert job_differences(a, b) == [
        "input.size: 3 there, 4 here",
        "params.long",
        "params.n: 1 there, 2 here",
    ]
    assert job_differences(a, a) == []
