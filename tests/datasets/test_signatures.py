"""Signature registry, cache and validation."""

from __future__ import annotations

import os

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


def test_secact_signature_shape_and_parsed_reload(secact_signature, monkeypatch):
    spec = SIGNATURES["SecAct"]
    assert secact_signature.shape == spec.shape == (7919, 1170)
    # the first load kept a parsed binary copy beside the text file (unless it could not) ...
    folder = sigmod.data_dir()
    parsed = sigmod._parsed_path(spec, folder)
    if not parsed.is_file() and not os.access(folder, os.W_OK):
        pytest.skip(f"{folder} is read-only, so no parsed copy could be kept there")
    assert parsed.is_file(), f"no parsed copy at {parsed}"
    # ... and a reload reads that copy back, without parsing the text again
    sigmod._load_named.cache_clear()

    def no_text_parse(path):
        raise AssertionError(f"reload parsed the text file {path}")

    monkeypatch.setattr(sigmod, "_read_table", no_text_parse)
    again = signature("SecAct")
    pd.testing.assert_frame_equal(again, secact_signature)


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
        assert "secact fetch-signature SecAct --from SecAct.tsv.gz" in str(err.value)
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
