"""Volcano plot of :func:`secact.tl.differential` results: ``secact.pl.volcano``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .._docs import doc_params
from ._utils import DOWN, UP, doc_figure, doc_returns, finish, new_axes, repel

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["volcano"]


@doc_params(figure=doc_figure, returns=doc_returns)
def volcano(
    adata: Any,
    group: str | None = None,
    key: str = "secact_de",
    *,
    significance: Literal["fdr", "pvalue"] = "fdr",
    alpha: float = 0.05,
    log2fc: float = 1.0,
    top: int = 10,
    figsize: tuple[float, float] = (6.4, 4.2),
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | os.PathLike | None = None,
) -> Axes | Figure | None:
    """Volcano plot of one group's differential expression: log2 fold change vs -log10 p.

    Genes with ``significance`` below ``alpha`` and ``|log2fc|`` at least ``log2fc`` are
    coloured (red up, blue down) and the ``top`` most significant of them are labelled.

    Parameters
    ----------
    adata
        AnnData with results of :func:`secact.tl.differential` (or the results DataFrame).
    group
        The group to show (may be omitted when the results hold one group).
    key
        ``key_added`` of :func:`secact.tl.differential`.
    significance
        Column that decides significance: ``"fdr"`` (default) or ``"pvalue"``. The y axis
        is always -log10 of the p-value (p-values of 0 are drawn at the smallest positive
        float).
    alpha
        Significance level.
    log2fc
        Smallest absolute log2 fold change coloured (dashed lines).
    top
        Number of significant genes labelled (0: none).
    figsize
        Figure size in inches.
    {figure}

    Returns
    -------
    {returns}
    """
    from ..get import differential

    if significance not in ("fdr", "pvalue"):
        msg = f"significance must be 'fdr' or 'pvalue', got {significance!r}."
        raise ValueError(msg)
    df = differential(adata, key, sort_by=None)
    groups = [str(g) for g in dict.fromkeys(df["group"].astype(str))]
    if group is None:
        if len(groups) != 1:
            msg = f"the results hold {len(groups)} groups {groups[:8]}; choose one with group=..."
            raise ValueError(msg)
        group = groups[0]
    elif str(group) not in groups:
        msg = f"group {group!r} is not in the results; groups: {groups[:20]}."
        raise KeyError(msg)
    df = df[df["group"].astype(str) == str(group)]
    x = df["log2fc"].to_numpy(dtype=np.float64)
    p = df["pvalue"].to_numpy(dtype=np.float64)
    y = -np.log10(np.clip(p, np.finfo(np.float64).tiny, None))
    sig = (df[significance].to_numpy(dtype=np.float64) < alpha) & (np.abs(x) >= log2fc)
    up, down = sig & (x > 0), sig & (x < 0)
    fig, ax, created = new_axes(ax, figsize)
    rest = ~sig & np.isfinite(y)
    ax.scatter(x[rest], y[rest], s=8, color="0.72", linewidths=0, label=f"not significant ({rest.sum()})")
    ax.scatter(x[up], y[up], s=12, color=UP, linewidths=0, label=f"up ({up.sum()})")
    ax.scatter(x[down], y[down], s=12, color=DOWN, linewidths=0, label=f"down ({down.sum()})")
    for v in (-log2fc, log2fc):
        ax.axvline(v, color="0.5", linestyle="--", linewidth=0.7)
    ax.axvline(0, color="0.3", linewidth=0.6)
    ax.set_xlabel("log2 fold change")
    ax.set_ylabel("-log10 p-value")
    ax.set_title(f"{group} vs {_reference(adata, key)}")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(
        title=f"{significance} < {alpha:g}, |log2fc| ≥ {log2fc:g}", fontsize=8, title_fontsize=8,
        loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, markerscale=1.5,
    )  # fmt: skip
    if top > 0 and sig.any():
        idx = np.flatnonzero(sig)
        idx = idx[np.lexsort((-np.abs(x[idx]), p[idx]))][:top]
        genes = df["gene"].astype(str).to_numpy()
        ax.set_ylim(top=float(np.nanmax(y[np.isfinite(y)])) * 1.12 + 0.5)
        texts = [
            ax.annotate(
                genes[i],
                (x[i], y[i]),
                xytext=(x[i], y[i]),
                fontsize=8,
                ha="left" if x[i] > 0 else "right",
                va="center",
                arrowprops={"arrowstyle": "-", "color": "0.4", "linewidth": 0.5},
            )
            for i in idx
        ]
        _nudge(ax, texts)
    return finish(fig, ax, created=created, show=show, return_fig=return_fig, save=save)


def _nudge(ax, texts) -> None:
    """Offset labels from their points a little, then move them apart vertically."""
    ax.figure.draw_without_rendering()  # settle the layout before measuring text
    inv = ax.transData.inverted()
    for t in texts:
        px, py = ax.transData.transform(t.xy)
        dx = 6 if t.get_ha() == "left" else -6
        t.set_position(inv.transform((px + dx, py + 4)))
    repel(ax, texts)
    _fit_texts(ax, texts)


def _fit_texts(ax, texts) -> None:
    """Widen the x-limits so that labels stay inside the axes (not over the legend)."""
    inv = ax.transData.inverted()
    lo, hi = ax.get_xlim()
    for t in texts:
        (x0, _), (x1, _) = inv.transform(t.get_window_extent())
        lo, hi = min(lo, x0), max(hi, x1)
    if (lo, hi) != ax.get_xlim():
        span = hi - lo
        ax.set_xlim(lo - 0.02 * span, hi + 0.02 * span)


def _reference(adata: Any, key: str) -> str:
    uns = getattr(adata, "uns", None)
    params = (
        uns.get(key, {}).get("params", {})
        if uns is not None
        else getattr(adata, "attrs", {}).get("params", {})
    )
    return str(params.get("reference", "reference")) if isinstance(params, dict) else "reference"
