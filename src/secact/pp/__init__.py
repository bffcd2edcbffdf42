"""Preprocessing for activity inference: gene symbols, pseudo-bulk, normalisation, centring."""

from __future__ import annotations

from ._symbols import GeneMap, gene_map, transfer_symbols

__all__: list[str] = ["GeneMap", "gene_map", "transfer_symbols"]
