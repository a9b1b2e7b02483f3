"""Progress bars for long commands: a total, a count, the rate, elapsed time and an ETA."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")
EVERY = 2048  # items between updates: frequent enough for a smooth ETA, cheap per item


@contextmanager
def bar_progress(console: Console, label: str, total: int | None,
                 unit: str) -> Iterator[Callable[[int], None]]:
    """A transient bar on ``console``; yields ``advance(n_done)``. ``total`` None: no ETA."""
    columns: list[Any] = [TextColumn(label), BarColumn()]
    if total:
        columns += [MofNCompleteColumn(), TextColumn(unit), TaskProgressColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    else:
        columns += [TextColumn(f"{{task.completed:,}} {unit}"), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=total or None)
        yield lambda n: bar.update(task, completed=n)


class CountedFeed(Generic[T]):
    """Iterates ``source`` and reports how many items went by every ``EVERY`` items.

    Attributes of the source (a feed's ``stats``) stay reachable through it.
    """

    def __init__(self, source: Iterable[T], advance: Callable[[int], None]) -> None:
        self._source = source
        self._advance = advance

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def __iter__(self) -> Iterator[T]:
        n = 0
        advance = self._advance
        for n, item in enumerate(self._source, 1):
            yield item
            if not n % EVERY:
                advance(n)
        advance(n)
