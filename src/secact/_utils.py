"""Small shared helpers (progress bars)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

__all__ = ["progress_bar", "want_progress"]


def progress_bar(
    blocks: Iterable[tuple[int, int, T]], show: bool | None, n_rows: int, batch: int, desc: str
) -> Iterator[tuple[int, int, T]]:
    """Wrap ``(start, stop, block)`` items in a tqdm bar counting rows (cells/s).

    ``show=None`` lets tqdm decide (shown on a terminal only); ``False`` silences it.
    """
    if show is False:
        yield from blocks
        return
    from tqdm.auto import tqdm

    with tqdm(
        total=n_rows,
        desc=desc,
        unit="cells",
        unit_scale=True,
        disable=None if show is None else not show,
        leave=False,
        mininterval=0.5,
        miniters=max(1, math.ceil(n_rows / batch / 100)),
    ) as bar:
        for item in blocks:
            yield item
            bar.update(item[1] - item[0])


def want_progress(progress: bool | None) -> bool | None:
    """Resolve a ``progress`` argument: explicit values win; ``None`` follows scanpy's verbosity.

    Without scanpy imported, ``None`` is returned and tqdm shows the bar on terminals only.
    scanpy is never imported here (it is slow to import).
    """
    if progress is not None:
        return bool(progress)
    import sys

    sc = sys.modules.get("scanpy")
    if sc is not None:
        try:
            return int(sc.settings.verbosity) >= 2
        except (AttributeError, TypeError, ValueError):  # pragma: no cover - odd verbosity
            return False
    return None
