"""secact: secreted-protein signalling activity (SecAct / CytoSig) for scanpy.

Ridge regression of expression profiles on a signature matrix with a permutation test,
exact to SecAct R 1.1, for bulk tables, in-memory, backed and distributed AnnData.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("secact")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

from . import datasets, get, io, pl, pp, tl
from ._infer import ActivityResult, infer
from ._settings import settings

__all__ = ["ActivityResult", "__version__", "datasets", "get", "infer", "io", "pl", "pp", "settings", "tl"]
