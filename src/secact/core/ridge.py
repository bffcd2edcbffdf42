"""Ridge projection and column scaling (SecAct R ``.ridge_pureR``), on arrays only.

The estimator regresses each column ``y`` of the response (genes x samples), z-scored over
genes, on the column-z-scored signature ``X`` (genes x proteins)::

    T    = (X'X + lambda I)^-1 X'          (proteins x genes, by Cholesky)
    beta = T y

Every sample shares ``T``; the permutation null shuffles the genes of ``y``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.linalg import cho_factor, cho_solve

__all__ = ["RidgeModel", "ridge_model", "zscore_columns"]


def zscore_columns(a: np.ndarray) -> np.ndarray:
    """Centre each column and divide by its sample standard deviation (ddof 1), like R's ``scale``.

    Constant columns become NaN (as in R, where 0/0 is NaN).
    """
    a = np.asarray(a, dtype=np.float64)
    centred = a - a.mean(axis=0)
    sd = np.sqrt((centred * centred).sum(axis=0) / (a.shape[0] - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return centred / sd


@dataclass(frozen=True, eq=False)
class RidgeModel:
    """The projection ``T`` for one signature and one gene set, plus its derived constants.

    Attributes
    ----------
    T
        Genes x proteins, the transpose of the projection ``T = (X'X + lambda I)^-1 X'``,
        C-contiguous (the kernels gather its rows by gene).
    lam
        Ridge penalty.
    """

    Tt: np.ndarray
    lam: float

    @property
    def n_genes(self) -> int:
        return self.T.shape[1]

    @property
    def n_proteins(self) -> int:
        return self.T.shape[0]

    @property
    def T(self) -> np.ndarray:
        """Proteins x genes projection (a view)."""
        return self.Tt.T

    @cached_property
    def row_sums(self) -> np.ndarray:
        """``c = T 1``: the response of beta to a constant shift of ``y``."""
        return self.Tt.sum(axis=0)

    @cached_property
    def analytic_se(self) -> np.ndarray:
        """Exact permutation standard deviation of beta for a z-scored ``y`` (see ``core.moments``)."""
        centred = self.Tt - self.Tt.mean(axis=0)
        return np.sqrt((centred * centred).sum(axis=0))


def ridge_model(x: np.ndarray, lam: float = 5e5) -> RidgeModel:
    """Build the ridge projection from the signature rows of the overlapping genes.

    Parameters
    ----------
    x
        Genes x proteins signature values, rows in the expression profile's gene order,
        unscaled (they are z-scored here, as SecAct R does after taking the overlap).
    lam
        Ridge penalty ``lambda``.
    """
    if not np.isfinite(lam) or lam < 0:
        msg = f"lambda must be a finite number >= 0, got {lam!r}."
        raise ValueError(msg)
    xs = zscore_columns(x)
    if not np.isfinite(xs).all():
        bad = int((~np.isfinite(xs).all(axis=0)).sum())
        msg = (
            f"{bad} signature columns are constant over the genes shared with the data, so they "
            "cannot be scaled; drop those proteins (e.g. filter_signature=True) or use more genes."
        )
        raise ValueError(msg)
    gram = xs.T @ xs
    gram[np.diag_indices_from(gram)] += lam
    factor = cho_factor(gram, lower=False, check_finite=False)
    # T' = X (X'X + lambda I)^-1: the p x p inverse from the Cholesky factor, then one product
    inverse = cho_solve(factor, np.eye(gram.shape[0]), check_finite=False)
    return RidgeModel(Tt=np.ascontiguousarray(xs @ inverse), lam=float(lam))
