"""Which proteins share a signature group in a stored run (SecAct's signature grouping).

With ``group_signatures=True`` SecAct merges near-identical signature columns into one column
and reports the group's result for every member, so members carry identical numbers. The run
stores its parameters (signature name, ``group_cor``, ``filter_signature`` and the number of
model columns, ``n_signature_columns``) but not the membership; it is recovered here:

1. no grouping, or as many model columns as proteins: every protein is its own group;
2. a registered signature (``"SecAct"``, ``"CytoSig"``): the grouping is recomputed with
   :func:`secact.core.grouping.group_signature` on the signature's columns that were run
   (cached per process, as in the run itself);
3. a custom signature: proteins whose stored values are identical in every observation
   looked at form a group (members share one model column);

and accepted only when the number of groups equals ``n_signature_columns``; otherwise every
protein is its own group and a warning says so.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["SEP", "protein_groups"]

SEP = "|"  # separator of member names in a group label (as SecAct R names grouped columns)
_ROWS = 256  # observations compared when grouping by identical values


def protein_groups(
    params: Mapping, proteins: Sequence[str], values: Callable[[], np.ndarray] | None = None
) -> pd.Series:
    """Signature-group label of every protein (members joined by ``"|"``; a lone protein: its name).

    Parameters
    ----------
    params
        ``uns[key][level]["params"]`` of the run.
    proteins
        Output proteins, in stored order.
    values
        Called (only when needed) for an observations x proteins array of stored results,
        used to recover the grouping of a custom signature.
    """
    proteins = [str(p) for p in proteins]
    own = pd.Series(proteins, index=proteins, name="group", dtype=object)
    if not bool(params.get("group_signatures", False)):
        return own
    n_columns = params.get("n_signature_columns")
    n_columns = None if n_columns is None else int(n_columns)
    if n_columns == len(proteins):
        return own
    labels = _from_signature(params, proteins)
    if labels is None and values is not None:
        labels = _from_values(values(), proteins)
    if labels is None or (n_columns is not None and labels.nunique() != n_columns):
        warnings.warn(
            "the signature grouping of this run could not be recovered (custom signature with "
            "differing stored values); every protein is shown as its own group.",
            UserWarning,
            stacklevel=3,
        )
        return own
    return labels


def _from_signature(params: Mapping, proteins: list[str]) -> pd.Series | None:
    from ..core.plan import _cached_groups
    from ..datasets._signatures import SIGNATURES, _signature

    name = params.get("signature")
    if not isinstance(name, str) or name not in SIGNATURES:
        return None
    try:
        sig = _signature(name)
    except (OSError, ValueError):  # e.g. SecAct not cached and offline
        return None
    wanted = set(proteins)
    columns = [str(c) for c in sig.columns]
    if not wanted <= set(columns):
        return None
    # the run grouped the full signature, or the columns kept by filter_signature (in
    # signature order); either way the output proteins are exactly the grouped columns
    keep = [i for i, c in enumerate(columns) if c in wanted]
    full = len(keep) == len(columns)
    values = sig.to_numpy(dtype=np.float64)
    if not full:
        values = values[:, keep]
    names = [columns[i] for i in keep]
    groups = _cached_groups(values, names, float(params.get("group_cor", 0.9)), name if full else None)
    label = dict(zip(names, (groups.names[k] for k in groups.labels), strict=True))
    return pd.Series([label[p] for p in proteins], index=proteins, name="group", dtype=object)


def _from_values(values: np.ndarray, proteins: list[str]) -> pd.Series | None:
    values = np.asarray(values[:_ROWS], dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(proteins) or values.shape[0] == 0:
        return None
    keys = [np.ascontiguousarray(values[:, j]).tobytes() for j in range(values.shape[1])]
    members: dict[bytes, list[str]] = {}
    for k, p in zip(keys, proteins, strict=True):
        members.setdefault(k, []).append(p)
    label = {k: SEP.join(m) for k, m in members.items()}
    return pd.Series([label[k] for k in keys], index=proteins, name="group", dtype=object)
