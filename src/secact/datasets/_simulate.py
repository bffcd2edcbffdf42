"""A simulated single-cell count data set with planted cytokine responses.

The ground truth is known: every group but ``"control"`` answers one signature protein, whose
signature column shifts that group's expression. Optionally, sender groups over-express the
gene of a secreted protein (planted cell-cell communication: sender -> protein -> the group
answering it). It serves the ``secact example`` command and tests that check activity
inference and cell-cell communication find what was planted.
"""

from __future__ import annotations

from collections.abc import Mapping

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._signatures import signature as _load_signature

__all__ = ["CONTROL", "DEFAULT_PLANTED_ORDER", "simulate"]

CONTROL = "control"

#: Preference order for the default planted proteins; among these (then all other columns),
#: proteins are taken greedily as long as their signature columns correlate with every one
#: already taken by less than ``_MAX_ABS_CORRELATION`` (on CytoSig: IFNG, TGFB1, IL4, WNT3A, ...).
DEFAULT_PLANTED_ORDER: tuple[str, ...] = (
    "IFNG",
    "TGFB1",
    "IL4",
    "WNT3A",
    "VEGFA",
    "IL10",
    "IL6",
    "TNFA",
    "IL17A",
    "BMP4",
    "IL2",
    "EGF",
)
_MAX_ABS_CORRELATION = 0.3
_FILLER_FRACTION = 0.05
_LIBRARY_SIGMA = 0.3  # sd of log library size
_BASE_MEAN, _BASE_SD = 0.0, 1.5  # log2 gene abundance
_MAX_SHIFT = 8.0  # |effect * signature| is clipped to this many log2 units
_SECRETED_BASE = 4.5  # log2 base abundance of a sender's secreted gene (about 0.25% of counts)


def _signature_frame(sig: str | pd.DataFrame) -> tuple[pd.DataFrame, str]:
    if isinstance(sig, pd.DataFrame):
        return _load_signature(sig), "DataFrame"
    return _load_signature(sig), str(sig)


def _default_planted(sig: pd.DataFrame, n: int) -> list[str]:
    """Deterministic choice of ``n`` proteins with weakly correlated signature columns."""
    if n > sig.shape[1]:
        raise ValueError(f"n_groups - 1 = {n} planted proteins requested, the signature has {sig.shape[1]}")
    order = [p for p in DEFAULT_PLANTED_ORDER if p in sig.columns]
    order += [p for p in sig.columns if p not in order]
    corr = np.corrcoef(sig[order].to_numpy(dtype=np.float64), rowvar=False)
    chosen: list[int] = []
    for i in range(len(order)):
        if len(chosen) == n:
            break
        if all(abs(corr[i, j]) < _MAX_ABS_CORRELATION for j in chosen):
            chosen.append(i)
    for i in range(len(order)):  # not enough weakly correlated ones: take the next in order
        if len(chosen) == n:
            break
        if i not in chosen:
            chosen.append(i)
    return [order[i] for i in chosen]


def _poisson_counts(rates: np.ndarray, rng: np.random.Generator, *, sparse: bool):
    """Independent Poisson(rates) counts (cells x genes) as int32 CSR or dense array.

    Each cell's total is drawn as Poisson(sum of its rates) and its counts are spread over
    genes by inverse-CDF sampling, which has the same law as one Poisson draw per entry.
    The sampling points of a cell are drawn sorted (normalised exponential spacings) and
    located in one cumulative sum over the whole flattened matrix, so a single sorted
    ``searchsorted`` places all counts.
    """
    n_cells, n_genes = rates.shape
    cum = np.cumsum(rates.reshape(-1), dtype=np.float64)
    row_end = cum[n_genes - 1 :: n_genes]
    row_start = np.concatenate([[0.0], row_end[:-1]])
    per_cell = rng.poisson(row_end - row_start)
    # Sorted uniforms per cell: cumulative sums of n + 1 exponentials over their total.
    seg = per_cell + 1
    seg_end = np.cumsum(seg)
    spacing = np.cumsum(rng.standard_exponential(int(seg_end[-1])))
    seg_base = np.concatenate([[0.0], spacing[seg_end[:-1] - 1]])
    seg_total = spacing[seg_end - 1] - seg_base
    is_point = np.ones(spacing.size, dtype=bool)
    is_point[seg_end - 1] = False
    cell = np.repeat(np.arange(n_cells), per_cell)
    u = (spacing[is_point] - seg_base[cell]) / seg_total[cell]
    targets = row_start[cell] + u * (row_end - row_start)[cell]
    flat = np.searchsorted(cum, targets, side="right")
    del cum, targets
    # Guard the row boundaries against rounding.
    np.clip(flat, cell * n_genes, cell * n_genes + n_genes - 1, out=flat)
    counts = np.bincount(flat, minlength=n_cells * n_genes)
    if not sparse:
        return counts.reshape(n_cells, n_genes).astype(np.int32)
    nz = np.flatnonzero(counts)
    rows = nz // n_genes
    indptr = np.zeros(n_cells + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_cells), out=indptr[1:])
    X = sp.csr_matrix(
        (counts[nz].astype(np.int32), (nz - rows * n_genes).astype(np.int32), indptr),
        shape=(n_cells, n_genes),
    )
    X.has_sorted_indices = True
    return X


