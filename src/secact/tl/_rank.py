"""Rank proteins per cell group by cell-level activity: ``secact.tl.rank_activities``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from scipy import stats as st

from .. import _results as _res
from .._docs import doc_params, doc_stored
from .._results import check_key, clean_uns
from ._common import group_codes

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["RANK_COLUMNS", "rank_activities"]

RANK_COLUMNS = (
    "group",
    "reference",
    "protein",
    "signature_group",
    "statistic",
    "meanchange",
    "mean_group",
    "mean_reference",
    "pvalue",
    "fdr",
)


@doc_params(stored=doc_stored)
def rank_activities(
    adata: AnnData | str | os.PathLike,
    groupby: str,
    *,
    key: str = "secact",
    stat: Literal["zscore", "beta"] = "zscore",
    method: Literal["wilcoxon", "t-test"] = "wilcoxon",
    reference: str = "rest",
    groups: Literal["all"] | Sequence[str] = "all",
    key_added: str = "secact_rank",
    copy: bool = False,
) -> AnnData | None:
    """Rank proteins in each group of cells by their cell-level activity, against the rest.

    For every group of ``adata.obs[groupby]`` and every protein, the group's cell-level
    activities (``x``) are compared with the reference cells' (``y``): the Wilcoxon
    rank-sum test (normal approximation with tie and continuity correction, as
    ``scipy.stats.mannwhitneyu(x, y, method="asymptotic")``; the statistic is its signed
    z-score) or Welch's t-test. Proteins of one signature group share their values and
    therefore their rank.

    Parameters
    ----------
    adata
        AnnData with cell-level results of :func:`secact.tl.activity` (in ``obsm`` or a
        sidecar, see :func:`secact.get.activity`) and ``obs[groupby]``, or its ``.h5ad`` path.
    groupby
        Column of ``obs`` with the cell groups. Cells with a missing label are left out.
    key
        ``key_added`` of the activity run.
    stat
        Cell-level statistic compared: ``"zscore"`` or ``"beta"``.
    method
        ``"wilcoxon"`` or ``"t-test"`` (Welch).
    reference
        ``"rest"`` (all other labelled cells) or the name of a group.
    groups
        ``"all"`` or the groups to rank (the reference is never ranked against itself).
    key_added
        Results go to ``adata.uns[key_added]``.
    copy
        Return a copy of ``adata`` with the results instead of modifying it.

    Returns
    -------
    anndata.AnnData or None
        {stored}

        ``adata.uns[key_added]`` is ``{{"results": DataFrame, "params":
        dict}}``; the DataFrame (read it with :func:`secact.get.rank_activities`) has one row
        per group and protein, groups in category order, proteins by ``statistic`` descending:

        ``group``, ``reference``, ``protein``, ``signature_group``
            Labels (``signature_group`` as ``var["group"]`` of :func:`secact.get.activity`).
        ``statistic``
            Signed Wilcoxon z-score or Welch t (positive: more active in the group).
        ``meanchange``, ``mean_group``, ``mean_reference``
            Mean activity of the group's and the reference cells and their difference.
        ``pvalue``, ``fdr``
            Two-sided p-value; Benjamini-Hochberg within the group.
    """
    from ..get._activity import activity, bh_rows

    if method not in ("wilcoxon", "t-test"):
        msg = f"method must be 'wilcoxon' or 't-test', got {method!r}."
        raise ValueError(msg)
    if stat not in ("zscore", "beta"):
        msg = f"stat must be 'zscore' or 'beta', got {stat!r}."
        raise ValueError(msg)
    check_key(key_added)
    act = activity(adata, key, stat=stat, level="cells")
    dest = _res.target(adata, copy=copy, obs=act.obs)
    if groupby not in act.obs.columns:
        msg = f"groupby={groupby!r} is not a column of obs; columns: {list(act.obs.columns)}."
        raise KeyError(msg)
    codes, categories = group_codes(act.obs, groupby)
    names = [str(c) for c in categories]
    labelled = codes >= 0
    ref_code = -1
    if reference != "rest":
        if str(reference) not in names:
            msg = f"reference {reference!r} is not a group of {groupby!r}: {names}."
            raise ValueError(msg)
        ref_code = names.index(str(reference))
    wanted = names if groups == "all" else [str(g) for g in ([groups] if isinstance(groups, str) else groups)]
    unknown = [g for g in wanted if g not in names]
    if unknown:
        msg = f"groups {unknown} are not groups of {groupby!r}: {names}."
        raise ValueError(msg)
    values = _res.dense(act.X)
    proteins = act.var_names.astype(str).to_numpy()
    sig_groups = act.var["group"].astype(str).to_numpy()
    ranks = st.rankdata(values[labelled], axis=0) if method == "wilcoxon" and ref_code < 0 else None
    ties = _tie_term(ranks) if ranks is not None else None
    frames, skipped = [], []
    for g in wanted:
        code = names.index(g)
        if code == ref_code:
            continue
        in_group = codes == code
        in_ref = labelled & ~in_group if ref_code < 0 else codes == ref_code
        if in_group.sum() < 2 or in_ref.sum() < 2:
            skipped.append(g)
            continue
        x, y = values[in_group], values[in_ref]
        if method == "t-test":
            statistic, pvalue = st.ttest_ind(x, y, axis=0, equal_var=False)
        elif ranks is not None:  # against the rest: one ranking over all labelled cells
            statistic, pvalue = _ranksum(ranks[in_group[labelled]], len(ranks), ties)
        else:
            both = in_group | in_ref
            pooled = st.rankdata(values[both], axis=0)
            statistic, pvalue = _ranksum(pooled[in_group[both]], len(pooled), _tie_term(pooled))
        mean_g, mean_r = x.mean(axis=0), y.mean(axis=0)
        frame = pd.DataFrame(
            {
                "group": g,
                "reference": str(reference),
                "protein": proteins,
                "signature_group": sig_groups,
                "statistic": np.asarray(statistic, dtype=np.float64),
                "meanchange": mean_g - mean_r,
                "mean_group": mean_g,
                "mean_reference": mean_r,
                "pvalue": np.asarray(pvalue, dtype=np.float64),
            }
        )
        _, first, inverse = np.unique(sig_groups, return_index=True, return_inverse=True)
        frame["fdr"] = bh_rows(frame["pvalue"].to_numpy()[first])[inverse]
        order = np.lexsort(
            (np.arange(len(frame)), -np.nan_to_num(frame["statistic"].to_numpy(), nan=-np.inf))
        )
        frames.append(frame.iloc[order])
    if not frames:
        msg = f"no group of {groupby!r} has 2 or more cells (and a reference of 2 or more); nothing to rank."
        raise ValueError(msg)
    result = pd.concat(frames, ignore_index=True)
    tested = [g for g in wanted if g in set(result["group"])]
    result["group"] = pd.Categorical(result["group"], categories=tested)
    for col in ("reference", "protein", "signature_group"):
        result[col] = pd.Categorical(result[col])
    params = {
        "groupby": groupby,
        "key": key,
        "stat": stat,
        "method": method,
        "reference": str(reference),
        "skipped_groups": skipped,
    }
    entry = {"results": result[list(RANK_COLUMNS)], "params": clean_uns(params)}
    return _res.store(dest, "rank", key_added, entry)


def _ranksum(group_ranks: np.ndarray, n: int, tie: np.ndarray):
    """Signed z and two-sided p of the rank-sum test from the group's ranks among ``n`` cells."""
    n1 = group_ranks.shape[0]
    n2 = n - n1
    u = group_ranks.sum(axis=0) - n1 * (n1 + 1) / 2
    mu = n1 * n2 / 2
    sigma = np.sqrt(n1 * n2 / 12 * ((n + 1) - tie / (n * (n - 1))))
    diff = u - mu
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.sign(diff) * np.maximum(np.abs(diff) - 0.5, 0) / sigma
        p = np.where(sigma > 0, 2 * st.norm.sf(np.abs(z)), 1.0)
    z = np.where(sigma > 0, z, 0.0)
    return z, np.minimum(p, 1.0)


def _tie_term(ranks: np.ndarray) -> np.ndarray:
    """``sum(t**3 - t)`` over tied blocks of each column (from average ranks)."""
    s = np.sort(ranks, axis=0)
    out = np.zeros(ranks.shape[1])
    for j in np.flatnonzero((np.diff(s, axis=0) == 0).any(axis=0)):
        _, t = np.unique(s[:, j], return_counts=True)
        out[j] = float((t.astype(np.float64) ** 3 - t).sum())
    return out
