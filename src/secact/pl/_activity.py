"""Plots of activity results stored by :func:`secact.tl.activity` (group level)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes

__all__ = ["activity_heatmap"]


def _zscores(adata: AnnData | pd.DataFrame, key: str) -> pd.DataFrame:
    if isinstance(adata, pd.DataFrame):
        return adata
    from ..get import activity

    act = activity(adata, key, level="groups")
    z = act.to_df()
    z.index.name = act.uns[key]["groups"].get("groupby")
    return z


def activity_heatmap(
    adata: AnnData | pd.DataFrame,
    key: str = "secact",
    *,
    proteins: Sequence[str] | None = None,
    top: int = 5,
    vmax: float | None = None,
    cmap: str = "RdBu_r",
    ax: Axes | None = None,
    show: bool | None = None,
) -> Axes | None:
    """Heatmap of activity z-scores, groups x proteins.

    Parameters
    ----------
    adata
        AnnData with ``uns[key]`` from :func:`secact.tl.activity` with ``groupby``, or a
        groups x proteins DataFrame of z-scores.
    key
        Key of the results in ``adata.uns``.
    proteins
        Proteins to show; default: the ``top`` highest z-scores of each group.
    top
        Proteins per group when ``proteins`` is not given.
    vmax
        Symmetric colour limit (default: the largest absolute z-score shown).
    cmap
        Diverging colour map.
    ax
        Axes to draw into.
    show
        Show the figure (default: when no ``ax`` is given and the backend is interactive).

    Returns
    -------
    The axes, unless the figure was shown.
    """
    import matplotlib.pyplot as plt

    z = _zscores(adata, key)
    if proteins is None:
        if top < 1:
            msg = f"top must be >= 1, got {top}."
            raise ValueError(msg)
        chosen: list[str] = []
        for _, row in z.iterrows():
            for name in row.sort_values(ascending=False).index[:top]:
                if name not in chosen:
                    chosen.append(name)
        proteins = chosen
    missing = [p for p in proteins if p not in z.columns]
    if missing:
        msg = f"proteins not in the results: {missing[:5]}."
        raise KeyError(msg)
    data = z.loc[:, list(proteins)]
    lim = float(vmax if vmax is not None else np.nanmax(np.abs(data.to_numpy())) or 1.0)
    if ax is None:
        _, ax = plt.subplots(
            figsize=(max(4.0, 0.35 * data.shape[1] + 2), max(2.5, 0.35 * data.shape[0] + 1.5))
        )
        show = plt.isinteractive() if show is None else show
    image = ax.imshow(data.to_numpy(), cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(data.shape[1]), data.columns, rotation=90)
    ax.set_yticks(range(data.shape[0]), [str(i) for i in data.index])
    ax.set_xlabel("secreted protein")
    ax.set_ylabel(str(z.index.name or "group"))
    ax.figure.colorbar(image, ax=ax, label="activity (z)")
    if show:
        plt.show()
        return None
    return ax
