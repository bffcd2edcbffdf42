"""Accessors for ``secact.tl.differential`` results."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import _results as _res
from .._results import DE_COLUMNS

__all__ = ["de_matrix", "differential"]

_VALUES = DE_COLUMNS[2:]  # every column but group and gene


def _results(adata: Any, key: str) -> pd.DataFrame:
    if isinstance(adata, pd.DataFrame):
        return adata
    uns = getattr(adata, "uns", None)
    if uns is None:
        raise TypeError(f"expected an AnnData or a results DataFrame, got {type(adata).__name__}.")
    if key not in uns:
        raise KeyError(
            f"adata.uns has no {key!r} ({_res.describe_keys(adata)}); run "
            f"`secact.tl.differential(adata, ..., key_added={key!r})` first."
        )
    entry = uns[key]
    if isinstance(entry, pd.DataFrame):
        return entry
    if not isinstance(entry, dict) or "results" not in entry:
        raise ValueError(f"adata.uns[{key!r}] is not a `secact.tl.differential` result.")
    return entry["results"]


def differential(
    adata: Any,
    key: str = "secact_de",
    group: str | list[str] | None = None,
    *,
    sort_by: str | None = "zscore",
) -> pd.DataFrame:
    """Differential expression results of :func:`secact.tl.differential`.

    Ordered like :func:`scanpy.get.rank_genes_groups_df`: groups in their tested (category)
    order and, within each group, genes by ``sort_by`` descending.

    Parameters
    ----------
    adata
        AnnData with results in ``adata.uns[key]`` (or the results DataFrame itself).
    key
        ``key_added`` used when computing.
    group
        Restrict to one group or a list of groups.
    sort_by
        Column sorting the genes of each group, descending (NaN last; ties keep ``var``
        order): ``"zscore"`` (default; up-regulated first), ``"statistic"``, ``"log2fc"``,
        ... ``"pvalue"`` and ``"fdr"`` sort ascending. ``None`` keeps the stored order
        (groups, then genes in ``var`` order).

    Returns
    -------
    pandas.DataFrame
        Tidy DataFrame with columns ``group``, ``gene``, ``statistic``, ``zscore``, ``pvalue``,
        ``fdr``, ``log2fc``, ``pct_group``, ``pct_reference``, ``mean_group``,
        ``mean_reference`` (a copy, with a fresh index).
    """
    df = _results(adata, key)
    if sort_by is not None and sort_by not in _VALUES:
        raise ValueError(f"sort_by must be None or one of {_VALUES}, got {sort_by!r}.")
    if group is not None:
        wanted = [group] if isinstance(group, str) else [str(g) for g in group]
        known = set(
            map(str, df["group"].cat.categories if hasattr(df["group"], "cat") else df["group"].unique())
        )
        missing = [g for g in wanted if g not in known]
        if missing:
            raise KeyError(f"group(s) {missing} not in the results; groups: {sorted(known)}")
        df = df[df["group"].astype(str).isin(wanted)]
    if sort_by is None:
        return df.reset_index(drop=True)
    return _sorted(df, sort_by)


def _sorted(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Rows by group (category / first-seen order), then ``by`` (descending; p-values ascending)."""
    grp = df["group"]
    codes = grp.cat.codes.to_numpy() if hasattr(grp, "cat") else pd.factorize(grp)[0]
    values = df[by].to_numpy(dtype=float)
    key = values if by in ("pvalue", "fdr") else -values
    key = np.where(np.isnan(key), np.inf, key)
    order = np.lexsort((np.arange(len(df)), key, codes))
    return df.iloc[order].reset_index(drop=True)


def de_matrix(adata: Any, key: str = "secact_de", value: str = "log2fc") -> pd.DataFrame:
    """Pivot differential expression results to a genes x groups DataFrame.

    The result is suitable as the differential-profile input of
    ``secact.infer(..., differential=True)`` (genes x samples).

    Parameters
    ----------
    adata
        AnnData with results in ``adata.uns[key]`` (or the results DataFrame itself).
    key
        ``key_added`` used when computing.
    value
        Column to pivot: one of ``statistic``, ``zscore``, ``pvalue``, ``fdr``, ``log2fc``,
        ``pct_group``, ``pct_reference``, ``mean_group``, ``mean_reference``.

    Returns
    -------
    pandas.DataFrame
        DataFrame indexed by gene (``var`` order) with one column per group (tested order).
    """
    if value not in _VALUES:
        raise ValueError(f"value must be one of {_VALUES}, got {value!r}.")
    df = _results(adata, key)
    genes = df["gene"].astype(str)
    groups = df["group"].astype(str)
    gene_order = pd.unique(genes)
    group_order = pd.unique(groups)
    if genes.duplicated().any() and pd.MultiIndex.from_arrays([groups, genes]).duplicated().any():
        raise ValueError("duplicate gene names within a group; make var names unique before pivoting.")
    mat = pd.DataFrame({"gene": genes, "group": groups, "v": df[value].to_numpy()}).pivot(
        index="gene", columns="group", values="v"
    )
    mat = mat.reindex(index=gene_order, columns=group_order)
    mat.index.name = None
    mat.columns.name = None
    return mat
