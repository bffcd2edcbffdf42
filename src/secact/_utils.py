"""Small shared helpers (progress bars)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

__all__ = ["progress_bar"]


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
