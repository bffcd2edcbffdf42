"""``secact.core.rsample`` against R 4.2.2's own draws (``tests/data/rsample``, made by
``make_rsample.R`` there): ``set.seed`` + ``runif`` / ``sample.int`` / ``sample`` for 9 seeds
(0, negative, 2**31 - 1, ...), populations from 1 to 2**31 - 1, with and without replacement
(R's hash variant for n > 1e7 included), and SecAct.CCC.scST's pair of background draws.
Each case checks the first 12 values, two checksums over all values and R's next
``runif(1)`` (so the number of uniforms each draw used is right too)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from secact.core.rsample import RRandom, r_seed_words

DATA = Path(__file__).parents[1] / "data" / "rsample" / "rsample.tsv"


def _cases() -> pd.DataFrame:
    return pd.read_csv(DATA, sep="\t", dtype={"first": str, "sum": str, "wsum": str, "next": str})


CASES = _cases()


def _draw(row) -> np.ndarray:
    rng = RRandom(int(row.seed))
    n, size, replace = int(row.n), int(row["size"]), bool(row["replace"])
    if row.kind == "runif":
        x = rng.unif_rand(size) * 2.0**32
    elif row.kind == "sample.int":
        x = rng.sample_int(n, size, replace=replace) + 1
    elif row.kind == "sample":
        x = rng.sample(np.arange(1, n + 1))
    elif row.kind == "ccc":
        a = rng.sample(np.arange(1, n + 1) * 3, size, replace=True)
        b = rng.sample(np.arange(1, n + 6) * 2, size, replace=True)
        x = np.concatenate([a, b])
    else:  # pragma: no cover - data error
        raise AssertionError(row.kind)
    row_next = rng.unif_rand(1)[0]
    return np.asarray(x, dtype=np.float64), row_next


def test_reference_file_covers_the_cases():
    assert len(CASES) == 387
    assert set(CASES["kind"]) == {"runif", "sample.int", "sample", "ccc"}
    assert CASES["n"].max() == 2**31 - 1
    # about 390,000 draws in all (1,000 per sample.int case with replacement)
    assert CASES["size"].sum() > 350_000


@pytest.mark.parametrize("i", range(len(CASES)))
def test_draws_equal_r(i):
    row = CASES.iloc[i]
    x, nxt = _draw(row)
    assert x.size == (int(row["size"]) * (2 if row.kind == "ccc" else 1))
    first = np.array([float(v) for v in row["first"].split()])
    np.testing.assert_array_equal(x[:12], first)
    assert x.sum() == float(row["sum"])
    k = np.arange(1, x.size + 1)
    assert float(((x % 65521) * (k % 65521)).sum()) == float(row["wsum"])
    assert nxt == float(row["next"])  # R's next runif(1): same number of uniforms used


def test_seed_words_match_r_random_seed():
    # R: set.seed(123); .Random.seed[3:5]
    np.testing.assert_array_equal(r_seed_words(123)[:3].view(np.int32), [-983674937, 643431772, 1162448557])


def test_copy_is_independent_and_at_the_same_position():
    a = RRandom(7)
    a.sample_int(1000, 17, replace=True)
    b = a.copy()
    np.testing.assert_array_equal(
        a.sample_int(70000, 500, replace=True), b.sample_int(70000, 500, replace=True)
    )
    np.testing.assert_array_equal(a.unif_rand(3), b.unif_rand(3))


def test_chunked_draws_equal_one_draw():
    one = RRandom(123).sample_int(77, 10_000, replace=True)
    rng = RRandom(123)
    parts = [rng.sample_int(77, k, replace=True) for k in (1, 999, 4000, 5000)]
    np.testing.assert_array_equal(np.concatenate(parts), one)


def test_errors():
    rng = RRandom(1)
    with pytest.raises(ValueError, match="larger than the population"):
        rng.sample_int(5, 6)
    with pytest.raises(ValueError, match="n must be between"):
        rng.sample_int(0, 1)
    with pytest.raises(ValueError, match="n must be between"):
        rng.sample_int(2**31, 1)
    with pytest.raises(TypeError, match="integer"):
        rng.sample_int("5", 1)
    with pytest.raises(ValueError, match="empty"):
        rng.sample([], 1)
    assert rng.sample_int(5, 0).size == 0
