"""R's random numbers: ``set.seed``, ``runif`` and ``sample`` of R >= 3.6, draw for draw.

R's default generator is the Mersenne-Twister (MT19937) with R's own seeding, and since
R 3.6.0 ``sample()`` draws indices by rejection (``sample.kind = "Rejection"``). This module
reproduces both on arrays, so that an analysis seeded in R (``set.seed(123)``) can be
repeated here with the same draws:

``set.seed(seed)`` (R's ``RNG_Init``)
    ``seed`` is taken as an unsigned 32-bit integer and scrambled 50 times by the linear
    congruential step ``seed = 69069 * seed + 1``; 625 further steps fill R's seed vector,
    whose first entry is replaced by the position 624 (``FixupSeeds``): the generator's 624
    words are the values of steps 52 to 675, and the first draw regenerates the block.
``unif_rand()`` (R's ``MT_genrand`` and ``fixup``)
    The standard MT19937 32-bit output ``y`` (same recurrence and tempering as
    Matsumoto and Nishimura's ``genrand_int32``) as ``y * 2**-32``; 0 becomes
    ``0.5 / (2**32 - 1)`` (``fixup``), as in R.
``R_unif_index(n)`` (rejection sampling)
    ``bits = ceil(log2(n))``; draw ``v`` from ``bits // 16 + 1`` uniforms, each giving its
    16 high bits (``floor(65536 * u)``), ``v = 65536 * v + next``, keep the low ``bits`` of
    ``v``; repeat until ``v < n``. Every attempt uses the same number of uniforms.
``sample.int(n, size, replace)`` (R's ``do_sample`` / ``do_sample2``)
    With replacement: ``R_unif_index(n)`` for each draw. Without: a partial Fisher-Yates
    over ``0..n-1`` (``j = R_unif_index(n - i)``, take ``x[j]``, move the last remaining
    value to ``j``). For ``n > 1e7`` without replacement and ``size <= n / 2`` R draws with
    replacement and rejects repeats (``sample2``), as here.

Indices are returned 0-based (R's ``sample.int(...) - 1``). R's ``sample(x, ...)`` is
``x[sample.int(length(x), ...)]`` except when ``x`` is a single number ``>= 1`` (R then
samples ``1:x``); :meth:`RRandom.sample` always samples the elements of ``x``.

The generator state is NumPy's :class:`numpy.random.MT19937` (the same recurrence, set from
R's seed vector), read 32 bits at a time; draws are vectorised, so millions of indices take
milliseconds. Checked draw for draw against R 4.2.2 (``tests/data/rsample``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["RRandom", "r_seed_words"]

_N = 624
_TWO_M32 = 2.3283064365386963e-10  # 2**-32, R's MT_genrand scale
_I2_32M1 = 2.328306437080797e-10  # 1 / (2**32 - 1), R's fixup
_MAX_N = 2**31 - 1  # R_unif_index with bits <= 31 (sample.int's integer range)
_CHUNK_WORDS = 1 << 22


def r_seed_words(seed: int) -> np.ndarray:
    """The 624 Mersenne-Twister words R's ``set.seed(seed)`` leaves (``.Random.seed[3:626]``).

    Parameters
    ----------
    seed
        R's seed (any integer; taken modulo ``2**32`` like R's ``(Int32) seed``).

    Returns
    -------
    numpy.ndarray
        uint32 array of 624 words; R's next draw regenerates the block from them.
    """
    s = int(seed) & 0xFFFFFFFF
    for _ in range(50):
        s = (69069 * s + 1) & 0xFFFFFFFF
    words = np.empty(_N + 1, dtype=np.uint32)
    for j in range(_N + 1):
        s = (69069 * s + 1) & 0xFFFFFFFF
        words[j] = s
    return words[1:]  # words[0] is R's position slot, set to 624 by FixupSeeds


class RRandom:
    """R's Mersenne-Twister stream after ``set.seed(seed)``, with R's ``runif`` and ``sample``.

    Parameters
    ----------
    seed
        As R's ``set.seed(seed)`` (``RNGkind("Mersenne-Twister", "Inversion", "Rejection")``,
        R's default since 3.6.0).

    Examples
    --------
    >>> from secact.core.rsample import RRandom
    >>> RRandom(123).sample_int(10, 10, replace=True) + 1  # R: set.seed(123); sample.int(10, 10, TRUE)
    array([ 3,  3, 10,  2,  6,  5,  4,  6,  9, 10])
    """

    def __init__(self, seed: int) -> None:
        self._bg = np.random.MT19937()
        self._bg.state = {
            "bit_generator": "MT19937",
            "state": {"key": r_seed_words(seed), "pos": _N},
        }
        self._buf = np.empty(0, dtype=np.uint64)
        self._pos = 0

    # -- the stream of 32-bit words --------------------------------------------------------
    def copy(self) -> RRandom:
        """An independent generator at the same position of the stream."""
        new = RRandom.__new__(RRandom)
        new._bg = np.random.MT19937()
        new._bg.state = self._bg.state
        new._buf = self._buf
        new._pos = self._pos
        return new

    def _peek(self, k: int) -> np.ndarray:
        """The next ``k`` words (uint64 holding 32 bits) without consuming them."""
        have = self._buf.size - self._pos
        if have < k:
            more = self._bg.random_raw(max(k - have, 4096))
            self._buf = np.concatenate([self._buf[self._pos :], more])
            self._pos = 0
        return self._buf[self._pos : self._pos + k]

    def _advance(self, k: int) -> None:
        self._pos += k

    def words(self, k: int) -> np.ndarray:
        """The next ``k`` raw 32-bit outputs of the Mersenne-Twister (uint64 array)."""
        out = self._peek(int(k)).copy()
        self._advance(int(k))
        return out

    def unif_rand(self, k: int) -> np.ndarray:
        """R's ``runif(k)``: the next ``k`` uniforms in (0, 1) (float64)."""
        u = self.words(k).astype(np.float64) * _TWO_M32
        # fixup: keep in (0, 1) exactly as R (y / 2**32 < 1 always; only 0 needs it)
        u[u <= 0.0] = 0.5 * _I2_32M1
        return u

    # -- R_unif_index ----------------------------------------------------------------------
    @staticmethod
    def _bits(n: int) -> int:
        return (int(n) - 1).bit_length()  # ceil(log2(n)), 0 for n = 1

    def _attempts(self, bits: int, k: int) -> np.ndarray:
        """Candidate values of the next ``k`` rejection attempts with ``bits`` bits (not consumed)."""
        w = bits // 16 + 1
        raw = self._peek(k * w).reshape(k, w) >> np.uint64(16)
        v = raw[:, 0].copy()
        for c in range(1, w):
            v = (v << np.uint64(16)) | raw[:, c]
        return v & np.uint64((1 << bits) - 1)

    def _index_replace(self, n: int, size: int, out: np.ndarray) -> None:
        """Fill ``out`` (int64, length ``size``) with ``R_unif_index(n)`` draws."""
        bits = self._bits(n)
        w = bits // 16 + 1
        accept = n / float(1 << bits)
        done = 0
        while done < size:
            need = size - done
            k = min(int(need / accept * 1.02) + 8, max(64, _CHUNK_WORDS // w))
            v = self._attempts(bits, k)
            ok = np.flatnonzero(v < np.uint64(n))
            if ok.size >= need:
                ok = ok[:need]
                self._advance((int(ok[-1]) + 1) * w)
            else:
                self._advance(k * w)
            out[done : done + ok.size] = v[ok].astype(np.int64)
            done += ok.size

    def unif_index(self, n: int) -> int:
        """One ``R_unif_index(n)`` draw: a uniform integer in ``0..n-1``."""
        out = np.empty(1, dtype=np.int64)
        self._index_replace(int(n), 1, out)
        return int(out[0])

    # -- sample ----------------------------------------------------------------------------
    def sample_int(self, n: int, size: int | None = None, *, replace: bool = False) -> np.ndarray:
        """R's ``sample.int(n, size, replace) - 1``: 0-based indices into ``range(n)``.

        Parameters
        ----------
        n
            Population size, ``1 <= n <= 2**31 - 1``.
        size
            Number of draws (R's default ``n``).
        replace
            Draw with replacement.

        Returns
        -------
        numpy.ndarray
            int64 indices, in R's order.
        """
        n = _check_int(n, "n", 1, _MAX_N)
        size = n if size is None else _check_int(size, "size", 0, None)
        out = np.empty(size, dtype=np.int64)
        if size == 0:
            return out
        if replace or size < 2:
            self._index_replace(n, size, out)
            return out
        if size > n:
            raise ValueError(
                f"cannot take a sample larger than the population ({size} > {n}) without replacement."
            )
        if n > 1e7 and size <= n / 2:  # R's useHash: sample2, rejecting repeats
            seen: set[int] = set()
            done = 0
            while done < size:
                draws = np.empty(size - done, dtype=np.int64)
                self._index_replace(n, draws.size, draws)
                for v in draws.tolist():  # a repeat is rejected and the next draw is used
                    if v not in seen:
                        seen.add(v)
                        out[done] = v
                        done += 1
            return out
        pool = np.arange(n, dtype=np.int64)
        one = np.empty(1, dtype=np.int64)
        m = n
        for i in range(size):
            self._index_replace(m, 1, one)
            j = int(one[0])
            out[i] = pool[j]
            m -= 1
            pool[j] = pool[m]
        return out

    def sample(
        self, x: Sequence | np.ndarray, size: int | None = None, *, replace: bool = False
    ) -> np.ndarray:
        """R's ``sample(x, size, replace)`` for a vector ``x``: ``x[sample.int(length(x), ...)]``.

        Unlike R, a single number ``x`` is a one-element population (R samples ``1:x``).
        """
        arr = np.asarray(x)
        if arr.ndim != 1:
            raise ValueError(f"x must be one-dimensional, got shape {arr.shape}.")
        if arr.size == 0:
            raise ValueError("cannot sample from an empty x.")
        return arr[self.sample_int(arr.size, size, replace=replace)]


def _check_int(value, name: str, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer | float):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}.")
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise ValueError(f"{name} must be a whole number, got {value!r}.")
    v = int(value)
    if v < low or (high is not None and v > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {bound}, got {value!r}.")
    return v
