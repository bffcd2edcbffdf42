"""Input / output: the one input rule, block sources over expression matrices, the sidecar writer."""

from ._resolve import Resolved, resolve
from ._sidecar import SidecarWriter
from ._sources import BlockSource, block_source

__all__ = ["BlockSource", "Resolved", "SidecarWriter", "block_source", "resolve"]
