"""Cell-level activity on an embedding or in space, colour map centred at 0 (scanpy's plots)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._docs import doc_params
from ._utils import DIVERGING, doc_figure, finish

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["embedding", "spatial", "umap"]

doc_common = """\
key
    ``key_added`` of the cell-level run.
stat
    Statistic coloured: ``"zscore"`` (default), ``"beta"``, ``"se"`` or ``"pvalue"`` (the
    last two are not centred: they get ``"viridis"`` unless ``cmap`` is given).
cmap
    Colour map (default: diverging ``"RdBu_r"``, white at 0).
symmetric
    Colour limits ``-m .. m`` with ``m`` the largest ``|value|`` of each panel, so that equal
    activities up and down get equally strong colours (else scanpy's limits, still centred
    with ``vcenter=0``). Ignored for ``"se"`` / ``"pvalue"``, for ``obs`` columns (which keep
    scanpy's scale) and where ``vmin`` / ``vmax`` are given.
kwargs
    Passed to scanpy (``size``, ``ncols``, ``title``, ``vmax``, ``groups``, ...)."""

doc_returns_scanpy = """\
Axes (a list of them for several panels), the figure with ``return_fig=True``, or ``None``
once shown."""


def _sym_max(values: Sequence[float]) -> float:
    finite = np.abs(np.asarray(values, dtype=np.float64))
    finite = finite[np.isfinite(finite)]
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def _sym_min(values: Sequence[float]) -> float:
    return -_sym_max(values)


def _plot(plot, adata, color, key, stat, cmap, symmetric, ax, show, return_fig, save, kwargs):
    from ..get import activity

    act = activity(adata, key, stat=stat, level="cells")
    colors = [color] if isinstance(color, str) else list(color)
    unknown = [c for c in colors if c not in act.var_names and c not in act.obs.columns]
    if unknown:
        msg = (
            f"color {unknown} is neither a protein of the results nor a column of obs; proteins "
            f"e.g. {list(act.var_names[:5])}."
        )
        raise KeyError(msg)
    centred = stat in ("zscore", "beta")
    options = dict(kwargs)
    options.setdefault("cmap", cmap or (DIVERGING if centred else "viridis"))
    if centred:
        # only activities are centred at 0; obs columns (e.g. pattern weights) keep scanpy's scale
        is_protein = [c in act.var_names for c in colors]
        options.setdefault("vcenter", [0 if p else None for p in is_protein])
        if symmetric and "vmin" not in options and "vmax" not in options:
            options["vmin"] = [_sym_min if p else None for p in is_protein]
            options["vmax"] = [_sym_max if p else None for p in is_protein]
    axes = plot(act, color=colors if len(colors) > 1 else colors[0], ax=ax, show=False, **options)
    first = axes[0] if isinstance(axes, list) else axes
    return finish(first.figure, axes, created=ax is None, show=show, return_fig=return_fig, save=save)


@doc_params(common=doc_common, figure=doc_figure, returns=doc_returns_scanpy)
def embedding(
    adata: AnnData,
    basis: str,
    color: str | Sequence[str],
    *,
    key: str = "secact",
    stat: str = "zscore",
    cmap: str | None = None,
    symmetric: bool = True,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | os.PathLike | None = None,
    **kwargs: Any,
) -> Axes | list[Axes] | Figure | None:
    """Cell-level activity on an embedding: :func:`scanpy.pl.embedding` of :func:`secact.get.activity`.

    Parameters
    ----------
    adata
        AnnData with cell-level results of :func:`secact.tl.activity` (or its sidecar) and
        ``obsm["X_<basis>"]``.
    basis
        Embedding in ``obsm`` (``"umap"``, ``"pca"``, ``"spatial"``, ...).
    color
        Proteins (and / or ``obs`` columns) to colour by, one panel each.
    {common}
    {figure}

    Returns
    -------
    {returns}
    """
    import scanpy as sc

    def plot(act, **kw):
        return sc.pl.embedding(act, basis, **kw)

    return _plot(plot, adata, color, key, stat, cmap, symmetric, ax, show, return_fig, save, kwargs)


@doc_params(common=doc_common, figure=doc_figure, returns=doc_returns_scanpy)
def umap(
    adata: AnnData,
    color: str | Sequence[str],
    *,
    key: str = "secact",
    stat: str = "zscore",
    cmap: str | None = None,
    symmetric: bool = True,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | os.PathLike | None = None,
    **kwargs: Any,
) -> Axes | list[Axes] | Figure | None:
    """Cell-level activity on the UMAP (``obsm["X_umap"]``), colour map centred at 0.

    Parameters
    ----------
    adata
        AnnData with cell-level results of :func:`secact.tl.activity` and a UMAP.
    color
        Proteins (and / or ``obs`` columns) to colour by, one panel each.
    {common}
    {figure}

    Returns
    -------
    {returns}
    """
    return embedding(
        adata, "umap", color, key=key, stat=stat, cmap=cmap, symmetric=symmetric, ax=ax, show=show,
        return_fig=return_fig, save=save, **kwargs,
    )  # fmt: skip


@doc_params(common=doc_common, figure=doc_figure, returns=doc_returns_scanpy)
def spatial(
    adata: AnnData,
    color: str | Sequence[str],
    *,
    key: str = "secact",
    stat: str = "zscore",
    cmap: str | None = None,
    symmetric: bool = True,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | os.PathLike | None = None,
    **kwargs: Any,
) -> Axes | list[Axes] | Figure | None:
    """Cell- or spot-level activity in space, colour map centred at 0.

    With a tissue image in ``uns["spatial"]`` this is :func:`scanpy.pl.spatial` (image
    underneath); otherwise the coordinates ``obsm["spatial"]`` are drawn as an embedding
    with equal axes (y pointing down, as images are).

    Parameters
    ----------
    adata
        AnnData with cell-level results of :func:`secact.tl.activity` and ``obsm["spatial"]``.
    color
        Proteins (and / or ``obs`` columns) to colour by, one panel each.
    {common}
    {figure}

    Returns
    -------
    {returns}
    """
    import scanpy as sc

    if "spatial" not in getattr(adata, "obsm", {}):
        msg = "adata.obsm has no 'spatial' coordinates; spatial plots need them (cells x 2)."
        raise KeyError(msg)
    has_image = isinstance(adata.uns.get("spatial"), dict) and len(adata.uns["spatial"]) > 0

    def plot(act, **kw):
        if has_image:
            return sc.pl.spatial(act, **kw)
        axes = sc.pl.embedding(act, "spatial", **kw)
        for a in axes if isinstance(axes, list) else [axes]:
            a.set_aspect("equal")
            if not a.yaxis_inverted():
                a.invert_yaxis()
        return axes

    return _plot(plot, adata, color, key, stat, cmap, symmetric, ax, show, return_fig, save, kwargs)
