"""Fixtures shared by the engine's kernel tests."""

from __future__ import annotations

import numpy as np
import pytest

from secact.core.ridge import ridge_model


@pytest.fixture(scope="module", params=[7, 17], ids=["p7", "p17"])
def problem(request):
    """Counts-like cells (~30% stored) over 400 genes; 7 or 17 proteins (partial tiles)."""
    rng = np.random.default_rng(11)
    n, p, m = 400, request.param, 11
    model = ridge_model(rng.normal(size=(n, p)), lam=10.0)
    counts = rng.poisson(0.35, size=(m, n)).astype(float)
    counts[3] = 0.0
    counts[3, 17] = 5.0  # a single stored value
    values = np.log2(counts * 1e4 / np.maximum(counts.sum(1, keepdims=True), 1) + 1)
    return model, values, values.mean(axis=0)
