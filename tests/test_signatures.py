"""Signature registry, cache and validation."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from secact.datasets import SIGNATURES, signature
from secact.datasets import _signatures as sigmod


def test_cytosig_ships_with_the_package():
    sig = signature("CytoSig")
    assert sig.shape == (4881, 43)
    assert sig.dtypes.unique().tolist() == [np.float64]
    assert "IFNG" in sig.columns


def test_secact_signature_shape_and_fast_reload(secact_signature):
    assert secact_signature.shape == SIGNATURES["SecAct"].shape == (7919, 1170)
    sigmod._load_named.cache_clear()
    t0 = time.perf_counter()
    again = signature("SecAct")
    elapsed = time.perf_counter() - t0
    pd.testing.assert_frame_equal(again, secact_signature)
    assert elapsed < 1.0, f"loading the parsed copy took {elapsed:.2f} s"


def test_signature_is_a_copy():
    a = signature("CytoSig")
    a.iloc[0, 0] = 123.0
    assert signature("CytoSig").iloc[0, 0] != 123.0


def test_custom_signature_from_path_and_frame(tmp_path):
    frame = pd.DataFrame(np.arange(12.0).reshape(4, 3) ** 1.5, index=list("abcd"), columns=["P1", "P2", "P3"])
    path = tmp_path / "sig.tsv"
    frame.to_csv(path, sep="\t")
    pd.testing.assert_frame_equal(signature(path), frame)
    pd.testing.assert_frame_equal(signature(frame), frame)


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (pd.DataFrame({"a": [1.0, np.nan, 2.0]}, index=list("xyz")), "missing or infinite"),
        (pd.DataFrame({"a": [1.0, 2.0, 3.0]}, index=list("xxz")), "duplicated gene"),
        (pd.DataFrame([[1.0, 2.0], [3.0, 1.0]], index=list("xy"), columns=["a", "a"]), "duplicated protein"),
        (pd.DataFrame({"a": ["u", "v", "w"]}, index=list("xyz")), "non-numeric"),
        (pd.DataFrame({"a": [1.0, 1.0, 1.0]}, index=list("xyz")), "constant"),
    ],
)
def test_invalid_signatures(frame, match):
    with pytest.raises(ValueError, match=match):
        signature(frame)


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="'SecAct', 'CytoSig'"):
        signature("SecActt")


def test_missing_download_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SECACT_DATA_DIR", str(tmp_path))
    sigmod._load_named.cache_clear()
    spec = sigmod.SignatureSpec(
        name="SecAct",
        filename="SecAct.tsv.gz",
        sha256=SIGNATURES["SecAct"].sha256,
        url="http://127.0.0.1:9/SecAct.tsv.gz",
        shape=(7919, 1170),
    )
    monkeypatch.setitem(sigmod.SIGNATURES, "SecAct", spec)
    try:
        with pytest.raises(OSError, match="SECACT_DATA_DIR") as err:
            signature("SecAct")
        assert SIGNATURES["SecAct"].sha256 in str(err.value)
        assert "fetch-secact-signature.sh" in str(err.value)
    finally:
        sigmod._load_named.cache_clear()


def test_wrong_file_is_rejected_by_sha256(tmp_path, monkeypatch):
    monkeypatch.setenv("SECACT_DATA_DIR", str(tmp_path))
    (tmp_path / "SecAct.tsv.gz").write_bytes(b"not the signature")
    sigmod._load_named.cache_clear()
    try:
        with pytest.raises(ValueError, match="sha256"):
            signature("SecAct")
    finally:
        sigmod._load_named.cache_clear()
