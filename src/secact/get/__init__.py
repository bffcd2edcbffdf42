"""Accessors for results stored on AnnData objects."""

from __future__ import annotations

__all__: list[str] = []
