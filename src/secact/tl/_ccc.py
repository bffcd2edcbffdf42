"""Cell-cell communication mediated by secreted proteins: ``secact.tl.ccc``."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import _results as res
from .._checks import DuplicateSymbolsError, check_positive_int
from .._docs import doc_input, doc_params, doc_signature, doc_stored
from .._infer import infer
from .._settings import settings
from ..core import ccc as _ccc
from ..core import differential as _de
from ..core import pipeline, runner
from ..core.backend import resolve_backend
from ..core.params import InferenceParams
from ..datasets._signatures import SIGNATURES, _signature
from ..io import resolve
from ..io._genechunks import GeneChunkReader
from ..pp._symbols import gene_map
from ._common import check_batch_size, gene_names, group_codes

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


@doc_params(signature=doc_signature, input=doc_input, stored=doc_stored)
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
    backend: Literal["auto", "cpu", "gpu"] | None = None,
    batch_size: int | None = None,
    chunk_size: int | None = None,
    key_added: str = "secact_ccc",
    copy: bool = False,
    progress: bool | None = None,
) -> AnnData | None:
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
    backend
        Where the activity of step 2 is inferred (``"auto"``, ``"cpu"``, ``"gpu"``; ``None``:
        ``secact.settings.backend``), as in :func:`secact.infer`.
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
    anndata.AnnData or None
        {stored}

        ``adata.uns[key_added]`` (all writable by anndata) is a dict:

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
    check_positive_int(min_cells, "min_cells")
    sf = float(scale_factor)
    if not (np.isfinite(sf) and sf > 0):
        msg = f"scale_factor must be a finite number > 0, got {scale_factor!r}."
        raise ValueError(msg)
    cutoffs = _check_cutoffs(
        logfc_cutoff=logfc_cutoff,
        mean_cutoff=mean_cutoff,
        fraction_cutoff=fraction_cutoff,
        zscore_cutoff=zscore_cutoff,
        padj_cutoff=padj_cutoff,
    )
    if condition is None and (case is not None or control is not None):
        msg = "case/control need condition=<obs column with the conditions>."
        raise ValueError(msg)
    if condition is not None and (case is None or control is None):
        msg = "condition=... needs both case=... and control=... (values of that column)."
        raise ValueError(msg)

    with resolve(adata, layer=layer, use_raw=use_raw) as inp:
        dest = res.target(inp, copy=copy)
        engine_backend = resolve_backend(backend, inp.matrix)  # before any pass over the data
        types = _cell_types(inp.obs, groupby, condition, case, control, int(min_cells))
        source = inp.source()
        names = gene_names(inp.var, gene_symbols)
        try:
            gmap = gene_map(names, map_symbols=map_symbols)
        except DuplicateSymbolsError:  # R keeps the duplicate with the largest total
            totals = pipeline.column_totals(source, batch_size=batch, progress=progress)
            gmap = gene_map(names, map_symbols=map_symbols, totals=totals)
        symbols = pd.Index(gmap.symbols).astype(str)
        sig = _signature(signature)
        named = isinstance(signature, str) and signature in SIGNATURES
        # secreted-protein genes of the data, in the data's order (R: intersect(genes, SPs))
        proteins = set(sig.columns.astype(str))
        genes = np.array([i for i, g in enumerate(symbols) if g in proteins], dtype=np.int64)
        if genes.size == 0:
            msg = (
                "none of the signature's proteins is a gene of the data; check the gene symbols "
                "(gene_symbols=..., map_symbols=True) and the signature."
            )
            raise ValueError(msg)
        sums, values = _one_pass(source, gmap, types, genes, sf, batch, progress)
        use_raw_ = inp.use_raw

    expression = _expression(values, types, symbols[genes], chunk_size, progress)
    del values
    activity, act_params = _activity(
        sums, types, symbols, signature if named else sig, options, engine_backend
    )
    links = _links(expression, activity, types.tested_names, cutoffs)

    params = {
        **act_params,
        "groupby": groupby,
        "condition": condition,
        "case": None if case is None else str(case),
        "control": None if control is None else str(control),
        "min_cells": int(min_cells),
        "scale_factor": sf,
        **{k: float(v) for k, v in cutoffs.items()},
        "signature": signature if named else "custom",
        "layer": layer,
        "use_raw": use_raw_,
        "gene_symbols": gene_symbols,
        "map_symbols": bool(map_symbols),
        "cell_types": types.tested_names,
        "skipped_cell_types": types.skipped,
    }
    params.pop("differential", None)
    entry = {
        "links": links,
        "expression": expression,
        "activity": activity,
        "cell_types": types.table(),
        "params": res.clean_uns(params),
    }
    logger.info(
        "ccc: %d cell types, %d secreted-protein genes, %d links",
        len(types.tested_names),
        genes.size,
        len(links),
    )
    return res.store(dest, "ccc", key_added, entry)


# ----------------------------------------------------------------------------------------------
# the steps
# ----------------------------------------------------------------------------------------------
def _check_cutoffs(**cutoffs: float) -> dict[str, float]:
    for name, value in cutoffs.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float | np.integer | np.floating)
            or np.isnan(value)
        ):
            msg = f"{name} must be a number, got {value!r}."
            raise ValueError(msg)
    return cutoffs


@dataclass
class _CellTypes:
    """The cell types of ``groupby``, their case / control cells and R's order."""

    codes: np.ndarray  # per cell, -1: no label
    names: list[str]  # every category, as strings
    order: np.ndarray  # present types in R's order (first appearance among case cells)
    n_case: np.ndarray
    n_control: np.ndarray
    slots: np.ndarray  # per cell: its pseudo-bulk slot (-1: none)
    n_slots: int
    tested: np.ndarray  # types analysed (at least min_cells case cells), in R's order
    skipped: list[str]
    by_condition: bool

    @property
    def tested_names(self) -> list[str]:
        return [self.names[t] for t in self.tested]

    def table(self) -> pd.DataFrame:
        """One row per present cell type: ``n_case``, ``n_control``, ``analysed``."""
        return pd.DataFrame(
            {
                "n_case": self.n_case[self.order].astype(np.int64),
                "n_control": np.asarray(self.n_control)[self.order].astype(np.int64),
                "analysed": np.isin(self.order, self.tested),
            },
            index=pd.Index([self.names[t] for t in self.order]),
        )


