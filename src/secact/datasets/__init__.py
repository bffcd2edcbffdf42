"""Signatures, gene tables and simulated data."""

from __future__ import annotations

from ._signatures import SIGNATURES, signature
from ._simulate import simulate
from ._simulate_spatial import simulate_spatial

__all__ = ["SIGNATURES", "signature", "simulate", "simulate_spatial"]
