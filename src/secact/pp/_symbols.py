"""Gene symbols as SecAct R prepares them: alias → symbol, duplicates, mouse → human.

Everything here works on gene names, per-gene totals and cells x genes matrices (NumPy or
SciPy sparse); nothing needs AnnData. The plan for a data set is a :class:`GeneMap`, a 0/1
matrix from input genes to output symbols, so the same map can be applied to an in-memory
matrix, to chunks of a backed one, or to pseudo-bulk sums.

R functions reproduced (``data2intelligence/SecAct``, ``R/ifun.R`` and ``R/activity.R``):

``transferSymbol``
    A name found in the ``Alias`` column of the NCBI table is replaced by the ``Symbol`` of the
    first matching row; other names are left as they are. Exact, case-sensitive matching.
``rm_duplicates``
    Among the rows sharing a symbol, the one with the largest total over all cells is kept
    (the first of them on ties); all other rows of that symbol are dropped. The current R
    keeps the surviving rows in their original order, i.e. the kept row stays where it was
    (``mat[sort(c(unique_index, kept_index)), ]``); SecAct R before the 2025 alias table put it
    at the symbol's first occurrence instead (``duplicate_position="first"``).
``mouse2human_mat``
    Used by ``SecAct.activity.inference.ST`` when the SpaCET object's organism is mouse,
    after dropping genes with zero counts and before ``transferSymbol``/``rm_duplicates``.
    Each mouse symbol is looked up in ``Mouse2Human_filter.csv``; unmatched genes are
    dropped, and genes sharing a human symbol are summed. The output rows are the sorted
    unique human symbols (R: ``levels(factor(human))``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._checks import DuplicateSymbolsError
from ..datasets._genes import alias_table, mouse_to_human

__all__ = ["GeneMap", "gene_map", "looks_like_ensembl", "transfer_symbols"]

_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?(_PAR_Y)?$")


def _as_names(names: Sequence[str] | np.ndarray | pd.Index) -> np.ndarray:
    arr = np.asarray(list(names) if not isinstance(names, np.ndarray | pd.Index) else names, dtype=object)
    if arr.ndim != 1:
        raise ValueError(f"gene names must be one-dimensional, got shape {arr.shape}")
    return arr


def transfer_symbols(names: Sequence[str] | np.ndarray | pd.Index) -> np.ndarray:
    """Replace gene aliases by official symbols, as SecAct R's ``transferSymbol``.

    Parameters
    ----------
    names
        Gene names (symbols or aliases).

    Returns
    -------
    numpy.ndarray
        Object array of the same length: each name found in the NCBI alias table
        (``secact.datasets._genes.alias_table``, exact case-sensitive match) is replaced by
        the symbol of its first row; all other names are returned unchanged. Names are never
        upper-cased, so mouse symbols such as ``"Cd4"`` pass through untouched.
    """
    arr = _as_names(names)
    table = alias_table()
    idx = table.index.get_indexer(arr)
    out = arr.copy()
    hit = idx >= 0
    out[hit] = table.to_numpy()[idx[hit]]
    return out


def looks_like_ensembl(names: Sequence[str] | np.ndarray | pd.Index) -> bool:
    """Whether most (more than half) of the names are Ensembl gene IDs (``ENSG…``, ``ENSMUSG…``).

    Version suffixes (``ENSG00000141510.17``) are accepted. Used to explain an empty overlap
    with a signature: activity inference needs gene symbols.
    """
    arr = _as_names(names)
    if arr.size == 0:
        return False
    hits = sum(1 for n in arr if isinstance(n, str) and _ENSEMBL.match(n))
    return hits * 2 > arr.size


def _selection_matrix(rows: np.ndarray, n_rows: int) -> sp.csc_matrix:
    """(n_rows, len(rows)) 0/1 matrix whose column j selects input row ``rows[j]``."""
    n_out = rows.size
    return sp.csc_matrix(
        (np.ones(n_out, dtype=np.float64), rows.astype(np.int64), np.arange(n_out + 1, dtype=np.int64)),
        shape=(n_rows, n_out),
    )


@dataclass(frozen=True, eq=False)
class GeneMap:
    """How input genes (columns of a cells x genes matrix) become output symbols.

    ``out = X @ matrix``. Each column of ``matrix`` has one 1 (a selected input gene:
    symbol mapping and duplicate removal) or several (mouse genes summed into one human
    symbol); each row has at most one 1 (an input gene is used once or dropped).

    Attributes
    ----------
    symbols
        Output gene symbols, unique, in R's order.
    matrix
        ``(n_input_genes, n_output_genes)`` CSC matrix of float64 0/1 entries.
    """

    symbols: pd.Index
    matrix: sp.csc_matrix
    _identity: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.matrix.shape[1] != len(self.symbols):
            raise ValueError(
                f"matrix has {self.matrix.shape[1]} columns but there are {len(self.symbols)} symbols"
            )
        m = self.matrix
        n_in, n_out = m.shape
        identity = (
            n_in == n_out
            and m.nnz == n_in
            and np.array_equal(m.indptr, np.arange(n_out + 1))
            and np.array_equal(m.indices, np.arange(n_in))
            and bool(np.all(m.data == 1.0))
        )
        object.__setattr__(self, "_identity", identity)

    @property
    def n_input(self) -> int:
        """Number of input genes."""
        return self.matrix.shape[0]

    @property
    def n_output(self) -> int:
        """Number of output symbols."""
        return self.matrix.shape[1]

    @property
    def is_identity(self) -> bool:
        """Whether ``matrix`` is the identity, so ``apply`` can be skipped.

        The symbols may still differ from the input names (aliases renamed).
        """
        return self._identity

    @property
    def is_selection(self) -> bool:
        """Whether every output is exactly one input gene (no summation)."""
        return self.matrix.nnz == self.n_output and bool(np.all(np.diff(self.matrix.indptr) == 1))

    @property
    def selected(self) -> np.ndarray | None:
        """For a selection map, the input gene index of each output symbol; else ``None``."""
        if not self.is_selection:
            return None
        return self.matrix.indices.astype(np.intp, copy=True)

    def apply_totals(self, totals: np.ndarray) -> np.ndarray:
        """Per-output totals from per-input totals (``totals @ matrix``)."""
        totals = np.asarray(totals, dtype=np.float64)
        if totals.shape != (self.n_input,):
            raise ValueError(f"totals must have shape ({self.n_input},), got {totals.shape}")
        return np.asarray(self.matrix.T @ totals).ravel()

    def restrict(self, outputs: np.ndarray) -> tuple[np.ndarray, GeneMap | None]:
        """The input columns that ``outputs`` need, and the map from those columns to them.

        The map is ``None`` when the columns already are the outputs (identity or selection),
        so a pass reads only what it uses and maps nothing.
        """
        outputs = np.asarray(outputs, dtype=np.intp)
        if self.is_identity:
            return outputs, None
        if self.is_selection:
            return self.selected[outputs], None
        sub = self.matrix[:, outputs].tocsr()
        rows = np.flatnonzero(np.diff(sub.indptr))
        return rows, GeneMap(symbols=self.symbols[outputs], matrix=sub[rows].tocsc())

    def __call__(self, X):
        """Same as :meth:`apply` (a gene map is a per-block function)."""
        return X if self.is_identity else self.apply(X)

    def apply(self, X):
        """Map a cells x input-genes matrix to cells x output symbols (``X @ matrix``).

        Parameters
        ----------
        X
            Dense array or SciPy sparse matrix/array with ``n_input`` columns.

        Returns
        -------
        Same kind as ``X`` (ndarray, or sparse in the same format and container), shape
        ``(n_cells, n_output)``. Floating dtypes are kept; other dtypes become float64.
        Selections are done by column indexing (no arithmetic), sums by a sparse product.
        """
        if X.ndim != 2 or X.shape[1] != self.n_input:
            raise ValueError(f"X must have shape (n_cells, {self.n_input}), got {X.shape}")
        dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.dtype(np.float64)
        if sp.issparse(X):
            fmt = X.format
            if fmt not in ("csr", "csc"):
                X = X.tocsr()
                fmt = "csr"
            if self.is_identity:
                out = X
            elif self.is_selection:
                out = X[:, self.matrix.indices]
            else:
                is_array = isinstance(X, sp.sparray)
                m = self.matrix.astype(dtype)
                m = sp.csc_array(m) if is_array else m
                out = (X.astype(dtype) @ m).asformat(fmt)
            out = out.astype(dtype, copy=False)
            if out.format != fmt:
                out = out.asformat(fmt)
            out.sort_indices()
            return out
        X = np.asarray(X)
        if self.is_identity:
            return X.astype(dtype, copy=False)
        if self.is_selection:
            return X[:, self.matrix.indices].astype(dtype, copy=False)
        m = self.matrix.astype(dtype)
        return np.ascontiguousarray((m.T @ X.T.astype(dtype, copy=False)).T)


def _mouse_to_human_matrix(names: np.ndarray) -> tuple[np.ndarray, sp.csc_matrix]:
    """Human symbols (sorted, unique) and the (n_mouse, n_human) summation matrix."""
    table = mouse_to_human()
    lookup = pd.Index(table["mouse"].to_numpy(dtype=object))
    if not lookup.is_unique:  # R's match() takes the first row of a symbol
        first = ~lookup.duplicated(keep="first")
        lookup = lookup[first]
        human_of = table["human"].to_numpy(dtype=object)[first]
    else:
        human_of = table["human"].to_numpy(dtype=object)
    idx = lookup.get_indexer(names)
    keep = np.flatnonzero(idx >= 0)
    if keep.size == 0:
        raise ValueError(
            "No mouse genes matched the mouse → human table (Mouse2Human_filter.csv); "
            "are these mouse gene symbols such as 'Cd4', 'Ifng'?"
        )
    human = human_of[idx[keep]]
    levels = np.array(sorted(set(human)), dtype=object)
    col = pd.Index(levels).get_indexer(human)
    m = sp.csc_matrix(
        (np.ones(keep.size, dtype=np.float64), (keep, col)),
        shape=(names.size, levels.size),
    )
    m.sum_duplicates()
    m.sort_indices()
    return levels, m


def _dedup_rows(
    names: np.ndarray, totals: np.ndarray | None, position: Literal["kept", "first"]
) -> np.ndarray | None:
    """Rows kept by R's ``rm_duplicates`` in output order, or ``None`` if names are unique."""
    codes, uniques = pd.factorize(pd.Index(names, dtype=object), use_na_sentinel=False)
    if uniques.size == names.size:
        return None
    if totals is None:
        n_dup = names.size - uniques.size
        raise DuplicateSymbolsError(
            f"{n_dup} gene names are duplicated after symbol mapping "
            "(e.g. "
            + ", ".join(map(repr, pd.Index(names)[pd.Index(names).duplicated()].unique()[:3]))
            + "); pass totals= (each input gene's total count over all cells) so the "
            "duplicate with the largest total can be kept, as SecAct R's rm_duplicates does.",
            n_dup,
        )
    totals = np.asarray(totals, dtype=np.float64)
    if np.isnan(totals).any():
        raise ValueError("totals contain NaN")
    n = names.size
    # Sort by (symbol code, -total, position); the first row of each symbol is R's choice.
    order = np.lexsort((np.arange(n), -totals, codes))
    first_of_code = np.ones(n, dtype=bool)
    first_of_code[1:] = codes[order][1:] != codes[order][:-1]
    kept = order[first_of_code]  # one row per symbol, in code order = order of first occurrence
    if position == "kept":
        return np.sort(kept)
    return kept


