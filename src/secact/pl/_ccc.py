"""Plots of cell-cell communication links (``secact.tl.ccc``, ``secact.tl.ccc_spatial``):
circle, dot plot, heatmap, Sankey."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from .._docs import doc_params
from ._utils import check_top, doc_figure, doc_returns, finish, label_fontsize, new_axes, text_colour

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["ccc_circle", "ccc_dot", "ccc_heatmap", "ccc_sankey"]

NEEDED = ("sender", "secreted_protein", "receiver", "strength")

doc_links = """\
data
    AnnData with results of :func:`secact.tl.ccc` or :func:`secact.tl.ccc_spatial` in
    ``adata.uns[key]`` (for a path input: the AnnData the tool returned), or a link table as
    returned by :func:`secact.get.ccc`. The axis and legend labels say which ``strength``
    it is: ``tl.ccc``'s sender log fold change x receiver z-score, or ``tl.ccc_spatial``'s
    (SecAct R's scST measure) mean product of sender expression and receiver activity over
    the neighbouring sender-receiver pairs.
key
    ``key_added`` of the tool (``"secact_ccc_spatial"`` for :func:`secact.tl.ccc_spatial`;
    ignored for a table).
sender, secreted_protein, receiver
    Draw only the links of these senders / proteins / receivers (a name or a list)."""

doc_palette = """\
palette
    Colours of the cell types: a dict ``cell type -> colour`` or a list in the order of the
    cell types. Default: ``adata.uns[f"<groupby>_colors"]`` when present, else matplotlib's
    ``tab10`` / ``tab20`` cycle."""


# ----------------------------------------------------------------------------------------------
# the link table, cell types and their colours
# ----------------------------------------------------------------------------------------------
def _as_names(values: str | Sequence[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [values] if isinstance(values, str) else [str(v) for v in values]


def _links(
    data: Any,
    key: str,
    sender: str | Sequence[str] | None,
    secreted_protein: str | Sequence[str] | None,
    receiver: str | Sequence[str] | None,
    *,
    needed: Sequence[str] = NEEDED,
) -> tuple[pd.DataFrame, list[str], dict[str, Any]]:
    """Links (names as strings), all cell types in display order, and known colours."""
    from ..get import ccc as get_ccc

    colours: dict[str, Any] = {}
    order: list[str] = []
    if isinstance(data, pd.DataFrame):
        missing = [c for c in needed if c not in data.columns]
        if missing:
            msg = (
                f"the link table lacks the column(s) {missing}; pass an AnnData with "
                "secact.tl.ccc results or the DataFrame of secact.get.ccc(adata)."
            )
            raise ValueError(msg)
        table = data
        for col in ("sender", "receiver"):
            if isinstance(table[col].dtype, pd.CategoricalDtype):
                order += [str(c) for c in table[col].cat.categories]
    else:
        table = get_ccc(data, key)
        entry = data if isinstance(data, Mapping) else data.uns[key]
        params = entry.get("params", {}) if isinstance(entry, Mapping) else {}
        groupby = params.get("groupby") if isinstance(params, Mapping) else None
        obs = getattr(data, "obs", None)
        if groupby is not None and obs is not None and groupby in obs.columns:
            column = obs[groupby]
            cats = (
                column.cat.categories if isinstance(column.dtype, pd.CategoricalDtype) else pd.unique(column)
            )
            order += [str(c) for c in cats]
            stored = data.uns.get(f"{groupby}_colors")
            if stored is not None and len(stored) >= len(cats):
                colours = {str(c): stored[i] for i, c in enumerate(cats)}
        if isinstance(params, Mapping) and params.get("cell_types") is not None:
            order += [str(c) for c in np.atleast_1d(params["cell_types"])]
    table = table.astype({c: str for c in ("sender", "secreted_protein", "receiver")})
    for column, wanted in (
        ("sender", sender),
        ("secreted_protein", secreted_protein),
        ("receiver", receiver),
    ):
        names = _as_names(wanted)
        if names is not None:
            table = table[table[column].isin(names)]
    if len(table) == 0:
        filtered = any(v is not None for v in (sender, secreted_protein, receiver))
        msg = "no links to draw: " + (
            "no link matches the sender / secreted_protein / receiver given."
            if filtered
            else "the link table is empty (relax the cut-offs of secact.tl.ccc, e.g. "
            "padj_cutoff or zscore_cutoff, or check groupby)."
        )
        raise ValueError(msg)
    strength = pd.to_numeric(table["strength"], errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(strength).all():
        msg = "the link table has missing or non-finite strengths."
        raise ValueError(msg)
    present = set(table["sender"]) | set(table["receiver"])
    seen: list[str] = []
    for name in [*order, *pd.unique(pd.concat([table["sender"], table["receiver"]]))]:
        if name in present and name not in seen:
            seen.append(name)
    return table.reset_index(drop=True), seen, colours


def _palette(types: list[str], known: dict[str, Any], palette: Mapping | Sequence | None) -> dict[str, Any]:
    from matplotlib import colormaps
    from matplotlib.colors import to_rgba

    if palette is not None:
        if isinstance(palette, Mapping):
            lacking = [t for t in types if t not in palette]
            if lacking:
                msg = f"palette has no colour for {lacking}."
                raise ValueError(msg)
            return {t: to_rgba(palette[t]) for t in types}
        palette = list(palette)
        if len(palette) < len(types):
            msg = f"palette has {len(palette)} colours for {len(types)} cell types {types}."
            raise ValueError(msg)
        return {t: to_rgba(c) for t, c in zip(types, palette, strict=False)}
    if all(t in known for t in types):
        return {t: to_rgba(known[t]) for t in types}
    cmap = colormaps["tab10" if len(types) <= 10 else "tab20"]
    return {t: cmap(i % cmap.N) for i, t in enumerate(types)}


def _check_value(value: str) -> str:
    if value not in ("count", "strength"):
        msg = f"value must be 'count' (number of links) or 'strength' (summed strength), got {value!r}."
        raise ValueError(msg)
    return value


def _pair_matrix(table: pd.DataFrame, senders: list[str], receivers: list[str], value: str) -> pd.DataFrame:
    if value == "count":
        agg = table.groupby(["sender", "receiver"]).size()
    else:
        agg = table.groupby(["sender", "receiver"])["strength"].sum()
    return agg.unstack("receiver").reindex(index=senders, columns=receivers).fillna(0.0)


#: What ``strength`` measures, by the tool that made the table (found from its columns).
MEASURES = {
    "ccc": "sender logFC \u00d7 receiver z",
    "ccc_spatial": "neighbour pairs: sender expr. \u00d7 receiver z",
}


def _measure(table: pd.DataFrame) -> str:
    """Short text of what the table's ``strength`` is: SecAct R's scRNA-seq (``tl.ccc``) or
    scST (``tl.ccc_spatial``) measure."""
    if "communicating_pairs" in table.columns or "ratio" in table.columns:
        return MEASURES["ccc_spatial"]
    if "sender_logfc" in table.columns:
        return MEASURES["ccc"]
    return "link strength"


def _value_label(value: str, measure: str) -> str:
    return "number of links" if value == "count" else f"summed strength\n({measure})"


def _fmt(v: float, value: str) -> str:
    return f"{v:.0f}" if value == "count" else f"{v:.3g}"


def _nice_steps(vmax: float, n: int = 3, *, integer: bool = False) -> list[float]:
    """Up to ``n`` round values in (0, vmax] for legends."""
    if vmax <= 0:
        return []
    if integer:
        top = int(np.floor(vmax))
        if top <= n:
            return [float(v) for v in range(1, top + 1)]
        return sorted({float(max(1, round(top * f))) for f in np.linspace(1 / n, 1, n)})
    exp = 10 ** np.floor(np.log10(vmax))
    out = []
    for m in (1, 2, 5, 10):
        for e in (exp / 10, exp):
            if 0 < m * e <= vmax:
                out.append(float(m * e))
    out = sorted(set(out))
    return out[-n:]


# ----------------------------------------------------------------------------------------------
# circle
# ----------------------------------------------------------------------------------------------
@doc_params(links=doc_links, palette=doc_palette, figure=doc_figure, returns=doc_returns)
def ccc_circle(
    data: Any,
    key: str = "secact_ccc",
    *,
    value: Literal["count", "strength"] = "count",
    sender: str | Sequence[str] | None = None,
    secreted_protein: str | Sequence[str] | None = None,
    receiver: str | Sequence[str] | None = None,
    palette: Mapping | Sequence | None = None,
    max_width: float = 8.0,
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | os.PathLike | None = None,
) -> Axes | Figure | None:
    """Cell types on a circle, one curved arrow per sender -> receiver pair.

    The width of an arrow is proportional to the number of links of the pair (``value=
    "count"``) or to the sum of their strengths (``value="strength"``); arrows take the
    colour of the sender. A pair that talks both ways gets two arrows bent to either side.

    Parameters
    ----------
    {links}
    value
        ``"count"``: number of links (secreted proteins) per pair; ``"strength"``: summed
        link strength (``tl.ccc``: sender log fold change x receiver z-score;
        ``tl.ccc_spatial``: see ``data``).
    {palette}
    max_width
        Width (points) of the widest arrow.
    figsize
        Figure size in inches (default 6.4 x 5).
    {figure}

    Returns
    -------
    {returns}
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import ArrowStyle, Circle, FancyArrowPatch
    from matplotlib.path import Path

    value = _check_value(value)
    if not (np.isfinite(max_width) and max_width > 0):
        msg = f"max_width must be a positive number, got {max_width!r}."
        raise ValueError(msg)
    table, types, known = _links(data, key, sender, secreted_protein, receiver)
    colours = _palette(types, known, palette)
    mat = _pair_matrix(table, types, types, value)
    weights = mat.to_numpy(dtype=np.float64)
    wmax = float(np.abs(weights).max()) or 1.0

    fig, ax, created = new_axes(ax, figsize or (6.4, 5.0))
    n = len(types)
    angles = np.pi / 2 - 2 * np.pi * np.arange(n) / n  # clockwise from the top
    pos = np.c_[np.cos(angles), np.sin(angles)]
    node_r = min(0.11, 0.9 * np.sin(np.pi / max(n, 2)))
    nodes = []
    for t, (x, y) in zip(types, pos, strict=True):
        node = Circle((x, y), node_r, facecolor=colours[t], edgecolor="0.25", linewidth=0.8, zorder=3)
        ax.add_patch(node)
        nodes.append(node)
    fontsize = label_fontsize(n)
    for t, (x, y), a in zip(types, pos, angles, strict=True):
        c, s = np.cos(a), np.sin(a)
        ha = "center" if abs(c) < 0.2 else ("left" if c > 0 else "right")
        va = "center" if abs(s) < 0.5 else ("bottom" if s > 0 else "top")
        ax.text(x + (node_r + 0.06) * c, y + (node_r + 0.06) * s, t, ha=ha, va=va, fontsize=fontsize)

    order = np.argsort(np.abs(weights), axis=None, kind="stable")  # thin arrows first, thick on top
    for flat in order:
        i, j = divmod(int(flat), n)
        w = weights[i, j]
        if w == 0:
            continue
        width = max(0.6, max_width * abs(w) / wmax)
        if i == j:  # a loop outside the node (not produced by secact.tl.ccc)
            d = pos[i]
            side = np.array([-d[1], d[0]])
            start, end = pos[i] + node_r * (d + 0.6 * side), pos[i] + node_r * (d - 0.6 * side)
            far = pos[i] + d * node_r * 3.2
            verts = [start, far + side * node_r * 1.6, far - side * node_r * 1.6, end]
            path = Path(verts, [Path.MOVETO, Path.CURVE4, Path.CURVE4, Path.CURVE4])
            arrow = FancyArrowPatch(
                path=path, arrowstyle="-|>", mutation_scale=8 + width, linewidth=width, color=colours[types[i]],
                alpha=0.75, zorder=2,
            )  # fmt: skip
        else:
            arrow = FancyArrowPatch(
                pos[i], pos[j], patchA=nodes[i], patchB=nodes[j], shrinkA=1, shrinkB=2,
                connectionstyle="arc3,rad=0.25", mutation_scale=10,
                arrowstyle=ArrowStyle.Simple(
                    head_length=(width / 2 + 7) / 10, head_width=(width + 7) / 10, tail_width=width / 10
                ),
                facecolor=colours[types[i]], edgecolor="none", alpha=0.75, zorder=2,
            )  # fmt: skip
        ax.add_patch(arrow)

    longest = max(len(t) for t in types)
    pad = 1.0 + node_r + 0.1 + 0.055 * longest
    ax.set_xlim(-pad, pad)
    ax.set_ylim(-(1.0 + node_r + 0.25), 1.0 + node_r + 0.25)
    ax.set_aspect("equal")
    ax.set_axis_off()
    steps = _nice_steps(wmax, integer=value == "count")
    handles = [
        Line2D([], [], color="0.45", linewidth=max(0.6, max_width * v / wmax), solid_capstyle="butt")
        for v in steps
    ]
    ax.legend(
        handles, [_fmt(v, value) for v in steps], title=f"{_value_label(value, _measure(table))}\n(sender \u2192 receiver)",
        loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8, title_fontsize=9,
        handlelength=2.2,
    )  # fmt: skip
    return finish(fig, ax, created=created, show=show, return_fig=return_fig, save=save)


# ----------------------------------------------------------------------------------------------
# dot plot
# ----------------------------------------------------------------------------------------------
@doc_params(links=doc_links, figure=doc_figure, returns=doc_returns)
def ccc_dot(
    data: Any,
    key: str = "secact_ccc",
    *,
    top: int | None = 20,
    sender: str | Sequence[str] | None = None,
    secreted_protein: str | Sequence[str] | None = None,
    receiver: str | Sequence[str] | None = None,
    cmap: str = "Reds",
    vmax: float | None = None,
    dot_max: float = 200.0,
    dot_min: float = 12.0,
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | os.PathLike | None = None,
) -> Axes | Figure | None:
    """Dot plot of links: sender -> receiver pairs (rows) x secreted proteins (columns).

    Colour = link strength (``tl.ccc``: sender log fold change x receiver z-score;
    ``tl.ccc_spatial``: see ``data``), dot area = -log10 of the link's adjusted p-value
    (linear from ``dot_min`` to ``dot_max``); an empty place means no link.

    Parameters
    ----------
    {links}
    top
        Show the ``top`` proteins with the largest summed strength (``None``: all). Pairs
        without a link to the proteins shown are left out.
    cmap
        Colour map of the strength.
    vmax
        Upper colour limit (default: the largest strength shown); the lower limit is 0, or
        the smallest strength when some are negative.
    dot_max, dot_min
        Area (points^2) of the most and of the least significant possible dot.
    figsize
        Figure size in inches (default: from the numbers of rows and columns).
    {figure}

    Returns
    -------
    {returns}
    """
    table, types, _ = _links(data, key, sender, secreted_protein, receiver, needed=(*NEEDED, "padj"))
    if top is not None:
        top = check_top(top)
    totals = table.groupby("secreted_protein")["strength"].sum().sort_values(ascending=False, kind="stable")
    proteins = list(totals.index[:top] if top is not None else totals.index)
    table = table[table["secreted_protein"].isin(proteins)]
    rank = {t: i for i, t in enumerate(types)}
    pairs = (
        table[["sender", "receiver"]]
        .drop_duplicates()
        .assign(_s=lambda f: f["sender"].map(rank), _r=lambda f: f["receiver"].map(rank))
        .sort_values(["_s", "_r"])
    )
    labels = [f"{s} \u2192 {r}" for s, r in zip(pairs["sender"], pairs["receiver"], strict=True)]
    row = {(s, r): i for i, (s, r) in enumerate(zip(pairs["sender"], pairs["receiver"], strict=True))}
    col = {p: j for j, p in enumerate(proteins)}
    x = table["secreted_protein"].map(col).to_numpy()
    y = np.array([row[(s, r)] for s, r in zip(table["sender"], table["receiver"], strict=True)])
    strength = table["strength"].to_numpy(dtype=np.float64)
    padj = pd.to_numeric(table["padj"], errors="coerce").to_numpy(dtype=np.float64)
    size = -np.log10(np.clip(np.nan_to_num(padj, nan=1.0), np.finfo(np.float64).tiny, 1.0))
    s_max = max(float(size.max()), 1.0)
    hi = float(vmax) if vmax is not None else float(strength.max())
    lo = min(0.0, float(strength.min()))
    if not (np.isfinite(hi) and hi > lo):
        msg = f"vmax must be a number above the smallest strength {lo:g}, got {vmax!r}."
        raise ValueError(msg)

    n_rows, n_cols = len(labels), len(proteins)
    longest_row = max(len(s) for s in labels)
    longest_col = max(len(p) for p in proteins)
    if figsize is None:
        figsize = (
            max(4.6, 0.38 * n_cols + 0.07 * longest_row + 2.6),
            max(3.2, 0.32 * n_rows + 0.07 * longest_col + 1.9),
        )
    fig, ax, created = new_axes(ax, figsize)

    def area(v):
        return dot_min + (dot_max - dot_min) * np.clip(np.asarray(v, dtype=np.float64) / s_max, 0, 1)

    dots = ax.scatter(
        x, y, s=area(size), c=strength, cmap=cmap, vmin=lo, vmax=hi, edgecolors="0.35", linewidths=0.4,
        zorder=3,
    )  # fmt: skip
    ax.set_xticks(range(n_cols), proteins, rotation=90, fontsize=label_fontsize(n_cols))
    ax.set_yticks(range(n_rows), labels, fontsize=label_fontsize(n_rows))
    ax.set_xlim(-0.6, n_cols - 0.4)
    ax.set_ylim(n_rows - 0.4, -0.6)
    ax.set_xlabel("secreted protein")
    ax.set_ylabel("sender \u2192 receiver")
    ax.grid(color="0.92", linewidth=0.6)
    ax.set_axisbelow(True)
    fig.colorbar(
        dots, ax=ax, label=f"link strength\n({_measure(table)})",
        shrink=min(1.0, max(0.5, 5.0 / max(n_rows, 1))), aspect=15,
    )  # fmt: skip
    steps = _nice_steps(s_max, 3)
    handles = [ax.scatter([], [], s=area(v), color="0.6", edgecolors="0.35", linewidths=0.4) for v in steps]
    ax.legend(
        handles, [f"{v:g}" for v in steps], title="-log10 adjusted p (link)", loc="lower center",
        bbox_to_anchor=(0.5, 1.01), ncols=len(handles), frameon=False, fontsize=8, title_fontsize=9,
        handletextpad=0.3, columnspacing=1.0, borderaxespad=0.2,
    )  # fmt: skip
    return finish(fig, ax, created=created, show=show, return_fig=return_fig, save=save)


# ----------------------------------------------------------------------------------------------
# heatmap
# ----------------------------------------------------------------------------------------------
@doc_params(links=doc_links, figure=doc_figure, returns=doc_returns)
def ccc_heatmap(
    data: Any,
    key: str = "secact_ccc",
    *,
    value: Literal["count", "strength"] = "count",
    sender: str | Sequence[str] | None = None,
    secreted_protein: str | Sequence[str] | None = None,
    receiver: str | Sequence[str] | None = None,
    annotate: bool = True,
    cmap: str = "Reds",
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | os.PathLike | None = None,
) -> Axes | Figure | None:
    """Senders (rows) x receivers (columns): number of links or summed strength per pair.

    Every cell type with a link appears both as a row and as a column, so the matrix is
    square; the diagonal (a cell type to itself) is never a link of :func:`secact.tl.ccc`
    and is hatched.

    Parameters
    ----------
    {links}
    value
        ``"count"``: number of links (secreted proteins) per pair; ``"strength"``: summed
        link strength (``tl.ccc``: sender log fold change x receiver z-score;
        ``tl.ccc_spatial``: see ``data``).
    annotate
        Write the value in every cell with links (cells without any stay blank).
    cmap
        Colour map (white at 0 for the default).
    figsize
        Figure size in inches (default: from the number of cell types).
    {figure}

    Returns
    -------
    {returns}
    """
    value = _check_value(value)
    table, types, _ = _links(data, key, sender, secreted_protein, receiver)
    mat = _pair_matrix(table, types, types, value)
    values = mat.to_numpy(dtype=np.float64)
    n = len(types)
    longest = max(len(t) for t in types)
    if figsize is None:
        side = 0.55 * n
        figsize = (max(3.8, side + 0.075 * longest + 2.0), max(3.2, side + 0.075 * longest + 1.2))
    fig, ax, created = new_axes(ax, figsize)
    lo = min(0.0, float(values.min()))
    hi = max(float(values.max()), lo + 1e-12)
    image = ax.imshow(values, cmap=cmap, vmin=lo, vmax=hi, aspect="auto", interpolation="nearest")
    fontsize = label_fontsize(n)
    ax.set_xticks(range(n), types, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(n), types, fontsize=fontsize)
    ax.set_xlabel("receiver")
    ax.set_ylabel("sender")
    ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1.0)
    ax.tick_params(which="minor", length=0)
    from matplotlib.patches import Rectangle

    for i in range(n):
        ax.add_patch(
            Rectangle((i - 0.5, i - 0.5), 1, 1, facecolor="0.95", edgecolor="0.75", hatch="///", linewidth=0)
        )
    if annotate:
        size = 8 if n <= 12 else 6.5
        for i in range(n):
            for j in range(n):
                v = values[i, j]
                if i == j or v == 0:  # no link: the white cell says so
                    continue
                colour = text_colour(image.cmap(image.norm(v)))
                ax.text(j, i, _fmt(v, value), ha="center", va="center", fontsize=size, color=colour)
    cbar = fig.colorbar(
        image,
        ax=ax,
        label=_value_label(value, _measure(table)),
        shrink=min(1.0, max(0.5, 4.0 / n)),
        aspect=15,
    )
    if value == "count":
        from matplotlib.ticker import MaxNLocator

        cbar.locator = MaxNLocator(integer=True)
        cbar.update_ticks()
    return finish(fig, ax, created=created, show=show, return_fig=return_fig, save=save)


