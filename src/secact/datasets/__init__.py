"""Signatures, gene tables and simulated data."""

from __future__ import annotations

from ._signatures import SIGNATURES, signature
from ._simulate import simulate

__all__ = ["SIGNATURES", "signature", "simulate"]
