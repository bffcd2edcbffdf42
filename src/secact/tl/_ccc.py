"""Cell-cell communication mediated by secreted proteins: ``secact.tl.ccc``."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import _results as res
from .._docs import doc_input, doc_params, doc_signature
from .._infer import infer
from .._settings import settings
from ..core import ccc as _ccc
from ..core import differential as _de
from ..core import pipeline, runner
from ..core.params import InferenceParams
from ..datasets._signatures import SIGNATURES, _signature
from ..io import resolve
from ..io._genechunks import GeneChunkReader
from ..pp._symbols import gene_map
from ._common import check_batch_size, gene_names, group_codes, results_target

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["ccc"]

logger = logging.getLogger("secact")

EXPRESSION_COLUMNS = (
    "cell_type",
    "gene",
    "logfc",
    "mean_all",
    "mean_case",
    "mean_control",
    "fraction_case",
    "fraction_control",
    "pvalue",
    "padj",
)
LINK_COLUMNS = (
    "sender",
    "secreted_protein",
    "receiver",
    "sender_logfc",
    "sender_pvalue",
    "sender_padj",
    "receiver_zscore",
    "receiver_pvalue",
    "receiver_padj",
    "strength",
    "pvalue",
    "padj",
)


def _condition_mask(obs: pd.DataFrame, condition: str, value: Any, what: str) -> np.ndarray:
    col = obs[condition]
    mask = (col == value).to_numpy(dtype=bool, na_value=False)
    if not mask.any():
        mask = (col.astype(str) == str(value)).to_numpy(dtype=bool) & col.notna().to_numpy()
    if not mask.any():
        shown = [str(v) for v in pd.unique(col.dropna())[:20]]
        msg = f"no cell has obs[{condition!r}] == {value!r} ({what}); values: {shown}."
        raise ValueError(msg)
    return mask


def _first_appearance(codes: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Category codes in the order they first occur among the (masked) cells: R's ``unique``."""
    sel = codes >= 0 if mask is None else (codes >= 0) & mask
    pos = np.flatnonzero(sel)
    cats, first = np.unique(codes[pos], return_index=True)
    return cats[np.argsort(first, kind="stable")]


