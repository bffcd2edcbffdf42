"""The secact command line, run as a user runs it: ``python -m secact`` and the ``secact`` script."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import secact
from secact.cli import main

DATA = Path(__file__).parent / "data"
SCRIPT = Path(sys.executable).parent / "secact"
COMMANDS = ("activity", "infer", "differential", "coxph", "fetch-signature", "tune", "example")


def run(*args: str, script: bool = False, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the command in a fresh process; ``script=True`` through the installed ``secact``."""
    if script:
        if not SCRIPT.exists():
            pytest.skip("the secact script is not installed beside this python")
        cmd = [os.fspath(SCRIPT), *args]
    else:
        cmd = [sys.executable, "-m", "secact", *args]
    full_env = {**os.environ, "MPLBACKEND": "Agg", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=300, check=False)


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status != 0, stderr one line ``secact: error: ...`` (no traceback) holding the fragments."""
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("secact: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def sim_h5ad(tmp_path_factory) -> Path:
    adata = secact.datasets.simulate(n_cells=200, seed=0)
    path = tmp_path_factory.mktemp("cli") / "sim.h5ad"
    adata.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def profile_tsv(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    genes = secact.datasets.signature("CytoSig").index[:800]
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(len(genes), 3)), index=genes, columns=["s1", "s2", "s3"])
    frame.index.name = "gene"
    path = tmp_path_factory.mktemp("cli") / "profile.tsv"
    frame.to_csv(path, sep="\t")
    return path, frame


# ----------------------------------------------------------------------------------------------
# help, version, entry points
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: secact {command}")
    assert "--quiet" in text  # every command has the message options
    if command in ("activity", "differential"):
        assert "-o OUT" in text and "--layer" in text and "--use-raw" in text
    if command == "activity":
        for option in ("--groupby", "--signature", "--method", "--n-permutations", "--batch-size"):
            assert option in text
        assert "--dtype {float64,float32}" in text and "--overwrite" in text and "--resume" in text


def test_module_and_script_entry_points():
    proc = run("--help")
    assert proc.returncode == 0
    for command in COMMANDS:
        assert command in proc.stdout
    version = run("--version", script=True)
    assert version.returncode == 0
    assert version.stdout.strip() == f"secact {secact.__version__}"


def test_usage_mistake_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["activity", "x.h5ad", "-o", "y.h5ad", "--n-permutations", "many"])
    assert exit_.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "secact: error: argument -n/--n-permutations: expected a positive integer, got 'many' "
        "(see 'secact activity --help')"
    ]


# ----------------------------------------------------------------------------------------------
# activity
# ----------------------------------------------------------------------------------------------
def test_activity_cells_streams_to_a_sidecar(sim_h5ad, tmp_path):
    out = tmp_path / "cells.h5ad"
    args = ["activity", os.fspath(sim_h5ad), "-o", os.fspath(out), "-s", "CytoSig", "--method", "analytic"]
    proc = run(*args, "--stats", "zscore,pvalue", "--dtype", "float32", "--batch-size", "64")
    assert proc.returncode == 0, proc.stderr
    assert "200 cells x 43 proteins (zscore, pvalue)" in proc.stdout
    result = ad.read_h5ad(out)
    assert result.shape == (200, 43)
    assert result.X.dtype == np.float32
    assert set(result.layers) == {"pvalue"}
    # the same numbers as the Python API on the loaded data
    adata = ad.read_h5ad(sim_h5ad)
    secact.tl.activity(adata, "CytoSig", method="analytic", progress=False)
    expected = adata.obsm["secact_zscore"].loc[result.obs_names, result.var_names].to_numpy()
    np.testing.assert_allclose(result.X, expected, rtol=1e-4, atol=1e-4)

    again = run(*args)  # the output exists now
    assert_user_error(again, "exists", "--overwrite")
    assert run(*args, "--overwrite", "-q").returncode == 0


def test_activity_spatial_flavor_with_a_control(tmp_path):
    """--flavor spatial --control --scale-factor: the same numbers as the Python API."""
    data = secact.datasets.simulate_spatial(300, seed=2)
    control = secact.datasets.simulate_spatial(300, seed=3)
    data.X[:, 0] = 0  # a gene without counts: the spatial flavor drops it before mapping
    data.X.eliminate_zeros()
    src, ctl, out = tmp_path / "tissue.h5ad", tmp_path / "control.h5ad", tmp_path / "spots.h5ad"
    data.write_h5ad(src)
    control.write_h5ad(ctl)
    flags = ["--flavor", "spatial", "--control", os.fspath(ctl), "--scale-factor", "1000"]
    proc = run(
        "activity", os.fspath(src), "-o", os.fspath(out), "-s", "CytoSig", "--method", "analytic", *flags
    )
    assert proc.returncode == 0, proc.stderr
    result = ad.read_h5ad(out)
    secact.tl.activity(
        data, "CytoSig", method="analytic", flavor="spatial", control=control, scale_factor=1e3
    )
    expected = data.obsm["secact_zscore"].loc[result.obs_names, result.var_names].to_numpy()
    np.testing.assert_allclose(result.X, expected, rtol=1e-10, atol=1e-10)
    params = result.uns["secact"]["cells"]["params"]
    assert params["flavor"] == "spatial" and params["scale_factor"] == 1e3


def test_activity_groups_through_the_script(sim_h5ad, tmp_path):
    out = tmp_path / "groups.h5ad"
    args = ["activity", os.fspath(sim_h5ad), "-o", os.fspath(out), "-s", "CytoSig", "-g", "group"]
    proc = run(*args, "--reference", "control", "-n", "50", script=True)
    assert proc.returncode == 0, proc.stderr
    result = ad.read_h5ad(out)
    expected = secact.tl.activity(
        sim_h5ad, "CytoSig", groupby="group", reference="control", n_permutations=50, progress=False
    )
    assert list(result.obs_names) == list(expected.obs_names)
    assert "control" not in result.obs_names
    np.testing.assert_array_equal(result.X, expected.X)
    np.testing.assert_array_equal(result.obs["n_cells"], expected.obs["n_cells"])

    # an existing result is never replaced without --overwrite
    before = hashlib.sha256(out.read_bytes()).hexdigest()
    refused = run(*args, "--method", "analytic")
    assert_user_error(refused, os.fspath(out), "--overwrite")
    assert hashlib.sha256(out.read_bytes()).hexdigest() == before


def test_activity_bad_input_is_one_line(sim_h5ad, tmp_path, profile_tsv):
    out = os.fspath(tmp_path / "x.h5ad")
    missing_column = run("activity", os.fspath(sim_h5ad), "-o", out, "-s", "CytoSig", "-g", "celltype")
    assert_user_error(missing_column, "'celltype' is not a column of obs", "group")
    assert not Path(out).exists()
    table = run("activity", os.fspath(profile_tsv[0]), "-o", out)
    assert_user_error(table, "secact infer")


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["-s", "CytoSig", "--layer", "counts"], ["layer 'counts' not found"]),
        (["-s", "CytoSig", "--use-raw"], ["--use-raw", "no raw", "--no-use-raw"]),
        (["-s", "NoSuchSignature"], ["NoSuchSignature"]),
        (["-s", "CytoSig", "--reference", "control"], ["COLUMN=VALUE"]),
        (["-s", "CytoSig", "-g", "group", "--reference", "nope"], ["'nope'", "IFNG_stimulated"]),
        (["-s", "CytoSig", "-g", "group", "--resume"], ["--resume"]),
        (["-s", "CytoSig", "--flavor", "spatial", "-g", "group"], ["--flavor", "--groupby"]),
        (["-s", "CytoSig", "--control", "absent.h5ad"], ["absent.h5ad", "does not exist"]),
    ],
)
def test_activity_mistakes(sim_h5ad, tmp_path, capsys, extra, fragments):
    out = tmp_path / "x.h5ad"
    assert main(["activity", os.fspath(sim_h5ad), "-o", os.fspath(out), *extra]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("secact: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert not out.exists()


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (lambda d: d / "absent.h5ad", ["does not exist"]),
        (lambda d: _write(d / "fake.h5ad", b"not hdf5"), ["not HDF5"]),
        (lambda d: _hdf5(d / "tenx.h5", "matrix"), ["read_10x_h5"]),
    ],
)
def test_activity_input_formats(tmp_path, capsys, make, fragments):
    src = make(tmp_path)
    assert main(["activity", os.fspath(src), "-o", os.fspath(tmp_path / "o.h5ad")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("secact: error: ") and "\n" not in err
    for fragment in fragments:
        assert fragment in err


def test_activity_scale_factor_must_be_positive(sim_h5ad, tmp_path):
    out = tmp_path / "x.h5ad"
    proc = run("activity", os.fspath(sim_h5ad), "-o", os.fspath(out), "--scale-factor=-3")
    assert_user_error(proc, "--scale-factor", "> 0")
    assert not out.exists()


def test_activity_output_checks(sim_h5ad, tmp_path, capsys):
    for out, fragment in [
        (tmp_path / "x.tsv", "must be a .h5ad file"),
        (tmp_path / "no" / "x.h5ad", "does not exist"),
        (sim_h5ad, "is the input file"),
    ]:
        assert main(["activity", os.fspath(sim_h5ad), "-o", os.fspath(out), "--overwrite"]) == 2
        assert fragment in capsys.readouterr().err


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _hdf5(path: Path, group: str) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        f.create_group(group)
    return path


# ----------------------------------------------------------------------------------------------
# infer
# ----------------------------------------------------------------------------------------------
def test_infer_writes_tables_and_logs_timing(profile_tsv, tmp_path):
    path, frame = profile_tsv
    prefix = tmp_path / "res"
    proc = run("infer", os.fspath(path), "-s", "CytoSig", "--method", "analytic", "-o", os.fspath(prefix))
    assert proc.returncode == 0, proc.stderr
    assert "43 proteins x 3 sample(s)" in proc.stdout
    assert "computed activity of 3 sample(s) x 43 proteins" in proc.stderr  # info log line
    expected = secact.infer(frame, "CytoSig", method="analytic")
    for key in ("beta", "se", "zscore", "pvalue"):
        table = pd.read_csv(f"{prefix}.{key}.tsv", sep="\t", index_col=0)
        pd.testing.assert_frame_equal(table, getattr(expected, key), check_names=False, rtol=1e-12)

    quiet = run(
        "infer", os.fspath(path), "-s", "CytoSig", "--method", "analytic", "-o", os.fspath(prefix), "-q"
    )
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_infer_reads_r_style_whitespace_tables(tmp_path, capsys):
    """SecAct R's example profile: whitespace separated, header one field short."""
    src = DATA / "ly86" / "Ly86-Fc_vs_Vehicle_logFC.txt"
    prefix = tmp_path / "ly86"
    args = ["infer", os.fspath(src), "--differential", "-s", "CytoSig", "--method", "analytic"]
    assert main([*args, "-o", os.fspath(prefix), "-q"]) == 0
    z = pd.read_csv(f"{prefix}.zscore.tsv", sep="\t", index_col=0)
    profile = pd.read_csv(src, sep=r"\s+")
    expected = secact.infer(profile, "CytoSig", differential=True, method="analytic").zscore
    assert list(z.columns) == ["Diff"]
    np.testing.assert_allclose(z.loc[expected.index, "Diff"], expected["Diff"], rtol=1e-12)


