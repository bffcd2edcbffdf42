"""Argument checks shared by every layer, and the typed errors / warnings callers react to.

Nothing here imports the rest of secact, so ``core``, ``io``, ``tl`` and ``pl`` can all use it.
"""

from __future__ import annotations

import numpy as np
from fast_array_utils import types

__all__ = ["DuplicateSymbolsError", "EmptyLibraryWarning", "check_positive_int", "is_gpu_array"]


def is_gpu_array(x) -> bool:
    """Whether ``x`` is a CuPy array or CuPy sparse matrix (recognised without importing CuPy)."""
    return isinstance(x, types.CupyArray | types.CupyCSMatrix)


def check_positive_int(value, name: str, *, hint: str = "") -> int:
    """``value`` as an ``int`` when it is an integer >= 1 (``bool`` is not), else a ``ValueError``.

    Parameters
    ----------
    value
        What the caller passed.
    name
        The parameter's name, as the user wrote it (e.g. ``"n_runs"``, ``"settings.batch_size"``).
    hint
        Appended to the message (e.g. what the value means).
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) or value < 1:
        msg = f"{name} must be a positive integer, got {value!r}."
        if hint:
            msg = f"{msg} {hint}"
        raise ValueError(msg)
    return int(value)


class DuplicateSymbolsError(ValueError):
    """Gene names are duplicated after symbol mapping and no per-gene totals were given.

    SecAct R's ``rm_duplicates`` keeps the duplicate with the largest total count; a caller
    that can compute the totals (one pass over the data) catches this and passes ``totals=``.
    """

    def __init__(self, message: str, n_duplicated: int) -> None:
        super().__init__(message)
        self.n_duplicated = int(n_duplicated)


class EmptyLibraryWarning(RuntimeWarning):
    """Cells (or spots) with a library size of 0: their normalised values are undefined."""

    def __init__(self, message: str, n_cells: int) -> None:
        super().__init__(message)
        self.n_cells = int(n_cells)
