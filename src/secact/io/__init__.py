"""Input / output: the one input rule, block sources over expression matrices, the sidecar writer."""

from ._output import check_output
from ._resolve import Resolved, resolve
from ._sidecar import RowTarget, SidecarWriter, WriteRows
from ._sources import BlockSource, block_source

__all__ = [
    "BlockSource",
    "Resolved",
    "RowTarget",
    "SidecarWriter",
    "WriteRows",
    "block_source",
    "check_output",
    "resolve",
]
