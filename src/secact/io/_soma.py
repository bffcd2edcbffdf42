"""TileDB-SOMA experiments (the CELLxGENE Census format) as block sources.

:func:`resolve_soma` takes a ``tiledbsoma.Experiment`` or an ``ExperimentAxisQuery`` (cells and
genes chosen by ``obs`` / ``var`` value filters) and returns what :func:`secact.io.resolve`
needs: the cells' ``obs`` and the genes' ``var`` (pandas; read once, they are small next to
the matrix) and a :class:`SomaSource` over one ``X`` layer of one measurement. The source
reads the cells in blocks: each block of ``obs`` ``soma_joinid`` values is read with
``X.read(coords=(joinids, var_joinids)).tables()`` and turned into a CSR block, so the matrix
is never in memory whole. Cells are in ``soma_joinid`` order (the experiment's order).

``tiledbsoma`` is an optional dependency (``pip install 'secact[soma]'``): this module is
imported only when a SOMA object is passed, and imports nothing from ``tiledbsoma`` itself
(it uses the objects it is given).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from ._blocks import Block, BlockSource, axis_names, check_batch_size, check_start, finish, value_dtype

__all__ = ["SomaInput", "SomaSource", "resolve_soma"]

#: ``X`` layer read when none is given (the Census and ``tiledbsoma.io`` name raw counts so)
DEFAULT_LAYER = "raw"


class SomaSource(BlockSource):
    """Cells x genes of one ``X`` layer (a ``SparseNDArray``) of a SOMA measurement, read in
    blocks of cells by their ``soma_joinid`` values.

    Parameters
    ----------
    x
        The open ``SparseNDArray``.
    obs_joinids, var_joinids
        The cells' and genes' ``soma_joinid`` values, in the source's order (sorted).
    obs_names, var_names
        Their names.
    identity
        What identifies the data (the experiment's URI, measurement, layer, query).
    """

    backed = True
    is_sparse = True

    def __init__(self, x, obs_joinids, var_joinids, *, obs_names, var_names, identity: dict):
        self._x = x
        self._obs = np.asarray(obs_joinids, dtype=np.int64)
        self._var = np.asarray(var_joinids, dtype=np.int64)
        self.n_obs, self.n_vars = int(self._obs.size), int(self._var.size)
        self.obs_names = axis_names(obs_names, self.n_obs, "obs")
        self.var_names = axis_names(var_names, self.n_vars, "var")
        self.dtype = value_dtype(x.schema.field("soma_data").type.to_pandas_dtype())
        self._all_vars = self.n_vars == int(x.shape[1]) and np.array_equal(self._var, np.arange(self.n_vars))
        self.identity = identity

    def row_blocks(
        self, batch_size: int, columns: np.ndarray | None = None, start: int = 0
    ) -> Iterator[tuple[int, int, Block]]:
        batch_size = check_batch_size(batch_size)
        cols = self._check_columns(columns)
        first = check_start(start, batch_size, self.n_obs)
        return self._iterate(batch_size, cols, first)

    def _iterate(self, batch_size: int, cols, first: int) -> Iterator[tuple[int, int, Block]]:
        # the genes to read (only the requested ones) and each one's position in the source
        wanted = np.arange(self.n_vars) if cols is None else np.unique(cols)
        var_ids = self._var[wanted]
        read_all = self._all_vars and wanted.size == self.n_vars
        lookup = np.full(int(var_ids.max()) + 1, -1, dtype=np.int64)
        lookup[var_ids] = wanted
        for a in range(first, self.n_obs, batch_size):
            b = min(a + batch_size, self.n_obs)
            ids = self._obs[a:b]
            block = self._read(ids, None if read_all else var_ids, lookup)
            if cols is not None:
                block = block[:, cols]
            yield a, b, finish(block, owned=True)

    def _read(self, ids: np.ndarray, var_ids: np.ndarray | None, lookup: np.ndarray) -> sparse.csr_matrix:
        coords = (ids,) if var_ids is None else (ids, var_ids)
        rows, cols, vals = [], [], []
        for table in self._x.read(coords=coords).tables():
            rows.append(table.column("soma_dim_0").to_numpy())
            cols.append(table.column("soma_dim_1").to_numpy())
            vals.append(table.column("soma_data").to_numpy())
        shape = (ids.size, self.n_vars)
        r, c, v = (np.concatenate(x) if x else np.empty(0, np.int64) for x in (rows, cols, vals))
        if r.size == 0:  # no stored value in these cells
            return sparse.csr_matrix(shape, dtype=np.float64)
        pos = np.searchsorted(ids, r)  # ids are sorted
        if pos.max() >= ids.size or not np.array_equal(ids[pos], r):
            raise ValueError("the SOMA array returned cells that were not asked for; the array is damaged.")
        if c.max() >= lookup.size or (c := lookup[c]).min() < 0:
            raise ValueError("the SOMA array returned genes that were not asked for; the array is damaged.")
        return sparse.coo_matrix((v, (pos, c)), shape=shape).tocsr()


@dataclass
class SomaInput:
    """What :func:`resolve_soma` found: the cells, the genes and the source over the layer."""

    obs: pd.DataFrame
    var: pd.DataFrame
    source: SomaSource
    layer: str
    identity: dict = field(default_factory=dict)


def _frame(table, index_columns: tuple[str, ...], joinids: np.ndarray) -> pd.DataFrame:
    """An ``obs`` / ``var`` table in ``joinids`` order, indexed by its first unique name column
    (``obs_id`` / ``var_id`` of ``tiledbsoma.io``, else ``soma_joinid`` as text)."""
    df = table.to_pandas()
    df = df.set_index("soma_joinid", drop=False).reindex(joinids)
    for name in index_columns:
        if name in df.columns and df[name].is_unique:
            index = pd.Index(df[name].astype(str).to_numpy(), name=None)
            return df.drop(columns=name).set_index(index)
    return df.set_index(pd.Index(joinids.astype(str)))


def _is_query(data) -> bool:
    return hasattr(data, "obs_joinids") and hasattr(data, "measurement_name")


def resolve_soma(data: Any, *, measurement: str = "RNA", layer: str | None = None) -> SomaInput:
    """The cells, genes and block source of a SOMA ``Experiment`` or ``ExperimentAxisQuery``.

    Parameters
    ----------
    data
        An open ``tiledbsoma.Experiment`` (all its cells and genes) or an
        ``ExperimentAxisQuery`` of one (its measurement is the query's).
    measurement
        The measurement of an experiment (``"RNA"`` in the Census and ``tiledbsoma.io``).
    layer
        The ``X`` layer (default ``"raw"``: the raw counts).

    Raises
    ------
    KeyError
        No such measurement or layer (the message lists those there are).
    ValueError
        The query matches no cell or no gene; the layer is not a sparse array.
    """
    layer = DEFAULT_LAYER if layer is None else layer
    if _is_query(data):
        query, own = data, False
        measurement = data.measurement_name
        experiment = data.experiment
    else:
        experiment = data
        have = list(experiment.ms.keys()) if "ms" in experiment else []
        if measurement not in have:
            msg = (
                f"measurement {measurement!r} not found in the SOMA experiment {experiment.uri!r}; "
                f"measurements there: {have}; pass measurement=... (one of them)."
            )
            raise KeyError(msg)
        query, own = experiment.axis_query(measurement), True
    uri = experiment.uri
    try:
        ms = experiment.ms[measurement]
        layers = list(ms.X.keys()) if "X" in ms else []
        if layer not in layers:
            msg = (
                f"layer {layer!r} not found in X of measurement {measurement!r} of the SOMA experiment "
                f"{uri!r}; layers there: {layers}; pass layer=... (one of them)."
            )
            raise KeyError(msg)
        x = ms.X[layer]
        if not hasattr(x, "nnz"):  # a DenseNDArray
            msg = f"X layer {layer!r} of {uri!r} is a dense array; secact reads sparse X layers (SparseNDArray)."
            raise ValueError(msg)
        obs_ids = np.sort(query.obs_joinids().to_numpy())
        var_ids = np.sort(query.var_joinids().to_numpy())
        if obs_ids.size == 0 or var_ids.size == 0:
            what = "cells" if obs_ids.size == 0 else "genes"
            msg = (
                f"the SOMA query of {uri!r} (measurement {measurement!r}) matches 0 {what}; nothing to "
                f"compute: check or widen its {'obs' if what == 'cells' else 'var'} value_filter."
            )
            raise ValueError(msg)
        obs = _frame(query.obs().concat(), ("obs_id",), obs_ids)
        var = _frame(query.var().concat(), ("var_id", "feature_id"), var_ids)
    finally:
        if own:
            query.close()
    identity = {"soma": {"uri": str(uri), "measurement": measurement, "layer": layer}}
    source = SomaSource(x, obs_ids, var_ids, obs_names=obs.index, var_names=var.index, identity=identity)
    return SomaInput(obs, var, source, layer, identity)