def _cell_types(
    obs: pd.DataFrame, groupby: str, condition: str | None, case: Any, control: Any, min_cells: int
) -> _CellTypes:
    codes, categories = group_codes(obs, groupby)
    ncat = len(categories)
    if condition is None:
        order = _first_appearance(codes)
        n_case = np.bincount(codes[codes >= 0], minlength=ncat)
        n_control = int(n_case.sum()) - n_case
        slots = codes.astype(np.int64)
        n_slots = ncat
    else:
        if condition not in obs.columns:
            msg = f"condition={condition!r} is not a column of obs; columns: {list(obs.columns)}."
            raise KeyError(msg)
        is_case = _condition_mask(obs, condition, case, "case")
        is_control = _condition_mask(obs, condition, control, "control")
        if (is_case & is_control).any():
            msg = f"case and control select the same cells ({case!r} vs {control!r})."
            raise ValueError(msg)
        n_case = np.bincount(codes[(codes >= 0) & is_case], minlength=ncat)
        n_control = np.bincount(codes[(codes >= 0) & is_control], minlength=ncat)
        order = np.array([t for t in _first_appearance(codes, is_case) if n_control[t] > 0], dtype=np.int64)
        slots = np.where(codes >= 0, 2 * codes, -1)
        slots = np.where(is_case, slots, np.where(is_control, slots + 1, -1))
        slots[codes < 0] = -1
        n_slots = 2 * ncat
    names = [str(c) for c in categories]
    if len(set(names)) != len(names):
        msg = f"the labels of {groupby!r} are not unique as strings; rename them."
        raise ValueError(msg)
    tested = np.array([t for t in order if n_case[t] >= min_cells], dtype=np.int64)
    skipped = [names[t] for t in order if n_case[t] < min_cells]
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
    return _CellTypes(
        codes, names, order, n_case, n_control, slots, n_slots, tested, skipped, condition is not None
    )


