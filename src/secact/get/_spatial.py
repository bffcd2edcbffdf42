"""Results of :func:`secact.tl.signaling_patterns` and :func:`secact.tl.signaling_velocity`
as tidy DataFrames, and the secreted proteins of each pattern."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from .. import _results as res

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["pattern_genes", "patterns", "velocity"]


def _checked(adata: AnnData, key: str, kind: str) -> dict:
    err = res.missing(adata, key, kind)
    if err is not None:
        raise err
    if key not in adata.obsm:
        msg = f"adata.obsm has no {key!r}: the {res.RESULTS[kind].tool} results are incomplete (uns only)."
        raise KeyError(msg)
    return adata.uns[key]


def patterns(
    adata: AnnData,
    key: str = "secact_patterns",
    *,
    table: Literal["weights", "loadings", "silhouette"] = "weights",
) -> pd.DataFrame:
    """Signalling patterns of :func:`secact.tl.signaling_patterns`, one row per cell (or
    protein) and pattern, or the silhouette of each rank tried.

    Parameters
    ----------
    adata
        AnnData with the results (``obsm[key]`` and ``uns[key]``): the one the tool wrote
        to, its ``copy=True`` result, or the AnnData returned for an ``.h5ad`` path.
    key
        ``key_added`` of the run.
    table
        ``"weights"``: the pattern weights of each cell (R's ``signal.H``); ``"loadings"``:
        the loadings of the proteins kept by the spatial correlation filter (R's
        ``weight.W``) with that filter's ``r`` and ``padj``; ``"silhouette"``: the
        silhouette width of each rank tried (a run with several ``k``).

    Returns
    -------
    pandas.DataFrame
        ``"weights"``: columns ``observation``, ``pattern``, ``weight`` and ``dominant``
        (whether the pattern is the cell's largest, the cluster used for the silhouette), cells
        in ``obs`` order, patterns ``"1"`` ... ``"k"`` within each cell.
        ``"loadings"``: columns ``protein``, ``pattern``, ``loading``, ``r``, ``padj``, by
        pattern and, within each, by ``loading`` descending (the proteins that make the
        pattern first). ``"silhouette"``: columns ``k``, ``silhouette`` and ``chosen`` (the
        rank R's rule picked, the one stored).
    """
    entry = _checked(adata, key, "patterns")
    if table == "weights":
        w = adata.obsm[key]
        w = w if isinstance(w, pd.DataFrame) else pd.DataFrame(np.asarray(w), index=adata.obs_names)
        names = [str(c) for c in w.columns]
        values = res.dense(w)
        n_obs, k = values.shape
        top = np.argmax(values, axis=1) if k else np.zeros(n_obs, dtype=np.int64)
        return pd.DataFrame(
            {
                "observation": pd.Categorical(
                    np.repeat(w.index.astype(str), k), categories=w.index.astype(str)
                ),
                "pattern": pd.Categorical(np.tile(names, n_obs), categories=names),
                "weight": values.reshape(-1),
                "dominant": (np.arange(k)[None, :] == top[:, None]).reshape(-1),
            }
        )
    if table == "loadings":
        loadings: pd.DataFrame = entry["loadings"]
        corr: pd.DataFrame = entry["spatial_correlation"]
        names = [str(c) for c in loadings.columns]
        long = (
            loadings.rename_axis(index="protein", columns="pattern").stack().rename("loading").reset_index()
        )
        long["protein"] = long["protein"].astype(str)
        long["pattern"] = pd.Categorical(long["pattern"].astype(str), categories=names)
        corr = corr.set_axis(corr.index.astype(str), axis=0)
        long["r"] = corr["r"].reindex(long["protein"]).to_numpy()
        long["padj"] = corr["padj"].reindex(long["protein"]).to_numpy()
        long = long.sort_values(["pattern", "loading"], ascending=[True, False], kind="stable")
        return long.reset_index(drop=True)
    if table == "silhouette":
        if "silhouette" not in entry:
            msg = (
                f"the run {key!r} fitted one k ({int(entry['k'])}); the silhouette is computed when "
                "several k are given (e.g. k=range(2, 9))."
            )
            raise KeyError(msg)
        sil = entry["silhouette"].reset_index(drop=True).copy()
        sil["k"] = sil["k"].astype(np.int64)
        sil["chosen"] = sil["k"] == int(entry["k"])
        return sil
    msg = f"table must be 'weights', 'loadings' or 'silhouette', got {table!r}."
    raise ValueError(msg)


def pattern_genes(adata: AnnData, pattern: int | str, key: str = "secact_patterns") -> pd.DataFrame:
    """Secreted proteins of one signalling pattern (SecAct R's ``SecAct.signaling.pattern.gene``).

    A protein belongs to pattern ``n`` when its loading on ``n`` is at least twice its
    loading on every other pattern (R: the loadings on the other patterns are doubled and
    ``n`` must hold the row's maximum; ties count, so a protein with all loadings 0 belongs
    to every pattern, and with one pattern every protein belongs to it). Proteins are sorted
    by their loading on ``n``, largest first (ties in the order of the loadings table).

    Parameters
    ----------
    adata
        AnnData with the results of :func:`secact.tl.signaling_patterns` (``uns[key]``).
    pattern
        The pattern: its number ``1`` ... ``k`` (R's ``n``) or its column name (``"1"``).
    key
        ``key_added`` of the run.

    Returns
    -------
    pandas.DataFrame
        The selected rows of the loadings (R's ``weight.W``): index ``protein``, one column
        per pattern.
    """
    err = res.missing(adata, key, "patterns")
    if err is not None:
        raise err
    loadings: pd.DataFrame = adata.uns[key]["loadings"]
    names = [str(c) for c in loadings.columns]
    if (
        isinstance(pattern, bool)
        or not isinstance(pattern, int | np.integer | str)
        or str(pattern) not in names
    ):
        msg = f"pattern must be one of the patterns {names} (a number or its name), got {pattern!r}."
        raise ValueError(msg)
    n = names.index(str(pattern))
    w = res.dense(loadings)
    doubled = 2.0 * w
    doubled[:, n] = w[:, n]
    with np.errstate(invalid="ignore"):
        keep = doubled[:, n] == doubled.max(axis=1)  # NaN rows: not kept
    out = loadings.iloc[np.flatnonzero(keep)]
    out = out.iloc[np.argsort(-w[keep, n], kind="stable")]
    return out.set_axis(pd.Index(out.index.astype(str), name="protein"), axis=0).set_axis(names, axis=1)


def velocity(adata: AnnData, key: str = "secact_velocity") -> pd.DataFrame:
    """Signalling vectors of :func:`secact.tl.signaling_velocity`, one row per cell.

    Parameters
    ----------
    adata
        AnnData with the results (``obsm[key]`` and ``uns[key]``): the one the tool wrote
        to, its ``copy=True`` result, or the AnnData returned for an ``.h5ad`` path.
    key
        ``key_added`` of the run.

    Returns
    -------
    pandas.DataFrame
        Columns ``observation``, ``protein``, ``mode`` (of the run), ``x``, ``y`` (the cell's
        coordinates, from ``obsm[spatial_key]`` of the run, when ``adata`` has them), ``dx``,
        ``dy`` (the vector) and ``length`` (its norm, the cell's total flow); cells in
        ``obs`` order.
    """
    entry = _checked(adata, key, "velocity")
    vec = res.dense(adata.obsm[key])
    cols: dict[str, object] = {
        "observation": adata.obs_names.astype(str),
        "protein": str(entry["protein"]),
        "mode": str(entry["mode"]),
    }
    spatial_key = str(entry.get("params", {}).get("spatial_key", "spatial"))
    if spatial_key in adata.obsm:
        xy = res.dense(adata.obsm[spatial_key])
        cols["x"], cols["y"] = xy[:, 0], xy[:, 1]
    cols["dx"], cols["dy"] = vec[:, 0], vec[:, 1]
    cols["length"] = np.hypot(vec[:, 0], vec[:, 1])
    return pd.DataFrame(cols)
