"""Groups x proteins dot plot: colour = (mean) activity, size = significance: ``secact.pl.dotplot``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats as st

from .._docs import doc_params
from ._heatmap import _columns_for, _top_columns
from ._utils import (
    DIVERGING,
    check_top,
    collapse,
    doc_figure,
    doc_returns,
    finish,
    group_values,
    label_fontsize,
    new_axes,
    symmetric_limit,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["dotplot"]


def _cell_tables(adata, groupby: str, key: str, alpha: float):
    """Mean z per group and fraction of significant cells (p < alpha, or ``|z|`` beyond it)."""
    from .._results import dense, x_stat
    from ..get import activity
    from ..get._activity import _kept_stats
    from ..tl._common import group_codes

    kept = _kept_stats(adata, key, "cells")
    if "zscore" not in kept:
        msg = f"the cell-level run kept {kept}; the dot plot needs 'zscore' (stats= of secact.tl.activity)."
        raise KeyError(msg)
    act = activity(adata, key, stat=x_stat(kept), level="cells")
    if groupby not in act.obs.columns:
        msg = f"groupby={groupby!r} is not a column of obs; columns: {list(act.obs.columns)}."
        raise KeyError(msg)
    z = dense(act.X)
    if "pvalue" in kept:
        significant = dense(act.layers["pvalue"]) < alpha
        rule = f"p < {alpha:g}"
    else:
        cut = float(st.norm.isf(alpha / 2))
        significant = np.abs(z) > cut
        rule = f"|z| > {cut:.2f}"
    codes, categories = group_codes(act.obs, groupby)
    used = [i for i in range(len(categories)) if (codes == i).any()]
    names = [str(categories[i]) for i in used]
    mean = np.vstack([np.nanmean(z[codes == i], axis=0) for i in used])
    frac = np.vstack([significant[codes == i].mean(axis=0) for i in used])
    index = pd.Index(names, name=groupby)
    mean = pd.DataFrame(mean, index=index, columns=act.var_names)
    frac = pd.DataFrame(frac, index=index, columns=act.var_names)
    return mean, frac, act.var["group"].astype(str), rule


@doc_params(figure=doc_figure, returns=doc_returns)
def dotplot(
    adata: Any,
    groupby: str | None = None,
    key: str = "secact",
    *,
    proteins: Sequence[str] | None = None,
    top: int = 3,
    alpha: float = 0.05,
    collapse_groups: bool = True,
    vmax: float | None = None,
    cmap: str = DIVERGING,
    dot_max: float = 220.0,
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | os.PathLike | None = None,
) -> Axes | Figure | None:
    """Dot plot of activities, groups (rows) x proteins (columns).

    With ``groupby`` (cell-level results): colour = mean z-score of the group's cells, size =
    fraction of its cells with significant activity (p < ``alpha`` when p-values were kept,
    else ``|z|`` above the two-sided normal quantile of ``alpha``). Without (group-level
    results): colour = the group's z-score, size = -log10 p-value.

    Parameters
    ----------
    adata
        AnnData with results of :func:`secact.tl.activity` (or a :class:`secact.ActivityResult`
        for the group-level form).
    groupby
        Column of ``obs`` grouping the cells; ``None``: the group-level results.
    key
        ``key_added`` of the run.
    proteins
        Proteins (or signature-group labels) to show, in order; default: the ``top``
        highest (mean) z-scores of each group.
    top
        Proteins per group when ``proteins`` is not given.
    alpha
        Significance level of a cell.
    collapse_groups
        One column per signature group (members share their results).
    vmax
        Colour limit, symmetric around 0 (default: the largest ``|value|`` shown).
    cmap
        Diverging colour map (white at 0).
    dot_max
        Area (points^2) of the largest dot.
    figsize
        Figure size in inches (default: from the numbers of rows and columns).
    {figure}

    Returns
    -------
    {returns}
    """
    if not 0 < alpha < 1:
        msg = f"alpha must be in (0, 1), got {alpha!r}."
        raise ValueError(msg)
    if groupby is not None:
        colour, size, sig_groups, rule = _cell_tables(adata, groupby, key, alpha)
        row_name, size_title, colour_label = groupby, f"cells with {rule}", "mean activity (z-score)"
        size_values = size
    else:
        tables, sig_groups, row_name = group_values(adata, key)
        if "pvalue" not in tables:
            msg = "group-level dot plots need p-values; pass results of secact.tl.activity(groupby=...)."
            raise KeyError(msg)
        colour, size = tables["zscore"], tables["pvalue"]
        size_values = -np.log10(size.clip(lower=np.finfo(np.float64).tiny))
        size_title, colour_label = "-log10 p-value", "activity (z-score)"
    if collapse_groups:
        colour, size_values = collapse(colour, sig_groups), collapse(size_values, sig_groups)
    if proteins is None:
        chosen = _top_columns(colour, check_top(top), "up")
    else:
        chosen = _columns_for(list(proteins), colour.columns, sig_groups if collapse_groups else None)
    c = colour.loc[:, chosen].to_numpy(dtype=np.float64)
    s = size_values.loc[:, chosen].to_numpy(dtype=np.float64)
    s_max = 1.0 if groupby is not None else max(float(np.nanmax(s)) if s.size else 1.0, 1e-12)
    lim = symmetric_limit(c, vmax)
    n_rows, n_cols = c.shape
    longest = max((len(str(x)) for x in chosen), default=4)
    if figsize is None:
        figsize = (max(4.4, 0.4 * n_cols + 3.0), max(3.0, 0.4 * n_rows + 0.075 * longest + 1.6))
    fig, ax, created = new_axes(ax, figsize)
    yy, xx = np.mgrid[0:n_rows, 0:n_cols]
    area = dot_max * np.nan_to_num(s / s_max, nan=0.0).clip(0, 1)
    dots = ax.scatter(
        xx.ravel(), yy.ravel(), s=area.ravel(), c=c.ravel(), cmap=cmap, vmin=-lim, vmax=lim,
        edgecolors="0.35", linewidths=0.4,
    )  # fmt: skip
    ax.set_xticks(range(n_cols), [str(x) for x in chosen], rotation=90, fontsize=label_fontsize(n_cols))
    ax.set_yticks(range(n_rows), [str(i) for i in colour.index], fontsize=label_fontsize(n_rows))
    ax.set_xlim(-0.6, n_cols - 0.4)
    ax.set_ylim(n_rows - 0.4, -0.6)
    ax.set_xlabel(
        "secreted protein" + (" (signature group)" if collapse_groups and sig_groups is not None else "")
    )
    ax.set_ylabel(str(row_name or "group"))
    ax.grid(color="0.92", linewidth=0.6)
    ax.set_axisbelow(True)
    fig.colorbar(dots, ax=ax, label=colour_label, shrink=min(1.0, max(0.5, 4.0 / max(n_rows, 1))), aspect=15)
    _size_legend(ax, dot_max, s_max, size_title, fraction=groupby is not None)
    return finish(fig, ax, created=created, show=show, return_fig=return_fig, save=save)


def _size_legend(ax, dot_max: float, s_max: float, title: str, *, fraction: bool) -> None:
    if fraction:
        steps = [0.25, 0.5, 0.75, 1.0]
        labels = [f"{v:.0%}" for v in steps]
    else:
        nice = np.array([1, 2, 5, 10, 20, 50, 100, 200, 500])
        steps_abs = [v for v in nice if v <= s_max][-4:] or [s_max]
        steps = [v / s_max for v in steps_abs]
        labels = [f"{v:g}" for v in steps_abs]
    handles = [
        ax.scatter([], [], s=dot_max * f, color="0.55", edgecolors="0.35", linewidths=0.4) for f in steps
    ]
    ax.legend(
        handles, labels, title=title, loc="lower center", bbox_to_anchor=(0.5, 1.01), ncols=len(handles),
        frameon=False, fontsize=8, title_fontsize=9, handletextpad=0.3, columnspacing=1.0, borderaxespad=0.2,
    )  # fmt: skip
