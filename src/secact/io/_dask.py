"""Dask arrays as block sources: rows split into blocks that compute where the runner says.

:class:`DaskSource` yields ``(start, stop, block)`` whose blocks are :func:`dask.delayed`
objects (one per block of ``batch_size`` rows, the gene columns in one chunk); the runner's
``"dask"`` executor computes them in a local thread pool or on a ``dask.distributed``
cluster. :meth:`DaskSource.lazy` instead returns the results as a lazy dask array, for
results kept in ``obsm`` without computing anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from fast_array_utils import types

from ._blocks import BlockSource, axis_names, check_batch_size, check_start, finish, value_dtype

__all__ = ["DaskSource"]


def _finish_columns(block, cols):
    """A finished block (a copy) restricted to ``cols``: selected in memory, per block, so
    the graph holds no column gather (dask's take would shuffle whole blocks between workers)."""
    if cols is None:
        return finish(block, owned=False)
    if isinstance(block, types.CSBase | types.COOBase):
        block = block.tocsr()
    return finish(block[:, cols], owned=True)  # fancy indexing made a copy


def _apply_stacked(block, fn, cols, block_info=None):
    start = block_info[0]["array-location"][0][0]
    return fn(_finish_columns(block, cols), start)


class DaskSource(BlockSource):
    """A cells x genes dask array (dense or sparse chunks); views' rows/cols applied lazily."""

    executor = "dask"
    backed = False

    def __init__(self, x, *, obs_names=None, var_names=None, rows=None, cols=None):
        if x.ndim != 2:
            msg = f"expected a 2-D expression matrix, got a {x.ndim}-D dask array"
            raise ValueError(msg)
        if rows is not None:
            x = x[rows]
        if cols is not None:
            x = x[:, cols]
        self._x = x
        self.n_obs, self.n_vars = (int(s) for s in x.shape)
        if self.n_obs == 0 or self.n_vars == 0:
            msg = f"the expression matrix is empty ({self.n_obs} cells x {self.n_vars} genes)."
            raise ValueError(msg)
        self.dtype = value_dtype(x.dtype)
        meta = getattr(x, "_meta", None)
        self.is_sparse = meta is not None and not isinstance(meta, np.ndarray)
        self.obs_names = axis_names(obs_names, self.n_obs, "obs")
        self.var_names = axis_names(var_names, self.n_vars, "var")

    def _rows(self, batch_size: int) -> Any:
        return self._x.rechunk({0: check_batch_size(batch_size), 1: -1})

    def row_blocks(
        self, batch_size: int, columns: np.ndarray | None = None, start: int = 0
    ) -> Iterator[tuple[int, int, Any]]:
        """Yield ``(start, stop, delayed block)`` for blocks of ``batch_size`` rows.

        Each delayed block computes to a finished block (float64 dense C-ordered, or
        canonical CSR), like the blocks of every other source.
        """
        import dask

        cols = self._check_columns(columns)
        first = check_start(start, check_batch_size(batch_size), self.n_obs)
        x = self._rows(batch_size)
        finish_d = dask.delayed(_finish_columns, pure=True)
        a = 0
        for n, piece in zip(x.chunks[0], x.to_delayed().ravel(), strict=True):
            if a >= first:
                yield a, a + n, finish_d(piece, cols)
            a += n

    def lazy(
        self,
        fn: Callable[[Any, int], np.ndarray],
        n_out: int,
        batch_size: int,
        columns=None,
        dtype=np.float64,
    ):
        """``fn(block, start)`` (giving ``rows x n_out`` arrays of ``dtype``) over every block, lazily."""
        cols = self._check_columns(columns)
        x = self._rows(batch_size)
        return x.map_blocks(
            _apply_stacked,
            fn,
            cols,
            chunks=(x.chunks[0], (n_out,)),
            dtype=dtype,
            meta=np.empty((0, 0), dtype=dtype),
        )

    def __repr__(self) -> str:
        return f"DaskSource({self.n_obs} cells x {self.n_vars} genes, {'sparse' if self.is_sparse else 'dense'} {self.dtype})"
