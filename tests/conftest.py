"""Shared fixtures: the reference data in tests/data and the SecAct signature."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

DATA = Path(__file__).parent / "data"


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
