"""Grouping of near-identical signature columns, exactly as SecAct R 1.1 does it.

SecAct R (``SecAct.activity.inference`` with ``is.group.sig = TRUE``) clusters the protein
columns of the *full* signature (before any overlap with the data) by complete linkage on the
distance ``1 - Pearson r``, cuts the tree at height ``1 - group_cor`` and replaces each cluster
by one column, the row mean of its members, named by the members joined with ``"|"``. Groups are
ordered by their first member in signature column order (R's ``unique(cutree(...))``), members
in column order. Results are expanded back to every member protein and, as R does, rows are
sorted case-insensitively.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

__all__ = ["SignatureGroups", "expand_rows", "group_signature", "r_sort_order"]


@dataclass(frozen=True, eq=False)
class SignatureGroups:
    """Which protein columns form each group.

    Attributes
    ----------
    proteins
        All protein names, in signature column order.
    labels
        For each protein, the index of its group (groups numbered in order of first member).
    """

    proteins: tuple[str, ...]
    labels: np.ndarray

    @cached_property
    def n_groups(self) -> int:
        return int(self.labels.max()) + 1 if self.labels.size else 0

    @cached_property
    def members(self) -> list[np.ndarray]:
        order = np.argsort(self.labels, kind="stable")
        bounds = np.cumsum(np.bincount(self.labels, minlength=self.n_groups))[:-1]
        return np.split(order, bounds)

    @cached_property
    def names(self) -> list[str]:
        return ["|".join(self.proteins[i] for i in idx) for idx in self.members]

    def matrix(self, values: np.ndarray) -> np.ndarray:
        """Group a genes x proteins array into genes x groups (mean of members)."""
        out = np.empty((values.shape[0], self.n_groups))
        for g, idx in enumerate(self.members):
            out[:, g] = values[:, idx].mean(axis=1)
        return out


def group_signature(values: np.ndarray, proteins: Sequence[str], group_cor: float = 0.9) -> SignatureGroups:
    """Cluster signature columns like SecAct R.

    Parameters
    ----------
    values
        Genes x proteins signature values (the full signature).
    proteins
        Protein (column) names.
    group_cor
        Pearson correlation above which columns are merged (tree cut at ``1 - group_cor``).
    """
    if not 0.0 < group_cor <= 1.0:
        msg = f"group_cor must be in (0, 1], got {group_cor!r}."
        raise ValueError(msg)
    values = np.asarray(values, dtype=np.float64)
    p = values.shape[1]
    if p == 1:
        return SignatureGroups(tuple(proteins), np.zeros(1, dtype=np.intp))
    corr = np.corrcoef(values, rowvar=False)
    dist = 1.0 - corr
    condensed = dist[np.triu_indices(p, k=1)]
    np.maximum(condensed, 0.0, out=condensed)
    tree = linkage(condensed, method="complete")
    raw = fcluster(tree, t=1.0 - group_cor, criterion="distance")
    # renumber clusters by first appearance in column order (R's unique(cutree()))
    _, first = np.unique(raw, return_index=True)
    rank = np.empty(first.size, dtype=np.intp)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    labels = rank[np.searchsorted(np.unique(raw), raw)]
    return SignatureGroups(tuple(str(x) for x in proteins), labels.astype(np.intp))


def r_sort_order(names: Sequence[str]) -> np.ndarray:
    """Indices that sort names as SecAct R's ``sort()`` does in its locale (case-insensitive)."""
    return np.array(sorted(range(len(names)), key=lambda i: (names[i].lower(), names[i])), dtype=np.intp)


def expand_rows(groups: SignatureGroups, *, sort: bool = True) -> tuple[np.ndarray, list[str]]:
    """Row index into group results for every protein, and the protein names.

    ``result_groups[index]`` gives one row per protein (members share their group's row),
    ordered like R (sorted case-insensitively) when ``sort``, else in signature order.
    """
    index = groups.labels.copy()
    names = list(groups.proteins)
    if sort:
        order = r_sort_order(names)
        index = index[order]
        names = [names[i] for i in order]
    return index, names
