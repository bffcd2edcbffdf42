"""Signalling velocity of a secreted protein: ``secact.tl.signaling_velocity``."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import _results as res
from .._docs import doc_params, doc_spatial_activity, doc_spatial_input, doc_stored
from ..core import spatial as _sp
from ..io import resolve
from ._common import group_codes
from ._spatial_common import (
    activity_zscores,
    check_positive,
    coordinates,
    protein_expression,
)

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["signaling_velocity"]

logger = logging.getLogger("secact")


@doc_params(activity=doc_spatial_activity, spatial=doc_spatial_input, stored=doc_stored)
def signaling_velocity(
    adata: AnnData | str | os.PathLike,
    protein: str,
    *,
    mode: str = "receiving",
    radius: float = 200,
    sigma: float | None = 100,
    groupby: str | None = None,
    sender: str | Sequence[str] | None = None,
    receiver: str | Sequence[str] | None = None,
    key: str = "secact",
    activity: pd.DataFrame | AnnData | str | os.PathLike | None = None,
    layer: str | None = None,
    use_raw: bool | None = None,
    gene_symbols: str | None = None,
    spatial_key: str = "spatial",
    scale_factor: float = 1e5,
    key_added: str = "secact_velocity",
    copy: bool = False,
) -> AnnData | None:
    """Signalling velocity of a secreted protein: where its signal flows, per cell or spot.

    SecAct R's ``SecAct.signaling.velocity.spotST``. Between neighbours ``i`` and ``j``
    within ``radius`` the flow from ``i`` to ``j`` is ``exp(-d^2 / (2 sigma^2))`` times the
    expression of the protein's gene in ``i`` (``log2(counts / total * scale_factor + 1)``)
    times the activity of the protein in ``j`` (z-score, negatives set to 0). A cell's
    vector has the length of its total flow and the direction of the flow-weighted mean of
    the unit vectors to its partners: towards the cells it reaches (``mode="sending"``) or
    from the cells that reach it (``mode="receiving"``); see
    ``secact.core.spatial.velocity``. With ``groupby``, ``sender`` and ``receiver``
    only those cell types send and receive (the pairs of R's
    ``SecAct.signaling.velocity.scST``; there ``sigma=None`` and ``radius=20``).

    Draw it with :func:`secact.pl.velocity`. Run ``secact.tl.activity(adata, ...,
    method="analytic")`` (per cell) first.

    Parameters
    ----------
    adata
        Spatial data with raw counts and coordinates in ``obsm[spatial_key]``: an AnnData in
        memory, opened with ``backed="r"``, or an ``.h5ad`` path (the counts are read block
        by block; only the protein's gene and each cell's total are kept).
    protein
        Secreted protein (a column of the activity; its name is its gene's symbol).
    mode
        ``"receiving"`` or ``"sending"``.
    radius
        Neighbour radius in the coordinates' unit (R: 200 µm for spots).
    sigma
        Width of the Gaussian distance weight (R: 100 µm); ``None``: weight 1.
    groupby
        Column of ``obs`` with cell types, for ``sender`` and ``receiver``.
    sender, receiver
        Cell type(s) allowed to send / receive (default: all cells).
    {activity}
    {spatial}
    scale_factor
        Counts per cell before ``log2(x + 1)`` (R: 1e5).
    key_added
        ``obsm`` and ``uns`` key of the result.
    copy
        Return a copy with the results instead of writing to ``adata`` (in-memory AnnData only).

    Returns
    -------
    anndata.AnnData or None
        {stored}

        A new AnnData of a path input also holds the coordinates (``obsm[spatial_key]``), so :func:`secact.pl.velocity` draws
        it. Read the vectors with :func:`secact.get.velocity`.

        ``adata.obsm[key_added]``
            Cells x 2 array of vectors (the coordinates' unit times flow).
        ``adata.uns[key_added]``
            A dict with ``"protein"``, ``"mode"`` and ``"params"``.
    """
    res.check_key(key_added)
    if mode not in ("receiving", "sending"):
        raise ValueError(f"mode must be 'receiving' or 'sending', got {mode!r}.")
    check_positive("scale_factor", scale_factor)
    with resolve(adata, layer=layer, use_raw=use_raw) as inp:
        dest = res.target(inp, copy=copy)
        act = activity_zscores(inp, key, activity)
        protein = str(protein)
        if protein not in act.columns:
            msg = f"{protein!r} is not a protein of the activity run {key!r}; e.g. {list(act.columns[:5])}."
            raise KeyError(msg)
        masks = _type_masks(inp.obs, groupby, sender, receiver)
        coords = coordinates(inp, spatial_key)
        expr = protein_expression(inp, gene_symbols, [protein], scale_factor)[:, 0]
    if np.isnan(expr).all():
        raise KeyError(
            f"no gene {protein!r} in the data: the protein's gene symbol is needed (gene_symbols=?)."
        )
    vec = _sp.velocity(
        coords,
        expr,
        act[protein].clip(lower=0.0).to_numpy(),
        radius,
        sigma=sigma,
        mode=mode,
        senders=masks.get("sender"),
        receivers=masks.get("receiver"),
    )
    params = {
        "radius": float(radius),
        "sigma": None if sigma is None else float(sigma),
        "groupby": groupby,
        "sender": sender if sender is None or isinstance(sender, str) else [str(s) for s in sender],
        "receiver": receiver if receiver is None or isinstance(receiver, str) else [str(r) for r in receiver],
        "key": key,
        "layer": layer,
        "use_raw": inp.use_raw,
        "spatial_key": spatial_key,
        "scale_factor": float(scale_factor),
    }
    entry = {"protein": protein, "mode": mode, "params": res.clean_uns(params)}
    return res.store(dest, "velocity", key_added, entry, obsm={key_added: vec}, carry={spatial_key: coords})


def _type_masks(obs: pd.DataFrame, groupby: str | None, sender, receiver) -> dict[str, np.ndarray]:
    """Boolean cell masks of the allowed sender / receiver types (only those given)."""
    masks: dict[str, np.ndarray] = {}
    if sender is None and receiver is None:
        return masks
    if groupby is None:
        raise ValueError("sender= and receiver= need groupby= (the obs column of cell types).")
    codes, categories = group_codes(obs, groupby)
    names = np.asarray([str(c) for c in categories])
    for role, value in (("sender", sender), ("receiver", receiver)):
        if value is None:
            continue
        wanted = [value] if isinstance(value, str) else [str(v) for v in value]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise ValueError(f"{role} types {unknown} are not in obs[{groupby!r}]: {list(names)}.")
        masks[role] = (codes >= 0) & np.isin(names[np.maximum(codes, 0)], wanted)
    return masks
