"""AnnData tools: validate, choose a block source, run the core, store results."""

from __future__ import annotations

__all__: list[str] = []

from ._differential import differential

__all__ += ["differential"]
