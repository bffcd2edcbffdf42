"""Results of :func:`secact.tl.rank_activities` out of AnnData."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .. import _results as _res

__all__ = ["rank_activities"]


def rank_activities(
    adata: Any,
    key: str = "secact_rank",
    group: str | list[str] | None = None,
    *,
    fdr: float | None = None,
) -> pd.DataFrame:
    """Proteins ranked per group by :func:`secact.tl.rank_activities`.

    Parameters
    ----------
    adata
        AnnData with results in ``adata.uns[key]`` (or the results DataFrame itself).
    key
        ``key_added`` of the ranking.
    group
        Restrict to one group or a list of groups.
    fdr
        Keep only rows with ``fdr`` at most this value.

    Returns
    -------
    pandas.DataFrame
        DataFrame with columns ``group``, ``reference``, ``protein``, ``signature_group``,
        ``statistic``, ``meanchange``, ``mean_group``, ``mean_reference``, ``pvalue``, ``fdr``;
        groups in category order, proteins by ``statistic`` descending (a copy).
    """
    if isinstance(adata, pd.DataFrame):
        df = adata
    else:
        uns = getattr(adata, "uns", None)
        if uns is None:
            raise TypeError(f"expected an AnnData or a results DataFrame, got {type(adata).__name__}.")
        entry = uns.get(key)
        if entry is None:
            raise KeyError(
                f"adata.uns has no {key!r} ({_res.describe_keys(adata)}); run "
                f"`secact.tl.rank_activities(adata, groupby, key_added={key!r})` first."
            )
        if not isinstance(entry, dict) or "results" not in entry or "protein" not in entry["results"]:
            raise ValueError(f"adata.uns[{key!r}] is not a `secact.tl.rank_activities` result.")
        df = entry["results"]
    if group is not None:
        wanted = [group] if isinstance(group, str) else [str(g) for g in group]
        known = [str(g) for g in pd.unique(df["group"].astype(str))]
        missing = [g for g in wanted if g not in known]
        if missing:
            raise KeyError(f"group(s) {missing} not in the results; groups: {known}")
        df = df[df["group"].astype(str).isin(wanted)]
    if fdr is not None:
        df = df[df["fdr"] <= fdr]
    return df.reset_index(drop=True)
