"""Blocks handed out by block sources: float64 C-ordered arrays or canonical CSR matrices."""

from __future__ import annotations

from typing import Any

import numpy as np
from fast_array_utils import types
from scipy import sparse

__all__ = ["Block", "backed_sparse_format", "finish"]

Block = np.ndarray | sparse.csr_matrix


def backed_sparse_format(x: Any) -> str | None:
    """``"csr"`` / ``"csc"`` if ``x`` is an anndata backed sparse dataset, else ``None``."""
    if isinstance(x, types.CSRDataset):
        return "csr"
    if isinstance(x, types.CSCDataset):
        return "csc"
    return None


def finish(block, *, owned: bool) -> Block:
    """float64 C-ordered ndarray, or canonical float64 csr_matrix; a copy unless ``owned``."""
    if isinstance(block, types.CSBase | types.COOBase):
        out = sparse.csr_matrix(block)
        if out.dtype != np.float64 or not owned:
            out = out.astype(np.float64)  # copies
        out.sum_duplicates()  # sorts indices, sums duplicates, keeps explicit zeros
        return out
    if isinstance(block, np.matrix):
        block = block.A
    if owned:
        return np.ascontiguousarray(block, dtype=np.float64)
    return np.array(block, dtype=np.float64, order="C", copy=True)
