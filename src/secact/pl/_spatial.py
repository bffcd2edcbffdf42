"""Activity and signalling velocity on tissue coordinates (over the tissue image when there is one)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._checks import check_positive_int
from .._docs import doc_params
from ._utils import DIVERGING, doc_figure, doc_returns, finish, new_axes, symmetric_limit

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["spatial_activity", "velocity"]


# ----------------------------------------------------------------------------------------------
# shared: coordinates, image, spot size
# ----------------------------------------------------------------------------------------------
def _coords(adata: AnnData, spatial_key: str) -> np.ndarray:
    if not hasattr(adata, "obsm") or spatial_key not in adata.obsm:
        msg = f"adata.obsm[{spatial_key!r}] not found: spatial plots need coordinates (cells x 2)."
        raise KeyError(msg)
    xy = np.asarray(adata.obsm[spatial_key], dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] < 2:
        raise ValueError(f"adata.obsm[{spatial_key!r}] must be cells x 2 coordinates, got shape {xy.shape}.")
    return xy[:, :2]


def _image(adata: AnnData, library_id: str | None, img_key: str | None, spatial_key: str):
    """``(image, scale factor, spot diameter in full-resolution units)`` or ``None``.

    The image is ``uns[spatial_key][library_id]["images"][img_key]`` (scanpy / squidpy
    layout); coordinates times ``scalefactors[f"tissue_{img_key}_scalef"]`` are its pixels.
    """
    libraries = adata.uns.get(spatial_key)
    if not isinstance(libraries, dict) or not libraries:
        if library_id is not None or img_key is not None:
            raise KeyError(f"adata.uns[{spatial_key!r}] holds no tissue image (library_id / img_key given).")
        return None
    if library_id is None:
        if len(libraries) > 1:
            msg = f"adata.uns[{spatial_key!r}] holds several libraries {list(libraries)}; pass library_id=."
            raise ValueError(msg)
        library_id = next(iter(libraries))
    if library_id not in libraries:
        raise KeyError(f"library_id={library_id!r} not in adata.uns[{spatial_key!r}]: {list(libraries)}.")
    lib = libraries[library_id]
    images = lib.get("images", {}) if isinstance(lib, dict) else {}
    if img_key is None:
        img_key = next((k for k in ("hires", "lowres") if k in images), next(iter(images), None))
        if img_key is None:
            return None
    if img_key not in images:
        raise KeyError(f"img_key={img_key!r} not in the images of library {library_id!r}: {list(images)}.")
    scales = lib.get("scalefactors", {})
    scale = float(scales.get(f"tissue_{img_key}_scalef", 1.0))
    diameter = scales.get("spot_diameter_fullres")
    return np.asarray(images[img_key]), scale, None if diameter is None else float(diameter)


def _spacing(xy: np.ndarray) -> float:
    """Median distance to the nearest other point (1 when undefined)."""
    from scipy.spatial import cKDTree

    if xy.shape[0] < 2:
        return 1.0
    d, _ = cKDTree(xy).query(xy, k=2)
    d = d[:, 1][np.isfinite(d[:, 1]) & (d[:, 1] > 0)]
    return float(np.median(d)) if d.size else 1.0


def _draw_spots(ax, xy, values, diameter, **kw):
    """Circles of ``diameter`` data units (they keep their size when zooming), coloured by ``values``."""
    from matplotlib.collections import EllipseCollection

    coll = EllipseCollection(
        widths=diameter,
        heights=diameter,
        angles=0,
        units="xy",
        offsets=xy,
        offset_transform=ax.transData,
        **kw,
    )
    if values is not None:
        coll.set_array(np.asarray(values, dtype=np.float64))
    ax.add_collection(coll)
    return coll


def _frame(ax, xy, pad, image=None) -> None:
    if image is not None:
        h, w = image.shape[:2]
        ax.imshow(image, extent=(0, w, h, 0), zorder=0)
    lo, hi = xy.min(axis=0) - pad, xy.max(axis=0) + pad
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(hi[1], lo[1])  # y down, as images (and scanpy's spatial plots)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def _layout(adata, spatial_key, library_id, img_key, size):
    """Drawing coordinates, spot diameter (drawing units), image (or ``None``), coordinate scale."""
    xy = _coords(adata, spatial_key)
    img = _image(adata, library_id, img_key, spatial_key)
    if img is not None:
        image, scale, diameter = img
        xy = xy * scale
        base = diameter * scale if diameter is not None else _spacing(xy)
    else:
        image, scale, base = None, 1.0, _spacing(xy)
    if size is not None and not (np.isfinite(size) and size > 0):
        raise ValueError(f"size must be a positive number, got {size!r}.")
    return xy, base * (1.0 if size is None else float(size)), image, scale


def _activity_table(adata, key: str, stat: str) -> pd.DataFrame:
    from ..get import activity

    act = activity(adata, key, stat=stat, level="cells")
    x = act.X.toarray() if hasattr(act.X, "toarray") else np.asarray(act.X)
    return pd.DataFrame(np.asarray(x, dtype=np.float64), index=act.obs_names, columns=act.var_names)


doc_spatial = """\
spatial_key
    ``obsm`` key of the coordinates and ``uns`` key of the images (scanpy's layout).
library_id, img_key
    Which image of ``uns[spatial_key]`` to draw under the spots (default: the only library,
    ``"hires"`` else ``"lowres"``); none is drawn when ``uns`` has none.
size
    Spot diameter as a multiple of ``spot_diameter_fullres`` (with an image) or of the
    median distance between nearest neighbours."""


# ----------------------------------------------------------------------------------------------
# activity
# ----------------------------------------------------------------------------------------------
@doc_params(spatial=doc_spatial, figure=doc_figure, returns=doc_returns)
def spatial_activity(
    adata: AnnData,
    proteins: str | Sequence[str],
    *,
    key: str = "secact",
    stat: str = "zscore",
    spatial_key: str = "spatial",
    library_id: str | None = None,
    img_key: str | None = None,
    size: float | None = None,
    cmap: str = DIVERGING,
    vmax: float | None = None,
    alpha: float = 1.0,
    ncols: int = 3,
    panel_size: tuple[float, float] = (4.0, 3.6),
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | os.PathLike | None = None,
) -> Axes | list[Axes] | Figure | None:
    """Cell- or spot-level activity on the tissue: one panel per protein, colours centred at 0.

    Spots are drawn as circles of their real size (Visium: ``spot_diameter_fullres``) over
    the tissue image when ``uns[spatial_key]`` has one, else on the bare coordinates (y
    pointing down, as images). Blue is below, red above 0; each panel's colour range is
    symmetric (``vmax`` or the largest absolute value).

    Parameters
    ----------
    adata
        AnnData with cell-level results of :func:`secact.tl.activity` and coordinates.
    proteins
        One protein or several (one panel each).
    key
        ``key_added`` of the activity run.
    stat
        Statistic to draw (``"zscore"``, ``"beta"``, ...).
    {spatial}
    cmap
        Diverging colour map.
    vmax
        Colour limit (``-vmax`` to ``vmax``); default per panel.
    alpha
        Opacity of the spots (lower it to see the image through them).
    ncols
        Panels per row.
    panel_size
        Width and height of one panel (inches).
    {figure}

    Returns
    -------
    {returns}
    """
    names = [proteins] if isinstance(proteins, str) else [str(p) for p in proteins]
    if not names:
        raise ValueError("name at least one protein.")
    if ax is not None and len(names) > 1:
        raise ValueError("ax= draws one panel; pass one protein (or no ax for a grid).")
    check_positive_int(ncols, "ncols")
    table = _activity_table(adata, key, stat)
    missing = [p for p in names if p not in table.columns]
    if missing:
        raise KeyError(
            f"proteins {missing} are not in the activity run {key!r}; e.g. {list(table.columns[:5])}."
        )
    xy, diameter, image, _ = _layout(adata, spatial_key, library_id, img_key, size)
    if ax is None:
        import matplotlib.pyplot as plt

        nc = min(ncols, len(names))
        nr = -(-len(names) // nc)
        fig, grid = plt.subplots(
            nr, nc, figsize=(panel_size[0] * nc, panel_size[1] * nr), layout="constrained", squeeze=False
        )
        axes = list(grid.ravel())
        for extra in axes[len(names) :]:
            extra.set_visible(False)
        axes = axes[: len(names)]
        created = True
    else:
        fig, ax, created = new_axes(ax, panel_size)
        axes = [ax]
    for a, protein in zip(axes, names, strict=True):
        values = table[protein].to_numpy()
        lim = symmetric_limit(values, vmax)
        _frame(a, xy, diameter, image)
        coll = _draw_spots(a, xy, values, diameter, cmap=cmap, alpha=alpha, linewidths=0)
        coll.set_clim(-lim, lim)
        fig.colorbar(coll, ax=a, shrink=0.7, label=f"{protein} {stat}")
        a.set_title(protein)
    return finish(
        fig, axes if len(axes) > 1 else axes[0], created=created, show=show, return_fig=return_fig, save=save
    )


# ----------------------------------------------------------------------------------------------
# velocity
# ----------------------------------------------------------------------------------------------
@doc_params(spatial=doc_spatial, figure=doc_figure, returns=doc_returns)
def velocity(
    adata: AnnData,
    key: str = "secact_velocity",
    *,
    color: str | None = "activity",
    activity_key: str = "secact",
    spatial_key: str = "spatial",
    library_id: str | None = None,
    img_key: str | None = None,
    size: float | None = None,
    arrow_length: float = 3.0,
    min_length: float = 0.2,
    arrow_color: str = "black",
    cmap: str | None = None,
    palette: Sequence[str] | None = None,
    alpha: float = 0.8,
    figsize: tuple[float, float] = (5.5, 4.8),
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | os.PathLike | None = None,
) -> Axes | Figure | None:
    """Signalling velocity of :func:`secact.tl.signaling_velocity` as arrows on the tissue.

    One arrow per cell or spot with flow, its length proportional to the vector's (the
    longest ``arrow_length`` spot spacings); arrows shorter than ``min_length`` times the
    longest are left out, so weak background flow does not clutter the tissue. Underneath,
    the spots coloured by the protein's activity (``color="activity"``, centred at 0), by an
    ``obs`` column, or grey (``None``), over the tissue image when there is one.

    Parameters
    ----------
    adata
        AnnData with the result of :func:`secact.tl.signaling_velocity`.
    key
        Its ``key_added``.
    color
        ``"activity"`` (z-score of the protein), an ``obs`` column, or ``None``.
    activity_key
        ``key_added`` of the activity run (``color="activity"``).
    {spatial}
    arrow_length
        Length of the longest arrow, in spot spacings (median nearest-neighbour distance).
    min_length
        Arrows shorter than this fraction of the longest are not drawn.
    arrow_color
        Colour of the arrows.
    cmap
        Colour map of the spots (default: diverging for activity, viridis for numbers).
    palette
        Colours of the categories of a categorical ``color`` (default: ``uns["<color>_colors"]``
        as scanpy stores them, else tab10).
    alpha
        Opacity of the spots.
    figsize
        Size of a new figure (inches).
    {figure}

    Returns
    -------
    {returns}
    """
    from ..get import velocity as get_velocity

    flow = get_velocity(adata, key)  # the registry's checks and errors
    for name, value in (("arrow_length", arrow_length), ("min_length", min_length)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a non-negative number, got {value!r}.")
    protein, mode = str(adata.uns[key]["protein"]), str(adata.uns[key]["mode"])
    vec = flow[["dx", "dy"]].to_numpy(dtype=np.float64)
    xy, diameter, image, scale = _layout(adata, spatial_key, library_id, img_key, size)
    vec = vec * scale  # into image pixels
    if color is not None and color != "activity" and color not in adata.obs.columns:
        raise KeyError(f"color={color!r} is neither 'activity', None nor a column of obs.")
    values = _activity_table(adata, activity_key, "zscore") if color == "activity" else None
    if values is not None and protein not in values.columns:
        raise KeyError(f"{protein!r} is not in the activity run {activity_key!r}; pass color=None.")
    fig, ax, created = new_axes(ax, figsize)  # after every check: no figure left on errors
    _frame(ax, xy, diameter, image)

    if color is None:
        _draw_spots(ax, xy, None, diameter, facecolors="0.82", alpha=alpha, linewidths=0)
    elif values is not None:
        v = values[protein].to_numpy()
        lim = symmetric_limit(v)
        coll = _draw_spots(ax, xy, v, diameter, cmap=cmap or DIVERGING, alpha=alpha, linewidths=0)
        coll.set_clim(-lim, lim)
        fig.colorbar(coll, ax=ax, shrink=0.7, label=f"{protein} activity (z)")
    elif color in adata.obs.columns:
        col = adata.obs[color]
        if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object or col.dtype == bool:
            stored = adata.uns.get(f"{color}_colors")  # scanpy's convention
            if (
                palette is None
                and stored is not None
                and len(stored) >= col.astype("category").cat.categories.size
            ):
                palette = list(stored)
            _categorical_spots(ax, xy, col.astype("category"), diameter, palette, alpha)
        else:
            coll = _draw_spots(
                ax, xy, col.to_numpy(dtype=np.float64), diameter, cmap=cmap or "viridis", alpha=alpha
            )
            fig.colorbar(coll, ax=ax, shrink=0.7, label=color)

    length = np.sqrt((vec**2).sum(axis=1))
    longest = float(length.max()) if length.size else 0.0
    show_arrow = length > max(min_length * longest, 0.0)
    if longest > 0 and show_arrow.any():
        spacing = _spacing(xy)
        per_unit = longest / (arrow_length * spacing)  # vector length per drawn unit
        ax.quiver(
            xy[show_arrow, 0],
            xy[show_arrow, 1],
            vec[show_arrow, 0],
            vec[show_arrow, 1],
            angles="xy",
            scale_units="xy",
            scale=per_unit,
            color=arrow_color,
            width=0.005,
            minlength=0,  # no dots for arrows shorter than their head
            headwidth=4,
            headlength=4.5,
            zorder=3,
        )
    ax.set_title(f"{protein} signalling velocity ({mode})")
    return finish(fig, ax, created=created, show=show, return_fig=return_fig, save=save)


def _categorical_spots(ax, xy, col: pd.Series, diameter, palette, alpha) -> None:
    import matplotlib as mpl
    from matplotlib.lines import Line2D

    cats = list(col.cat.categories)
    colours = (
        list(palette) if palette is not None else [mpl.colormaps["tab10"](i % 10) for i in range(len(cats))]
    )
    if len(colours) < len(cats):
        raise ValueError(f"palette has {len(colours)} colours for {len(cats)} categories.")
    codes = col.cat.codes.to_numpy()
    face = np.array([mpl.colors.to_rgba(colours[c]) if c >= 0 else (0.8, 0.8, 0.8, 1.0) for c in codes])
    _draw_spots(ax, xy, None, diameter, facecolors=face, alpha=alpha, linewidths=0)
    handles = [
        Line2D([], [], marker="o", ls="", color=colours[i], alpha=alpha, label=str(c))
        for i, c in enumerate(cats)
    ]
    ax.legend(handles=handles, title=col.name, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
