"""A simulated spatial tissue with planted secreted-protein signalling niches.

Cells (or Visium-like spots) lie on a plane in µm. Each niche is a disk: in its core a
sender cell type is enriched and its sender cells over-express the gene of a secreted
protein; cells of the receiver types anywhere in the disk answer that protein with its
signature response. The ground truth is stored in the AnnData, so tests and tutorials can
check that cell-cell communication, signalling patterns and velocity find what was planted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._simulate import _BASE_MEAN, _BASE_SD, _LIBRARY_SIGMA, _MAX_SHIFT, _poisson_counts, _signature_frame

__all__ = ["DEFAULT_CELL_TYPES", "DEFAULT_NICHES", "NO_NICHE", "simulate_spatial"]

#: Label of cells outside every niche in ``obs["niche"]``.
NO_NICHE = "none"

#: Default cell types and their share of the tissue outside niche cores.
DEFAULT_CELL_TYPES: dict[str, float] = {"tumor": 0.4, "fibroblast": 0.25, "macrophage": 0.2, "T_cell": 0.15}

#: Default niches: ``{niche: (sender type, secreted protein, receiver types)}``.
DEFAULT_NICHES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "IFNG_niche": ("T_cell", "IFNG", ("macrophage", "tumor")),
    "TGFB1_niche": ("fibroblast", "TGFB1", ("tumor", "fibroblast", "macrophage", "T_cell")),
    "IL6_niche": ("macrophage", "IL6", ("tumor", "fibroblast")),
}

_FILLER_FRACTION = 0.05
_N_MARKERS = 20  # filler genes per cell type with a type-specific level
_MARKER_SHIFT = 3.0  # log2 over-expression of a type's marker genes
_SECRETED_FRACTION = 5e-5  # share of a cell's counts of a secreted gene outside senders
_SPOT_DIAMETER = 55.0  # Visium capture spot, µm


# ----------------------------------------------------------------------------------------------
# geometry
# ----------------------------------------------------------------------------------------------
def _cell_grid(n: int, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` cells on a jittered square grid (row by row, the last row possibly partial)."""
    ncol = int(np.ceil(np.sqrt(n)))
    k = np.arange(n)
    xy = np.column_stack([k % ncol, k // ncol]).astype(np.float64) * spacing + spacing
    return xy + rng.uniform(-0.25 * spacing, 0.25 * spacing, size=xy.shape)


def _hex_grid(n: int, spacing: float) -> np.ndarray:
    """``n`` spot centres on a hexagonal grid (Visium: rows ``spacing * sqrt(3) / 2`` apart)."""
    ncol = int(np.ceil(np.sqrt(n * np.sqrt(3) / 2)))
    k = np.arange(n)
    row, col = k // ncol, k % ncol
    x = (col + 0.5 * (row % 2)) * spacing + spacing
    y = row * spacing * np.sqrt(3) / 2 + spacing
    return np.column_stack([x, y])


def _niche_disks(xy: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Centres (k x 2) and common radius of ``k`` disjoint disks placed around the tissue centre."""
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    centre = (lo + hi) / 2
    size = float(min(hi - lo))
    if k == 1:
        return centre[None, :], 0.3 * size
    d = 0.3 * size
    angles = np.pi / 2 + 2 * np.pi * np.arange(k) / k
    centres = centre + d * np.column_stack([np.cos(angles), np.sin(angles)])
    radius = min(0.26 * size, 0.95 * d * np.sin(np.pi / k))
    return centres, float(radius)


# ----------------------------------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------------------------------
def _check_types(cell_types) -> tuple[list[str], np.ndarray]:
    if isinstance(cell_types, Mapping):
        names = [str(t) for t in cell_types]
        share = np.asarray([float(v) for v in cell_types.values()], dtype=np.float64)
    else:
        names = [str(t) for t in cell_types]
        share = np.ones(len(names))
    if not names or len(set(names)) != len(names):
        raise ValueError(f"cell_types must name distinct cell types, got {cell_types!r}.")
    if not (np.isfinite(share).all() and (share >= 0).all() and share.sum() > 0):
        raise ValueError("cell_types shares must be non-negative numbers, not all zero.")
    return names, share / share.sum()


def _check_niches(niches, types: Sequence[str], sig: pd.DataFrame) -> dict[str, tuple[str, str, list[str]]]:
    out: dict[str, tuple[str, str, list[str]]] = {}
    if not isinstance(niches, Mapping) or not niches:
        raise ValueError(
            "niches must be a non-empty {niche: (sender type, protein, receiver types)} mapping."
        )
    for name, spec in niches.items():
        if str(name) == NO_NICHE:
            raise ValueError(f"{NO_NICHE!r} labels cells outside every niche; choose another niche name.")
        try:
            sender, protein, receivers = spec
        except (TypeError, ValueError):
            msg = f"niche {name!r}: expected (sender type, protein, receiver types), got {spec!r}."
            raise ValueError(msg) from None
        receivers = [str(receivers)] if isinstance(receivers, str) else [str(r) for r in receivers]
        unknown = sorted({str(sender), *receivers} - set(types))
        if unknown:
            raise ValueError(f"niche {name!r}: cell types {unknown} are not in cell_types {list(types)}.")
        if not receivers:
            raise ValueError(f"niche {name!r}: name at least one receiver type.")
        if str(protein) not in sig.columns:
            raise ValueError(f"niche {name!r}: protein {protein!r} is not a column of the signature.")
        out[str(name)] = (str(sender), str(protein), receivers)
    return out


# ----------------------------------------------------------------------------------------------
# simulation
# ----------------------------------------------------------------------------------------------
def simulate_spatial(
    n_cells: int = 1600,
    *,
    layout: str = "cells",
    signature: str | pd.DataFrame = "CytoSig",
    cell_types: Mapping[str, float] | Sequence[str] | None = None,
    niches: Mapping[str, tuple[str, str, Sequence[str]]] | None = None,
    spacing: float | None = None,
    core: float = 0.7,
    sender_share: float = 0.4,
    effect: float = 1.5,
    sender_effect: float = 7.0,
    cells_per_spot: float = 8.0,
    mean_library_size: float = 2000.0,
    dispersion: float = 0.2,
    seed: int = 0,
) -> ad.AnnData:
    """Simulate a spatial tissue with planted secreted-protein signalling niches.

    Geometry. ``layout="cells"``: single-cell resolution, cells on a square grid ``spacing``
    µm apart (default 10) with uniform jitter of a quarter spacing, ``obsm["spatial"]`` their
    coordinates. ``layout="visium"``: spots on a hexagonal grid ``spacing`` µm apart
    (default 100, as Visium), each capturing ``Poisson(cells_per_spot)`` cells placed
    uniformly in its 55 µm disk; a spot's counts are drawn from the sum of its cells'
    expected counts. Niches are disjoint disks around the tissue centre (one per entry of
    ``niches``); their inner ``core`` fraction of the radius is the sender core.

    Cells. Outside cores cell types are drawn with the shares of ``cell_types``; in a core
    the niche's sender type has probability ``sender_share`` and the others share the rest.
    Sender cells (the sender type in the core) over-express the protein's gene (the
    protein's name is taken as its gene symbol) by ``sender_effect`` log2 units over a
    baseline of 5e-5 of a cell's counts; cells of the receiver types anywhere in the disk
    answer the protein: their log2 expression shifts by ``effect`` times its signature
    column (clipped to ±8). Each cell type also over-expresses 20 non-signature marker genes
    (``var["marker_of"]``) 8-fold. Counts follow the negative binomial model of
    :func:`secact.datasets.simulate` (log-normal gene abundances and library sizes,
    gamma-Poisson with ``dispersion``).

    Parameters
    ----------
    n_cells
        Number of observations: cells, or spots with ``layout="visium"``.
    layout
        ``"cells"`` (single-cell resolution) or ``"visium"`` (spot mixtures).
    signature
        Signature name, path or DataFrame (:func:`secact.datasets.signature`).
    cell_types
        Mapping of cell type to its share, or a sequence of types (equal shares). Default
        ``DEFAULT_CELL_TYPES``.
    niches
        Mapping of niche name to ``(sender type, protein, receiver types)``. Default ``DEFAULT_NICHES``
        (IFNG, TGFB1 and IL6 niches).
    spacing
        Grid spacing in µm (default 10 for cells, 100 for spots).
    core
        Radius of the sender core as a fraction of the niche radius (0 < core <= 1).
    sender_share
        Probability of the sender type in a niche core.
    effect
        Multiplier of the signature column (log2 units) in responding cells.
    sender_effect
        Log2 over-expression of the secreted gene in sender cells.
    cells_per_spot
        Mean number of cells per spot (``layout="visium"``).
    mean_library_size
        Mean total counts per observation (cell or spot).
    dispersion
        Negative-binomial dispersion (0: Poisson).
    seed
        Seed of the :class:`numpy.random.Generator`; the same arguments give identical data.

    Returns
    -------
    anndata.AnnData
        ``X``: int32 CSR counts, observations x genes (signature genes, 5% filler genes
        ``SIMGENE00001``... and secreted genes missing from the signature), gene symbols as
        ``var_names``; ``var["in_signature"]``, ``var["marker_of"]`` (cell type or ``""``).
        ``obsm["spatial"]``: coordinates (µm). ``obs["niche"]`` (categorical, ``"none"``
        outside niches; for spots: where the centre lies), ``obs["cell_type"]``
        (categorical; for spots the most abundant type), ``obs["is_sender"]`` and
        ``obs["is_receiver"]`` (for spots: any captured cell is). For spots also
        ``obsm["cell_type_fractions"]`` (spots x types) and ``obs["n_cells"]``.
        ``uns["simulation"]``: ``{"niches": {niche: {"sender", "protein", "receivers"}},
        "centers": niches x 2, "radius", "core_radius", "params": {...}}``.
    """
    if layout not in ("cells", "visium"):
        raise ValueError(f"layout must be 'cells' or 'visium', got {layout!r}.")
    if isinstance(n_cells, bool) or not isinstance(n_cells, int | np.integer) or n_cells < 10:
        raise ValueError(f"n_cells must be an integer >= 10, got {n_cells!r}.")
    for name, value, ok in (
        ("core", core, 0 < core <= 1),
        ("sender_share", sender_share, 0 <= sender_share <= 1),
        ("mean_library_size", mean_library_size, mean_library_size > 0),
        ("dispersion", dispersion, dispersion >= 0),
        ("cells_per_spot", cells_per_spot, cells_per_spot > 0),
        ("effect", effect, np.isfinite(effect)),
        ("sender_effect", sender_effect, np.isfinite(sender_effect)),
    ):
        if not ok:
            raise ValueError(f"{name}={value!r} is out of range; see the docstring of simulate_spatial.")
    sig, sig_name = _signature_frame(signature)
    types, share = _check_types(DEFAULT_CELL_TYPES if cell_types is None else cell_types)
    planted = _check_niches(DEFAULT_NICHES if niches is None else niches, types, sig)
    names = list(planted)
    k = len(names)
    rng = np.random.default_rng(seed)
    if spacing is None:
        spacing = 10.0 if layout == "cells" else 100.0
    if not (np.isfinite(spacing) and spacing > 0):
        raise ValueError(f"spacing must be a positive number of µm, got {spacing!r}.")

    # Observations and the cells they hold (a spot holds several cells).
    if layout == "cells":
        obs_xy = _cell_grid(int(n_cells), float(spacing), rng)
        cell_xy, owner = obs_xy, np.arange(n_cells)
    else:
        obs_xy = _hex_grid(int(n_cells), float(spacing))
        per_spot = rng.poisson(cells_per_spot, size=n_cells)
        owner = np.repeat(np.arange(n_cells), per_spot)
        r = 0.5 * _SPOT_DIAMETER * np.sqrt(rng.uniform(size=owner.size))
        t = rng.uniform(0, 2 * np.pi, size=owner.size)
        cell_xy = obs_xy[owner] + np.column_stack([r * np.cos(t), r * np.sin(t)])
    centres, radius = _niche_disks(obs_xy, k)
    core_radius = core * radius

    def where(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dist = np.sqrt(((xy[:, None, :] - centres[None, :, :]) ** 2).sum(-1))
        near = dist.argmin(axis=1)
        dmin = dist[np.arange(xy.shape[0]), near]
        niche = np.where(dmin <= radius, near, -1)
        return niche, np.where(dmin <= core_radius, near, -1)

    niche, in_core = where(cell_xy)
    n_c = cell_xy.shape[0]

    # Cell types: background shares, the sender type enriched in cores.
    prob = np.tile(share, (n_c, 1))
    tidx = {t: i for i, t in enumerate(types)}
    for m, (sender, _, _) in enumerate(planted.values()):
        s = tidx[sender]
        others = share.copy()
        others[s] = 0.0
        if others.sum() > 0:
            others *= (1.0 - sender_share) / others.sum()
            others[s] = sender_share
        else:  # a single cell type
            others[s] = 1.0
        prob[in_core == m] = others
    ctype = (rng.uniform(size=n_c)[:, None] < np.cumsum(prob, axis=1)).argmax(axis=1)
    sender_of = np.array([tidx[s] for s, _, _ in planted.values()])
    receives = np.array(
        [[tidx[t] in {tidx[r] for r in rec} for t in types] for _, _, rec in planted.values()]
    )
    is_sender = (in_core >= 0) & (ctype == sender_of[np.maximum(in_core, 0)])
    is_receiver = (niche >= 0) & receives[np.maximum(niche, 0), ctype]

    # Genes: signature genes, fillers (some are type markers), missing secreted genes.
    sig_genes = [str(g) for g in sig.index]
    n_filler = max(_N_MARKERS * len(types), int(np.ceil(_FILLER_FRACTION * len(sig_genes))))
    fillers = [f"SIMGENE{i:05d}" for i in range(1, n_filler + 1)]
    secreted = list(dict.fromkeys(p for _, p, _ in planted.values()))
    genes = sig_genes + fillers + [g for g in secreted if g not in set(sig_genes)]
    n_g = len(genes)
    n_sig = len(sig_genes)
    gpos = {g: i for i, g in enumerate(genes)}
    shifts = np.zeros((n_g, k))
    for m, (_, protein, _) in enumerate(planted.values()):
        shifts[:n_sig, m] = np.clip(effect * sig[protein].to_numpy(dtype=np.float64), -_MAX_SHIFT, _MAX_SHIFT)
    marker_of = np.full(n_g, "", dtype=object)
    markers = rng.permutation(n_filler)[: _N_MARKERS * len(types)].reshape(len(types), _N_MARKERS) + n_sig
    for t, rows in enumerate(markers):
        marker_of[rows] = types[t]
    base = rng.normal(_BASE_MEAN, _BASE_SD, size=n_g)
    sec_rows = np.array([gpos[g] for g in secreted])
    base[sec_rows] = -np.inf  # set per class below, as a share of the counts

    # Expression per class of cells (type, niche, sender, receiver): few distinct profiles.
    code = ((ctype * (k + 1) + (niche + 1)) * 2 + is_sender) * 2 + is_receiver
    classes, inverse = np.unique(code, return_inverse=True)
    props = np.empty((classes.size, n_g))
    for c, value in enumerate(classes):
        rcv, snd = value % 2, (value // 2) % 2
        m = (value // 4) % (k + 1) - 1
        t = (value // 4) // (k + 1)
        log2 = base.copy()
        log2[markers[t]] += _MARKER_SHIFT
        if rcv:
            log2 += shifts[:, m]
        p = np.exp2(log2 - log2[np.isfinite(log2)].max())
        p /= p.sum()
        sec = np.full(sec_rows.size, _SECRETED_FRACTION)
        if snd:
            sec[secreted.index(planted[names[m]][1])] *= 2.0**sender_effect
        p *= 1.0 - sec.sum()
        p[sec_rows] = sec
        props[c] = p

    # Expected counts: library sizes (per cell; a spot's is spread over its cells), gamma noise.
    per_cell_mean = mean_library_size / (1.0 if layout == "cells" else cells_per_spot)
    library = per_cell_mean * np.exp(rng.normal(-0.5 * _LIBRARY_SIGMA**2, _LIBRARY_SIGMA, size=n_c))
    if layout == "cells":
        rates = props.astype(np.float32)[inverse] * library.astype(np.float32)[:, None]
    else:
        mix = sp.csr_matrix((library, (owner, inverse)), shape=(n_cells, classes.size))
        rates = np.asarray(mix @ props, dtype=np.float32)
    if dispersion > 0:
        rates *= rng.standard_gamma(np.float32(1.0 / dispersion), size=rates.shape, dtype=np.float32)
        rates *= np.float32(dispersion)
    X = _poisson_counts(rates, rng, sparse=True)
    del rates

    niche_cat = [*names, NO_NICHE]
    if layout == "cells":
        obs = pd.DataFrame(
            {
                "cell_type": pd.Categorical.from_codes(ctype, categories=types),
                "niche": pd.Categorical.from_codes(np.where(niche >= 0, niche, k), categories=niche_cat),
                "is_sender": is_sender,
                "is_receiver": is_receiver,
            },
            index=pd.Index([f"cell{i:05d}" for i in range(n_cells)]),
        )
    else:
        count = np.zeros((n_cells, len(types)))
        np.add.at(count, (owner, ctype), 1.0)
        n_in = count.sum(axis=1)
        frac = np.divide(count, n_in[:, None], out=np.zeros_like(count), where=n_in[:, None] > 0)
        spot_niche, _ = where(obs_xy)
        obs = pd.DataFrame(
            {
                "cell_type": pd.Categorical.from_codes(count.argmax(axis=1), categories=types),
                "niche": pd.Categorical.from_codes(
                    np.where(spot_niche >= 0, spot_niche, k), categories=niche_cat
                ),
                "is_sender": np.bincount(owner, weights=is_sender, minlength=n_cells) > 0,
                "is_receiver": np.bincount(owner, weights=is_receiver, minlength=n_cells) > 0,
                "n_cells": n_in.astype(np.int64),
            },
            index=pd.Index([f"spot{i:05d}" for i in range(n_cells)]),
        )
    var = pd.DataFrame(
        {"in_signature": np.arange(n_g) < n_sig, "marker_of": marker_of.astype(str)},
        index=pd.Index(genes),
    )
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.obsm["spatial"] = obs_xy
    if layout == "visium":
        adata.obsm["cell_type_fractions"] = pd.DataFrame(frac, index=obs.index, columns=types)
    adata.uns["simulation"] = {
        "niches": {
            n: {"sender": s, "protein": p, "receivers": np.asarray(r, dtype=str)}
            for n, (s, p, r) in planted.items()
        },
        "centers": centres,
        "radius": float(radius),
        "core_radius": float(core_radius),
        "params": {
            "n_cells": int(n_cells),
            "layout": layout,
            "signature": sig_name,
            "cell_types": np.asarray(types, dtype=str),
            "type_shares": share,
            "spacing": float(spacing),
            "core": float(core),
            "sender_share": float(sender_share),
            "effect": float(effect),
            "sender_effect": float(sender_effect),
            "cells_per_spot": float(cells_per_spot),
            "mean_library_size": float(mean_library_size),
            "dispersion": float(dispersion),
            "seed": int(seed),
        },
    }
    return adata
