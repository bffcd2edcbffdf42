"""Results out of AnnData objects (and sidecar files)."""

from __future__ import annotations

from ._activity import activity, activity_df
from ._ccc import ccc
from ._differential import de_matrix, differential
from ._rank import rank_activities
from ._spatial import pattern_genes, patterns, velocity

__all__ = [
    "activity",
    "activity_df",
    "ccc",
    "de_matrix",
    "differential",
    "pattern_genes",
    "patterns",
    "rank_activities",
    "velocity",
]
