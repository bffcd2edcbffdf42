"""Input / output: the one input rule, block sources over expression matrices, the sidecar writer."""

from ._blocks import BlockSource
from ._output import check_output
from ._resolve import Resolved, block_source, resolve
from ._sidecar import RowTarget, SidecarWriter, WriteRows

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
