"""Accessor for ``secact.tl.ccc`` and ``secact.tl.ccc_spatial`` results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .. import _results as res

__all__ = ["ccc"]


def _entry(adata: Any, key: str) -> Mapping:
    if isinstance(adata, Mapping):  # an uns entry itself
        entry = adata
    else:
        uns = getattr(adata, "uns", None)
        if uns is None:
            msg = f"expected an AnnData with secact.tl.ccc or secact.tl.ccc_spatial results, got {type(adata).__name__}."
            raise TypeError(msg)
        if key not in uns:
            msg = (
                f"adata.uns has no {key!r} ({res._listing(adata)}); run `secact.tl.ccc(adata, groupby, "
                f"key_added={key!r})` or `secact.tl.ccc_spatial(...)` first."
            )
            raise KeyError(msg)
        entry = uns[key]
    if res.kind_of(entry) not in ("ccc", "ccc_spatial") and not (
        isinstance(entry, Mapping) and "links" in entry
    ):
        msg = (
            f"adata.uns[{key!r}] is not a `secact.tl.ccc` result nor a `secact.tl.ccc_spatial` one "
            "(no 'links' table)."
        )
        raise ValueError(msg)
    return entry


def links(entry: Mapping) -> pd.DataFrame:
    """The link table of a CCC entry (``"results"`` in files written before it was ``"links"``)."""
    return entry["links"] if "links" in entry else entry["results"]


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
    """The cell-cell communication links of :func:`secact.tl.ccc` or :func:`secact.tl.ccc_spatial`,
    strongest evidence first.

    Parameters
    ----------
    adata
        AnnData with results in ``adata.uns[key]`` (or that entry itself). Files written
        before both tools named their table ``"links"`` (``tl.ccc_spatial``: ``"results"``)
        are read too.
    key
        ``key_added`` used when computing (``"secact_ccc_spatial"`` for :func:`secact.tl.ccc_spatial`).
    sender, secreted_protein, receiver
        Keep only these senders / proteins / receivers (a name or a list).

    Returns
    -------
    pandas.DataFrame
        A new DataFrame, one row per link (columns as in the tool's Returns; ``sender``,
        ``secreted_protein``, ``receiver``, ``strength``, ``pvalue`` and ``padj`` in both),
        sorted by ``pvalue`` ascending (ties keep the stored order), with a fresh
        ``RangeIndex``.
    """
    table = links(_entry(adata, key))
    table = _subset(table, "sender", sender)
    table = _subset(table, "secreted_protein", secreted_protein)
    table = _subset(table, "receiver", receiver)
    return table.sort_values("pvalue", kind="stable").reset_index(drop=True)
