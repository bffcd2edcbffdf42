"""Results out of AnnData objects (and sidecar files)."""

from __future__ import annotations

from ._activity import activity
from ._differential import de_matrix, differential

__all__ = ["activity", "de_matrix", "differential"]
