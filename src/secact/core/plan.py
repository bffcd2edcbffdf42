"""One run's fixed parts: signature grouping, gene overlap, projection, permutation table.

A :class:`Plan` is built once per call from the signature and the expression profile's gene
names, and then serves every block of samples, whatever their source (table, in-memory,
backed, dask), which is what makes every path give the same numbers.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .backend import Backend, make_engine
from .engine import Engine
from .grouping import SignatureGroups, expand_rows, group_signature
from .params import InferenceParams
from .permutations import permutation_table
from .ridge import RidgeModel, ridge_model

__all__ = ["MIN_OVERLAP", "Plan", "make_plan"]

MIN_OVERLAP = 20

_GROUP_CACHE: OrderedDict[tuple, SignatureGroups] = OrderedDict()
_MODEL_CACHE: OrderedDict[tuple, RidgeModel] = OrderedDict()


def _lru_get(cache: OrderedDict, key, build, size: int = 8):
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = build()
    cache[key] = value
    while len(cache) > size:
        cache.popitem(last=False)
    return value


def _cached_groups(
    values: np.ndarray, proteins: Sequence[str], group_cor: float, name: str | None
) -> SignatureGroups:
    if name is None:
        digest = hashlib.blake2b(np.ascontiguousarray(values).view(np.uint8), digest_size=16)
        digest.update("\x00".join(proteins).encode())
        name = digest.hexdigest()
    key = (name, values.shape, float(group_cor))
    return _lru_get(_GROUP_CACHE, key, lambda: group_signature(values, proteins, group_cor))


@dataclass(eq=False)
class Plan:
    """Everything about a run that does not depend on the samples.

    Attributes
    ----------
    model
        Projection over the overlap genes (columns: groups, or proteins when ungrouped).
    gene_index
        Positions, in the expression profile's gene list, of the overlap genes, in profile
        order (this order defines the permutation null).
    row_index
        For each output protein, the model column that holds its results.
    proteins
        Output protein names (sorted like R when grouped, signature order otherwise).
    params
        What was run (for ``uns[key]["params"]``).
    backend
        Where the engine runs: ``"cpu"`` (:class:`~secact.core.engine.Engine`) or ``"gpu"``
        (:class:`~secact.core.xp_engine.XpEngine` on CuPy).
    """

    model: RidgeModel
    gene_index: np.ndarray
    row_index: np.ndarray
    proteins: list[str]
    options: InferenceParams
    table: np.ndarray | None
    params: dict = field(default_factory=dict)
    backend: Backend = "cpu"

    def engine(self, offset: np.ndarray | None = None, *, dtype: str = "float64") -> Engine:
        """An engine (of the plan's backend) for blocks restricted to ``gene_index`` (with an
        optional per-gene offset and the precision of the permuted products)."""
        return make_engine(
            self.backend, self.model, method=self.options.method, table=self.table, offset=offset, dtype=dtype
        )

    def expand(self, values: np.ndarray) -> np.ndarray:
        """Samples x model columns -> samples x output proteins."""
        return np.take(values, self.row_index, axis=1)


def make_plan(
    signature: pd.DataFrame,
    genes: Sequence[str],
    options: InferenceParams | None = None,
    *,
    min_overlap: int = MIN_OVERLAP,
    signature_name: str | None = None,
    backend: Backend = "cpu",
) -> Plan:
    """Build the :class:`Plan` for a signature (genes x proteins) and a profile's gene names.

    ``backend`` (``"cpu"`` or ``"gpu"``, see :func:`secact.core.backend.resolve_backend`) is
    where its engines run. ``signature_name`` identifies a registered (immutable) signature so that its grouping is
    cached by name instead of by a hash of its values.
    """
    options = options or InferenceParams()
    method, group_cor, lambda_ = options.method, options.group_cor, options.lambda_
    group_signatures, filter_signature = options.group_signatures, options.filter_signature
    genes = pd.Index(np.asarray(genes, dtype=object).astype(str))
    if genes.has_duplicates:
        dup = genes[genes.duplicated()].unique()
        msg = (
            f"the expression profile has {len(dup)} duplicated gene names, e.g. {list(dup[:5])}; "
            "make them unique (e.g. keep the row with the largest total, as SecAct does)."
        )
        raise ValueError(msg)
    sig = signature
    if filter_signature:
        keep = sig.columns.isin(genes)
        if not keep.any():
            msg = "filter_signature=True removes every protein: none of the signature's proteins is a gene of the profile."
            raise ValueError(msg)
        sig = sig.loc[:, keep]
    values = sig.to_numpy(dtype=np.float64)
    proteins = [str(p) for p in sig.columns]
    if group_signatures:
        name = signature_name if (signature_name and not filter_signature) else None
        groups = _cached_groups(values, proteins, group_cor, name)

        def signature_rows(rows):
            return groups.matrix(values[rows])

        row_index, out_names = expand_rows(groups, sort=True)
    else:

        def signature_rows(rows):
            return values[rows]

        row_index, out_names = np.arange(len(proteins)), proteins
    sig_pos = pd.Index(sig.index).get_indexer(genes)
    gene_index = np.flatnonzero(sig_pos >= 0)
    if gene_index.size < min_overlap:
        msg = (
            f"only {gene_index.size} genes of the profile are in the signature (at least "
            f"{min_overlap} are needed). Check that genes are rows (not columns) and that names are "
            "gene symbols of the signature's species (e.g. 'IFNG', not Ensembl ids)."
        )
        raise ValueError(msg)
    rows = sig_pos[gene_index]
    if signature_name and not filter_signature:
        # a registered signature is immutable: the projection depends only on the gene rows
        digest = hashlib.blake2b(rows.astype(np.int64).tobytes(), digest_size=16).hexdigest()
        key = (signature_name, bool(group_signatures), float(group_cor), float(lambda_), digest)
        model = _lru_get(_MODEL_CACHE, key, lambda: ridge_model(signature_rows(rows), lambda_), size=4)
    else:
        model = ridge_model(signature_rows(rows), lambda_)
    table = (
        permutation_table(gene_index.size, options.n_permutations, rng=options.rng, seed=options.seed)
        if method == "permutation"
        else None
    )
    params = {
        **options.record(),
        "n_genes_overlap": int(gene_index.size),
        "n_signature_columns": int(model.n_proteins),
        "backend": backend,
    }
    return Plan(
        model=model,
        gene_index=gene_index,
        row_index=np.asarray(row_index, dtype=np.intp),
        proteins=list(out_names),
        options=options,
        table=table,
        params=params,
        backend=backend,
    )


def clear_caches() -> None:
    """Forget cached signature groupings and projections (e.g. for benchmarks)."""
    _GROUP_CACHE.clear()
    _MODEL_CACHE.clear()
