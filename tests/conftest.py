"""Shared fixtures: the reference data in tests/data and the SecAct signature."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

DATA = Path(__file__).parent / "data"

# The suite runs the kernel chosen by the cache-size rule and the default dense/sparse crossover,
# in this process and in the subprocesses it starts, so that which path a block takes does not
# depend on timings; tests/core/test_tuning.py exercises the timed choice itself.
os.environ["SECACT_TUNE"] = "0"


@pytest.fixture(autouse=True, scope="session")
def _untimed_kernel_choice():
    """``settings.tune = False`` even when secact was imported before this file was read."""
    import secact

    secact.settings.tune = False


@pytest.fixture(autouse=True)
def _restore_environ():
    """Undo changes to ``os.environ`` after each test: ``dask.distributed`` sets
    ``OMP_NUM_THREADS=1`` (and more) in the parent process, which changes the thread count,
    hence the last bits, of every subprocess a later test starts."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


def _secact_available() -> bool:
    from secact.datasets._signatures import SIGNATURES, data_dir

    return (data_dir() / SIGNATURES["SecAct"].filename).exists()


@pytest.fixture(scope="session")
def secact_signature() -> pd.DataFrame:
    """The SecAct signature from $SECACT_DATA_DIR / the cache (CI places it there)."""
    if not _secact_available():
        if os.environ.get("CI"):
            pytest.fail("SecAct.tsv.gz is not in $SECACT_DATA_DIR; .ci/run must fetch it first")
        pytest.skip("SecAct signature not cached; run shared/fetch-secact-signature.sh")
    from secact.datasets import signature

    return signature("SecAct")


@pytest.fixture(scope="session")
def ly86() -> pd.DataFrame:
    """The Ly86-Fc vs vehicle bulk differential profile (16,325 genes x ``Diff``)."""
    return pd.read_csv(DATA / "ly86" / "Ly86-Fc_vs_Vehicle_logFC.txt", sep=r"\s+")


def read_reference(sub: str) -> dict[str, pd.DataFrame]:
    """The reference beta / se / zscore / pvalue tables of one case under tests/data/ly86."""
    folder = DATA / "ly86" / sub
    return {k: pd.read_csv(folder / f"{k}.txt", sep=r"\s+") for k in ("beta", "se", "zscore", "pvalue")}


# ----------------------------------------------------------------------------------------------
# every array type a tool accepts, from one in-memory AnnData
# ----------------------------------------------------------------------------------------------
ARRAY_TYPES = (
    "numpy",
    "csr_matrix",
    "csc_matrix",
    "csr_array",
    "csc_array",
    "dask_dense",
    "dask_csr",
    "backed_csr",
    "backed_csc",
    "path",
)


def as_array_type(adata, kind: str, tmp_path: Path):
    """``adata`` with its ``X`` stored as ``kind``; backed and path kinds are written to ``tmp_path``.

    Returns an AnnData (in memory or backed) or, for ``"path"``, the path of an ``.h5ad`` file.
    """
    import anndata as ad
    import numpy as np
    from scipy import sparse

    x = adata.X.toarray() if sparse.issparse(adata.X) else np.asarray(adata.X)
    out = adata.copy()
    if kind == "numpy":
        out.X = x
    elif kind in ("csr_matrix", "csc_matrix", "csr_array", "csc_array"):
        out.X = getattr(sparse, kind)(x)
    elif kind in ("dask_dense", "dask_csr"):
        da = pytest.importorskip("dask.array")
        chunk = x if kind == "dask_dense" else sparse.csr_matrix(x)
        out.X = da.from_array(chunk, chunks=(max(1, x.shape[0] // 3), -1), asarray=False)
    elif kind in ("backed_csr", "backed_csc", "path"):
        out.X = sparse.csc_matrix(x) if kind == "backed_csc" else sparse.csr_matrix(x)
        path = tmp_path / f"{kind}.h5ad"
        out.write_h5ad(path)
        return path if kind == "path" else ad.read_h5ad(path, backed="r")
    else:  # pragma: no cover - a typo in a test
        raise ValueError(kind)
    return out


@pytest.fixture(params=ARRAY_TYPES)
def array_type(request) -> str:
    """Each array type in turn (apply with :func:`as_array_type`)."""
    return request.param


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when written to (capsys swaps it in only for the test call)."""

    def write(self, text: str) -> int:
        import sys

        return sys.stderr.write(text)

    def flush(self) -> None:
        import sys

        sys.stderr.flush()


@pytest.fixture
def scanpy_log(capsys):
    """scanpy's log written to the captured stderr; verbosity and log file restored afterwards."""
    import scanpy as sc

    verbosity, logfile = sc.settings.verbosity, sc.settings.logfile
    sc.settings.logfile = _CurrentStderr()
    try:
        yield capsys
    finally:
        sc.settings.logfile = logfile
        sc.settings.verbosity = verbosity
