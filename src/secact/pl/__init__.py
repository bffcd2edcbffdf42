"""Plots of secact results (matplotlib; scanpy's ``ax`` / ``show`` / ``return_fig`` / ``save``)."""

from __future__ import annotations

from ._bar import bar, lollipop
from ._ccc import ccc_circle, ccc_dot, ccc_heatmap, ccc_sankey
from ._dotplot import dotplot
from ._embedding import embedding, spatial, umap
from ._heatmap import activity_heatmap, heatmap
from ._rank import rank_activities
from ._spatial import spatial_activity, velocity
from ._survival import survival
from ._volcano import volcano

__all__ = [
    "activity_heatmap",
    "bar",
    "ccc_circle",
    "ccc_dot",
    "ccc_heatmap",
    "ccc_sankey",
    "dotplot",
    "embedding",
    "heatmap",
    "lollipop",
    "rank_activities",
    "spatial",
    "spatial_activity",
    "survival",
    "umap",
    "velocity",
    "volcano",
]