# ----------------------------------------------------------------------------------------------
# Sankey
# ----------------------------------------------------------------------------------------------
def _stack(names: list[str], totals: dict[str, float], gap: float) -> dict[str, tuple[float, float]]:
    """(bottom, top) of each node, stacked top-down with ``gap`` between, centred on 0.5."""
    height = sum(totals[n] for n in names) + gap * (len(names) - 1)
    y = 0.5 + height / 2
    out = {}
    for n in names:
        out[n] = (y - totals[n], y)
        y -= totals[n] + gap
    return out


def _band(ax, x0: float, x1: float, a: tuple[float, float], b: tuple[float, float], colour) -> None:
    """A flow from span ``a`` (bottom, top) at ``x0`` to span ``b`` at ``x1``, S-shaped."""
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path

    xm = (x0 + x1) / 2
    verts = [
        (x0, a[1]), (xm, a[1]), (xm, b[1]), (x1, b[1]),
        (x1, b[0]), (xm, b[0]), (xm, a[0]), (x0, a[0]), (x0, a[1]),
    ]  # fmt: skip
    codes = [Path.MOVETO, *[Path.CURVE4] * 3, Path.LINETO, *[Path.CURVE4] * 3, Path.CLOSEPOLY]
    ax.add_patch(PathPatch(Path(verts, codes), facecolor=colour, edgecolor="none", alpha=0.55, zorder=1))


