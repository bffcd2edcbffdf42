"""What every plot shares: where it draws, how it ends (show / save / return), its data."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import _results as res
from .._checks import check_positive_int

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["DIVERGING", "finish", "group_values", "new_axes", "symmetric_limit"]

DIVERGING = "RdBu_r"  # blue (negative) - white (0) - red (positive)
UP, DOWN = "#c0392b", "#2166ac"  # colours of positive and negative activity

doc_figure = """\
ax
    Axes to draw into (default: a new figure).
show
    Show the figure. Default: when it is new, ``return_fig`` is false and matplotlib is in
    interactive mode (e.g. in Jupyter).
return_fig
    Return the :class:`~matplotlib.figure.Figure` (not kept by pyplot).
save
    Write the figure to this path (format from the extension)."""

doc_returns = """\
matplotlib.axes.Axes or matplotlib.figure.Figure or None
    The :class:`~matplotlib.axes.Axes` drawn into, the figure with ``return_fig=True``, or
    ``None`` once shown. A figure made here is handed back to no one else: it is released by
    pyplot once shown, saved or returned with ``return_fig``."""


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes, bool]:
    """The figure and axes to draw into, and whether the figure was made here."""
    if ax is not None:
        return ax.figure, ax, False
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax, True


def finish(
    fig: Figure,
    axes: Axes | list[Axes],
    *,
    created: bool,
    show: bool | None,
    return_fig: bool,
    save: str | os.PathLike | None,
) -> Axes | list[Axes] | Figure | None:
    """End a plot like scanpy: save, show, then return axes / figure / nothing.

    A figure made here leaves pyplot's list when it is shown, saved or returned as a figure
    (it stays usable); only ``show=False`` without ``save`` keeps it there, for ``plt.show()``.
    """
    import matplotlib.pyplot as plt

    if show is None:
        show = created and not return_fig and plt.isinteractive()
    if save is not None:
        fig.savefig(os.fspath(save), dpi=fig.dpi, bbox_inches="tight")
    if show:
        plt.show()
    if created and (show or save is not None or return_fig):
        plt.close(fig)
    if return_fig:
        return fig
    return None if show else axes


def symmetric_limit(values: np.ndarray, vmax: float | None = None) -> float:
    """Colour limit centred at 0: ``vmax`` or the largest finite absolute value (1 if none)."""
    if vmax is not None:
        if not (np.isfinite(vmax) and vmax > 0):
            msg = f"vmax must be a positive number, got {vmax!r}."
            raise ValueError(msg)
        return float(vmax)
    finite = np.abs(np.asarray(values, dtype=np.float64))
    finite = finite[np.isfinite(finite)]
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def collapse(frame: pd.DataFrame, groups: pd.Series | None) -> pd.DataFrame:
    """One column per signature group (members carry identical values), named by the group."""
    if groups is None:
        return frame
    labels = groups.reindex(frame.columns).fillna(pd.Series(frame.columns, index=frame.columns))
    first = ~labels.duplicated().to_numpy()
    out = frame.loc[:, first]
    out.columns = labels[first].to_numpy()
    return out


def group_values(
    data: Any, key: str, *, level: str = "groups", stats: Sequence[str] = ("zscore", "pvalue")
) -> tuple[dict[str, pd.DataFrame], pd.Series | None, str | None]:
    """Observations x proteins tables of ``stats`` from AnnData / ActivityResult / DataFrame.

    Returns the tables (a statistic missing from the input is absent), the proteins'
    signature groups (``None`` when unknown) and the name of the observations (groupby).
    """
    from .._infer import ActivityResult

    if isinstance(data, ActivityResult):
        tables = {s: getattr(data, s).T for s in stats}
        groups = _groups_of_bulk(data)
        return tables, groups, "sample"
    if isinstance(data, pd.DataFrame):
        return {stats[0]: data}, None, data.index.name
    if isinstance(data, pd.Series):
        return {stats[0]: data.to_frame().T}, None, None
    if not hasattr(data, "uns"):
        msg = (
            "expected an AnnData with secact results, a secact.ActivityResult, or a DataFrame / "
            f"Series of activities; got {type(data).__name__}."
        )
        raise TypeError(msg)
    from .._results import x_stat
    from ..get import activity
    from ..get._activity import _kept_stats

    kept = _kept_stats(data, key, level)
    first = x_stat(kept)
    act = activity(data, key, stat=first, level=level)
    frame = {first: res.dense(act.X), **{s: res.dense(act.layers[s]) for s in kept if s != first}}
    tables = {
        s: pd.DataFrame(frame[s], index=act.obs_names, columns=act.var_names) for s in stats if s in frame
    }
    entry = act.uns.get(key, {}).get(level, {})
    name = entry.get("groupby") if isinstance(entry, dict) else None
    return tables, act.var["group"].astype(str), name


def _groups_of_bulk(result) -> pd.Series:
    from ..get._groups import protein_groups

    proteins = [str(p) for p in result.zscore.index]
    return protein_groups(result.params, proteins, values=lambda: result.beta.T.to_numpy())


def text_colour(rgba) -> str:
    """Black or white text, whichever reads on a cell of colour ``rgba``."""
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def check_top(top: int, name: str = "top") -> int:
    return check_positive_int(top, name)


def label_fontsize(n: int) -> float:
    """Tick label size that keeps ``n`` labels apart (8-10 points)."""
    return 10.0 if n <= 20 else 9.0 if n <= 40 else 8.0


def repel(ax: Axes, texts: list, *, iterations: int = 100) -> None:
    """Move labels vertically apart until their boxes no longer overlap (greedy passes).

    Only the text boxes count (not the connecting lines of annotations).
    """
    from matplotlib.text import Text

    if len(texts) < 2:
        return
    renderer = ax.figure.canvas.get_renderer()
    inv = ax.transData.inverted()

    def box(t):
        return Text.get_window_extent(t, renderer).expanded(1.02, 1.1)

    for _ in range(iterations):
        boxes = [box(t) for t in texts]
        moved = False
        for i in range(len(texts)):
            for j in range(i + 1, len(texts)):
                if not boxes[i].overlaps(boxes[j]):
                    continue
                low, high = (i, j) if boxes[i].y0 <= boxes[j].y0 else (j, i)
                step = (boxes[low].y1 - boxes[high].y0) / 2 + 0.5
                for k, sign in ((low, -1.0), (high, 1.0)):
                    x, y = ax.transData.transform(texts[k].get_position())
                    texts[k].set_position(inv.transform((x, y + sign * step)))
                boxes[low], boxes[high] = box(texts[low]), box(texts[high])
                moved = True
        if not moved:
            break


def resolve_group(tables: dict[str, pd.DataFrame], group: str | None, what: str = "group") -> str:
    """The one observation (group / sample) to plot, with clear errors."""
    index = [str(i) for i in next(iter(tables.values())).index]
    if group is None:
        if len(index) != 1:
            msg = f"the results hold {len(index)} {what}s {index[:8]}; choose one with {what}=..."
            raise ValueError(msg)
        return index[0]
    if str(group) not in index:
        msg = f"{what} {group!r} is not in the results; {what}s: {index[:20]}."
        raise KeyError(msg)
    return str(group)