def _one_pass(
    source, gmap, types: _CellTypes, genes: np.ndarray, sf: float, batch: int, progress
) -> tuple[np.ndarray, sp.csc_matrix]:
    """One pass over the cells: pseudo-bulk sums per slot and the secreted genes' normalised columns."""
    sums = np.zeros((types.n_slots, gmap.n_output))
    pieces: list[sp.csr_matrix] = []

    def sink(_a, _b, part):
        sums[:] += part[0]
        pieces.append(part[1])

    fn = _ccc.CccBlock(None if gmap.is_identity else gmap, types.slots, types.n_slots, genes, sf)
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
    return sums, values


def _expression(
    values: sp.csc_matrix, types: _CellTypes, genes: pd.Index, chunk_size: int | None, progress
) -> pd.DataFrame:
    """Step 1: rank tests of the secreted-protein genes, one table over the tested types."""
    codes, n_case, n_control = types.codes, types.n_case, types.n_control
    tables = []
    reader = GeneChunkReader(values, chunk_size=chunk_size)
    if not types.by_condition:
        ncat = len(types.names)
        fn_rank = _de.RankSumChunk(
            codes.astype(np.int32), n_case.astype(np.int64), -1, np.ones(ncat, dtype=bool), False
        )
        acc = _de.rank_sums(reader, fn_rank, progress=progress)
        nnz_all, sx_all = acc["nnz"].sum(axis=1), acc["sx"].sum(axis=1)
        for t in types.tested:
            st = _ccc.expression_stats(
                acc["stat"][:, t], acc["tie"][:, 0], int(n_case[t]), int(n_control[t]),
                acc["nnz"][:, t], nnz_all - acc["nnz"][:, t], acc["sx"][:, t], sx_all - acc["sx"][:, t],
            )  # fmt: skip
            tables.append(_expression_table(types.names[t], genes, st))
    else:
        slots = types.slots
        for t in types.tested:
            sub = np.where(slots == 2 * t, 0, np.where(slots == 2 * t + 1, 1, -1)).astype(np.int32)
            n_cat = np.array([n_case[t], n_control[t]], dtype=np.int64)
            acc = _de.rank_sums(
                reader, _de.RankSumChunk(sub, n_cat, -1, np.ones(2, dtype=bool), False), progress=progress
            )
            st = _ccc.expression_stats(
                acc["stat"][:, 0], acc["tie"][:, 0], int(n_case[t]), int(n_control[t]),
                acc["nnz"][:, 0], acc["nnz"][:, 1], acc["sx"][:, 0], acc["sx"][:, 1],
            )  # fmt: skip
            tables.append(_expression_table(types.names[t], genes, st))
    expression = pd.concat(tables, ignore_index=True)
    expression["cell_type"] = pd.Categorical(expression["cell_type"], categories=types.tested_names)
    return expression


def _activity(
    sums: np.ndarray, types: _CellTypes, symbols: pd.Index, signature, options: InferenceParams, backend: str
) -> tuple[dict[str, pd.DataFrame], dict]:
    """Step 2: activity of the pseudo-bulk differences (cell types x proteins, with BH ``padj``)."""
    tested = types.tested
    if not types.by_condition:
        case_sums = sums[tested]
        control_sums = sums.sum(axis=0, keepdims=True) - case_sums
    else:
        case_sums, control_sums = sums[2 * tested], sums[2 * tested + 1]
    names = types.tested_names
    empty = [names[i] for i in np.flatnonzero(control_sums.sum(axis=1) == 0)]
    if empty:
        msg = f"the control cells of {empty} have no counts; their pseudo-bulk cannot be scaled."
        raise ValueError(msg)
    diff = _ccc.cpm_log2_diff(case_sums, control_sums)
    profile = pd.DataFrame(diff.T, index=symbols, columns=names)
    act = infer(
        profile,
        signature,
        differential=True,
        n_permutations=options.n_permutations,
        rng=options.rng,
        seed=options.seed,
        group_signatures=options.group_signatures,
        group_cor=options.group_cor,
        lambda_=options.lambda_,
        backend=backend,
    )
    activity = {k: getattr(act, k).T.copy() for k in res.STATS}  # types x proteins
    padj = np.vstack([_ccc.p_adjust_bh(activity["pvalue"].to_numpy()[i]) for i in range(len(names))])
    activity["padj"] = pd.DataFrame(padj, index=activity["pvalue"].index, columns=activity["pvalue"].columns)
    for frame in activity.values():
        frame.index.name = None
        frame.columns.name = None
    return activity, dict(act.params)


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
