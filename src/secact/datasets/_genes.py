"""Gene tables shipped with secact: NCBI alias → symbol and mouse → human homologues.

Both tables are the ones SecAct R reads from its ``inst/extdata`` folder; the loaders below
reproduce what R's ``read.csv`` makes of them, so that symbol mapping gives R's answers.
"""

from __future__ import annotations

import csv
import gzip
import io
from functools import lru_cache
from pathlib import Path

import pandas as pd

__all__ = ["ALIAS_FILE", "MOUSE2HUMAN_FILE", "alias_table", "mouse_to_human"]

ALIAS_FILE = "NCBI_20251008_gene_result_alias2symbol.csv.gz"
MOUSE2HUMAN_FILE = "Mouse2Human_filter.csv.gz"


_DATA = Path(__file__).parent / "data"


def _data_file(name: str) -> Path:
    return _DATA / name


def _read_r_csv_records(raw: bytes, n_columns: int) -> tuple[list[str], list[list[str]]]:
    """Records of a CSV text as R's ``read.csv(..., as.is=TRUE)`` forms them.

    R fixes the number of columns from the header and reads with ``fill=TRUE`` and
    ``multi.line=FALSE``: a line with more fields than columns is cut into several records
    (the surplus fields start a new record), and a short record is padded with empty strings.
    A handful of NCBI aliases contain an unquoted comma (``NERF-1a,b``), which this matters
    for. Blank lines are skipped.
    """
    text = io.StringIO(raw.decode("utf-8"), newline="")
    reader = csv.reader(text)
    header = next(reader)
    records: list[list[str]] = []
    for fields in reader:
        if not fields:
            continue
        for start in range(0, len(fields), n_columns):
            rec = fields[start : start + n_columns]
            if len(rec) < n_columns:
                rec = rec + [""] * (n_columns - len(rec))
            records.append(rec)
    return header, records


@lru_cache(maxsize=1)
def alias_table() -> pd.Series:
    """NCBI gene alias → official symbol, as SecAct R's ``transferSymbol`` uses it.

    The table (NCBI gene, 2025-10-08, human) lists every alias, and every symbol as an alias of
    itself. R reads it with ``read.csv(as.is=TRUE)`` and then turns the missing ``Alias``
    entries (the gene literally called ``"NA"``, an alias of *XK*) back into the string
    ``"NA"``; ``match`` then returns the FIRST row of an alias. This loader gives the same
    answers: strings are kept verbatim (no ``NA``/``nan``/``NULL`` conversion, no case
    change), lines holding an unquoted comma are split into records the way R splits them,
    and only the first row of each alias is kept.

    Returns
    -------
    pandas.Series
        Index: unique aliases (``str``), in file order of first appearance; values: symbols.
        Cached; do not modify.
    """
    raw = gzip.decompress(_data_file(ALIAS_FILE).read_bytes())
    header, records = _read_r_csv_records(raw, 2)
    if header[:2] != ["Alias", "Symbol"]:
        raise ValueError(f"{ALIAS_FILE}: unexpected header {header!r}")
    frame = pd.DataFrame(records, columns=["Alias", "Symbol"], dtype=object)
    frame = frame.drop_duplicates("Alias", keep="first")
    table = pd.Series(frame["Symbol"].to_numpy(), index=pd.Index(frame["Alias"].to_numpy(), name="Alias"))
    table.name = "Symbol"
    return table


@lru_cache(maxsize=1)
def mouse_to_human() -> pd.DataFrame:
    """Mouse → human homologue table (``Mouse2Human_filter.csv`` of SecAct R / SpaCET).

    Returns
    -------
    pandas.DataFrame
        Columns ``homoloid``, ``mouse``, ``human`` (gene symbols as ``str``, read verbatim:
        no missing-value conversion); index: the file's unnamed first column. Each mouse
        symbol appears once; several mouse genes can share a human symbol. Cached; do not
        modify.
    """
    with _data_file(MOUSE2HUMAN_FILE).open("rb") as fh:
        frame = pd.read_csv(
            fh,
            compression="gzip",
            index_col=0,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
        )
    frame.index.name = None
    missing = {"mouse", "human"} - set(frame.columns)
    if missing:
        raise ValueError(f"{MOUSE2HUMAN_FILE}: missing columns {sorted(missing)}")
    return frame
