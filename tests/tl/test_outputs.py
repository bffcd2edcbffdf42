"""Output safety of ``secact.tl.activity(..., out=...)``: never destroy input, fail before
computing, no crash on a full disk, resumable after ``kill -9``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import secact
from secact.core import pipeline


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    a = secact.datasets.simulate(n_cells=300, seed=3)
    path = tmp_path_factory.mktemp("in") / "data.h5ad"
    a.write_h5ad(path)
    return path


def _run(inp, out, **kw):
    kw.setdefault("method", "analytic")
    return secact.tl.activity(inp, "CytoSig", out=out, progress=False, **kw)


def _no_pass(monkeypatch):
    """Make any pass over the data fail loudly: checks must come first."""

    def boom(*a, **k):
        raise AssertionError("a pass over the data ran before the output was checked")

    for name in ("cell_means", "column_totals", "group_profiles", "cell_activity"):
        monkeypatch.setattr(pipeline, name, boom)


# ----------------------------------------------------------------------------------------------
# never destroy input
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["same", "symlink", "relative", "backed", "groupby"])
def test_out_that_is_the_input_is_refused(data_file, tmp_path, monkeypatch, how):
    before = data_file.read_bytes()
    inp, out, kw = data_file, data_file, {}
    if how == "symlink":
        out = tmp_path / "link.h5ad"
        out.symlink_to(data_file)
    elif how == "relative":
        monkeypatch.chdir(data_file.parent)
        out = Path("..") / data_file.parent.name / data_file.name
    elif how == "backed":
        inp = ad.read_h5ad(data_file, backed="r")
    elif how == "groupby":
        kw = {"groupby": "group"}
    _no_pass(monkeypatch)
    with pytest.raises(ValueError, match="is the input file"):
        _run(inp, out, overwrite=True, **kw)
    assert data_file.read_bytes() == before


def test_existing_out_needs_overwrite(data_file, tmp_path):
    out = tmp_path / "res.h5ad"
    out.write_bytes(b"an earlier result")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        _run(data_file, out)
    assert out.read_bytes() == b"an earlier result"
    _run(data_file, out, overwrite=True)
    assert ad.read_h5ad(out).n_obs == 300


@pytest.mark.parametrize("problem", ["missing folder", "directory", "no space", "file size limit"])
def test_out_problems_are_found_before_computing(data_file, tmp_path, monkeypatch, problem):
    import resource
    import shutil

    out = tmp_path / "res.h5ad"
    if problem == "missing folder":
        out, err, match = tmp_path / "nowhere" / "res.h5ad", FileNotFoundError, "does not exist"
    elif problem == "directory":
        out.mkdir()
        err, match = IsADirectoryError, "is a directory"
    elif problem == "no space":
        usage = shutil.disk_usage(tmp_path)._replace(free=10_000)
        monkeypatch.setattr(secact.io._output.shutil, "disk_usage", lambda _: usage)
        err, match = OSError, r"need about .* MiB.* 0 MiB free"
    else:
        monkeypatch.setattr(secact.io._output.resource, "getrlimit", lambda _: (4096, resource.RLIM_INFINITY))
        err, match = OSError, "file size limit"
    _no_pass(monkeypatch)
    with pytest.raises(err, match=match) as info:
        _run(data_file, out)
    assert "partial" not in str(info.value)  # the user's path, not the hidden temp file
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_read_only_folder_is_found_before_computing(data_file, tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as a user who may write anywhere (root)")
        _no_pass(monkeypatch)
        with pytest.raises(PermissionError, match="not writable"):
            _run(data_file, folder / "res.h5ad")
    finally:
        folder.chmod(0o755)


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


def test_stale_partial_files_are_cleaned(data_file, tmp_path):
    out = tmp_path / "res.h5ad"
    dead = _dead_pid()
    stale = [tmp_path / f".res.h5ad.partial-{dead}.h5ad", tmp_path / f".res.h5ad.partial-{dead}.journal"]
    for f in stale:
        f.write_bytes(b"left by a killed run")
    alive = tmp_path / f".res.h5ad.partial-{os.getppid()}.h5ad"  # a running process's file stays
    alive.write_bytes(b"in use")
    other = tmp_path / f".other.h5ad.partial-{dead}.h5ad"  # another output's file stays
    other.write_bytes(b"not ours")
    _run(data_file, out)
    assert not any(f.exists() for f in stale)
    assert alive.exists() and other.exists()


# ----------------------------------------------------------------------------------------------
# a full disk, kill -9 and resume (in subprocesses)
# ----------------------------------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import json, os, resource, signal, sys
    import secact
    from secact.io import _sidecar

    args = json.loads(sys.argv[1])
    if args.get("kill_after") is not None:  # kill -9 this process while it writes block k
        original = _sidecar.SidecarWriter.write
        seen = []

        def write(self, start, stop, stats):
            seen.append(start)
            if len(seen) > args["kill_after"]:
                if args.get("kill_mid"):  # after the rows, before the journal
                    at = self.target.offsets[self.x] + start * self.target.row_bytes
                    _sidecar._pwrite_all(self._fd, stats[self.x].astype(self.dtype), at)
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, start, stop, stats)

        _sidecar.SidecarWriter.write = write
    if args.get("fsize") is not None:
        secact.io._output.MARGIN = 0.0  # let the run start: the data alone fit, the file does not
        resource.setrlimit(resource.RLIMIT_FSIZE, (args["fsize"], args["fsize"]))
    try:
        secact.tl.activity(args["input"], "CytoSig", out=args["out"], progress=False, **args["kw"])
    except OSError as err:
        print(f"OSError: {err}", file=sys.stderr)
        sys.exit(1)
    """
)


