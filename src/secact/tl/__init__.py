"""AnnData tools: validate, choose a block source, run the core, store results."""

from __future__ import annotations

from ._activity import activity
from ._ccc import ccc
from ._differential import differential
from ._rank import rank_activities

__all__ = ["activity", "ccc", "differential", "rank_activities"]
