"""Accessor for ``secact.tl.ccc`` and ``secact.tl.ccc_spatial`` results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

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
                f"adata.uns has no {key!r} ({res.describe_keys(adata)}); run `secact.tl.ccc(adata, groupby, "
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


TABLES = ("links", "expression", "activity", "cell_types", "spatial_correlation")


def ccc(
    adata: Any,
    key: str = "secact_ccc",
    *,
    sender: str | Sequence[str] | None = None,
    secreted_protein: str | Sequence[str] | None = None,
    receiver: str | Sequence[str] | None = None,
    table: Literal["links", "expression", "activity", "cell_types", "spatial_correlation"] = "links",
) -> pd.DataFrame:
    """The cell-cell communication links of :func:`secact.tl.ccc` or :func:`secact.tl.ccc_spatial`,
    strongest evidence first (or one of the tables of their steps).

    Parameters
    ----------
    adata
        AnnData with results in ``adata.uns[key]`` (or that entry itself). Files written
        before both tools named their table ``"links"`` (``tl.ccc_spatial``: ``"results"``)
        are read too.
    key
        ``key_added`` used when computing (``"secact_ccc_spatial"`` for :func:`secact.tl.ccc_spatial`).
    sender, secreted_protein, receiver
        Keep only these senders / proteins / receivers (a name or a list; links only).
    table
        ``"links"`` (default). ``tl.ccc``'s steps: ``"expression"`` (step 1, one row per cell
        type and secreted-protein gene), ``"activity"`` (step 2, one row per cell type and
        protein: ``beta``, ``se``, ``zscore``, ``pvalue``, ``padj``) or ``"cell_types"``
        (``n_case``, ``n_control``, ``analysed``). ``tl.ccc_spatial``'s filter:
        ``"spatial_correlation"`` (one row per protein: ``r``, ``pvalue``, ``padj``).

    Returns
    -------
    pandas.DataFrame
        A new DataFrame with a fresh ``RangeIndex``. Links: one row per link (columns as in
        the tool's Returns; ``sender``, ``secreted_protein``, ``receiver``, ``strength``,
        ``pvalue`` and ``padj`` in both), sorted by ``pvalue`` ascending (ties keep the
        stored order). The other tables in their stored order, the row labels as the first
        column (``cell_type`` or ``protein``).
    """
    entry = _entry(adata, key)
    if table != "links":
        if any(v is not None for v in (sender, secreted_protein, receiver)):
            raise ValueError(
                "sender=, secreted_protein= and receiver= select links; use them with table='links'."
            )
        return _step_table(entry, key, table)
    found = links(entry)
    found = _subset(found, "sender", sender)
    found = _subset(found, "secreted_protein", secreted_protein)
    found = _subset(found, "receiver", receiver)
    return found.sort_values("pvalue", kind="stable").reset_index(drop=True)


def _step_table(entry: Mapping, key: str, table: str) -> pd.DataFrame:
    if table not in TABLES:
        raise ValueError(f"table must be one of {TABLES}, got {table!r}.")
    if table not in entry:
        tool = "secact.tl.ccc_spatial" if table == "spatial_correlation" else "secact.tl.ccc"
        raise KeyError(f"adata.uns[{key!r}] has no {table!r} table; it is a table of {tool} results.")
    stored = entry[table]
    if table == "expression":
        return stored.reset_index(drop=True)
    if table == "activity":
        frames = {k: v for k, v in stored.items() if isinstance(v, pd.DataFrame)}
        first = next(iter(frames.values()))
        long = pd.DataFrame(
            {
                "cell_type": pd.Categorical(
                    [str(c) for c in first.index for _ in first.columns],
                    categories=[str(c) for c in first.index],
                ),
                "protein": [str(p) for _ in first.index for p in first.columns],
            }
        )
        for name, frame in frames.items():
            long[name] = frame.loc[first.index, first.columns].to_numpy().reshape(-1)
        return long
    label = "cell_type" if table == "cell_types" else "protein"
    out = stored.copy()
    out.index = out.index.astype(str)
    return out.rename_axis(label).reset_index()
