"""The inference options of one run, validated once."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from .._checks import check_positive_int
from .._errors import ParamError
from .permutations import RNGS

__all__ = ["InferenceParams", "Method"]

Method = Literal["permutation", "analytic"]


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_real(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


@dataclass(frozen=True)
class InferenceParams:
    """Options of the ridge regression and its significance test (see :func:`secact.infer`).

    Construction validates every field and raises :class:`ValueError` (or :class:`TypeError`
    for a value of the wrong kind) naming the parameter.
    """

    method: Method = "permutation"
    n_permutations: int = 1000
    rng: str = "mt19937"
    seed: int = 0
    group_signatures: bool = True
    group_cor: float = 0.9
    filter_signature: bool = False
    lambda_: float = 5e5

    def __post_init__(self) -> None:
        if self.method not in ("permutation", "analytic"):
            msg = f"method must be 'permutation' or 'analytic', got {self.method!r}."
            raise ValueError(msg)
        check_positive_int(self.n_permutations, "n_permutations")
        if self.method == "permutation" and self.n_permutations < 2:
            msg = (
                "{n_permutations=}: a standard error needs at least 2 permutations (SecAct uses 1000); "
                "or use {method='analytic'}."
            )
            raise ParamError(msg, n_permutations=self.n_permutations)
        if self.rng not in RNGS:
            msg = f"rng must be one of {list(RNGS)}, got {self.rng!r}."
            raise ValueError(msg)
        if not _is_int(self.seed) or not 0 <= self.seed < 2**32:
            msg = f"seed must be an integer in [0, 2**32), got {self.seed!r}."
            raise ValueError(msg)
        if not _is_real(self.group_cor) or not 0 < self.group_cor <= 1:
            msg = f"group_cor must be a number in (0, 1], got {self.group_cor!r}."
            raise ValueError(msg)
        if not _is_real(self.lambda_) or not np.isfinite(self.lambda_) or self.lambda_ < 0:
            msg = f"lambda_ must be a finite number >= 0, got {self.lambda_!r}."
            raise ValueError(msg)
        for name in ("group_signatures", "filter_signature"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                msg = f"{name} must be True or False, got {getattr(self, name)!r}."
                raise TypeError(msg)
        object.__setattr__(self, "n_permutations", int(self.n_permutations))
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "group_cor", float(self.group_cor))
        object.__setattr__(self, "lambda_", float(self.lambda_))
        object.__setattr__(self, "group_signatures", bool(self.group_signatures))
        object.__setattr__(self, "filter_signature", bool(self.filter_signature))

    def record(self) -> dict:
        """The options as stored in ``uns[key]["params"]`` (``lambda`` without underscore)."""
        out = asdict(self)
        out["lambda"] = out.pop("lambda_")
        if self.method == "analytic":
            out["n_permutations"] = 0
        return out
