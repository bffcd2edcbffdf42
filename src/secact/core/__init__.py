"""Numerics on arrays only (no AnnData): scaling, projection, grouping, permutations, engines."""
