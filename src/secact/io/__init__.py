"""Input / output: block sources over expression matrices and the result sidecar writer."""

from ._sidecar import SidecarWriter
from ._sources import BlockSource, block_source, check_finite

__all__ = ["BlockSource", "SidecarWriter", "block_source", "check_finite"]
