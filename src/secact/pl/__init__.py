"""Plotting."""

from __future__ import annotations

from ._activity import activity_heatmap

__all__ = ["activity_heatmap"]
