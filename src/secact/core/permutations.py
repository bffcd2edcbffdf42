"""Permutation tables for the SecAct / CytoSig permutation test.

A permutation table is a ``(B, n)`` integer array whose row ``b`` lists, for every
position ``i``, the *source* gene index of permutation ``b``: the permuted response
matrix is ``Y[table[b], :]``.

Tables are built exactly as in the SecAct C kernel, by a **cumulative** Fisher–Yates
shuffle: a single working array ``arr = arange(n)`` is shuffled in place, row ``b`` is
a copy of ``arr`` after the ``b``-th shuffle, and ``arr`` is *not* reset between
permutations::

    for b in range(B):
        for i in range(n - 1):
            j = i + rand() // (RAND_MAX // (n - i) + 1)
            arr[i], arr[j] = arr[j], arr[i]
        table[b] = arr

Only ``rand()`` / ``RAND_MAX`` depend on the chosen generator (``rng=``):

``"mt19937"`` (default)
    GSL's ``gsl_rng_mt19937``: the 2002 Mersenne Twister ``genrand_int32`` with
    ``init_genrand`` seeding (seed ``0`` means ``4357``, GSL's default),
    ``RAND_MAX = 2**32 - 1``.  This reproduces the tables of SecAct R 1.1 (its
    default) and of SecActPy's ``GSLRNG`` backend.
``"srand"``
    A pure, platform-independent re-implementation of glibc's ``srand(seed)`` /
    ``rand()`` (the ``TYPE_3`` additive lagged-Fibonacci generator
    ``r[i] = r[i-3] + r[i-31] (mod 2**32)``, output ``r[i] >> 1``, 310 warm-up draws,
    seed ``0`` behaves like ``1``), ``RAND_MAX = 2**31 - 1``.  This reproduces the
    legacy SecAct C kernel and SecActPy's ``CStdlibRNG`` backend *as run on glibc
    (Linux)*, but gives the same result on every operating system; no ``ctypes`` or
    C library is involved.
``"numpy"``
    ``numpy.random.Generator(PCG64(seed))`` drawing ``uint32`` values in bulk
    (``RAND_MAX = 2**32 - 1``), fed into the same cumulative shuffle.  Fast and
    deterministic for a given seed, but not compatible with any reference
    implementation.  It never touches NumPy's global random state.

All generators and the shuffle are compiled with numba.  The last few tables are
memoised in-process (keyed by ``(n, n_permutations, rng, seed)``) and returned as
read-only arrays; use :func:`clear_permutation_cache` to release them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numba
import numpy as np

__all__ = [
    "RNGS",
    "clear_permutation_cache",
    "inverse_permutation_table",
    "permutation_table",
]

RNGS: tuple[str, ...] = ("mt19937", "srand", "numpy")

_MT_RAND_MAX = 0xFFFFFFFF
_GLIBC_RAND_MAX = 0x7FFFFFFF
_NUMPY_RAND_MAX = 0xFFFFFFFF

# Number of draws per bulk request for the numpy backend (bounds peak memory).
_NUMPY_CHUNK_DRAWS = 1 << 22

# In-process memo of recently built tables.
_CACHE_MAXSIZE = 8
_CACHE_MAX_BYTES = 1 << 30  # tables larger than this are never memoised
_cache: OrderedDict[tuple[int, int, str, int], np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()


# ----------------------------------------------------------------------------------
# Compiled kernels
# ----------------------------------------------------------------------------------
# All generator arithmetic is done in int64 on values < 2**32, which never overflows
# (the largest intermediate is 1812433253 * (2**32 - 1) < 2**63).

_MASK32 = 0xFFFFFFFF


@numba.njit(cache=True, nogil=True)
def _shuffle_divisors(n, rand_max):  # pragma: no cover - compiled
    """Per-position divisors ``RAND_MAX // (n - i) + 1`` and their reciprocals."""
    div = np.empty(max(n - 1, 1), dtype=np.int64)
    rcp = np.empty(max(n - 1, 1), dtype=np.float64)
    for i in range(n - 1):
        d = rand_max // (n - i) + 1
        div[i] = d
        rcp[i] = 1.0 / d
    return div, rcp


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _shuffle_step(arr, draws, div, rcp):  # pragma: no cover - compiled
    """One cumulative Fisher–Yates pass: ``j = i + draws[i] // div[i]``, swap ``arr[i], arr[j]``.

    The integer quotient is obtained from a floating-point estimate and corrected
    to be exact (draws < 2**32, so the estimate is off by at most one).
    """
    n = arr.shape[0]
    for i in range(n - 1):
        r = np.int64(draws[i])
        d = div[i]
        q = np.int64(r * rcp[i])
        if q * d > r:
            q -= 1
        elif (q + 1) * d <= r:
            q += 1
        j = i + q
        tmp = arr[i]
        arr[i] = arr[j]
        arr[j] = tmp