def _child(**args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, env=env, timeout=300
    )


def _assert_same_file(a: Path, b: Path) -> None:
    x, y = ad.read_h5ad(a), ad.read_h5ad(b)
    np.testing.assert_array_equal(x.X, y.X)
    assert set(x.layers) == set(y.layers)
    for k in x.layers:
        np.testing.assert_array_equal(x.layers[k], y.layers[k])
    pd.testing.assert_frame_equal(x.obs, y.obs)
    pd.testing.assert_frame_equal(x.var, y.var)
    assert json.dumps(x.uns, sort_keys=True, default=repr) == json.dumps(y.uns, sort_keys=True, default=repr)


def test_full_disk_is_an_oserror_not_a_crash(data_file, tmp_path):
    out = tmp_path / "res.h5ad"
    out.write_bytes(b"the previous result")
    kw = {"method": "analytic", "overwrite": True, "batch_size": 64}
    data_bytes = 300 * 43 * 4 * 8  # cells x CytoSig proteins x statistics x float64
    proc = _child(input=str(data_file), out=str(out), kw=kw, fsize=data_bytes)
    assert proc.returncode == 1, proc.stderr[-2000:]  # not -11 / 139 (SIGSEGV) nor -25 (SIGXFSZ)
    assert "OSError: could not create" in proc.stderr and "File too large" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert out.read_bytes() == b"the previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res.h5ad"]  # no partial left


@pytest.mark.parametrize(("kill_after", "kill_mid"), [(0, False), (2, True), (3, False)])
def test_kill_9_then_resume_gives_the_uninterrupted_file(data_file, tmp_path, kill_after, kill_mid):
    kw = {"method": "permutation", "n_permutations": 30, "batch_size": 64}
    out = tmp_path / "res.h5ad"
    _run(data_file, out, **kw)  # the uninterrupted run (its uns records the path: same path)
    full = out.rename(tmp_path / "full.h5ad")
    proc = _child(input=str(data_file), out=str(out), kw=kw, kill_after=kill_after, kill_mid=kill_mid)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not out.exists()
    partial = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".res.h5ad.partial-"))
    assert len(partial) == 2  # the data and their journal
    lines = next(tmp_path.glob(".res.h5ad.partial-*.journal")).read_text().splitlines()
    assert (int(lines[-1]) if len(lines) > 1 else 0) == 64 * kill_after  # complete blocks only
    # another job may not take the partial file over
    with pytest.raises(ValueError, match=r"different job.*params"):
        _run(data_file, out, resume=True, **{**kw, "n_permutations": 31})
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(".res.h5ad.partial-")]) == 2
    _run(data_file, out, resume=True, **kw)
    _assert_same_file(out, full)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.h5ad", "res.h5ad"]


def test_resume_without_a_partial_run_starts_afresh(data_file, tmp_path):
    out = tmp_path / "res.h5ad"
    _run(data_file, out, resume=True)
    first = out.rename(tmp_path / "first.h5ad")
    _run(data_file, out)
    _assert_same_file(out, first)


def test_resume_needs_a_sidecar(data_file):
    with pytest.raises(ValueError, match="needs out="):
        secact.tl.activity(data_file, "CytoSig", groupby="group", resume=True, progress=False)


def test_disk_full_while_writing_rows(data_file, tmp_path, monkeypatch):
    """ENOSPC in the middle of the rows (a disk filled by someone else): an OSError, the
    previous result intact, no partial file left."""
    import errno

    from secact.io import _sidecar

    out = tmp_path / "res.h5ad"
    out.write_bytes(b"the previous result")
    calls = []
    real = os.pwrite

    def pwrite(fd, data, offset):
        calls.append(offset)
        if len(calls) > 5:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data, offset)

    monkeypatch.setattr(_sidecar.os, "pwrite", pwrite)
    with pytest.raises(OSError, match="No space left"):
        _run(data_file, out, overwrite=True, batch_size=64)
    assert len(calls) == 6
    assert out.read_bytes() == b"the previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res.h5ad"]