@doc_params(signature=doc_signature, input=doc_input)
def ccc(
    adata: AnnData | str | os.PathLike,
    groupby: str,
    *,
    condition: str | None = None,
    case: Any = None,
    control: Any = None,
    signature: str | os.PathLike | pd.DataFrame = "SecAct",
    min_cells: int = 30,
    scale_factor: float = 1e5,
    logfc_cutoff: float = 0.2,
    mean_cutoff: float = 2.0,
    fraction_cutoff: float = 0.1,
    zscore_cutoff: float = 2.0,
    padj_cutoff: float = 0.01,
    layer: str | None = None,
    use_raw: bool | None = None,
    gene_symbols: str | None = None,
    map_symbols: bool = True,
    n_permutations: int = 1000,
    rng: Literal["mt19937", "srand", "numpy"] = "mt19937",
    seed: int = 0,
    group_signatures: bool = True,
    group_cor: float = 0.9,
    lambda_: float = 5e5,
    batch_size: int | None = None,
    chunk_size: int | None = None,
    key_added: str = "secact_ccc",
    copy: bool = False,
    progress: bool | None = None,
) -> AnnData | dict | None:
    """Cell-cell communication mediated by secreted proteins (SecAct R ``SecAct.CCC.scRNAseq``).

    A *sender* cell type expresses the gene of a secreted protein more than its control; a
    *receiver* cell type shows more signalling activity of that protein than its control.
    The control of a cell type is all other cells (no ``condition``), or the same cell type
    in the ``control`` condition (``condition``, ``case``, ``control``: condition-specific
    communication, R's setting). Every cell type with at least ``min_cells`` (case) cells is
    analysed:

    1. **Expression.** Counts are scaled per cell to ``scale_factor`` and ``log2(x + 1)``
       transformed. For each secreted-protein gene (a protein of the signature that is a
       gene of the data): the difference of mean log expression (``logfc``), the mean over
       case and control cells (``mean_all``), the fractions of expressing cells and R's
       ``wilcox.test`` p-value (exact below 50 cells per side without ties, otherwise the
       normal approximation with tie and continuity corrections). Genes with ``mean_all ==
       0`` are dropped, the others BH-adjusted per cell type.
    2. **Activity.** Counts of the case cells and of the control cells are summed
       (pseudo-bulk), scaled to 1e6, ``log2(x + 1)``; their difference per cell type is
       inferred with :func:`secact.infer` (``differential=True``); p-values are
       BH-adjusted per cell type over all proteins.
    3. **Links.** Senders (``logfc > logfc_cutoff``, ``mean_all > mean_cutoff``,
       ``fraction_case > fraction_cutoff``, adjusted p below ``padj_cutoff``) are joined to
       receivers (``zscore > zscore_cutoff``, adjusted p below ``padj_cutoff``) of the same
       protein, sender and receiver different. ``strength = logfc * zscore``; the two
       p-values are combined by Fisher's method (R ``metap::sumlog``; a sender p-value of 0
       becomes the smallest normalised double, 2.2e-308, first), BH-adjusted over all
       links, and links with an adjusted p below ``padj_cutoff`` are kept.

    The data are read in one pass over blocks of cells (backed AnnData, ``.h5ad`` paths and
    dask arrays are never loaded whole); the secreted-protein genes' normalised columns (a
    small share of the data) are kept in memory for the rank tests.

    Parameters
    ----------
    adata
        AnnData with raw counts (in memory, backed, or a view), or a path to an ``.h5ad``.
    groupby
        Column of ``obs`` with cell types. Cells without a label are left out.
    condition
        Column of ``obs`` with conditions; with ``case`` and ``control``, each cell type's
        case cells are compared with its control cells (cell types present in both).
    case, control
        Values of ``obs[condition]``.
    {signature}
    min_cells
        Cell types with fewer (case) cells are not analysed (they stay in "the rest").
    scale_factor
        Per-cell scale of step 1 (SecAct R's ``scale.factor``).
    logfc_cutoff, mean_cutoff, fraction_cutoff
        Sender cut-offs: log2 fold change, mean log expression over case and control cells,
        fraction of case cells expressing the gene.
    zscore_cutoff
        Receiver cut-off on the activity z-score.
    padj_cutoff
        Cut-off on every BH-adjusted p-value (senders, receivers, links).
    {input}
    map_symbols
        Map aliases to official symbols and resolve duplicated symbols as SecAct R
        (``transferSymbol``, ``rm_duplicates``).
    n_permutations, rng, seed, group_signatures, group_cor, lambda_
        Activity inference settings, as in :func:`secact.infer` (SecAct R's defaults).
    batch_size
        Cells per block of the pass over the data (default ``secact.settings.batch_size``).
    chunk_size
        Genes per chunk of the rank tests (``None``: from a memory target).
    key_added
        Results go to ``adata.uns[key_added]``.
    copy
        Return a modified copy (in-memory AnnData only).
    progress
        Show progress bars (see ``secact.settings.progress``).

    Returns
    -------
    anndata.AnnData or dict or None
        ``None`` (results in ``adata.uns[key_added]``), the copy with ``copy=True``, or the
        results dict for a path input. The results (all writable by anndata) are a dict:

        ``"links"``
            The communication table (R's ``SecretedProteinCCC``), one row per link sorted by
            ``padj``: ``sender``, ``secreted_protein``, ``receiver``, ``sender_logfc``,
            ``sender_pvalue``, ``sender_padj``, ``receiver_zscore``, ``receiver_pvalue``,
            ``receiver_padj``, ``strength``, ``pvalue`` (Fisher), ``padj``. Read it with
            :func:`secact.get.ccc`.
        ``"expression"``
            Step 1 for every analysed cell type (R's ``SecretedProteinExpression``), one row per
            (cell type, gene), sorted by adjusted p within each type: ``cell_type``, ``gene``,
            ``logfc``, ``mean_all``, ``mean_case``, ``mean_control``, ``fraction_case``,
            ``fraction_control``, ``pvalue``, ``padj``.
        ``"activity"``
            Step 2: dict of cell types x proteins DataFrames ``beta``, ``se``, ``zscore``,
            ``pvalue`` and ``padj``.
        ``"cell_types"``
            One row per cell type present: ``n_case``, ``n_control``, ``analysed``.
        ``"params"``
            The settings used.

    Notes
    -----
    Cell types are handled in the order they first appear among the (case) cells, as R's
    ``unique``; this fixes the order of links with equal adjusted p-values.
    """
    options = InferenceParams(
        "permutation", n_permutations, rng, seed, group_signatures, group_cor, False, lambda_
    )
    res.check_key(key_added)
    check_batch_size(batch_size)
    batch = int(batch_size or settings.batch_size)
    if isinstance(min_cells, bool) or not isinstance(min_cells, int | np.integer) or min_cells < 1:
        msg = f"min_cells must be a positive integer, got {min_cells!r}."
        raise ValueError(msg)
    sf = float(scale_factor)
    if not (np.isfinite(sf) and sf > 0):
        msg = f"scale_factor must be a finite number > 0, got {scale_factor!r}."
        raise ValueError(msg)
    cutoffs = {
        "logfc_cutoff": logfc_cutoff,
        "mean_cutoff": mean_cutoff,
        "fraction_cutoff": fraction_cutoff,
        "zscore_cutoff": zscore_cutoff,
        "padj_cutoff": padj_cutoff,
    }
    for name, value in cutoffs.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float | np.integer | np.floating)
            or np.isnan(value)
        ):
            msg = f"{name} must be a number, got {value!r}."
            raise ValueError(msg)
    if condition is None and (case is not None or control is not None):
        msg = "case/control need condition=<obs column with the conditions>."
        raise ValueError(msg)
    if condition is not None and (case is None or control is None):
        msg = "condition=... needs both case=... and control=... (values of that column)."
        raise ValueError(msg)

    with resolve(adata, layer=layer, use_raw=use_raw) as inp:
        target = results_target(inp, copy=copy, out=None, cells=False)
        obs = inp.obs
        codes, categories = group_codes(obs, groupby)
        if condition is not None:
            if condition not in obs.columns:
                msg = f"condition={condition!r} is not a column of obs; columns: {list(obs.columns)}."
                raise KeyError(msg)
            is_case = _condition_mask(obs, condition, case, "case")
            is_control = _condition_mask(obs, condition, control, "control")
            if (is_case & is_control).any():
                msg = f"case and control select the same cells ({case!r} vs {control!r})."
                raise ValueError(msg)
        source = inp.source()
        names = gene_names(inp.var, gene_symbols)
        try:
            gmap = gene_map(names, map_symbols=map_symbols)
        except ValueError as err:  # duplicated symbols: R keeps the gene with the largest total
            if "totals" not in str(err):
                raise
            totals = pipeline.column_totals(source, batch_size=batch, progress=progress)
            gmap = gene_map(names, map_symbols=map_symbols, totals=totals)
        symbols = pd.Index(gmap.symbols).astype(str)
        sig = _signature(signature)
        named = isinstance(signature, str) and signature in SIGNATURES

        # cell types, their case / control cells, R's order
        ncat = len(categories)
        if condition is None:
            order = _first_appearance(codes)
            n_case = np.bincount(codes[codes >= 0], minlength=ncat)
            n_control = int(n_case.sum()) - n_case
            slots = codes.astype(np.int64)
            n_slots = ncat
        else:
            in_case = codes[(codes >= 0) & is_case]
            in_control = codes[(codes >= 0) & is_control]
            n_case = np.bincount(in_case, minlength=ncat)
            n_control = np.bincount(in_control, minlength=ncat)
            order = np.array(
                [t for t in _first_appearance(codes, is_case) if n_control[t] > 0], dtype=np.int64
            )
            slots = np.where(codes >= 0, 2 * codes, -1)
            slots = np.where(is_case, slots, np.where(is_control, slots + 1, -1))
            slots[codes < 0] = -1
            n_slots = 2 * ncat
        type_names = [str(c) for c in categories]
        if len(set(type_names)) != len(type_names):
            msg = f"the labels of {groupby!r} are not unique as strings; rename them."
            raise ValueError(msg)
        tested = np.array([t for t in order if n_case[t] >= min_cells], dtype=np.int64)
        skipped = [type_names[t] for t in order if n_case[t] < min_cells]
        if skipped:
            logger.info(
                "ccc: %d cell type(s) with fewer than %d cells skipped: %s", len(skipped), min_cells, skipped
            )
        if tested.size < 2:
            msg = (
                f"only {tested.size} cell type(s) of {groupby!r} have at least min_cells={min_cells} "
                f"{'case ' if condition is not None else ''}cells; cell-cell communication needs two. "
                "Lower min_cells or check groupby."
            )
            raise ValueError(msg)

        # secreted-protein genes of the data, in the data's order (R: intersect(genes, SPs))
        proteins = set(sig.columns.astype(str))
        genes = np.array([i for i, g in enumerate(symbols) if g in proteins], dtype=np.int64)
        if genes.size == 0:
            msg = (
                "none of the signature's proteins is a gene of the data; check the gene symbols "
                "(gene_symbols=..., map_symbols=True) and the signature."
            )
            raise ValueError(msg)

        # one pass over the cells: pseudo-bulk sums and the secreted genes' normalised columns
        sums = np.zeros((n_slots, gmap.n_output))
        pieces: list[sp.csr_matrix] = []

        def sink(_a, _b, part):
            sums[:] += part[0]
            pieces.append(part[1])

        fn = _ccc.CccBlock(None if gmap.is_identity else gmap, slots, n_slots, genes, sf)
        runner.run(
            source.row_blocks(batch, None),
            fn,
            sink,
            executor=source.executor,
            progress=progress,
            total=source.n_obs,
            desc="secact ccc",
        )
    values = sp.vstack(pieces, format="csc")
    pieces.clear()

    # step 1: expression of the secreted-protein genes
    gene_names_sp = symbols[genes]
    expr_tables = []
    reader = GeneChunkReader(values, chunk_size=chunk_size)
    if condition is None:
        fn_rank = _de.RankSumChunk(
            codes.astype(np.int32), n_case.astype(np.int64), -1, np.ones(ncat, dtype=bool), False
        )
        acc = _de.rank_sums(reader, fn_rank, progress=progress)
        nnz_all, sx_all = acc["nnz"].sum(axis=1), acc["sx"].sum(axis=1)
        for t in tested:
            st = _ccc.expression_stats(
                acc["stat"][:, t], acc["tie"][:, 0], int(n_case[t]), int(n_control[t]),
                acc["nnz"][:, t], nnz_all - acc["nnz"][:, t], acc["sx"][:, t], sx_all - acc["sx"][:, t],
            )  # fmt: skip
            expr_tables.append(_expression_table(type_names[t], gene_names_sp, st))
    else:
        for t in tested:
            sub = np.where(slots == 2 * t, 0, np.where(slots == 2 * t + 1, 1, -1)).astype(np.int32)
            n_cat = np.array([n_case[t], n_control[t]], dtype=np.int64)
            acc = _de.rank_sums(
                reader, _de.RankSumChunk(sub, n_cat, -1, np.ones(2, dtype=bool), False), progress=progress
            )
            st = _ccc.expression_stats(
                acc["stat"][:, 0], acc["tie"][:, 0], int(n_case[t]), int(n_control[t]),
                acc["nnz"][:, 0], acc["nnz"][:, 1], acc["sx"][:, 0], acc["sx"][:, 1],
            )  # fmt: skip
            expr_tables.append(_expression_table(type_names[t], gene_names_sp, st))
    del values, reader

    # step 2: activity of the pseudo-bulk differences
    if condition is None:
        case_sums = sums[tested]
        control_sums = sums.sum(axis=0, keepdims=True) - case_sums
    else:
        case_sums, control_sums = sums[2 * tested], sums[2 * tested + 1]
    tested_names = [type_names[t] for t in tested]
    empty = [tested_names[i] for i in np.flatnonzero(control_sums.sum(axis=1) == 0)]
    if empty:
        msg = f"the control cells of {empty} have no counts; their pseudo-bulk cannot be scaled."
        raise ValueError(msg)
    diff = _ccc.cpm_log2_diff(case_sums, control_sums)
    profile = pd.DataFrame(diff.T, index=symbols, columns=tested_names)
    act = infer(
        profile,
        signature if named else sig,
        differential=True,
        n_permutations=options.n_permutations,
        rng=options.rng,
        seed=options.seed,
        group_signatures=options.group_signatures,
        group_cor=options.group_cor,
        lambda_=options.lambda_,
    )
    activity = {k: getattr(act, k).T.copy() for k in res.STATS}  # types x proteins
    padj = np.vstack([_ccc.p_adjust_bh(activity["pvalue"].to_numpy()[i]) for i in range(len(tested_names))])
    activity["padj"] = pd.DataFrame(padj, index=activity["pvalue"].index, columns=activity["pvalue"].columns)
    for frame in activity.values():
        frame.index.name = None
        frame.columns.name = None

    # step 3: links
    expression = pd.concat(expr_tables, ignore_index=True)
    expression["cell_type"] = pd.Categorical(expression["cell_type"], categories=tested_names)
    links = _links(expression, activity, tested_names, cutoffs)

    cell_types = pd.DataFrame(
        {
            "n_case": n_case[order].astype(np.int64),
            "n_control": np.asarray(n_control)[order].astype(np.int64),
            "analysed": np.isin(order, tested),
        },
        index=pd.Index([type_names[t] for t in order]),
    )
    params = {
        **act.params,
        "groupby": groupby,
        "condition": condition,
        "case": None if case is None else str(case),
        "control": None if control is None else str(control),
        "min_cells": int(min_cells),
        "scale_factor": sf,
        **{k: float(v) for k, v in cutoffs.items()},
        "signature": signature if named else "custom",
        "layer": layer,
        "use_raw": inp.use_raw,
        "gene_symbols": gene_symbols,
        "map_symbols": bool(map_symbols),
        "cell_types": tested_names,
        "skipped_cell_types": skipped,
    }
    params.pop("differential", None)
    entry = {
        "links": links,
        "expression": expression,
        "activity": activity,
        "cell_types": cell_types,
        "params": res.clean_uns(params),
    }
    logger.info(
        "ccc: %d cell types, %d secreted-protein genes, %d links", len(tested_names), genes.size, len(links)
    )
    if target is None:
        return entry
    target.uns[key_added] = entry
    logger.info("added adata.uns[%r] (links, expression, activity)", key_added)
    return target if copy else None


