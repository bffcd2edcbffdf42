"""AnnData tools: validate, choose a block source, run the core, store results."""

from __future__ import annotations

from ._activity import activity
from ._ccc import ccc
from ._ccc_spatial import ccc_spatial
from ._coxph import coxph
from ._differential import differential
from ._patterns import signaling_patterns
from ._rank import rank_activities
from ._velocity import signaling_velocity

__all__ = [
    "activity",
    "ccc",
    "ccc_spatial",
    "coxph",
    "differential",
    "rank_activities",
    "signaling_patterns",
    "signaling_velocity",
]
