"""Groups x proteins heatmap of group-level activity: ``secact.pl.heatmap``."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from .._docs import doc_params
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
    text_colour,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["activity_heatmap", "heatmap"]


def _top_columns(z: pd.DataFrame, top: int, direction: str) -> list[str]:
    """The ``top`` columns of each row (highest, lowest or largest ``|z|``), first seen first."""
    chosen: list[str] = []
    for _, row in z.iterrows():
        key = {"up": -row, "down": row, "both": -row.abs()}[direction]
        for name in key.sort_values(kind="stable").index[:top]:
            if name not in chosen and np.isfinite(row[name]):
                chosen.append(name)
    return chosen


@doc_params(figure=doc_figure, returns=doc_returns)
def heatmap(
    data: Any,
    key: str = "secact",
    *,
    proteins: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    top: int = 5,
    direction: Literal["up", "down", "both"] = "up",
    collapse_groups: bool = True,
    alpha: float | None = 0.05,
    marker: str = "*",
    vmax: float | None = None,
    cmap: str = DIVERGING,
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | os.PathLike | None = None,
) -> Axes | Figure | None:
    """Heatmap of activity z-scores, groups (rows) x proteins (columns), centred at 0.

    Parameters
    ----------
    data
        AnnData with group-level results of :func:`secact.tl.activity` (``groupby=``), the
        groups x proteins AnnData of a path input, a :class:`secact.ActivityResult` (samples
        as rows) or a groups x proteins DataFrame of z-scores (no significance marks).
    key
        ``key_added`` of the run.
    proteins
        Proteins (or signature-group labels such as ``"IL1B|TNFA"``) to show, in this order;
        default: the ``top`` of each group.
    groups
        Rows to show, in this order (default: all).
    top
        Proteins per group when ``proteins`` is not given.
    direction
        ``"up"`` (highest z of each group), ``"down"`` (lowest) or ``"both"`` (largest ``|z|``).
    collapse_groups
        One column per signature group (members of a group have identical results; the
        column is named by the members joined with ``"|"``). ``False``: one per protein.
    alpha
        Mark cells with p-value below ``alpha`` with ``marker`` (``None``: no marks).
    marker
        Text drawn on significant cells.
    vmax
        Colour limit, symmetric around 0 (default: the largest ``|z|`` shown).
    cmap
        Diverging colour map (white at 0).
    figsize
        Figure size in inches (default: from the numbers of rows and columns).
    {figure}

    Returns
    -------
    {returns}
    """
    tables, sig_groups, row_name = group_values(data, key)
    z = tables["zscore"]
    p = tables.get("pvalue")
    if collapse_groups:
        z, p = collapse(z, sig_groups), None if p is None else collapse(p, sig_groups)
    if groups is not None:
        missing = [g for g in groups if g not in z.index]
        if missing:
            msg = f"groups not in the results: {missing[:5]}; groups: {list(z.index)[:20]}."
            raise KeyError(msg)
        z = z.loc[list(groups)]
    if proteins is None:
        if direction not in ("up", "down", "both"):
            msg = f"direction must be 'up', 'down' or 'both', got {direction!r}."
            raise ValueError(msg)
        proteins = _top_columns(z, check_top(top), direction)
    else:
        proteins = _columns_for(list(proteins), z.columns, sig_groups if collapse_groups else None)
    data_ = z.loc[:, proteins]
    values = data_.to_numpy(dtype=np.float64)
    lim = symmetric_limit(values, vmax)
    n_rows, n_cols = values.shape
    longest = max((len(str(c)) for c in data_.columns), default=4)
    if figsize is None:
        figsize = (max(4.0, 0.34 * n_cols + 2.8), max(2.6, 0.34 * n_rows + 0.075 * longest + 1.0))
    fig, ax, created = new_axes(ax, figsize)
    image = ax.imshow(values, cmap=cmap, vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
    ax.set_xticks(
        range(n_cols), [str(c) for c in data_.columns], rotation=90, fontsize=label_fontsize(n_cols)
    )
    ax.set_yticks(range(n_rows), [str(i) for i in data_.index], fontsize=label_fontsize(n_rows))
    ax.set_xticks(np.arange(n_cols + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n_rows + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_xlabel(
        "secreted protein" + (" (signature group)" if collapse_groups and sig_groups is not None else "")
    )
    ax.set_ylabel(str(row_name or "group"))
    label = "activity (z-score)"
    if alpha is not None and p is not None:
        pv = p.loc[data_.index, proteins].to_numpy(dtype=np.float64)
        cm = image.get_cmap()
        for i, j in zip(*np.nonzero(pv < alpha), strict=True):
            colour = text_colour(cm(image.norm(values[i, j])))
            ax.text(j, i, marker, ha="center", va="center", color=colour, fontsize=9)
        label += f"\n{marker}: p < {alpha:g}"
    fig.colorbar(image, ax=ax, label=label, shrink=min(1.0, max(0.5, 4.0 / max(n_rows, 1))), aspect=15)
    return finish(fig, ax, created=created, show=show, return_fig=return_fig, save=save)


def _columns_for(wanted: list[str], columns: pd.Index, groups: pd.Series | None) -> list[str]:
    """Columns of the (possibly collapsed) table for requested proteins or group labels."""
    out: list[str] = []
    missing = []
    for name in wanted:
        col = name if name in columns else None
        if col is None and groups is not None and name in groups.index:
            col = groups[name]
        if col is None or col not in columns:
            missing.append(name)
        elif col not in out:
            out.append(col)
    if missing:
        msg = f"proteins not in the results: {missing[:5]}."
        raise KeyError(msg)
    return out


def activity_heatmap(data: Any, key: str = "secact", **kwargs) -> Axes | Figure | None:
    """Deprecated name of :func:`~secact.pl.heatmap` (same parameters).

    Parameters
    ----------
    data
        See :func:`~secact.pl.heatmap`.
    key
        See :func:`~secact.pl.heatmap`.
    kwargs
        See :func:`~secact.pl.heatmap`.
    """
    warnings.warn(
        "secact.pl.activity_heatmap is deprecated; use secact.pl.heatmap (same parameters).",
        FutureWarning,
        stacklevel=2,
    )
    return heatmap(data, key, **kwargs)
