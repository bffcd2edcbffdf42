"""Exact moments of a linear permutation statistic (``method="analytic"``).

For a fixed weight vector ``t`` (one row of the projection ``T``) and a response ``y`` over
``n`` genes, the permuted coefficient ``beta_pi = sum_i t_i y_pi(i)`` over all ``n!``
permutations ``pi`` has (Hoeffding's combinatorial central limit theorem)::

    E[beta_pi]   = (sum_i t_i)(sum_i y_i) / n
    Var[beta_pi] = sum_i (t_i - t_bar)^2 * sum_i (y_i - y_bar)^2 / (n - 1)

SecAct z-scores ``y`` over genes, so ``y_bar = 0`` and ``sum (y_i - y_bar)^2 = n - 1``: the
mean is 0 and the standard deviation is ``||t - t_bar||``, the same for every sample. The
permutation test's ``se`` (the population standard deviation of ``B`` random permutations)
estimates exactly this number, and its ``zscore`` estimates ``beta / ||t - t_bar||``, which the
analytic method returns without Monte-Carlo noise and at the cost of one product ``T y``.
The p-value is the two-sided normal tail ``2 * Phi(-|z|)``, the large-``n`` limit of the
permutation distribution.
"""

from __future__ import annotations

import numpy as np

__all__ = ["permutation_mean", "permutation_variance"]


def permutation_mean(t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean of ``t @ y[perm]`` over all permutations, for rows of ``t`` and columns of ``y``."""
    t = np.atleast_2d(t)
    y = np.asarray(y, dtype=np.float64).reshape(t.shape[1], -1)
    return np.outer(t.sum(axis=1), y.sum(axis=0)) / t.shape[1]


def permutation_variance(t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Variance of ``t @ y[perm]`` over all permutations, for rows of ``t`` and columns of ``y``."""
    t = np.atleast_2d(t)
    n = t.shape[1]
    y = np.asarray(y, dtype=np.float64).reshape(n, -1)
    tc = t - t.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=0)
    return np.outer((tc * tc).sum(axis=1), (yc * yc).sum(axis=0)) / (n - 1)
