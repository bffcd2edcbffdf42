"""secact's log follows scanpy's verbosity; without scanpy it is an ordinary library logger."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

import secact
from secact._logging import elapsed

sc = pytest.importorskip("scanpy")


@pytest.fixture(scope="module")
def profile() -> pd.DataFrame:
    genes = secact.datasets.signature("CytoSig").index
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(len(genes), 2)), index=genes, columns=["a", "b"])


def test_info_follows_scanpy_verbosity(scanpy_log, profile):
    sc.settings.verbosity = 2
    secact.infer(profile, "CytoSig", method="analytic")
    err = scanpy_log.readouterr().err
    assert "computed activity of 2 sample(s) x 43 proteins in " in err
    assert "(analytic)" in err

    sc.settings.verbosity = 1
    secact.infer(profile, "CytoSig", method="analytic")
    assert "computed activity" not in scanpy_log.readouterr().err


def test_verbosity_is_read_when_the_line_is_emitted(scanpy_log, profile):
    for level, shown in [(2, True), (1, False), (2, True)]:
        sc.settings.verbosity = level
        secact.infer(profile, "CytoSig", method="analytic")
        assert ("computed activity" in scanpy_log.readouterr().err) is shown


def test_hints_from_verbosity_3(scanpy_log, profile):
    sc.settings.verbosity = 3
    secact.infer(profile, "CytoSig", method="analytic")
    err = scanpy_log.readouterr().err
    assert "--> CytoSig signature: 4,881 of its 4,881 genes are in the profile" in err  # scanpy's hint format
    sc.settings.verbosity = 2
    secact.infer(profile, "CytoSig", method="analytic")
    assert "genes are in the profile" not in scanpy_log.readouterr().err


def test_warnings_from_verbosity_1(scanpy_log, profile):
    rng = np.random.default_rng(2)  # five genes of the profile have no control: dropped with a warning
    control = pd.DataFrame(
        rng.normal(size=(len(profile) - 5, 2)), index=profile.index[:-5], columns=["c", "d"]
    )
    for level, shown in [(1, True), (0, False)]:
        sc.settings.verbosity = level
        secact.infer(profile, "CytoSig", control=control, method="analytic")
        err = scanpy_log.readouterr().err
        assert ("WARNING: 5 genes of the profile are not in the control" in err) is shown


def test_differential_timing_at_info(scanpy_log):
    adata = secact.datasets.simulate(n_cells=120, seed=0)
    sc.settings.verbosity = 2
    secact.tl.differential(adata, "group", reference="control", progress=False)
    err = scanpy_log.readouterr().err
    assert f"computed differential expression of 3 group(s) x {adata.n_vars:,} genes in " in err
    sc.settings.verbosity = 1
    secact.tl.differential(adata, "group", reference="control", progress=False)
    assert "computed differential expression" not in scanpy_log.readouterr().err


def test_an_event_is_a_warning_or_a_log_line_not_both(scanpy_log):
    adata = secact.datasets.simulate(n_cells=120, seed=0)
    adata.obs["group"] = adata.obs["group"].cat.add_categories(["lonely"])
    adata.obs.iloc[0, adata.obs.columns.get_loc("group")] = "lonely"
    sc.settings.verbosity = 4  # everything that is logged is shown
    with pytest.warns(UserWarning, match="skipping 1 group"):
        secact.tl.differential(adata, "group", progress=False)
    err = scanpy_log.readouterr().err
    assert "computed differential expression" in err  # the log is live ...
    assert "skipping" not in err  # ... and does not repeat the warning


def test_a_level_set_by_the_user_wins(scanpy_log, profile):
    log = logging.getLogger("secact")
    old = log.level
    log.setLevel(logging.WARNING)
    try:
        sc.settings.verbosity = 2
        secact.infer(profile, "CytoSig", method="analytic")
        assert "computed activity" not in scanpy_log.readouterr().err
    finally:
        log.setLevel(old)


def test_lines_do_not_reach_the_root_logger_under_scanpy(scanpy_log, profile, caplog):
    """scanpy shows the line; Python's root handlers (here pytest's) do not get a second copy."""
    sc.settings.verbosity = 2
    with caplog.at_level(logging.DEBUG):
        secact.infer(profile, "CytoSig", method="analytic")
    assert "computed activity" in scanpy_log.readouterr().err
    assert not [r for r in caplog.records if r.name == "secact"]


SCRIPT = textwrap.dedent(
    """
    import logging, sys
    import numpy as np, pandas as pd
    if sys.argv[1] == "configured":
        logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
    import secact
    sig = secact.datasets.signature("CytoSig")
    rng = np.random.default_rng(0)
    profile = pd.DataFrame(rng.normal(size=(sig.shape[0], 2)), index=sig.index, columns=["a", "b"])
    control = pd.DataFrame(rng.normal(size=(sig.shape[0] - 3, 2)), index=sig.index[:-3], columns=["c", "d"])
    secact.infer(profile, "CytoSig", control=control, method="analytic")
    assert "scanpy" not in sys.modules, "secact must not import scanpy"
    """
)


@pytest.mark.parametrize("mode", ["plain", "configured"])
def test_without_scanpy_an_ordinary_library_logger(mode):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # warnings reach stderr with no configuration (Python's last resort), info only when asked for
    assert "3 genes of the profile are not in the control" in proc.stderr
    if mode == "plain":
        assert "computed activity" not in proc.stderr
    else:
        assert "INFO secact: computed activity of 1 sample(s) x 43 proteins" in proc.stderr


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "0.25 s"), (3.14, "3.1 s"), (125.2, "2 min 05 s"), (3725.0, "1 h 02 min")],
)
def test_elapsed(seconds, text):
    assert elapsed(time.perf_counter() - seconds) == text


def test_import_configures_no_root_logging():
    """A library never configures the root logger: importing secact adds no handler there."""
    code = "import logging, secact; assert logging.getLogger().handlers == [], logging.getLogger().handlers"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_a_failing_scanpy_log_never_stops_a_computation(scanpy_log, profile, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise TypeError("changed scanpy API")

    monkeypatch.setattr(sc.logging, "info", broken)
    sc.settings.verbosity = 2
    with caplog.at_level(logging.INFO, logger="secact"):
        result = secact.infer(profile, "CytoSig", method="analytic")
    assert result.zscore.shape == (43, 2)
    # the line went the standard way instead
    assert any("computed activity" in r.getMessage() for r in caplog.records if r.name == "secact")
