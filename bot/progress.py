"""Progress bars for long work: shown on a terminal, silent when piped or under CI."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Progress(Protocol):
    def advance(self, amount: float = 1) -> None: ...
    def update(self, description: str) -> None: ...


class Silent:
    """A progress sink that shows nothing (piped output, or library callers)."""

    def advance(self, amount: float = 1) -> None:
        pass

    def update(self, description: str) -> None:
        pass


class _Rich:
    def __init__(self, bar, task) -> None:
        self._bar, self._task = bar, task

    def advance(self, amount: float = 1) -> None:
        self._bar.advance(self._task, amount)

    def update(self, description: str) -> None:
        self._bar.update(self._task, description=description)


def interactive() -> bool:
    return sys.stderr.isatty() and os.environ.get("CI") != "true"


@contextmanager
def progress(description: str, total: float | None, unit: str = "") -> Iterator[Progress]:
    """A progress bar on stderr when it is a terminal; a no-op otherwise."""
    if not interactive():
        yield Silent()
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as RichProgress

    count = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
    columns = (TextColumn("{task.description}"), BarColumn(), count, TimeRemainingColumn())
    with RichProgress(*columns, transient=True) as bar:
        yield _Rich(bar, bar.add_task(description, total=total))
