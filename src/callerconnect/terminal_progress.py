"""A progress bar for long commands, drawn on standard error only when it is a terminal.

Services report progress through an optional callback ``on_progress(done, total)`` and
know nothing of terminals; a command passes them the callback :func:`progress_bar`
yields. When standard error is not a terminal (a script, a pipe, a test) the callback
does nothing, so what the command prints stays exactly what scripts expect.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import Progress, TaskID

OnProgress = Callable[[int, int], object]


def _nothing(done: int, total: int) -> None:
    return None


class _Bar:
    """Started on the first report that comes ``show_after`` seconds after the start, so
    a command that ends quickly never draws one."""

    def __init__(self, description: str, stream: TextIO, show_after: float) -> None:
        self.description = description
        self.stream = stream
        self.deadline = time.monotonic() + show_after
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.progress is None:
            if time.monotonic() < self.deadline:
                return
            self.progress = Progress(console=Console(file=self.stream), transient=True)
            self.progress.start()
            self.task = self.progress.add_task(self.description, total=total)
        assert self.task is not None
        self.progress.update(self.task, completed=done, total=total)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


@contextmanager
def progress_bar(
    description: str, *, stream: TextIO | None = None, show_after: float = 0.0
) -> Iterator[OnProgress]:
    """An ``on_progress(done, total)`` callback drawing a bar on ``stream`` (standard
    error by default) if it is a terminal, doing nothing otherwise; the bar is cleared
    when the block ends."""
    target = stream if stream is not None else sys.stderr
    if not target.isatty():
        yield _nothing
        return
    bar = _Bar(description, target, show_after)
    try:
        yield bar
    finally:
        bar.close()
