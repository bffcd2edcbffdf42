"""Shared fixtures: the shared reference data beside the checkout and the SecAct signature."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SECACT_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference"


def _secact_available() -> bool:
    from secact.datasets._signatures import SIGNATURES, data_dir

    return (data_dir() / SIGNATURES["SecAct"].filename).exists()


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"the shared data folder {SHARED} is missing (set SECACT_SHARED to its path)")
    return SHARED


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
def ly86(shared: Path) -> pd.DataFrame:
    return pd.read_csv(shared / "reference" / "ly86" / "Ly86-Fc_vs_Vehicle_logFC.txt", sep=r"\s+")


def read_reference(shared: Path, sub: str) -> dict[str, pd.DataFrame]:
    folder = shared / "reference" / "ly86" / sub
    return {k: pd.read_csv(folder / f"{k}.txt", sep=r"\s+") for k in ("beta", "se", "zscore", "pvalue")}