@doc_params(links=doc_links, palette=doc_palette, figure=doc_figure, returns=doc_returns)
def ccc_sankey(
    data: Any,
    key: str = "secact_ccc",
    *,
    top: int | None = 30,
    sender: str | Sequence[str] | None = None,
    secreted_protein: str | Sequence[str] | None = None,
    receiver: str | Sequence[str] | None = None,
    palette: Mapping | Sequence | None = None,
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | os.PathLike | None = None,
) -> Axes | Figure | None:
    """Sankey diagram sender -> secreted protein -> receiver, flows proportional to strength.

    Each link adds its strength (``tl.ccc``: sender log fold change x receiver z-score;
    ``tl.ccc_spatial``: see ``data``) to a flow from its sender to its protein (coloured by the sender) and from the protein to its receiver
    (coloured by the receiver); node heights are the summed strengths through them.

    Parameters
    ----------
    {links}
    top
        Draw the ``top`` strongest links (``None``: all).
    {palette}
    figsize
        Figure size in inches (default: from the number of nodes).
    {figure}

    Returns
    -------
    {returns}
    """
    from matplotlib.patches import Rectangle

    table, types, known = _links(data, key, sender, secreted_protein, receiver)
    if top is not None:
        table = table.nlargest(check_top(top), "strength", keep="first")
    if (table["strength"] <= 0).any():
        msg = "a Sankey diagram needs positive strengths; leave out the links with strength <= 0."
        raise ValueError(msg)
    colours = _palette(types, known, palette)
    rank = {t: i for i, t in enumerate(types)}
    s_tot = table.groupby("sender")["strength"].sum().to_dict()
    p_tot = table.groupby("secreted_protein")["strength"].sum().to_dict()
    r_tot = table.groupby("receiver")["strength"].sum().to_dict()
    senders = sorted(s_tot, key=rank.__getitem__)
    receivers = sorted(r_tot, key=rank.__getitem__)

    # proteins ordered by the mean position of their senders, then by strength: fewer crossings
    def centre(p: str) -> float:
        part = table[table["secreted_protein"] == p]
        return float(np.average(part["sender"].map(senders.index), weights=part["strength"]))

    proteins = sorted(p_tot, key=lambda p: (centre(p), -p_tot[p]))
    total = float(table["strength"].sum())
    n_max = max(len(senders), len(proteins), len(receivers))
    gap = 0.35 * total / max(n_max, 1) / 1.0
    scale = 1.0 / (total + gap * (n_max - 1))  # the tallest column spans [0, 1]
    s_span = _stack(senders, {k: v * scale for k, v in s_tot.items()}, gap * scale)
    p_span = _stack(proteins, {k: v * scale for k, v in p_tot.items()}, gap * scale)
    r_span = _stack(receivers, {k: v * scale for k, v in r_tot.items()}, gap * scale)

    longest = max(len(t) for t in [*senders, *receivers])
    if figsize is None:
        figsize = (max(6.0, 4.5 + 0.14 * longest), max(3.5, 0.3 * n_max + 1.2))
    fig, ax, created = new_axes(ax, figsize)
    xs, xp, xr, w = 0.0, 1.0, 2.0, 0.06

    def flows(a: str, b: str, spans_a, spans_b, order_a, order_b, colour_of) -> None:
        agg = table.groupby([a, b])["strength"].sum() * scale
        out_y = {k: spans_a[k][1] for k in spans_a}
        in_y = {k: spans_b[k][1] for k in spans_b}
        # leave each node in the order of the targets, enter each in the order of the sources
        keys = sorted(agg.index, key=lambda k: (order_a.index(k[0]), order_b.index(k[1])))
        enter = {k: None for k in sorted(agg.index, key=lambda k: (order_b.index(k[1]), order_a.index(k[0])))}
        start = {}
        for k in keys:
            start[k] = (out_y[k[0]] - agg[k], out_y[k[0]])
            out_y[k[0]] -= agg[k]
        for k in enter:
            enter[k] = (in_y[k[1]] - agg[k], in_y[k[1]])
            in_y[k[1]] -= agg[k]
        x0 = xs + w if a == "sender" else xp + w / 2
        x1 = xp - w / 2 if a == "sender" else xr
        for k in keys:
            _band(ax, x0, x1, start[k], enter[k], colour_of(k))

    flows("sender", "secreted_protein", s_span, p_span, senders, proteins, lambda k: colours[k[0]])
    flows("secreted_protein", "receiver", p_span, r_span, proteins, receivers, lambda k: colours[k[1]])
    texts = {"left": [], "mid": [], "right": []}
    for name, (lo, hi) in s_span.items():
        ax.add_patch(
            Rectangle((xs, lo), w, hi - lo, facecolor=colours[name], edgecolor="0.25", linewidth=0.5)
        )
        texts["left"].append(ax.text(xs - 0.03, (lo + hi) / 2, name, ha="right", va="center", fontsize=9))
    for name, (lo, hi) in p_span.items():
        ax.add_patch(
            Rectangle(
                (xp - w / 2, lo), w, hi - lo, facecolor="0.55", edgecolor="0.25", linewidth=0.5, zorder=2
            )
        )
        texts["mid"].append(
            ax.text(
                xp + w / 2 + 0.03, (lo + hi) / 2, name, ha="left", va="center", fontsize=8, zorder=4,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
            )
        )  # fmt: skip
    for name, (lo, hi) in r_span.items():
        ax.add_patch(
            Rectangle((xr, lo), w, hi - lo, facecolor=colours[name], edgecolor="0.25", linewidth=0.5)
        )
        texts["right"].append(ax.text(xr + w + 0.03, (lo + hi) / 2, name, ha="left", va="center", fontsize=9))
    for x, title in ((xs + w / 2, "sender"), (xp, "secreted protein"), (xr + w / 2, "receiver")):
        ax.text(x, 1.03, title, ha="center", va="bottom", fontsize=10, fontweight="bold")
    ax.set_xlim(-0.05 - 0.075 * longest, xr + w + 0.05 + 0.075 * longest)
    ax.set_ylim(-0.04, 1.1)
    ax.set_axis_off()
    from ._utils import repel

    for group in texts.values():
        repel(ax, group)
    ax.set_title(
        f"flows \u221d strength ({_measure(table)}; {len(table)} links); colour: sender, then receiver",
        fontsize=9,
        loc="center",
        pad=2,
    )
    return finish(fig, ax, created=created, show=show, return_fig=return_fig, save=save)
