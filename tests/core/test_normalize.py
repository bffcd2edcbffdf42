"""secact.core.normalize: the finite and counts checks and the normalisation of blocks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from secact.core.normalize import check_counts, check_finite, integer_valued
from secact.io import block_source


def test_check_finite():
    dense = np.ones((5, 3))
    check_finite(dense, 10)
    check_finite(np.ones((2, 2), dtype=np.int32))
    dense[3, 1] = np.nan
    dense[4, 0] = np.inf
    with pytest.raises(ValueError, match=r"2 NaN or infinite.*\[10, 15\).*first in cell 13"):
        check_finite(dense, 10)
    sp = sparse.csr_matrix(dense)
    with pytest.raises(ValueError, match=r"cells \[10, 15\).*first in cell 13"):
        check_finite(sp, 10)
    # found lazily by the consumer of the blocks
    src = block_source(sparse.csr_matrix(dense))
    with pytest.raises(ValueError, match=r"cells \[2, 4\)"):
        for start, _stop, block in src.row_blocks(2):
            check_finite(block, start)


def test_counts_check_and_integer_values():
    check_counts(sparse.csr_matrix(np.array([[0.0, 2.0], [1.0, 0.0]])), 0)
    check_counts(np.zeros((0, 3)), 0)
    with pytest.raises(ValueError, match=r"non-integer values \(rows 5\.\.6\)"):
        check_counts(np.array([[0.5, 1.0], [1.0, 2.0]]), 5)
    with pytest.raises(ValueError, match="negative"):
        check_counts(sparse.csr_matrix(np.array([[-1.0, 1.0]])), 0)
    assert integer_valued(np.array([1.0, np.nan, 3.0]))  # only finite values count
    assert not integer_valued(np.array([1.0, 2.5]))
    assert integer_valued(np.array([1, 2], dtype=np.int32))
