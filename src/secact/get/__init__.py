"""Accessors for results stored on AnnData objects."""

from __future__ import annotations

__all__: list[str] = []

from ._differential import de_matrix, differential

__all__ += ["de_matrix", "differential"]
