"""Top up- and down-regulated activities of one group or sample: ``bar`` and ``lollipop``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from .._docs import doc_params
from ._utils import DOWN, UP, check_top, collapse, doc_figure, doc_returns, finish, group_values, new_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["bar", "lollipop"]

_STAT_LABEL = {"zscore": "activity (z-score)", "beta": "activity (beta)"}

doc_selection = """\
data
    A :class:`pandas.Series` (protein -> activity), a :class:`secact.ActivityResult`
    (bulk, from :func:`secact.infer`), an AnnData with results of
    :func:`secact.tl.activity` (group level by default, see ``level``), or an
    observations x proteins DataFrame; or the table of :func:`secact.tl.coxph` (its risk
    scores, as SecAct R's vignette plots them).
group
    The group, sample or cell to show (may be omitted when there is only one; for a
    :func:`secact.tl.coxph` table: the title).
key
    ``key_added`` of the run (AnnData input).
stat
    ``"zscore"`` (default) or ``"beta"``.
level
    ``"groups"`` or ``"cells"`` (AnnData input).
top
    Number of the highest and of the lowest activities shown (each side; a side with fewer
    positive / negative values shows what there is).
collapse_groups
    One entry per signature group (members share their result; named ``"A|B"``)."""


def _selection(data, group, key, stat, level, top, collapse_groups) -> tuple[pd.Series, str]:
    if stat not in _STAT_LABEL:
        msg = f"stat must be 'zscore' or 'beta', got {stat!r}."
        raise ValueError(msg)
    top = check_top(top)
    label = _STAT_LABEL[stat]
    if isinstance(data, pd.DataFrame) and "risk_z" in data.columns:  # a tl.coxph table
        values, name, sig_groups = data["risk_z"].astype(np.float64), str(group or ""), None
        label = "risk score (Cox z)"
    elif isinstance(data, pd.Series):
        values, name, sig_groups = data.astype(np.float64), str(data.name or ""), None
    else:
        from ._utils import resolve_group

        tables, sig_groups, _ = group_values(data, key, level=level, stats=(stat,))
        if stat not in tables:
            msg = f"{stat!r} is not among the stored statistics."
            raise KeyError(msg)
        table = tables[stat]
        name = resolve_group(tables, None if group is None else str(group))
        table.index = table.index.astype(str)
        values = table.loc[name]
    if collapse_groups and sig_groups is not None:
        values = collapse(values.to_frame().T, sig_groups).iloc[0]
    values = values[np.isfinite(values.to_numpy(dtype=np.float64))]
    up = values[values > 0].sort_values(ascending=False, kind="stable").iloc[:top]
    down = values[values < 0].sort_values(ascending=True, kind="stable").iloc[:top]
    shown = pd.concat([up, down]).sort_values(ascending=True, kind="stable")
    if shown.empty:
        msg = f"no non-zero finite activity to show for {name!r}."
        raise ValueError(msg)
    return shown, name, label


def _draw(kind, data, group, key, stat, level, top, collapse_groups, figsize, ax, show, return_fig, save):
    shown, name, label = _selection(data, group, key, stat, level, top, collapse_groups)
    n = len(shown)
    longest = max(len(str(i)) for i in shown.index)
    if figsize is None:
        figsize = (max(3.6, 2.6 + 0.07 * longest), max(2.4, 0.24 * n + 1.0))
    fig, ax, created = new_axes(ax, figsize)
    y = np.arange(n)
    v = shown.to_numpy(dtype=np.float64)
    colours = np.where(v > 0, UP, DOWN)
    if kind == "bar":
        ax.barh(y, v, color=colours, height=0.75)
    else:
        ax.hlines(y, 0, v, color=colours, linewidth=1.6)
        ax.scatter(v, y, color=colours, s=42, zorder=3, edgecolors="white", linewidths=0.6)
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.set_yticks(y, [str(i) for i in shown.index], fontsize=9 if n <= 30 else 7)
    ax.set_ylim(-0.7, n - 0.3)
    # a margin of the whole span on both sides: a small negative dot stays off the spine
    lo, hi = min(0.0, float(v.min())), max(0.0, float(v.max()))
    pad = 0.08 * (hi - lo or 1.0)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_xlabel(label)
    if name:
        ax.set_title(name)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="x", color="0.9", linewidth=0.6)
    ax.set_axisbelow(True)
    return finish(fig, ax, created=created, show=show, return_fig=return_fig, save=save)


@doc_params(selection=doc_selection, figure=doc_figure, returns=doc_returns)
def bar(
    data: Any,
    group: str | None = None,
    key: str = "secact",
    *,
    stat: Literal["zscore", "beta"] = "zscore",
    level: Literal["groups", "cells"] = "groups",
    top: int = 10,
    collapse_groups: bool = True,
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | os.PathLike | None = None,
) -> Axes | Figure | None:
    """Bar plot of the highest (red) and lowest (blue) activities of one group or sample.

    The Python counterpart of SecAct R's ``SecAct.bar.plot``: horizontal bars sorted by
    activity, positive in red, negative in blue.

    Parameters
    ----------
    {selection}
    figsize
        Figure size in inches (default: from the number of bars).
    {figure}

    Returns
    -------
    {returns}
    """
    return _draw(
        "bar", data, group, key, stat, level, top, collapse_groups, figsize, ax, show, return_fig, save
    )


@doc_params(selection=doc_selection, figure=doc_figure, returns=doc_returns)
def lollipop(
    data: Any,
    group: str | None = None,
    key: str = "secact",
    *,
    stat: Literal["zscore", "beta"] = "zscore",
    level: Literal["groups", "cells"] = "groups",
    top: int = 10,
    collapse_groups: bool = True,
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | os.PathLike | None = None,
) -> Axes | Figure | None:
    """Lollipop plot of the highest (red) and lowest (blue) activities of one group or sample.

    The counterpart of SecAct R's ``SecAct.lollipop.plot``: a stem from 0 and a dot per
    protein, sorted by activity.

    Parameters
    ----------
    {selection}
    figsize
        Figure size in inches (default: from the number of proteins).
    {figure}

    Returns
    -------
    {returns}
    """
    return _draw(
        "lollipop", data, group, key, stat, level, top, collapse_groups, figsize, ax, show, return_fig, save
    )
