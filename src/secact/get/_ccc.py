"""Accessor for ``secact.tl.ccc`` results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = ["ccc"]


def _entry(adata: Any, key: str) -> Mapping:
    if isinstance(adata, Mapping):  # the results dict of a path input
        entry = adata
    else:
        uns = getattr(adata, "uns", None)
        if uns is None:
            msg = f"expected an AnnData or a secact.tl.ccc results dict, got {type(adata).__name__}."
            raise TypeError(msg)
        if key not in uns:
            msg = f"adata.uns has no {key!r}; run `secact.tl.ccc(adata, groupby, key_added={key!r})` first."
            raise KeyError(msg)
        entry = uns[key]
    if not isinstance(entry, Mapping) or "links" not in entry:
        msg = f"adata.uns[{key!r}] is not a `secact.tl.ccc` result (no 'links' table)."
        raise ValueError(msg)
    return entry


def _subset(table: pd.DataFrame, column: str, values: str | Sequence[str] | None) -> pd.DataFrame:
    if values is None:
        return table
    wanted = [values] if isinstance(values, str) else [str(v) for v in values]
    return table[table[column].astype(str).isin(wanted)]


def ccc(
    adata: Any,
    key: str = "secact_ccc",
    *,
    sender: str | Sequence[str] | None = None,
    secreted_protein: str | Sequence[str] | None = None,
    receiver: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """The cell-cell communication links of :func:`secact.tl.ccc`, strongest evidence first.

    Parameters
    ----------
    adata
        AnnData with results in ``adata.uns[key]`` (or the results dict a path input returns).
    key
        ``key_added`` used when computing.
    sender, secreted_protein, receiver
        Keep only these senders / proteins / receivers (a name or a list).

    Returns
    -------
    pandas.DataFrame
        A new DataFrame, one row per link (columns as in :func:`secact.tl.ccc`), sorted by the
        combined p-value ``pvalue`` ascending (ties keep the stored order), with a fresh
        ``RangeIndex``.
    """
    table = _entry(adata, key)["links"]
    table = _subset(table, "sender", sender)
    table = _subset(table, "secreted_protein", secreted_protein)
    table = _subset(table, "receiver", receiver)
    return table.sort_values("pvalue", kind="stable").reset_index(drop=True)