# --- MT19937 (GSL gsl_rng_mt19937 / Matsumoto & Nishimura 2002) -------------------


@numba.njit(cache=True, nogil=True)
def _mt_seed(seed):  # pragma: no cover - compiled
    mt = np.empty(624, dtype=np.int64)
    s = np.int64(seed) & _MASK32
    if s == 0:
        s = 4357
    mt[0] = s
    for i in range(1, 624):
        prev = mt[i - 1]
        mt[i] = (1812433253 * (prev ^ (prev >> 30)) + i) & _MASK32
    return mt


@numba.njit(cache=True, nogil=True)
def _mt_twist(mt):  # pragma: no cover - compiled
    upper = 0x80000000
    lower = 0x7FFFFFFF
    matrix_a = 0x9908B0DF
    for kk in range(624 - 397):
        y = (mt[kk] & upper) | (mt[kk + 1] & lower)
        mt[kk] = mt[kk + 397] ^ (y >> 1) ^ ((y & 1) * matrix_a)
    for kk in range(624 - 397, 623):
        y = (mt[kk] & upper) | (mt[kk + 1] & lower)
        mt[kk] = mt[kk + (397 - 624)] ^ (y >> 1) ^ ((y & 1) * matrix_a)
    y = (mt[623] & upper) | (mt[0] & lower)
    mt[623] = mt[396] ^ (y >> 1) ^ ((y & 1) * matrix_a)


@numba.njit(cache=True, nogil=True)
def _mt_fill(mt, pos, out):  # pragma: no cover - compiled
    """Fill ``out`` with successive ``genrand_int32`` outputs; ``pos[0]`` is the index."""
    mti = pos[0]
    for k in range(out.shape[0]):
        if mti >= 624:
            _mt_twist(mt)
            mti = 0
        y = mt[mti]
        mti += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        out[k] = y
    pos[0] = mti


@numba.njit(cache=True, nogil=True)
def _mt_table(arr, out, seed):  # pragma: no cover - compiled
    n_perm, n = out.shape
    mt = _mt_seed(seed)
    pos = np.full(1, 624, dtype=np.int64)  # first draw triggers the twist
    div, rcp = _shuffle_divisors(n, _MT_RAND_MAX)
    draws = np.empty(max(n - 1, 1), dtype=np.int64)
    for b in range(n_perm):
        _mt_fill(mt, pos, draws)
        _shuffle_step(arr, draws, div, rcp)
        out[b, :] = arr


# --- glibc srand()/rand() (TYPE_3, degree 31, separation 3) -----------------------