def test_infer_bad_input_is_one_line(sim_h5ad, tmp_path):
    proc = run("infer", os.fspath(sim_h5ad), "-s", "CytoSig", "-o", os.fspath(tmp_path / "r"), script=True)
    assert_user_error(proc, "secact activity")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("name", "content", "fragments"),
    [
        ("absent.tsv", None, ["does not exist"]),
        ("empty.tsv", b"", ["is empty"]),
        ("header.csv", b"gene,a,b\n", ["0 gene row(s)"]),
        ("dup.tsv", b"gene\ta\ta\nIFNG\t1\t2\nIL4\t3\t4\n", ["duplicated sample names ['a']"]),
        ("binary.txt", b"\x7fELF\x02\x01\x00\x00" * 64, ["binary file"]),
        ("data.loom", b"\x89HDF\r\n\x1a\n" + b"\x00" * 64, ["secact activity"]),
        ("one.tsv", b"gene\ta\nIFNG\t1\nIL4\t3\n", ["one sample", "Pass --differential if"]),
    ],
)
def test_infer_table_mistakes(tmp_path, capsys, name, content, fragments):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    assert main(["infer", os.fspath(path), "-s", "CytoSig", "-o", os.fspath(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("secact: error: ") and "\n" not in err
    for fragment in fragments:
        assert fragment in err
    assert not list(tmp_path.glob("r.*"))


def test_infer_backend_cpu_equals_the_default(profile_tsv, tmp_path):
    path, _ = profile_tsv
    args = ["infer", os.fspath(path), "-s", "CytoSig", "-n", "20", "-q"]
    assert run(*args, "-o", os.fspath(tmp_path / "default")).returncode == 0
    assert run(*args, "--backend", "cpu", "-o", os.fspath(tmp_path / "cpu")).returncode == 0
    for key in ("beta", "se", "zscore", "pvalue"):
        default = (tmp_path / f"default.{key}.tsv").read_bytes()
        assert default == (tmp_path / f"cpu.{key}.tsv").read_bytes()


def test_activity_backend_cpu_equals_the_default(sim_h5ad, tmp_path):
    args = ["activity", os.fspath(sim_h5ad), "-s", "CytoSig", "--method", "analytic", "-q"]
    default, cpu = tmp_path / "default.h5ad", tmp_path / "cpu.h5ad"
    assert run(*args, "-o", os.fspath(default)).returncode == 0
    assert run(*args, "--backend", "cpu", "-o", os.fspath(cpu)).returncode == 0
    a, b = ad.read_h5ad(default), ad.read_h5ad(cpu)
    np.testing.assert_array_equal(a.X, b.X)
    for name in a.layers:
        np.testing.assert_array_equal(a.layers[name], b.layers[name])


@pytest.mark.parametrize("command", ["infer", "activity"])
def test_backend_gpu_without_cupy_names_the_extra(command, sim_h5ad, profile_tsv, tmp_path):
    from secact.core import gpu

    if gpu.available():
        pytest.skip("a GPU backend is available here")
    src, out = (profile_tsv[0], tmp_path / "r") if command == "infer" else (sim_h5ad, tmp_path / "r.h5ad")
    proc = run(command, os.fspath(src), "-s", "CytoSig", "-o", os.fspath(out), "--backend", "gpu")
    assert proc.returncode == 2
    assert_user_error(proc, "--backend gpu", "pip install 'secact[gpu]'")
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------------
# differential
# ----------------------------------------------------------------------------------------------
def test_differential_writes_the_tidy_table(sim_h5ad, tmp_path):
    out = tmp_path / "de.tsv"
    proc = run(
        "differential",
        os.fspath(sim_h5ad),
        "--groupby",
        "group",
        "--reference",
        "control",
        "-o",
        os.fspath(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert "computed differential expression of 3 group(s)" in proc.stderr
    table = pd.read_csv(out, sep="\t")
    expected = secact.get.differential(secact.tl.differential(sim_h5ad, "group", reference="control"))
    assert list(table.columns) == list(expected.columns)
    assert list(table["group"]) == list(expected["group"].astype(str))
    assert list(table["gene"]) == list(expected["gene"].astype(str))
    np.testing.assert_allclose(table["pvalue"], expected["pvalue"], rtol=1e-12)
    np.testing.assert_allclose(table["log2fc"], expected["log2fc"], rtol=1e-12)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial file left


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


def test_outputs_replace_partial_files_of_dead_processes(sim_h5ad, profile_tsv, tmp_path):
    """A killed run leaves its partial file; the next run writing the same output removes it."""
    pid = _dead_pid()
    de, groups = tmp_path / "de.tsv.gz", tmp_path / "groups.h5ad"
    stale = [tmp_path / f".de.tsv.gz.partial-{pid}.tsv.gz", tmp_path / f".groups.h5ad.partial-{pid}.h5ad"]
    stale.append(tmp_path / f".r.zscore.tsv.partial-{pid}.tsv")
    for path in stale:
        path.write_bytes(b"half written")
    args = ["-s", "CytoSig", "--method", "analytic", "-q"]
    assert run("differential", os.fspath(sim_h5ad), "-g", "group", "-o", os.fspath(de), "-q").returncode == 0
    assert run("activity", os.fspath(sim_h5ad), "-g", "group", "-o", os.fspath(groups), *args).returncode == 0
    assert run("infer", os.fspath(profile_tsv[0]), "-o", os.fspath(tmp_path / "r"), *args).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert len(pd.read_csv(de, sep="\t")) > 0  # compressed by its suffix
    assert ad.read_h5ad(groups).n_obs == 4


def test_differential_bad_input_is_one_line(sim_h5ad, tmp_path):
    proc = run(
        "differential",
        os.fspath(sim_h5ad),
        "-g",
        "group",
        "--reference",
        "nope",
        "-o",
        os.fspath(tmp_path / "de.tsv"),
    )
    assert_user_error(proc, "'nope'", "control")
    assert not (tmp_path / "de.tsv").exists()


def test_differential_warning_is_one_line(sim_h5ad, tmp_path, capsys):
    adata = ad.read_h5ad(sim_h5ad)
    adata.obs["group"] = adata.obs["group"].cat.add_categories(["lonely"])
    adata.obs.iloc[0, adata.obs.columns.get_loc("group")] = "lonely"
    src = tmp_path / "lonely.h5ad"
    adata.write_h5ad(src)
    out = tmp_path / "de.csv"
    assert main(["differential", os.fspath(src), "-g", "group", "-o", os.fspath(out), "-q"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("secact: warning: skipping 1 group(s)")
    assert "lonely" not in set(pd.read_csv(out)["group"])


# ----------------------------------------------------------------------------------------------
# fetch-signature
# ----------------------------------------------------------------------------------------------
def test_fetch_signature_packaged_and_wrong_file(tmp_path):
    env = {"SECACT_DATA_DIR": os.fspath(tmp_path / "data")}
    packaged = run("fetch-signature", "CytoSig", env=env)
    assert packaged.returncode == 0 and "ships with secact" in packaged.stdout
    wrong = tmp_path / "SecAct.tsv.gz"
    wrong.write_bytes(b"not the signature")
    proc = run("fetch-signature", "SecAct", "--from", os.fspath(wrong), env=env)
    assert_user_error(proc, "sha256", "https://")
    assert not (tmp_path / "data" / "SecAct.tsv.gz").exists()


def test_fetch_signature_offline_names_the_fix(tmp_path):
    closed = "http://127.0.0.1:9"  # nothing listens there: every download fails at once
    env = {
        "SECACT_DATA_DIR": os.fspath(tmp_path),
        **{k: closed for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")},
        "NO_PROXY": "",
        "no_proxy": "",
    }
    proc = run("fetch-signature", "-q", env=env)
    line = assert_user_error(proc, "could not download", "secact fetch-signature SecAct --from")
    assert os.fspath(tmp_path) in line
    assert not (tmp_path / "SecAct.tsv.gz").exists()


def test_fetch_signature_from_a_local_copy(tmp_path):
    from secact.datasets._signatures import SIGNATURES, data_dir

    source = data_dir() / SIGNATURES["SecAct"].filename
    if not source.exists():
        pytest.skip("SecAct signature not cached; run shared/fetch-secact-signature.sh")
    env = {"SECACT_DATA_DIR": os.fspath(tmp_path / "new")}
    proc = run("fetch-signature", "SecAct", "--from", os.fspath(source), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "7,919 genes x 1,170 proteins" in proc.stdout
    placed = tmp_path / "new" / "SecAct.tsv.gz"
    assert hashlib.sha256(placed.read_bytes()).hexdigest() == SIGNATURES["SecAct"].sha256
    assert os.stat(placed).st_mode & 0o044  # readable like any file the user creates
    # now present: a second call verifies it and needs no network
    assert run("fetch-signature", env=env).returncode == 0


# ----------------------------------------------------------------------------------------------
# example; in-process calls leave the logger as they found it
# ----------------------------------------------------------------------------------------------
def test_example_ranks_planted_cytokines_first(tmp_path, capsys):
    out = tmp_path / "ex.h5ad"
    assert main(["example", "--n-cells", "600", "--n-permutations", "200", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "planted cytokine ranked first in 3 of 3 groups" in text
    result = ad.read_h5ad(out)
    assert result.n_vars == 43
    assert set(result.uns["planted"]) <= set(result.obs_names)
    for group, cytokine in result.uns["planted"].items():
        z = pd.Series(result[group].X.ravel(), index=result.var_names)
        assert z.idxmax() == cytokine


def test_example_bad_parameter_is_one_line():
    proc = run("example", "--n-cells", "0")
    assert_user_error(proc, "--n-cells", "positive integer")


def test_main_restores_the_logger(profile_tsv, tmp_path, capsys):
    log = logging.getLogger("secact")
    before = (list(log.handlers), list(log.filters), log.propagate, log.level)
    path, _ = profile_tsv
    args = [
        "infer",
        os.fspath(path),
        "-s",
        "CytoSig",
        "--method",
        "analytic",
        "-o",
        os.fspath(tmp_path / "r"),
    ]
    assert main(args) == 0
    assert "computed activity" in capsys.readouterr().err
    assert (list(log.handlers), list(log.filters), log.propagate, log.level) == before


# ----------------------------------------------------------------------------------------------
# coxph
# ----------------------------------------------------------------------------------------------
def test_coxph_writes_rs_risk_scores(tmp_path):
    """The R reference cohort (tests/data/coxph): proteins x samples activity as SecAct R writes it."""
    cox = DATA / "coxph"
    out = tmp_path / "risk.tsv"
    proc = run(
        "coxph", os.fspath(cox / "activity.tsv"), os.fspath(cox / "clinical.tsv"), "-o", os.fspath(out)
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"wrote {out}: 31 proteins (28 with a risk score) from 77 samples")
    assert "77 samples in both tables" in proc.stderr  # the overlap is logged
    table = pd.read_csv(out, sep="\t", index_col=0, keep_default_na=False, na_values=[""])
    ref = pd.read_csv(cox / "coxph_cov.tsv", sep="\t", index_col=0)  # every other column: R's `~ .`
    np.testing.assert_array_equal(table["risk_z"].isna(), ref["z"].isna())
    ok = ref["z"].notna()
    np.testing.assert_allclose(table.loc[ok, "risk_z"], ref.loc[ok, "z"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(table.loc[ok, "pvalue"], ref.loc[ok, "pvalue"], rtol=0, atol=1e-10)
    # --covariates, and a samples x proteins activity table
    samples_first = tmp_path / "activity_samples.tsv"
    pd.read_csv(cox / "activity.tsv", sep="\t", index_col=0).T.to_csv(samples_first, sep="\t")
    out2 = tmp_path / "risk_age.csv"
    proc = run(
        "coxph", os.fspath(samples_first), os.fspath(cox / "clinical.tsv"), "-o", os.fspath(out2),
        "--covariates", "age",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    age = pd.read_csv(out2, index_col=0)
    ref = pd.read_csv(cox / "coxph_age.tsv", sep="\t", index_col=0)
    ok = ref["z"].notna()
    np.testing.assert_allclose(age.loc[ok, "risk_z"], ref.loc[ok, "z"], rtol=0, atol=1e-10)


def test_coxph_mistakes_name_the_options(tmp_path):
    cox = DATA / "coxph"
    args = (
        os.fspath(cox / "activity.tsv"),
        os.fspath(cox / "clinical.tsv"),
        "-o",
        os.fspath(tmp_path / "r.tsv"),
    )
    assert_user_error(run("coxph", *args, "--time", "OS"), "--time 'OS' is not a column of clinical")
    assert_user_error(run("coxph", *args, "--covariates", "grade"), "--covariates")
    assert_user_error(run("coxph", *args, "--event", "stage"), "clinical[--event 'stage'] must be 1 (event")
    table = os.fspath(cox / "clinical.tsv")
    assert_user_error(run("coxph", table, table, "-o", args[-1]), "must hold numbers")
    assert not (tmp_path / "r.tsv").exists()


def test_tune_times_once_then_reads_what_was_kept(tmp_path):
    env = {"SECACT_DATA_DIR": os.fspath(tmp_path)}
    args = ("tune", "-s", "CytoSig", "--dtype", "float64", "--caches", "32K/512K")
    first = run(*args, env=env)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith("caches: L1d 32 KiB, L2 512 KiB, L3 ") and lines[0].endswith("(settings)")
    assert lines[2].startswith("float64: ") and "measured in" in lines[2]
    rates = [line for line in lines if "GFLOP/s" in line and "dense" not in line]
    assert len(rates) == 3  # the float64 candidates on a 512 KiB L2: 4, 8 and 16 permutations x 8 proteins
    assert sum("<- chosen" in line for line in rates) == 1
    kept = list((tmp_path / "tuning").glob("*.json"))
    assert len(kept) == 1
    again = run(*args, env=env)
    assert again.returncode == 0, again.stderr
    assert "; kept" in again.stdout.splitlines()[2]
    assert [line for line in again.stdout.splitlines() if "<- chosen" in line] == [
        line for line in lines if "<- chosen" in line
    ]
    assert_user_error(run("tune", "--caches", "32K/many", env=env), "cannot read a cache size from 'many'")