def _expression_table(cell_type: str, genes: pd.Index, st: dict[str, np.ndarray]) -> pd.DataFrame:
    """One cell type's step-1 table: genes with ``mean_all > 0``, BH, sorted by padj (stable)."""
    keep = np.flatnonzero(st["mean_all"] > 0)
    padj = _ccc.p_adjust_bh(st["pvalue"][keep])
    o = np.argsort(padj, kind="stable")
    rows = keep[o]
    cols: dict[str, Any] = {
        "cell_type": np.full(rows.size, cell_type, dtype=object),
        "gene": np.asarray(genes)[rows],
    }
    cols.update({k: st[k][rows] for k in EXPRESSION_COLUMNS[2:-1]})
    cols["padj"] = padj[o]
    return pd.DataFrame(cols, columns=list(EXPRESSION_COLUMNS))


def _links(expression: pd.DataFrame, activity: dict, types: list[str], cutoffs: dict) -> pd.DataFrame:
    """R's step 3 on the stored tables."""
    e = expression
    up = e[
        (e["logfc"] > cutoffs["logfc_cutoff"])
        & (e["mean_all"] > cutoffs["mean_cutoff"])
        & (e["fraction_case"] > cutoffs["fraction_cutoff"])
        & (e["padj"] < cutoffs["padj_cutoff"])
    ]
    z, p, q = (activity[k] for k in ("zscore", "pvalue", "padj"))
    proteins = pd.Index(z.columns)
    active = (z.to_numpy() > cutoffs["zscore_cutoff"]) & (q.to_numpy() < cutoffs["padj_cutoff"])
    sender_type = up["cell_type"].cat.codes.to_numpy().astype(np.int64)
    sender_protein = proteins.get_indexer(up["gene"].astype(str))
    lk = _ccc.link(
        sender_type,
        sender_protein,
        up["logfc"].to_numpy(),
        up["pvalue"].to_numpy(),
        active,
        z.to_numpy(),
        p.to_numpy(),
        padj_cutoff=cutoffs["padj_cutoff"],
    )
    o = lk.order
    rows = lk.sender_row[o]
    recv = lk.receiver[o]
    prot = sender_protein[rows]
    table = pd.DataFrame(
        {
            "sender": pd.Categorical.from_codes(sender_type[rows], categories=types),
            "secreted_protein": pd.Categorical(
                proteins[prot].to_numpy(dtype=object) if o.size else [],
                categories=sorted(set(proteins[prot])),
            ),
            "receiver": pd.Categorical.from_codes(recv, categories=types),
            "sender_logfc": up["logfc"].to_numpy()[rows],
            "sender_pvalue": lk.sender_pvalue[o],
            "sender_padj": up["padj"].to_numpy()[rows],
            "receiver_zscore": z.to_numpy()[recv, prot],
            "receiver_pvalue": p.to_numpy()[recv, prot],
            "receiver_padj": q.to_numpy()[recv, prot],
            "strength": lk.strength[o],
            "pvalue": lk.pvalue[o],
            "padj": lk.padj[o],
        },
        columns=list(LINK_COLUMNS),
    )
    return table