@numba.njit(cache=True, nogil=True)
def _glibc_seed(seed):  # pragma: no cover - compiled
    """Return ``(state, fptr, rptr)`` after ``srand(seed)`` including the warm-up."""
    state = np.empty(31, dtype=np.int64)
    # ``srandom_r`` takes an unsigned int, stores it into an int32 ``word``.
    s = np.int64(seed) & _MASK32
    if s == 0:
        s = 1
    word = s - (1 << 32) if s >= (1 << 31) else s  # reinterpret as int32
    state[0] = word & _MASK32
    for i in range(1, 31):
        # word = (16807 * word) % 2147483647 via Schrage, with C truncating division.
        if word >= 0:
            hi = word // 127773
            lo = word % 127773
        else:
            hi = -((-word) // 127773)
            lo = -((-word) % 127773)
        word = 16807 * lo - 2836 * hi
        if word < 0:
            word += 2147483647
        state[i] = word & _MASK32
    fptr = 3
    rptr = 0
    for _ in range(310):
        state[fptr] = (state[fptr] + state[rptr]) & _MASK32
        fptr += 1
        if fptr >= 31:
            fptr = 0
        rptr += 1
        if rptr >= 31:
            rptr = 0
    return state, fptr, rptr


@numba.njit(cache=True, nogil=True)
def _glibc_table(arr, out, seed):  # pragma: no cover - compiled
    n_perm, n = out.shape
    state, fptr, rptr = _glibc_seed(seed)
    div, rcp = _shuffle_divisors(n, _GLIBC_RAND_MAX)
    draws = np.empty(max(n - 1, 1), dtype=np.int64)
    m = n - 1
    for b in range(n_perm):
        for k in range(m):
            v = (state[fptr] + state[rptr]) & _MASK32
            state[fptr] = v
            draws[k] = v >> 1
            fptr += 1
            if fptr >= 31:
                fptr = 0
            rptr += 1
            if rptr >= 31:
                rptr = 0
        _shuffle_step(arr, draws, div, rcp)
        out[b, :] = arr


# --- bulk-drawn (numpy) -----------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _shuffle_rows(arr, draws, out, rand_max):  # pragma: no cover - compiled
    """Apply ``draws.shape[0]`` cumulative passes to ``arr``, writing each into ``out``."""
    div, rcp = _shuffle_divisors(arr.shape[0], rand_max)
    for b in range(draws.shape[0]):
        _shuffle_step(arr, draws[b], div, rcp)
        out[b, :] = arr


@numba.njit(cache=True, nogil=True, parallel=True)
def _inverse_rows(table, inv):  # pragma: no cover - compiled
    n_perm, n = table.shape
    for b in numba.prange(n_perm):
        row = table[b]
        irow = inv[b]
        for i in range(n):
            irow[row[i]] = i


# ----------------------------------------------------------------------------------
# Python API
# ----------------------------------------------------------------------------------


def _validate(n: int, n_permutations: int, rng: str, seed: int) -> tuple[int, int, str, int]:
    if rng not in RNGS:
        raise ValueError(f"unknown rng {rng!r}; valid choices are {', '.join(repr(r) for r in RNGS)}")
    for name, value in (("n", n), ("n_permutations", n_permutations), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{name} must be an integer, got {type(value).__name__}")
    n, n_permutations, seed = int(n), int(n_permutations), int(seed)
    if n < 2:
        raise ValueError(f"n must be >= 2 (number of genes to permute), got {n}")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if seed >= 2**32:
        raise ValueError(f"seed must be < 2**32 (an unsigned 32-bit integer), got {seed}")
    return n, n_permutations, rng, seed


def _build(n: int, n_permutations: int, rng: str, seed: int) -> np.ndarray:
    dtype = np.int64 if n >= 2**31 else np.int32
    out = np.empty((n_permutations, n), dtype=dtype)
    arr = np.arange(n, dtype=dtype)  # the cumulative working array
    if rng == "mt19937":
        _mt_table(arr, out, seed)
    elif rng == "srand":
        _glibc_table(arr, out, seed)
    else:  # numpy
        gen = np.random.Generator(np.random.PCG64(seed))
        rows_per_chunk = max(1, _NUMPY_CHUNK_DRAWS // (n - 1))
        for start in range(0, n_permutations, rows_per_chunk):
            stop = min(start + rows_per_chunk, n_permutations)
            draws = gen.integers(0, 2**32, size=(stop - start, n - 1), dtype=np.uint32)
            _shuffle_rows(arr, draws, out[start:stop], _NUMPY_RAND_MAX)
    return out


def permutation_table(n: int, n_permutations: int, *, rng: str = "mt19937", seed: int = 0) -> np.ndarray:
    """Build (or fetch from the in-process memo) a cumulative Fisher–Yates permutation table.

    Parameters
    ----------
    n
        Number of items (genes) to permute; must be ``>= 2``.
    n_permutations
        Number of permutations ``B``; must be ``>= 1``.
    rng
        Random generator, one of :data:`RNGS`: ``"mt19937"`` (GSL Mersenne Twister,
        SecAct R 1.1 default), ``"srand"`` (portable glibc ``srand``/``rand``, legacy
        SecAct C kernel / SecActPy ``CStdlibRNG`` on Linux) or ``"numpy"`` (fast
        PCG64 bulk draws, no reference compatibility).
    seed
        Seed in ``[0, 2**32)``.  For ``"mt19937"`` seed 0 means GSL's default 4357;
        for ``"srand"`` seed 0 behaves like seed 1 (as in glibc).

    Returns
    -------
    numpy.ndarray
        Read-only ``(n_permutations, n)`` array of dtype ``int32`` (``int64`` when
        ``n >= 2**31``).  Row ``b`` holds the source indices of permutation ``b``, so
        the permuted response is ``Y[table[b], :]``.  Each row is a permutation of
        ``0..n-1``; rows are cumulative (each continues shuffling the previous one).

    Raises
    ------
    ValueError
        For an unknown ``rng``, ``n < 2``, ``n_permutations < 1`` or a seed outside
        ``[0, 2**32)``.

    Notes
    -----
    Copy the result (``table.copy()``) if a writable array is needed.

    Examples
    --------
    >>> t = permutation_table(10, 3, rng="mt19937", seed=0)
    >>> t[0].tolist()
    [9, 2, 4, 0, 5, 7, 3, 6, 1, 8]
    """
    key = _validate(n, n_permutations, rng, seed)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    table = _build(*key)
    table.flags.writeable = False
    if table.nbytes <= _CACHE_MAX_BYTES:
        with _cache_lock:
            _cache[key] = table
            _cache.move_to_end(key)
            while len(_cache) > _CACHE_MAXSIZE:
                _cache.popitem(last=False)
    return table


def clear_permutation_cache() -> None:
    """Drop all memoised permutation tables."""
    with _cache_lock:
        _cache.clear()


def inverse_permutation_table(table: np.ndarray) -> np.ndarray:
    """Invert every row of a permutation table.

    Parameters
    ----------
    table
        ``(B, n)`` integer array whose rows are permutations of ``0..n-1`` (e.g. from
        :func:`permutation_table`).  Rows are not checked for being permutations.

    Returns
    -------
    numpy.ndarray
        ``(B, n)`` array ``inv`` of the same dtype with ``inv[b, table[b, i]] = i``.

    Raises
    ------
    ValueError
        If ``table`` is not a two-dimensional integer array or holds out-of-range values.
    """
    table = np.asarray(table)
    if table.ndim != 2:
        raise ValueError(f"table must be 2-dimensional (n_permutations, n), got shape {table.shape}")
    if not np.issubdtype(table.dtype, np.integer):
        raise ValueError(f"table must have an integer dtype, got {table.dtype}")
    n = table.shape[1]
    if table.size and (table.min() < 0 or table.max() >= n):
        raise ValueError(f"table entries must lie in [0, {n})")
    table = np.ascontiguousarray(table)
    inv = np.empty_like(table)
    if table.size:
        _inverse_rows(table, inv)
    return inv
