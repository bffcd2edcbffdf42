# ruff: noqa: NPY002  (these tests deliberately exercise the legacy global np.random state)
"""Tests for :mod:`secact.core.permutations`."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import platform
import sys
from pathlib import Path

import numpy as np
import pytest

from secact.core import permutations as perm_mod
from secact.core.permutations import (
    RNGS,
    clear_permutation_cache,
    inverse_permutation_table,
    permutation_table,
)

# First permutations of the cumulative Fisher-Yates tables from secactpy 0.3.1's generators,
# which match R (see tests/data/README.md); the file is part of the repository.
REFERENCE_JSON = Path(__file__).parents[1] / "data" / "permutation_tables.json"

# json key for each of our generator names
JSON_KEYS = {"mt19937": "mt19937", "srand": "glibc_srand"}

# Small embedded facts (identical to the json), so something always runs.
FIRST_ROW_N10 = {
    "mt19937": [9, 2, 4, 0, 5, 7, 3, 6, 1, 8],
    "srand": [8, 4, 0, 2, 9, 5, 7, 1, 3, 6],
}


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_permutation_cache()
    yield
    clear_permutation_cache()


@pytest.fixture(scope="module")
def reference() -> dict:
    if not REFERENCE_JSON.is_file():
        pytest.fail(f"reference data not found at {REFERENCE_JSON}; it belongs to the repository")
    with REFERENCE_JSON.open() as fh:
        return json.load(fh)


# ----------------------------------------------------------------------------------
# Independent pure-Python references (slow, for small inputs only)
# ----------------------------------------------------------------------------------


def _py_mt19937(seed: int):
    """Textbook MT19937 genrand_int32 with GSL seeding (0 -> 4357)."""
    s = seed & 0xFFFFFFFF or 4357
    mt = [s]
    for i in range(1, 624):
        mt.append((1812433253 * (mt[-1] ^ (mt[-1] >> 30)) + i) & 0xFFFFFFFF)
    idx = 624
    while True:
        if idx >= 624:
            for k in range(624):
                y = (mt[k] & 0x80000000) | (mt[(k + 1) % 624] & 0x7FFFFFFF)
                mt[k] = mt[(k + 397) % 624] ^ (y >> 1) ^ (0x9908B0DF if y & 1 else 0)
            idx = 0
        y = mt[idx]
        idx += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        yield y


def _py_glibc(seed: int):
    """glibc srand/rand as the linear recurrence r[i] = r[i-3] + r[i-31]."""
    s = seed & 0xFFFFFFFF or 1
    word = s - 2**32 if s >= 2**31 else s  # int32 reinterpretation
    r = [word]
    for _ in range(1, 31):
        hi = int(word / 127773)  # C truncating division
        lo = word - hi * 127773
        word = 16807 * lo - 2836 * hi
        if word < 0:
            word += 2147483647
        r.append(word)
    r = [x & 0xFFFFFFFF for x in r]
    r += [r[i - 31] for i in range(31, 34)]
    i = 34
    while True:
        r.append((r[i - 31] + r[i - 3]) & 0xFFFFFFFF)
        if i >= 344:
            yield r[i] >> 1
        i += 1


def _py_table(n: int, b: int, draws, rand_max: int) -> np.ndarray:
    arr = list(range(n))
    rows = []
    for _ in range(b):
        for i in range(n - 1):
            j = i + next(draws) // (rand_max // (n - i) + 1)
            arr[i], arr[j] = arr[j], arr[i]
        rows.append(list(arr))
    return np.array(rows)


# ----------------------------------------------------------------------------------
# Reference values
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rng", ["mt19937", "srand"])
def test_embedded_first_row(rng):
    assert permutation_table(10, 1, rng=rng, seed=0)[0].tolist() == FIRST_ROW_N10[rng]


@pytest.mark.parametrize("rng", ["mt19937", "srand"])
def test_reference_n10(reference, rng):
    expected = reference[JSON_KEYS[rng]]["n10_first3"]
    assert permutation_table(10, 3, rng=rng, seed=0).tolist() == expected
    # more permutations do not change the leading rows
    assert permutation_table(10, 50, rng=rng, seed=0)[:3].tolist() == expected


@pytest.mark.parametrize("rng", ["mt19937", "srand"])
def test_reference_n7720_b1000(reference, rng):
    ref = reference[JSON_KEYS[rng]]["n7720_B1000"]
    table = permutation_table(7720, 1000, rng=rng, seed=0)
    assert table.shape == (1000, 7720)
    assert table[0, :8].tolist() == ref["perm1_first8"]
    assert table[1, :8].tolist() == ref["perm2_first8"]
    assert table[999, :8].tolist() == ref["perm1000_first8"]
    assert table[999, -4:].tolist() == ref["perm1000_last4"]


@pytest.mark.parametrize("seed", [0, 1, 7, 4357, 123456789, 2**31 - 1, 2**31, 3_000_000_000, 2**32 - 1])
def test_mt19937_matches_pure_python(seed):
    n, b = 53, 6
    expected = _py_table(n, b, _py_mt19937(seed), 2**32 - 1)
    np.testing.assert_array_equal(permutation_table(n, b, rng="mt19937", seed=seed), expected)


@pytest.mark.parametrize("seed", [0, 1, 2, 42, 123456789, 2**31 - 1, 2**31, 3_000_000_000, 2**32 - 1])
def test_srand_matches_pure_python(seed):
    n, b = 53, 6
    expected = _py_table(n, b, _py_glibc(seed), 2**31 - 1)
    np.testing.assert_array_equal(permutation_table(n, b, rng="srand", seed=seed), expected)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="the C library's rand() is glibc's only on glibc Linux",
)
@pytest.mark.parametrize("seed", [0, 1, 99, 2**31 + 5, 2**32 - 1])
def test_srand_matches_system_glibc(seed):
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.srand.argtypes = [ctypes.c_uint]
    libc.rand.restype = ctypes.c_int
    libc.srand(seed)
    draws = iter([libc.rand() for _ in range(4 * 40)])
    expected = _py_table(41, 4, draws, 2**31 - 1)
    np.testing.assert_array_equal(permutation_table(41, 4, rng="srand", seed=seed), expected)


def test_seed_zero_aliases():
    np.testing.assert_array_equal(
        permutation_table(30, 4, rng="mt19937", seed=0), permutation_table(30, 4, rng="mt19937", seed=4357)
    )
    np.testing.assert_array_equal(
        permutation_table(30, 4, rng="srand", seed=0), permutation_table(30, 4, rng="srand", seed=1)
    )


# ----------------------------------------------------------------------------------
# Structural properties
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rng", RNGS)
@pytest.mark.parametrize(("n", "b"), [(2, 5), (3, 10), (10, 7), (257, 40), (7720, 25)])
def test_rows_are_permutations(rng, n, b):
    table = permutation_table(n, b, rng=rng, seed=3)
    assert table.shape == (b, n)
    assert table.dtype == np.int32
    np.testing.assert_array_equal(np.sort(table, axis=1), np.broadcast_to(np.arange(n), (b, n)))


@pytest.mark.parametrize("rng", RNGS)
def test_rows_are_cumulative_and_prefix_stable(rng):
    short = permutation_table(100, 5, rng=rng, seed=11)
    long = permutation_table(100, 20, rng=rng, seed=11)
    np.testing.assert_array_equal(long[:5], short)
    # rows differ from each other (the working array is not reset)
    assert len({tuple(r) for r in long.tolist()}) == 20


@pytest.mark.parametrize("rng", RNGS)
def test_deterministic(rng):
    a = permutation_table(500, 30, rng=rng, seed=5).copy()
    clear_permutation_cache()
    b = permutation_table(500, 30, rng=rng, seed=5)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rng", RNGS)
def test_seed_changes_output(rng):
    a = permutation_table(500, 10, rng=rng, seed=5)
    b = permutation_table(500, 10, rng=rng, seed=6)
    assert not np.array_equal(a, b)


def test_generators_differ():
    tables = [permutation_table(200, 3, rng=r, seed=1) for r in RNGS]
    for i in range(len(tables)):
        for j in range(i + 1, len(tables)):
            assert not np.array_equal(tables[i], tables[j])


def test_numpy_backend_does_not_touch_global_state():
    np.random.seed(1234)
    state_before = np.random.get_state()
    permutation_table(1000, 20, rng="numpy", seed=9)
    state_after = np.random.get_state()
    assert state_before[0] == state_after[0]
    np.testing.assert_array_equal(state_before[1], state_after[1])
    assert state_before[2:] == state_after[2:]
    np.random.seed(1234)
    expected = np.random.random(3)
    np.random.seed(1234)
    permutation_table(1000, 20, rng="numpy", seed=10)
    np.testing.assert_array_equal(np.random.random(3), expected)


@pytest.mark.parametrize("rng", ["mt19937", "srand"])
def test_compiled_backends_do_not_touch_global_state(rng):
    np.random.seed(99)
    expected = np.random.random(3)
    np.random.seed(99)
    permutation_table(300, 5, rng=rng, seed=10)
    np.testing.assert_array_equal(np.random.random(3), expected)


def test_numpy_backend_independent_of_chunking(monkeypatch):
    full = permutation_table(97, 40, rng="numpy", seed=21).copy()
    clear_permutation_cache()
    monkeypatch.setattr(perm_mod, "_NUMPY_CHUNK_DRAWS", 3 * 96 + 5)  # 3 rows per chunk
    np.testing.assert_array_equal(permutation_table(97, 40, rng="numpy", seed=21), full)


# ----------------------------------------------------------------------------------
# Memoisation
# ----------------------------------------------------------------------------------


def test_result_is_read_only_and_memoised():
    a = permutation_table(50, 4, rng="mt19937", seed=2)
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0, 0] = 1
    assert permutation_table(50, 4, rng="mt19937", seed=2) is a
    assert permutation_table(50, 4, rng="mt19937", seed=3) is not a
    assert permutation_table(50, 4, rng="srand", seed=2) is not a
    clear_permutation_cache()
    b = permutation_table(50, 4, rng="mt19937", seed=2)
    assert b is not a
    np.testing.assert_array_equal(a, b)


def test_memo_is_bounded():
    first = permutation_table(20, 2, rng="srand", seed=0)
    for seed in range(1, perm_mod._CACHE_MAXSIZE + 1):
        permutation_table(20, 2, rng="srand", seed=seed)
    assert len(perm_mod._cache) == perm_mod._CACHE_MAXSIZE
    assert permutation_table(20, 2, rng="srand", seed=0) is not first


# ----------------------------------------------------------------------------------
# Inverse
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rng", RNGS)
def test_inverse_permutation_table(rng):
    table = permutation_table(333, 17, rng=rng, seed=4)
    inv = inverse_permutation_table(table)
    assert inv.shape == table.shape
    assert inv.dtype == table.dtype
    rows = np.arange(table.shape[0])[:, None]
    expected = np.broadcast_to(np.arange(333), table.shape)
    np.testing.assert_array_equal(inv[rows, table], expected)
    np.testing.assert_array_equal(table[rows, inv], expected)
    np.testing.assert_array_equal(inv, np.argsort(table, axis=1))
    # permuting a response and un-permuting it round-trips
    y = np.random.default_rng(0).normal(size=(333, 3))
    for b in range(table.shape[0]):
        np.testing.assert_array_equal(y[table[b]][inv[b]], y)


def test_inverse_accepts_other_integer_dtypes():
    table = np.array([[2, 0, 1], [0, 1, 2]], dtype=np.int64)
    inv = inverse_permutation_table(table)
    assert inv.dtype == np.int64
    assert inv.tolist() == [[1, 2, 0], [0, 1, 2]]


def test_inverse_validation():
    with pytest.raises(ValueError, match="2-dimensional"):
        inverse_permutation_table(np.arange(5))
    with pytest.raises(ValueError, match="integer dtype"):
        inverse_permutation_table(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        inverse_permutation_table(np.array([[0, 1, 3]]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        inverse_permutation_table(np.array([[0, -1, 2]]))


# ----------------------------------------------------------------------------------
# Argument validation
# ----------------------------------------------------------------------------------


def test_unknown_rng_lists_valid_choices():
    with pytest.raises(ValueError, match="unknown rng 'gsl'") as err:
        permutation_table(10, 2, rng="gsl")
    for name in RNGS:
        assert repr(name) in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"n": 1, "n_permutations": 2}, "n must be >= 2"),
        ({"n": 0, "n_permutations": 2}, "n must be >= 2"),
        ({"n": 10, "n_permutations": 0}, "n_permutations must be >= 1"),
        ({"n": 10, "n_permutations": -3}, "n_permutations must be >= 1"),
        ({"n": 10, "n_permutations": 2, "seed": -1}, "seed must be non-negative"),
        ({"n": 10, "n_permutations": 2, "seed": 2**32}, r"seed must be < 2\*\*32"),
        ({"n": 10.0, "n_permutations": 2}, "n must be an integer"),
        ({"n": 10, "n_permutations": 2, "seed": 1.5}, "seed must be an integer"),
        ({"n": 10, "n_permutations": True}, "n_permutations must be an integer"),
    ],
)
def test_argument_validation(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        permutation_table(**kwargs)


def test_numpy_integer_arguments_accepted():
    a = permutation_table(np.int64(12), np.int32(3), rng="srand", seed=np.uint32(7))
    np.testing.assert_array_equal(a, permutation_table(12, 3, rng="srand", seed=7))


@pytest.mark.parametrize("rand_max", [2**31 - 1, 2**32 - 1])
def test_shuffle_quotient_exact_at_boundaries(rand_max):
    # draws exactly at and just below multiples of the divisor, plus the extremes
    n = 5000
    rng = np.random.default_rng(0)
    div = np.array([rand_max // (n - i) + 1 for i in range(n - 1)], dtype=np.int64)
    k = rng.integers(0, n - np.arange(n - 1))  # valid quotients
    choices = [k * div, k * div - 1, np.full(n - 1, rand_max), np.zeros(n - 1, dtype=np.int64)]
    for draws in choices:
        draws = np.clip(draws, 0, rand_max).astype(np.uint32)
        arr = np.arange(n, dtype=np.int32)
        out = np.empty((1, n), dtype=np.int32)
        perm_mod._shuffle_rows(arr, draws[None, :], out, rand_max)
        expected = _py_table(n, 1, iter(draws.tolist()), rand_max)
        np.testing.assert_array_equal(out, expected)
