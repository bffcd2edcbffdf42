"""Proteins ranked per group (``secact.tl.rank_activities``): ``secact.pl.rank_activities``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._docs import doc_params
from ._utils import DOWN, UP, check_top, doc_figure, finish

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["rank_activities"]

_LABEL = {"wilcoxon": "Wilcoxon z", "t-test": "Welch t"}


@doc_params(figure=doc_figure)
def rank_activities(
    adata: Any,
    groups: str | Sequence[str] | None = None,
    key: str = "secact_rank",
    *,
    top: int = 10,
    alpha: float = 0.05,
    collapse_groups: bool = True,
    ncols: int = 4,
    panel_size: tuple[float, float] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | os.PathLike | None = None,
) -> Axes | list[Axes] | Figure | None:
    """The top-ranked proteins of each group after :func:`secact.tl.rank_activities`.

    One panel per group: horizontal bars of the test statistic of its ``top`` proteins
    (highest first; red where the group's mean activity is above the reference's, blue
    below), ``*`` where the FDR is below ``alpha``.

    Parameters
    ----------
    adata
        AnnData with results of :func:`secact.tl.rank_activities` (or the results DataFrame).
    groups
        Group or groups to show (default: all ranked groups).
    key
        ``key_added`` of :func:`secact.tl.rank_activities`.
    top
        Proteins per group.
    alpha
        FDR level marked with ``*``.
    collapse_groups
        One bar per signature group (members share their rank; named ``"A|B"``).
    ncols
        Panels per row.
    panel_size
        Size of one panel in inches (default: from ``top``).
    {figure}
        ``ax`` needs a single group.

    Returns
    -------
    matplotlib.axes.Axes or list of matplotlib.axes.Axes or matplotlib.figure.Figure or None
        The Axes (a list for several groups), the figure with ``return_fig=True``, or ``None``
        once shown.
    """
    import matplotlib.pyplot as plt

    from ..get import rank_activities as get_rank

    top = check_top(top)
    check_top(ncols, "ncols")
    df = get_rank(adata, key)
    params = adata.uns[key].get("params", {}) if hasattr(adata, "uns") else {}
    all_groups = [str(g) for g in dict.fromkeys(df["group"].astype(str))]
    wanted = (
        all_groups if groups is None else ([groups] if isinstance(groups, str) else [str(g) for g in groups])
    )
    unknown = [g for g in wanted if g not in all_groups]
    if unknown:
        msg = f"groups {unknown} were not ranked; ranked groups: {all_groups}."
        raise KeyError(msg)
    if ax is not None and len(wanted) != 1:
        msg = f"ax= draws one group; {len(wanted)} were asked for (pass groups='<one group>')."
        raise ValueError(msg)
    if panel_size is None:
        longest = max(
            len(str(p)) for p in df["signature_group" if collapse_groups else "protein"].astype(str)
        )
        panel_size = (2.2 + 0.065 * min(longest, 30), 0.26 * top + 1.0)
    created = ax is None
    if created:
        ncol = min(ncols, len(wanted))
        nrow = int(np.ceil(len(wanted) / ncol))
        fig, grid = plt.subplots(
            nrow,
            ncol,
            figsize=(panel_size[0] * ncol, panel_size[1] * nrow),
            layout="constrained",
            squeeze=False,
        )
        axes = list(grid.ravel())
        for extra in axes[len(wanted) :]:
            extra.set_visible(False)
        axes = axes[: len(wanted)]
    else:
        fig, axes = ax.figure, [ax]
    label = _LABEL.get(str(params.get("method", "")), "statistic")
    reference = str(df["reference"].iloc[0]) if len(df) else "rest"
    for a, g in zip(axes, wanted, strict=True):
        part = df[df["group"].astype(str) == g]
        if collapse_groups:
            part = part.drop_duplicates("signature_group")
        part = part.iloc[:top]
        names = (part["signature_group"] if collapse_groups else part["protein"]).astype(str).to_numpy()
        stat = part["statistic"].to_numpy(dtype=np.float64)
        y = np.arange(len(part))[::-1]
        colours = np.where(stat > 0, UP, DOWN)  # the bar's direction: the statistic's sign
        a.barh(y, stat, color=colours, height=0.7)
        a.set_yticks(y, names, fontsize=8)
        a.axvline(0, color="0.3", linewidth=0.7)
        lo, hi = min(0.0, float(np.nanmin(stat))), max(0.0, float(np.nanmax(stat)))
        pad = 0.12 * (hi - lo or 1.0)
        a.set_xlim(lo - (pad if lo < 0 else 0), hi + pad)
        for yi, s, q in zip(y, stat, part["fdr"].to_numpy(dtype=np.float64), strict=True):
            if q < alpha:
                a.text(
                    s, yi, " *" if s >= 0 else "* ", ha="left" if s >= 0 else "right", va="center", fontsize=9
                )
        a.set_title(f"{g} vs {reference}", fontsize=10)
        a.set_xlabel(label, fontsize=9)
        a.spines[["top", "right"]].set_visible(False)
    if created:
        fig.supxlabel(
            f"red: more active in the group, blue: less; *: FDR < {alpha:g}", fontsize=8, color="0.3"
        )
    out = axes[0] if len(axes) == 1 else axes
    return finish(fig, out, created=created, show=show, return_fig=return_fig, save=save)
