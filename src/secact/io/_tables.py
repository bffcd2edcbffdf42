"""Text tables: bulk genes x samples profiles in, result tables out.

:func:`read_profile` reads what users and SecAct R write (TSV, CSV, R's whitespace-separated
``write.table`` with a header one field short; optionally ``.gz``/``.bz2``/``.xz``) and
refuses, with a message saying what the file is, binary files, ``.h5ad``/HDF5 files, empty
tables and duplicated sample names. :func:`write_table` writes a TSV/CSV that appears complete
or not at all (:func:`secact.io._atomic.atomic_path`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ._atomic import atomic_path
from ._files import COMPRESSIONS, HDF5_MAGIC, check_input_file, head, suffixes

__all__ = ["TABLE_FORMATS", "read_profile", "write_table"]

#: suffixes of the tables :func:`write_table` writes (each optionally .gz, .bz2 or .xz)
TABLE_FORMATS = (".tsv", ".csv", ".txt")


def _separator(first_line: str, fmt: str) -> str:
    if fmt == ".csv":
        return ","
    if fmt in (".tsv", ".tab"):
        return "\t"
    if "\t" in first_line:
        return "\t"
    if "," in first_line:
        return ","
    return r"\s+"  # R's write.table with sep=" " (header one field short)


def _empty(name: str) -> ValueError:
    return ValueError(
        f"{name!r} is empty; expected a genes x samples table with a header row of sample names."
    )


def read_profile(path: str | os.PathLike) -> pd.DataFrame:
    """A genes x samples table: first column gene symbols, one column per sample.

    Parameters
    ----------
    path
        TSV, CSV or whitespace-separated text, optionally compressed (``.gz``, ``.bz2``,
        ``.xz``); the separator is taken from the suffix or, for ``.txt``, from the header.

    Returns
    -------
    pandas.DataFrame
        Genes x samples.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        No file at ``path``.
    ValueError
        A binary or HDF5 file, an unreadable or empty table, duplicated sample names.
    """
    path = check_input_file(path, "profile")
    name = os.fspath(path)
    fmt, _ = suffixes(path)
    start = head(path)
    if fmt in (".h5ad", ".h5", ".hdf5", ".loom", ".zarr") or start.startswith(HDF5_MAGIC):
        msg = (
            f"{name!r} is an AnnData/HDF5 file; bulk inference reads genes x samples text tables "
            f"(TSV/CSV). For single-cell or spatial data use: secact activity {name} -o OUT.h5ad "
            "(in Python: secact.tl.activity)."
        )
        raise ValueError(msg)
    if b"\x00" in start:
        msg = (
            f"{name!r} is a binary file, not a text table; bulk inference reads genes x samples "
            "tables (TSV/CSV, optionally .gz), and secact activity reads .h5ad files."
        )
        raise ValueError(msg)
    lines = [ln for ln in start.decode("utf-8", errors="replace").splitlines() if ln.strip()]
    if not lines:
        raise _empty(name)
    sep = _separator(lines[0], fmt)
    try:
        frame = pd.read_csv(path, sep=sep, index_col=0, engine="python")
        header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, engine="python", index_col=None)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        msg = f"{name!r} is not a readable text table ({' '.join(str(err).split())})."
        raise ValueError(msg) from err
    except pd.errors.EmptyDataError as err:
        raise _empty(name) from err
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        msg = (
            f"{name!r} has {frame.shape[0]} gene row(s) and {frame.shape[1]} sample column(s); "
            "expected genes as rows (first column: gene symbols) and one column per sample."
        )
        raise ValueError(msg)
    # pandas renames duplicated header names (a, a.1): compare with the header as written
    samples = [str(v) for v in header.iloc[0].tolist()][-frame.shape[1] :]
    seen: set[str] = set()
    dup: list[str] = []
    for s in samples:
        if s in seen and s not in dup:
            dup.append(s)
        seen.add(s)
    if dup:
        msg = f"{name!r} has duplicated sample names {dup[:5]}; make the column names unique."
        raise ValueError(msg)
    return frame


def write_table(frame: pd.DataFrame, path: str | os.PathLike, *, index: bool = True) -> Path:
    """Write ``frame`` to ``path`` (complete or not at all); returns the path.

    The format follows the suffix: ``.csv`` comma-separated, else tab-separated; ``.gz``,
    ``.bz2`` or ``.xz`` compress.
    """
    path = Path(path)
    fmt, comp = suffixes(path)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="," if fmt == ".csv" else "\t", index=index, compression=COMPRESSIONS.get(comp))
    return path
