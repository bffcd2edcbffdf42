"""The block engine: beta, se, zscore and pvalue for a block of samples, dense or sparse.

A block holds ``m`` samples (rows) over the ``n`` overlap genes (columns, in the expression
profile's gene order). Each row ``a`` becomes the response ``y = a - r`` (``r``: an optional
per-gene offset such as the row means over all cells), which SecAct z-scores over genes::

    z = (y - mu) / sigma,   beta = T z

Dense blocks are standardised explicitly. Sparse blocks are never densified: with
``c = T 1`` and the per-sample ``mu``, ``sigma`` taken from the stored values,

    beta   = (T a - T r - mu c) / sigma
    beta_b = (T a[perm_b] - T r[perm_b] - mu c) / sigma         (permutation b)

where ``T a[perm_b]`` gathers the rows of ``T'`` at the permuted positions of the stored
genes only, and ``T r[perm_b]`` is shared by every sample. Both forms are the same numbers up
to rounding (1e-13), and both follow SecAct R: se is the population standard deviation of
the permuted betas, ``zscore = (beta - mean) / se`` and ``pvalue = (#{|beta_b| >= |beta|} + 1)
/ (B + 1)``.

``method="analytic"`` replaces the permutations by their exact moments. For a weight vector
``t`` (one row of ``T``) and a response ``y`` over ``n`` genes, ``beta_pi = sum_i t_i y_pi(i)``
over all ``n!`` permutations has (Hoeffding's combinatorial central limit theorem)::

    E[beta_pi]   = (sum_i t_i)(sum_i y_i) / n
    Var[beta_pi] = sum_i (t_i - t_bar)^2 * sum_i (y_i - y_bar)^2 / (n - 1)

SecAct z-scores ``y`` over genes, so ``y_bar = 0`` and ``sum (y_i - y_bar)^2 = n - 1``: the
mean is 0 and the standard deviation is ``||t - t_bar||`` (``RidgeModel.analytic_se``), the
same for every sample. The permutation test's ``se`` estimates exactly this number and its
``zscore`` estimates ``beta / ||t - t_bar||``, which the analytic method returns without
Monte-Carlo noise at the cost of one product ``T y``. The p-value is the two-sided normal
tail ``2 * Phi(-|z|)``, the large-``n`` limit of the permutation distribution.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp
from scipy.special import ndtr

from .._settings import settings
from ._kernels import accumulate_moments, aligned_empty, gather_columns
from ._numba import kernel_threads
from ._sparse_kernels import project_f64
from .params import Method
from .ridge import RidgeModel
from .runner import tick, ticking
from .tuning import CROSSOVER_RANGE, DENSE_FROM, Variant

__all__ = ["DENSE_FROM", "DTYPES", "BlockStats", "Engine", "Method", "check_engine_args"]

DTYPES = ("float64", "float32")

#: projection tiles (observed ``A @ Tt``): 8 float64 proteins, one 64-byte row per gene
PROJECTION_WIDTH = 8


@dataclass
class BlockStats:
    """Results for one block: arrays of samples x proteins."""

    beta: np.ndarray
    se: np.ndarray
    zscore: np.ndarray
    pvalue: np.ndarray


class Engine:
    """Computes :class:`BlockStats` for blocks of samples; one instance serves a whole run.

    Parameters
    ----------
    model
        Projection for the overlap genes.
    method
        ``"permutation"`` (SecAct's test) or ``"analytic"`` (exact permutation moments).
    table
        Permutation table (``B x n``, row ``b`` = source gene of each position), required for
        ``"permutation"``.
    offset
        Per-gene value subtracted from every sample before scaling (``None``: nothing).
    dtype
        Precision of the permuted products: ``"float64"`` (exact, the default) or ``"float32"``
        (about twice the speed; |delta z| below 1e-4). The observed beta, the moments over
        permutations and everything else stay float64.
    layout
        ``"auto"`` (by density, see Notes), or force the ``"dense"`` or ``"sparse"`` path for
        permutation blocks.
    variant
        The sparse kernel variant (``None``: the one chosen for this machine, see
        :mod:`secact.core.tuning`). Every variant gives the same numbers.

    Notes
    -----
    Permutation blocks run on the dense path (standardised block, ``permutation_chunk_bytes``
    of permuted copies at a time through one BLAS product, moments folded by a Numba kernel)
    or on the sparse kernels (``_sparse_kernels``), whichever is faster for the block's
    density (:attr:`dense_from`, measured per machine by :mod:`secact.core.tuning`); both give
    the same numbers to rounding.
    """

    def __init__(
        self,
        model: RidgeModel,
        *,
        method: Method = "permutation",
        table: np.ndarray | None = None,
        offset: np.ndarray | None = None,
        dtype: str = "float64",
        layout: str = "auto",
        variant: Variant | None = None,
    ) -> None:
        if layout not in ("auto", "dense", "sparse"):
            msg = f"layout must be 'auto', 'dense' or 'sparse', got {layout!r}."
            raise ValueError(msg)
        self.dtype = check_engine_args(model, method, table, offset, dtype)
        if variant is not None and variant.dtype != self.dtype:
            msg = f"variant {variant} is for {variant.dtype}, the engine computes in {self.dtype}."
            raise ValueError(msg)
        self.layout = layout
        self._variant = variant
        self._dense_from: float | None = None
        self.model = model
        self.method = method
        self.table = table
        self.offset = None if offset is None else np.ascontiguousarray(offset, dtype=np.float64)
        self._sparse: tuple | None = None
        self._tt: np.ndarray | None = None
        self._tiles: dict[str, np.ndarray] = {}

    # -- shared per-run constants, built lazily ---------------------------------------------------
    def _choice(self):
        from .tuning import choose

        return choose(self.dtype, self.model.n_genes, self.model.n_proteins)

    @property
    def variant(self) -> Variant:
        """The sparse kernel variant this engine runs."""
        if self._variant is None:
            self._variant = self._choice().variant
        return self._variant

    @property
    def dense_from(self) -> float:
        """Permutation blocks at least this dense (stored / all values) run on the dense path."""
        if self._dense_from is None:
            self._dense_from = self._choice().dense_from
        return self._dense_from

    def __getstate__(self) -> dict:
        """Pickled for other processes (dask workers) with the kernel choice made here, once,
        and without the per-run constants (rebuilt there when needed)."""
        if self.method == "permutation":
            _ = self.variant, self.dense_from
        state = self.__dict__.copy()
        state.update(_sparse=None, _tt=None, _tiles={})
        return state

    def _products(self) -> np.ndarray:
        """``Tt`` in the product precision (dense path)."""
        if self._tt is None:
            self._tt = np.ascontiguousarray(self.model.Tt, dtype=self.dtype)
        return self._tt

    def _protein_tiles(self, dtype: str, width: int) -> np.ndarray:
        """``Tt`` cut into tiles of ``width`` proteins (``tiles x genes x width``)."""
        if (dtype, width) not in self._tiles:
            tt = self.model.Tt
            n, p = tt.shape
            n_tiles = -(-p // width)
            tiles = aligned_empty((n_tiles, n, width), dtype)
            padded = np.zeros((n, n_tiles * width), dtype=dtype)
            padded[:, :p] = tt
            tiles[:] = padded.reshape(n, n_tiles, width).transpose(1, 0, 2)
            self._tiles[(dtype, width)] = tiles
        return self._tiles[(dtype, width)]

    def _sparse_constants(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Protein tiles of ``Tt`` (flat rows) for the variant, the inverse table (genes x
        permutations padded to the variant's pass), ``T r[perm_b]`` for every permutation and
        ``T 1`` (proteins padded to whole tiles)."""
        if self._sparse is None:
            from .permutations import inverse_permutation_table

            variant = self.variant
            table = self.table
            tt = self.model.Tt
            n, p = tt.shape
            tiles = self._protein_tiles(self.dtype, variant.width)
            tiles = tiles.reshape(tiles.shape[0], n * variant.width)  # a view: rows of one tile back to back
            n_perm = table.shape[0]
            g = variant.perms
            inv = np.zeros((n, -(-n_perm // g) * g), dtype=np.int32)
            inv[:, :n_perm] = inverse_permutation_table(table).T
            width = tiles.shape[0] * variant.width  # proteins padded to whole tiles
            trp = np.zeros((n_perm, width))
            if self.offset is not None:
                trp[:, :p] = self.offset[table] @ tt  # T r[perm_b]: (B x n) @ (n x p)
            c = np.zeros(width)
            c[:p] = self.model.row_sums
            self._sparse = (tiles, inv, trp, c)
        return self._sparse

    # -- public --------------------------------------------------------------------------------
    def run(self, block: np.ndarray | sp.spmatrix | sp.sparray) -> BlockStats:
        """Statistics for one block (samples x overlap genes)."""
        sparse = sp.issparse(block)
        if self.method == "permutation" and block.shape[0] and block.shape[1]:
            if self.layout == "auto":
                stored = block.nnz if sparse else np.count_nonzero(block)
                density = stored / (block.shape[0] * block.shape[1])
                # beyond the range a timing can give, no need to consult (or time) the machine
                dense = density >= CROSSOVER_RANGE[1] or (
                    density > CROSSOVER_RANGE[0] and density >= self.dense_from
                )
            else:
                dense = self.layout == "dense"
            if sparse and dense:
                block, sparse = block.toarray(), False
            elif not sparse and not dense:
                block, sparse = sp.csr_matrix(block), True
        with kernel_threads():
            if sparse:
                return self._run_sparse(sp.csr_matrix(block))
            return self._run_dense(np.asarray(block, dtype=np.float64))

    # -- dense ---------------------------------------------------------------------------------
    def _run_dense(self, a: np.ndarray) -> BlockStats:
        m, n = a.shape
        y = a - self.offset if self.offset is not None else a
        mu = y.mean(axis=1, keepdims=True)
        centred = y - mu
        sigma = np.sqrt((centred * centred).sum(axis=1, keepdims=True) / (n - 1))
        scale = np.abs(a).max(axis=1, keepdims=True) if a.size else np.zeros((m, 1))
        _rounding_level(sigma, scale, self.offset)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = centred / sigma
        beta = z @ self.model.Tt
        if self.method == "analytic":
            return self._analytic(beta, sigma.ravel())
        table = self.table
        n_perm = table.shape[0]
        p = beta.shape[1]
        s1, s2, cnt = (np.zeros((m, p)) for _ in range(3))
        tt = self._products()
        zc = np.ascontiguousarray(z, dtype=self.dtype)
        step = max(1, min(n_perm, settings.permutation_chunk_bytes // (tt.itemsize * n * max(m, 1))))
        permuted = np.empty((m * step, n), dtype=self.dtype)
        products = np.empty((m * step, p), dtype=self.dtype)
        absb = np.abs(beta)
        reported = 0
        for start in range(0, n_perm, step):
            idx = table[start : start + step]
            rows = m * idx.shape[0]
            gather_columns(zc, idx, permuted[:rows])
            np.matmul(permuted[:rows], tt, out=products[:rows])
            accumulate_moments(products[:rows], idx.shape[0], absb, s1, s2, cnt)
            done = m * (start + idx.shape[0]) // n_perm  # cells' worth of work so far
            tick(done - reported)
            reported = done
        return self._finish(beta, s1, s2, cnt, n_perm, sigma.ravel())

    # -- sparse --------------------------------------------------------------------------------
    def _run_sparse(self, a: sp.csr_matrix) -> BlockStats:
        m, n = a.shape
        a.sum_duplicates()
        indptr = a.indptr.astype(np.int64, copy=False)
        indices = a.indices.astype(np.int64, copy=False)
        data = a.data.astype(np.float64, copy=False)
        row_sum = np.asarray(a.sum(axis=1)).ravel()
        stored = np.diff(indptr) > 0
        row_sq = np.zeros(m)
        if data.size:  # over rows with stored values only (an empty last row is out of reduceat's range)
            row_sq[stored] = np.add.reduceat(data * data, indptr[:-1][stored])
        tt = self.model.Tt
        c = self.model.row_sums
        if self.offset is not None:
            r = self.offset
            row_sum = row_sum - r.sum()
            row_sq = row_sq - 2.0 * (a @ r) + r @ r
            tr = r @ tt
        else:
            tr = np.zeros(tt.shape[1])
        mu = row_sum / n
        var = (row_sq - n * mu * mu) / (n - 1)
        sigma = np.sqrt(np.maximum(var, 0.0))
        scale = np.zeros(m)
        if data.size:
            scale[stored] = np.maximum.reduceat(np.abs(data), indptr[:-1][stored])
        _rounding_level(sigma, scale, self.offset)
        ta = np.empty((m, tt.shape[1]))
        project_f64(indptr, indices, data, self._protein_tiles("float64", PROJECTION_WIDTH), ta)
        with np.errstate(invalid="ignore", divide="ignore"):
            beta = (ta - tr - mu[:, None] * c) / sigma[:, None]
        if self.method == "analytic":
            return self._analytic(beta, sigma)
        tiles, inv, trp, c_pad = self._sparse_constants()
        p = tt.shape[1]
        s1, s2, cnt = (np.zeros((m, c_pad.size)) for _ in range(3))
        absb = np.zeros((m, c_pad.size))
        absb[:, :p] = np.abs(beta)
        values = data.astype(self.dtype, copy=False)
        # cells are independent: with a progress bar, run them in parts so that it moves within
        # the block (parts cost a little load balance between threads, so only then)
        part = max(64, 16 * numba.get_num_threads()) if ticking() else max(m, 1)
        for a in range(0, m, part):
            b = min(a + part, m)
            self.variant.kernel(
                indptr[a : b + 1], indices, values, tiles, inv, trp, mu[a:b], sigma[a:b], c_pad,
                absb[a:b], s1[a:b], s2[a:b], cnt[a:b],
            )  # fmt: skip
            tick(b - a)
        s1, s2, cnt = s1[:, :p], s2[:, :p], cnt[:, :p]
        return self._finish(beta, s1, s2, cnt, trp.shape[0], sigma)

    # -- finishing -----------------------------------------------------------------------------
    def _analytic(self, beta: np.ndarray, sigma: np.ndarray) -> BlockStats:
        se = np.broadcast_to(self.model.analytic_se, beta.shape).copy()
        se[~(sigma > 0)] = np.nan
        beta[~(sigma > 0)] = np.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            z = beta / se
        _warn_degenerate(sigma)
        return BlockStats(beta=beta, se=se, zscore=z, pvalue=2.0 * ndtr(-np.abs(z)))

    def _finish(self, beta, s1, s2, cnt, n_perm, sigma) -> BlockStats:
        mean = s1 / n_perm
        var = s2 / n_perm - mean * mean
        se = np.sqrt(np.maximum(var, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(se > 0, (beta - mean) / np.where(se > 0, se, 1.0), np.nan)
        pvalue = (cnt + 1.0) / (n_perm + 1.0)
        bad = ~(sigma > 0)
        if bad.any():
            beta[bad] = np.nan
            z[bad] = np.nan
            se[bad] = np.nan
            pvalue[bad] = np.nan
        _warn_degenerate(sigma)
        if np.any((se == 0) & ~bad[:, None]):
            warnings.warn(
                "some permutation standard errors are 0; their z-scores are NaN.",
                RuntimeWarning,
                stacklevel=3,
            )
        return BlockStats(beta=beta, se=se, zscore=z, pvalue=pvalue)


def check_engine_args(model: RidgeModel, method, table, offset, dtype) -> str:
    """Check an engine's arguments (shared by every engine); returns the dtype's name."""
    if method not in ("permutation", "analytic"):
        msg = f"method must be 'permutation' or 'analytic', got {method!r}."
        raise ValueError(msg)
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        msg = f"dtype must be one of {DTYPES}, got {dtype!r}."
        raise ValueError(msg)
    n = model.n_genes
    if method == "permutation" and (table is None or table.ndim != 2 or table.shape[1] != n):
        msg = f"a permutation table of shape (B, {n}) is required for method='permutation'."
        raise ValueError(msg)
    if offset is not None and np.shape(offset) != (n,):
        msg = f"offset must have one value per overlap gene ({n}), got shape {np.shape(offset)}."
        raise ValueError(msg)
    return name


#: a sample whose spread is below this fraction of its values' magnitude is constant: what is
#: left of it is rounding (e.g. a profile minus a control equal to it up to the last digit)
NEAR_CONSTANT = 1e-12


def _rounding_level(sigma: np.ndarray, scale: np.ndarray, offset) -> None:
    """Set ``sigma`` to 0 (in place) where it is at the level of rounding relative to ``scale``
    (the largest magnitude of the sample, plus that of the centre)."""
    if offset is not None and np.size(offset):
        scale = scale + float(np.abs(offset).max())
    sigma[sigma <= NEAR_CONSTANT * scale] = 0.0


def _warn_degenerate(sigma: np.ndarray) -> None:
    bad = int((~(sigma > 0)).sum())
    if bad:
        warnings.warn(
            f"{bad} sample(s) are constant over the overlap genes (zero variance); their results are NaN.",
            RuntimeWarning,
            stacklevel=3,
        )
