"""Numerics on arrays only (no AnnData): options, signature grouping, ridge projection,
permutation tables, engines, normalisation, per-block pipeline functions and the runner."""