def simulate(
    n_cells: int = 2000,
    n_genes: int | None = None,
    *,
    n_groups: int = 4,
    signature: str | pd.DataFrame = "CytoSig",
    planted: Mapping[str, str] | None = None,
    effect: float = 1.0,
    senders: Mapping[str, str] | None = None,
    sender_effect: float = 2.0,
    mean_library_size: float = 2000.0,
    dispersion: float = 0.2,
    seed: int = 0,
    sparse: bool = True,
) -> ad.AnnData:
    """Simulate single-cell counts with planted signalling responses.

    Model. Each gene ``g`` has a log2 base abundance ``b_g ~ Normal(0, 1.5)``. In a group
    answering protein ``k``, its log2 relative expression is ``b_g + effect * S[g, k]``
    (``S`` the signature, clipped to ±8 log2 units; genes outside the signature and the
    control group get no shift), normalised to proportions ``p_g`` over genes. Cell ``c`` has
    a library size ``L_c`` drawn log-normally (sd 0.3 in log) with mean
    ``mean_library_size`` and counts ``X[c, g] ~ NegativeBinomial(mean = L_c p_g,
    variance = mean + dispersion * mean^2)``, drawn as a gamma-Poisson mixture. Since
    SecAct works on log2 expression, ``S`` is read as log2 fold changes.

    Parameters
    ----------
    n_cells
        Number of cells, split as evenly as possible over the groups, in shuffled order.
    n_genes
        Total number of genes. ``None``: every signature gene plus 5% non-signature filler
        genes (``SIMGENE00001``, ...). Otherwise 5% (at least one) of ``n_genes`` are fillers
        and the rest a random subset of the signature genes. Genes come in a shuffled order.
    n_groups
        Number of groups including ``"control"``; ignored when ``planted`` is given.
    signature
        Signature name (``"CytoSig"``, ...), path or DataFrame (genes x proteins), loaded with
        :func:`secact.datasets.signature`.
    planted
        ``{group name: protein}``. Default: ``n_groups - 1`` proteins with weakly correlated
        signature columns (see ``DEFAULT_PLANTED_ORDER``), groups named ``"<protein>_stimulated"``.
    effect
        Multiplier of the signature column in log2 space. Signatures differ in scale: CytoSig's
        values are log2 fold changes (mean ``|value|`` 0.09), SecAct's are about 10 times smaller
        (0.009), so with ``signature="SecAct"`` an ``effect`` near 10 plants a comparable
        response.
    senders
        ``{group name: gene}``: the group over-expresses the gene (e.g. ``{"IFNG_source":
        "IFNG"}`` with a group answering ``"IFNG"`` plants a sender -> IFNG -> receiver link).
        A name that is not a planted group adds a group without a response. The gene is
        added to the data if it is not there; its base abundance is set to 4.5 log2 units
        (about 0.25% of a cell's counts, expressed in every group) and the sender adds
        ``sender_effect``. ``None`` (default) leaves the data exactly as without this option.
    sender_effect
        Log2 over-expression of the secreted gene in its sender group.
    mean_library_size
        Mean total counts per cell.
    dispersion
        Negative-binomial dispersion (``0`` gives Poisson counts).
    seed
        Seed of the :class:`numpy.random.Generator`; the same arguments give identical data.
    sparse
        Store counts as an int32 CSR matrix (else a dense int32 array).

    Returns
    -------
    anndata.AnnData
        ``X``: counts, cells x genes. ``obs["group"]``: categorical, ``"control"`` first, then
        the planted groups. ``var["in_signature"]``: whether a gene is a signature gene.
        ``uns["simulate"]``: ``{"planted": {group: protein}, "params": {...}}``, plus
        ``"senders": {group: gene}`` when ``senders`` is given.
    """
    if n_cells < 1:
        raise ValueError(f"n_cells must be positive, got {n_cells}")
    if dispersion < 0 or mean_library_size <= 0:
        raise ValueError("dispersion must be >= 0 and mean_library_size > 0")
    sig, sig_name = _signature_frame(signature)
    rng = np.random.default_rng(seed)

    if planted is None:
        if n_groups < 2:
            raise ValueError(f"n_groups must be at least 2 (control and one planted group), got {n_groups}")
        proteins = _default_planted(sig, n_groups - 1)
        planted_map = {f"{p}_stimulated": p for p in proteins}
    else:
        planted_map = {str(g): str(p) for g, p in planted.items()}
        if not planted_map:
            raise ValueError("planted must name at least one group")
        if CONTROL in planted_map:
            raise ValueError(f"{CONTROL!r} is the unstimulated group and cannot be planted")
        unknown = sorted({p for p in planted_map.values() if p not in sig.columns})
        if unknown:
            raise ValueError(f"planted proteins {unknown} are not columns of the signature")
    groups = [CONTROL, *planted_map]
    sender_map: dict[str, str] = {}
    if senders is not None:
        sender_map = {str(g): str(gene) for g, gene in senders.items()}
        if not sender_map:
            raise ValueError("senders must name at least one group (or be None)")
        if CONTROL in sender_map:
            raise ValueError(f"{CONTROL!r} is the unstimulated group and cannot be a sender")
        if not np.isfinite(sender_effect):
            raise ValueError(f"sender_effect must be finite, got {sender_effect}")
        groups += [g for g in sender_map if g not in groups]

    # Genes: signature genes (all or a subset) plus fillers, shuffled.
    sig_genes = sig.index.to_numpy(dtype=object)
    if n_genes is None:
        n_sig = sig_genes.size
        n_filler = max(1, int(np.ceil(_FILLER_FRACTION * n_sig)))
    else:
        n_filler = max(1, round(_FILLER_FRACTION * n_genes))
        n_sig = n_genes - n_filler
        if n_sig < 2 or n_sig > sig_genes.size:
            raise ValueError(
                f"n_genes={n_genes} needs {n_sig} signature genes; the signature has {sig_genes.size} "
                f"(n_genes can be at most {sig_genes.size + n_filler} here)"
            )
    chosen = (
        np.sort(rng.choice(sig_genes.size, size=n_sig, replace=False)) if n_sig < sig_genes.size else None
    )
    genes_sig = sig_genes if chosen is None else sig_genes[chosen]
    shifts_sig = sig.to_numpy(dtype=np.float64) if chosen is None else sig.to_numpy(dtype=np.float64)[chosen]
    fillers = np.array([f"SIMGENE{i:05d}" for i in range(1, n_filler + 1)], dtype=object)
    genes = np.concatenate([genes_sig, fillers])
    shifts = np.vstack([shifts_sig, np.zeros((n_filler, sig.shape[1]))])
    if sender_map:  # secreted genes missing from the data are added (no signature shift)
        present = set(genes.tolist())
        extra = [g for g in dict.fromkeys(sender_map.values()) if g not in present]
        if extra:
            genes = np.concatenate([genes, np.array(extra, dtype=object)])
            shifts = np.vstack([shifts, np.zeros((len(extra), sig.shape[1]))])
    order = rng.permutation(genes.size)
    genes, shifts = genes[order], shifts[order]
    in_signature = order < n_sig
    n_total = genes.size

    # Group proportions (groups x genes), log2 model normalised per group.
    base = rng.normal(_BASE_MEAN, _BASE_SD, size=n_total)
    col = {p: j for j, p in enumerate(sig.columns)}
    if sender_map:
        position = {g: i for i, g in enumerate(genes.tolist())}
        for gene in set(sender_map.values()):
            base[position[gene]] = _SECRETED_BASE
    log2_expr = np.tile(base, (len(groups), 1))
    for i, grp in enumerate(groups[1:], start=1):
        if grp in planted_map:
            shift = np.clip(effect * shifts[:, col[planted_map[grp]]], -_MAX_SHIFT, _MAX_SHIFT)
            log2_expr[i] += shift
    for grp, gene in sender_map.items():
        log2_expr[groups.index(grp), position[gene]] += sender_effect
    log2_expr -= log2_expr.max(axis=1, keepdims=True)
    props = np.exp2(log2_expr)
    props /= props.sum(axis=1, keepdims=True)

    # Cells: balanced groups in shuffled order, log-normal library sizes.
    labels = rng.permutation(np.arange(n_cells) % len(groups))
    library = mean_library_size * np.exp(rng.normal(-0.5 * _LIBRARY_SIGMA**2, _LIBRARY_SIGMA, size=n_cells))

    # Negative binomial as gamma-Poisson: gamma-mixed rates, then the Poisson counts of a cell
    # drawn as its Poisson total spread over genes by inverse-CDF sampling (the same law as
    # independent Poisson draws per gene, and much faster for sparse counts).
    rates = props.astype(np.float32)[labels] * library.astype(np.float32)[:, None]
    if dispersion > 0:
        rates *= rng.standard_gamma(np.float32(1.0 / dispersion), size=rates.shape, dtype=np.float32)
        rates *= np.float32(dispersion)
    X = _poisson_counts(rates, rng, sparse=sparse)
    del rates

    obs = pd.DataFrame(
        {"group": pd.Categorical.from_codes(labels, categories=groups)},
        index=pd.Index([f"cell{i:05d}" for i in range(n_cells)]),
    )
    var = pd.DataFrame({"in_signature": in_signature}, index=pd.Index(genes.astype(str)))
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.uns["simulate"] = {
        "planted": dict(planted_map),
        **({"senders": dict(sender_map)} if sender_map else {}),
        "params": {
            "n_cells": int(n_cells),
            "n_genes": int(n_total),
            "n_signature_genes": int(n_sig),
            "n_groups": len(groups),
            "signature": sig_name,
            "effect": float(effect),
            "mean_library_size": float(mean_library_size),
            "dispersion": float(dispersion),
            "seed": int(seed),
            "sparse": bool(sparse),
        },
    }
    return adata
