"""Signatures, gene tables and simulated data."""

from __future__ import annotations

from ._signatures import SIGNATURES, signature

__all__ = ["SIGNATURES", "signature"]