def gene_map(
    names: Sequence[str] | np.ndarray | pd.Index,
    *,
    organism: Literal["human", "mouse"] = "human",
    totals: np.ndarray | None = None,
    map_symbols: bool = True,
    duplicate_position: Literal["kept", "first"] = "kept",
) -> GeneMap:
    """Plan how the genes of a data set become SecAct's gene symbols.

    Order of operations (as SecAct R):

    1. ``organism="mouse"`` only: each mouse symbol is looked up in the shipped
       ``Mouse2Human_filter`` table; unmatched genes are dropped and mouse genes sharing a
       human homologue are **summed** into one row; the human symbols come out sorted
       (code-point order; R sorts ``factor`` levels in its locale, which agrees for the
       C locale). R does this only for spatial data (``SecAct.activity.inference.ST``), after
       dropping genes whose total is zero; pass only such genes to reproduce it exactly.
    2. ``map_symbols=True``: aliases are replaced by official symbols
       (:func:`transfer_symbols`, R ``transferSymbol``).
    3. Duplicated symbols: the row with the largest total (``totals``, after step 1's sums)
       is kept, the first on ties (R ``rm_duplicates``).

    Parameters
    ----------
    names
        Input gene names, one per column of the cells x genes matrix.
    organism
        ``"human"`` (names used as they are) or ``"mouse"`` (step 1).
    totals
        Each input gene's total count over all cells. Needed only when step 2 (or the input)
        leaves duplicated symbols; otherwise a ``DuplicateSymbolsError`` (a :class:`ValueError`,
        from ``secact._checks``) says so.
    map_symbols
        Whether to apply step 2.
    duplicate_position
        Where the kept row of a duplicated symbol goes: ``"kept"`` (default, current SecAct R:
        the surviving rows keep their original relative order) or ``"first"`` (older SecAct R:
        at the position of the symbol's first occurrence). The choice of row is the same.
        Only the gene order differs, which matters for bit-exact permutation p-values.

    Returns
    -------
    GeneMap
        Output symbols and the 0/1 matrix from input genes to them. When nothing is dropped,
        summed or reordered, ``matrix`` is the identity and ``is_identity`` is ``True``.
    """
    if organism not in ("human", "mouse"):
        raise ValueError(f"organism must be 'human' or 'mouse', got {organism!r}")
    if duplicate_position not in ("kept", "first"):
        raise ValueError(f"duplicate_position must be 'kept' or 'first', got {duplicate_position!r}")
    arr = _as_names(names)
    n_in = arr.size
    if totals is not None:
        totals = np.asarray(totals, dtype=np.float64).ravel()
        if totals.shape != (n_in,):
            raise ValueError(f"totals must have one value per gene ({n_in}), got shape {totals.shape}")

    first: sp.csc_matrix | None = None
    current = arr
    current_totals = totals
    if organism == "mouse":
        current, first = _mouse_to_human_matrix(arr)
        if totals is not None:
            current_totals = np.asarray(first.T @ totals).ravel()

    if map_symbols:
        current = transfer_symbols(current)

    kept = _dedup_rows(current, current_totals, duplicate_position)
    if kept is None:
        symbols = current
        second = None
    else:
        symbols = current[kept]
        second = _selection_matrix(kept, current.size)

    if first is None and second is None:
        matrix = sp.identity(n_in, dtype=np.float64, format="csc")
    elif first is None:
        matrix = second
    elif second is None:
        matrix = first
    else:
        matrix = (first @ second).tocsc()
        matrix.sort_indices()
    return GeneMap(symbols=pd.Index(symbols, dtype=object), matrix=sp.csc_matrix(matrix))
