"""Write a file so that it appears complete or not at all.

:func:`atomic_path` hands out a partial file beside the target, named as the sidecar's
(``.<name>.partial-<pid><suffixes>``), and renames it onto the target when the writing
succeeded; on an error the partial file is removed. A process killed while writing leaves its
partial file behind: the next write of the same target removes it (see
:func:`secact.io._output.clean_stale`), as a sidecar run does.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ._files import suffixes
from ._output import clean_stale

__all__ = ["atomic_path", "partial_path"]


def partial_path(path: str | os.PathLike) -> Path:
    """The partial file of ``path`` written by this process (same folder, same format and
    compression suffixes, so that writers that go by the suffix write the same format)."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial-{os.getpid()}{''.join(suffixes(path))}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A path to write ``path``'s new content to; it replaces ``path`` when the block ends
    without an error, and is removed otherwise.

    The partial file is not created here: the writer creates it, with the usual permissions.
    Partial files of ``path`` left by processes that no longer run are removed first.

    Examples
    --------
    >>> with atomic_path("table.tsv") as tmp:  # doctest: +SKIP
    ...     frame.to_csv(tmp, sep="\\t")
    """
    path = Path(path)
    clean_stale(path)
    tmp = partial_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
