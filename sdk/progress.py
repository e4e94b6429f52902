"""Progress bars for long work (tqdm on stderr; silent when disabled)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def progress(
    items: Iterable[T], *, desc: str, total: int | None = None, enabled: bool = True, unit: str = "it"
) -> Iterable[T]:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=total, unit=unit, dynamic_ncols=True, leave=True)


def progress_bar(*, total: int, desc: str, unit: str = "it", enabled: bool = True):
    """A bar advanced by hand (``.update(n)``, ``.close()``), for work that is not one loop."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=True, disable=not enabled)
